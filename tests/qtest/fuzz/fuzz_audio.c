/*
 * An audio backend whose answers the fuzz target chooses
 *
 * -audiodev fuzz: playback takes only the room the fuzzer gave it and
 * capture gives only what the fuzzer made available, so a device's pacing
 * meets a backend that stalls, takes a trickle, floods it, or asks to be
 * kept full, at the moments the fuzzer picks.  Fuzz builds only
 * (patches/0016).
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/module.h"
#include "audio/audio.h"
#include "fuzz_audio.h"

#define AUDIO_CAP "fuzz"
#include "audio/audio_int.h"
#include "qemu-vfio-audio/compat.h"

static struct {
    uint32_t room;
    uint32_t avail;
    bool keep_full;
} knobs;

void fuzz_audio_set_room(uint32_t bytes)
{
    knobs.room = bytes;
}

void fuzz_audio_set_avail(uint32_t bytes)
{
    knobs.avail = bytes;
}

void fuzz_audio_set_keep_full(bool on)
{
    knobs.keep_full = on;
}

static size_t fz_write(HWVoiceOut *hw, void *buf, size_t len)
{
    size_t n = MIN(len, knobs.room);

    knobs.room -= n;
    return n;
}

/* Our pa's free space, when it asks to be kept full, is its room. */
static size_t fz_buffer_get_free(HWVoiceOut *hw)
{
    return MIN(audio_generic_buffer_get_free(hw), knobs.room);
}

static bool fz_wants_full_out(HWVoiceOut *hw)
{
    return knobs.keep_full;
}

static int fz_init_out(HWVoiceOut *hw, struct audsettings *as,
                       void *drv_opaque)
{
    audio_pcm_init_info(&hw->info, as);
    hw->samples = 1024;
    return 0;
}

static void fz_fini_out(HWVoiceOut *hw)
{
}

static int fz_init_in(HWVoiceIn *hw, struct audsettings *as,
                      void *drv_opaque)
{
    audio_pcm_init_info(&hw->info, as);
    hw->samples = 1024;
    return 0;
}

static void fz_fini_in(HWVoiceIn *hw)
{
}

static size_t fz_read(HWVoiceIn *hw, void *buf, size_t size)
{
    size_t n = MIN(size, knobs.avail);

    n -= n % hw->info.bytes_per_frame;
    knobs.avail -= n;
    memset(buf, 0x5a, n);
    return n;
}

static void *fz_audio_init(Audiodev *dev, Error **errp)
{
    return &knobs;
}
FORK_AUDIO_DRIVER_INIT_DEFINE(fz_audio_init)

static void fz_audio_fini(void *opaque)
{
}

static struct audio_pcm_ops fz_pcm_ops = {
    .init_out        = fz_init_out,
    .fini_out        = fz_fini_out,
    .write           = fz_write,
    .buffer_get_free = fz_buffer_get_free,
    .run_buffer_out  = audio_generic_run_buffer_out,
    .wants_full_out  = fz_wants_full_out,

    .init_in         = fz_init_in,
    .fini_in         = fz_fini_in,
    .read            = fz_read,
    .run_buffer_in   = audio_generic_run_buffer_in,
};

static struct audio_driver fz_audio_driver = {
    .name           = "fuzz",
    .descr          = "A backend whose room the fuzzer sets",
    FORK_AUDIO_DRIVER_INIT(fz_audio_init),
    .fini           = fz_audio_fini,
    .pcm_ops        = &fz_pcm_ops,
    .max_voices_out = INT_MAX,
    .max_voices_in  = INT_MAX,
    .voice_size_out = sizeof(HWVoiceOut),
    .voice_size_in  = sizeof(HWVoiceIn),
};

static void register_audio_fuzz(void)
{
    audio_driver_register(&fz_audio_driver);
}
type_init(register_audio_fuzz);
