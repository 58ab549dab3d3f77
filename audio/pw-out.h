/*
 * A playback stream straight to PipeWire, fed through a ring
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef AUDIO_PW_OUT_H
#define AUDIO_PW_OUT_H

#include <spa/param/audio/raw.h>
#include "pw-link.h"

typedef struct PWOut PWOut;

/*
 * In the data thread, for a cycle that finds the ring short: top it up
 * now, if that can be done without waiting for anything.  Returns false
 * if what it needs was busy, and it may be tried again.
 */
typedef bool PWOutRescue(void *opaque);

typedef struct PWOutSpec {
    const char *name;       /* node.name and media.name */
    const char *target;     /* target.object; NULL: the default sink */
    uint32_t format;        /* enum spa_audio_format */
    uint32_t rate;
    uint32_t channels;
    uint32_t frame;         /* bytes */
    uint32_t max_us;        /* the deepest the ring is ever asked to be */
    uint32_t tick_us;       /* how often the ring is topped up */
    PWOutRescue *rescue;    /* may be NULL */
    void *opaque;
} PWOutSpec;

/*
 * A stream on @link, (re)created whenever the link is ready, resting until
 * pw_out_set_active().  All of these run in the main loop.
 */
PWOut *pw_out_new(PWLink *link, const PWOutSpec *spec);
void pw_out_free(PWOut *out);

/* Streaming, or ready to: what is written plays. */
bool pw_out_ready(PWOut *out);
/* The daemon is there, the stream not yet: what is written would wait. */
bool pw_out_connecting(PWOut *out);


/* The level the ring is kept at: @us, or pw_out_least_us() (pw-out.c). */
void pw_out_set_latency(PWOut *out, uint32_t us);
/* The least latency the ring holds at the graph's quantum of the moment. */
uint32_t pw_out_least_us(PWOut *out);
/* That quantum: what the sink has of ours at the start of a cycle. */
uint32_t pw_out_quantum_us(PWOut *out);

/* Bytes the ring misses to be full; whole frames. */
size_t pw_out_room(PWOut *out);
/* Up to pw_out_room(); returns the bytes taken. */
size_t pw_out_write(PWOut *out, const void *buf, size_t size);

/*
 * On: the stream runs.  Off: what the ring holds plays out, then the
 * stream rests.
 */
void pw_out_set_active(PWOut *out, bool on);

/* Streams made: one, and one more each time the daemon came back. */
unsigned pw_out_streams(PWOut *out);

/* Cycles of the graph that found the ring short since the stream began. */
uint64_t pw_out_short_cycles(PWOut *out);
/* Of the cycles that found it short, those the rescue filled. */
uint64_t pw_out_rescued_cycles(PWOut *out);

/*
 * From the moment a byte is written to the moment it is heard: the ring,
 * what the stream queued and the graph's delay to the sink.
 */
bool pw_out_measured_us(PWOut *out, uint64_t *us);

#endif
