/*
 * AC97: pacing bus-master DMA and interrupts by the sample clock
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_AUDIO_AC97_PACING_H
#define HW_AUDIO_AC97_PACING_H

#include "qemu/timer.h"
#include "audio/audio.h"
#include "migration/vmstate.h"

#define AC97_PACING_STREAMS     3       /* PCM in, PCM out, mic in */
#define AC97_PACING_FRAME       4       /* the model's 16-bit stereo frames */

/* Move up to @bytes between guest memory and the FIFO (ac97.c's DMA). */
typedef void AC97PacingTransfer(void *opaque, int index, int bytes);

typedef struct AC97PacingFifo {
    uint8_t *data;
    uint32_t head;
    uint32_t len;
    uint32_t size;
} AC97PacingFifo;

typedef struct AC97Pacing AC97Pacing;

typedef struct AC97PacingStream {
    AC97Pacing *pacing;
    int index;
    QEMUTimer *timer;
    bool active;                /* the guest runs the stream */
    bool running;               /* and it has a rate: the timer is armed */
    uint8_t since_stall;        /* backend exchanges since the clock jumped */
    uint32_t rate;              /* frames per second */
    int64_t last_ns;
    int64_t last_take_ns;       /* the backend last took bytes */
    uint64_t frac;              /* frames * 1e9 not yet due in whole */
    int32_t ppm;                /* drift correction in force */
    int64_t low_fill;           /* FIFO low water mark, smoothed, x256 */
    int64_t low_room;           /* backend room left, smoothed, x256 */
    AC97PacingFifo fifo;
} AC97PacingStream;

struct AC97Pacing {
    bool enabled;               /* property use-timer */
    uint32_t period_us;         /* property timer-period */
    AC97PacingTransfer *transfer;
    void *opaque;
    AC97PacingStream st[AC97_PACING_STREAMS];
};

/* Defaults of the device's properties use-timer and timer-period. */
#define AC97_PACING_DEFAULT_ENABLED     true
#define AC97_PACING_DEFAULT_PERIOD_US   1000

/* realize/unrealize; @transfer is the device's DMA for one stream. */
bool ac97_pacing_init(AC97Pacing *p, AC97PacingTransfer *transfer,
                      void *opaque, Error **errp);
void ac97_pacing_fini(AC97Pacing *p);

static inline bool ac97_pacing_enabled(AC97Pacing *p)
{
    return p->enabled;
}

/* The stream's sample rate (0 or less: closed), and whether it runs. */
void ac97_pacing_set_rate(AC97Pacing *p, int index, int rate);
void ac97_pacing_set_active(AC97Pacing *p, int index, bool on);
/* Bus master reset: stop, and drop what was on its way. */
void ac97_pacing_reset(AC97Pacing *p, int index);

/*
 * The device's side of the data path: instead of AUD_write/AUD_read.
 * Without pacing these are AUD_write/AUD_read.
 */
int ac97_pacing_write(AC97Pacing *p, SWVoiceOut *voice, const void *buf,
                      int len);
int ac97_pacing_read(AC97Pacing *p, int index, SWVoiceIn *voice, void *buf,
                     int len);

/* The backend's side: the audio layer's callbacks, when pacing is on. */
void ac97_pacing_backend_out(AC97Pacing *p, SWVoiceOut *voice, int free);
void ac97_pacing_backend_in(AC97Pacing *p, int index, SWVoiceIn *voice,
                            int avail);

/* Migration: a subsection of the device, only while a stream runs. */
extern const VMStateDescription vmstate_ac97_pacing;
bool ac97_pacing_migration_needed(AC97Pacing *p);

#endif
