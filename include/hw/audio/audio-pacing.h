/*
 * Sound cards: pacing DMA and interrupts by the sample clock
 *
 * One engine for every sound card of the fork (AC97, Intel HDA's codecs).
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_AUDIO_AUDIO_PACING_H
#define HW_AUDIO_AUDIO_PACING_H

#include "qemu/timer.h"
#include "audio/audio.h"
#include "migration/vmstate.h"

#define AUDIO_PACING_STREAMS    4       /* AC97: 3, an HDA codec: up to 4 */

/* Move up to @bytes between guest memory and the FIFO (the device's DMA). */
typedef void AudioPacingTransfer(void *opaque, int index, int bytes);

typedef struct AudioPacingFifo {
    uint8_t *data;
    uint32_t head;
    uint32_t len;
    uint32_t size;
} AudioPacingFifo;

typedef struct AudioPacing AudioPacing;

typedef struct AudioPacingStream {
    AudioPacing *pacing;
    int index;
    QEMUTimer *timer;
    bool output;
    bool active;                /* the guest runs the stream */
    bool running;               /* and it has a rate: the timer is armed */
    uint32_t rate;              /* frames per second */
    uint32_t frame;             /* bytes per frame */
    int64_t last_ns;
    int64_t last_take_ns;       /* the backend last took bytes */
    uint64_t frac;              /* frames * 1e9 not yet due in whole */
    int32_t ppm;                /* drift correction in force */
    int64_t low_fill;           /* FIFO low water mark, smoothed, x256 */
    int64_t low_room;           /* backend room left, smoothed, x256 */
    uint32_t start_left;        /* bytes the backend takes before started */
    int64_t held_ns;            /* the clock waited for it, this start */
    bool backlogged;            /* it left a tick or more in the FIFO */
    AudioPacingFifo fifo;
} AudioPacingStream;

struct AudioPacing {
    bool enabled;               /* the device's property */
    uint32_t period_us;         /* property timer-period */
    const char *device;         /* for messages and traces */
    AudioPacingTransfer *transfer;
    void *opaque;
    AudioPacingStream st[AUDIO_PACING_STREAMS];
};

/* Defaults of the devices' properties. */
#define AUDIO_PACING_DEFAULT_ENABLED    true
#define AUDIO_PACING_DEFAULT_PERIOD_US  1000

/* The properties are valid (realize, before anything is set up). */
bool audio_pacing_check(const AudioPacing *p, const char *device,
                        Error **errp);
/* realize/unrealize; @transfer is the device's DMA for one stream. */
bool audio_pacing_init(AudioPacing *p, const char *device,
                       AudioPacingTransfer *transfer, void *opaque,
                       Error **errp);
void audio_pacing_fini(AudioPacing *p);

static inline bool audio_pacing_enabled(AudioPacing *p)
{
    return p->enabled;
}

/*
 * The stream's direction, sample rate (0 or less: closed) and bytes per
 * frame.  A change drops what the FIFO held in the old format.
 */
void audio_pacing_set_format(AudioPacing *p, int index, bool output,
                             int rate, int frame);
/*
 * The guest starts or stops the stream.  Returns whether the stream's
 * voice must stay active: a stopped playback stream plays out what the
 * guest gave it, and the engine turns its voice off once that is done.
 * Without pacing this returns @on.
 */
bool audio_pacing_set_active(AudioPacing *p, int index, bool on);
/* A reset of the stream: stop, and drop what was on its way. */
void audio_pacing_reset(AudioPacing *p, int index);

/*
 * The device's side of the data path: instead of AUD_write/AUD_read.
 * Without pacing these are AUD_write/AUD_read.
 */
int audio_pacing_write(AudioPacing *p, int index, SWVoiceOut *voice,
                       const void *buf, int len);
int audio_pacing_read(AudioPacing *p, int index, SWVoiceIn *voice,
                      void *buf, int len);

/* The backend's side: the audio layer's callbacks, when pacing is on. */
void audio_pacing_backend_out(AudioPacing *p, int index, SWVoiceOut *voice,
                              int free);
void audio_pacing_backend_in(AudioPacing *p, int index, SWVoiceIn *voice,
                             int avail);

/* Migration: the clock of one stream (its fractions and correction). */
extern const VMStateDescription vmstate_audio_pacing_stream;
bool audio_pacing_running(AudioPacing *p);

#endif
