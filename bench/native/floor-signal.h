/*
 * floor-signal.h: what the bench's native floors (pa-floor.c, pw-floor.c)
 * share, so that they play the same signal and say the same thing of it:
 * the generator of bench/guest/signal.awk (a 1 kHz sawtooth beside a
 * frame counter) and the "NS FRAME" stamps bench/latency.py reads.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef FLOOR_SIGNAL_H
#define FLOOR_SIGNAL_H

#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define FLOOR_RATE 48000
#define FLOOR_CYCLE (FLOOR_RATE / 1000)  /* frames per sawtooth period */
#define FLOOR_RAMP 32768                 /* frames per counter period */
#define FLOOR_STAMP_NS 50000000          /* how often to say when a frame
                                            left */

typedef struct FloorSignal {
    uint64_t frame;             /* the next frame to make */
    int64_t next_stamp;         /* CLOCK_MONOTONIC ns */
} FloorSignal;

static inline int64_t floor_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The next @frames frames of the signal, S16LE stereo, into @buf. */
static inline void floor_fill(FloorSignal *sig, int16_t *buf, size_t frames)
{
    size_t i;

    for (i = 0; i < frames; i++) {
        /* As signal.awk's: int() there truncates towards zero too. */
        buf[2 * i] = (int)(-16384 + 32768.0 * (sig->frame % FLOOR_CYCLE) /
                           FLOOR_CYCLE);
        buf[2 * i + 1] = -16384 + (int)(sig->frame % FLOOR_RAMP);
        sig->frame++;
    }
}

/*
 * Call right after handing the server what floor_fill() made: every
 * FLOOR_STAMP_NS or so, "@tag NS FRAME" says that the last frame made
 * left at NS, the counterpart of a guest's DMA reading it.
 */
static inline void floor_stamp(FloorSignal *sig, const char *tag)
{
    int64_t now = floor_now_ns();

    if (sig->frame && now >= sig->next_stamp) {
        printf("%s %lld %u\n", tag, (long long)now,
               (unsigned)((sig->frame - 1) % FLOOR_RAMP));
        sig->next_stamp = now + FLOOR_STAMP_NS;
    }
}

#endif
