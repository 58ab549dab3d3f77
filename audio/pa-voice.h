/*
 * Low-latency PulseAudio backend: what its streams report
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef AUDIO_PA_VOICE_H
#define AUDIO_PA_VOICE_H

#include <pulse/def.h>

typedef struct PAStream PAStream;

typedef struct PAStreamStats {
    uint64_t bytes;             /* moved to or from PulseAudio */
    uint64_t underruns;         /* playback: the server ran dry */
    uint64_t overruns;          /* too much written; capture: trims */
    uint64_t lost;              /* playback: dropped by the device */
    uint64_t drops;             /* playback: times it dropped */
    uint64_t adjustments;       /* latency raised after underruns */
    uint64_t streams;           /* streams created (1 + re-creations) */
} PAStreamStats;

typedef struct PAStreamInfo {
    const char *audiodev;
    const char *stream;
    bool playback;
    const char *server;
    bool connected;
    uint32_t latency_us;        /* configured */
    uint32_t target_us;         /* in force */
    uint32_t max_latency_us;
    bool has_measured;
    uint64_t measured_us;       /* PulseAudio's view of the stream */
    bool has_attr;
    pa_buffer_attr attr;        /* what the server granted */
    unsigned reconnects;
    PAStreamStats stats;
    bool has_rescues;
    uint64_t rescues;           /* our own PipeWire stream's (pw-out.c) */
} PAStreamInfo;

typedef void (*PAStreamStatsFn)(const PAStreamInfo *info, void *opaque);

/* Call @fn for every pa stream of every pa audiodev (main loop). */
void pa_stream_stats_foreach(PAStreamStatsFn fn, void *opaque);

#endif
