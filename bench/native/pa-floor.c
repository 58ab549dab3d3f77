/*
 * pa-floor: the benchmark's native baseline.  Plays the bench's signal
 * (bench/guest/signal.awk: a 1 kHz sawtooth beside a frame counter)
 * straight to PulseAudio with the fork's 1 ms requests and early
 * requests (audio/pa-voice.c), holding its fill one request below the
 * latency, writing whatever the server asks for the moment it asks.  No
 * guest, no QEMU: what it gets is the best any client can get at that
 * latency on the machine, so the fork's figures can be read against it
 * in one run.
 *
 * usage: pa-floor SERVER LATENCY_US SECONDS [MINREQ_US]
 * With MINREQ_US it asks for a stock QEMU's attributes instead
 * (audio/paaudio.c: tlength = latency, that minreq, the server's
 * prebuf): what a client at stock's latency costs, beside the fork's.
 * Prints "PA-FLOOR-START tlength=US prebuf=US minreq=US" (as granted),
 * then "PA-FLOOR-END underruns=N" when the last
 * frame has played; every 50 ms or so in between "PA-FLOOR-T NS FRAME":
 * the CLOCK_MONOTONIC time when it handed the server the frame numbered
 * FRAME mod 32768, the counterpart of a guest's DMA reading it
 * (bench/latency.py).
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <pulse/pulseaudio.h>
#include "floor-signal.h"

#define BITE_MAX_US 1000        /* the backend's PA_MINREQ_MAX_US */

static const pa_sample_spec spec = {
    .format = PA_SAMPLE_S16LE, .rate = FLOOR_RATE, .channels = 2,
};

static struct {
    pa_mainloop *loop;
    uint64_t frames_left;
    FloorSignal sig;
    unsigned underruns;
    uint32_t latency_us;
    uint32_t minreq_us;         /* 0: the fork's requests */
    int status;
} st;

static void quit(int status)
{
    st.status = status;
    pa_mainloop_quit(st.loop, status);
}

static void drained(pa_stream *s, int success, void *opaque)
{
    printf("PA-FLOOR-END underruns=%u\n", st.underruns);
    quit(success ? 0 : 1);
}

static void write_cb(pa_stream *s, size_t nbytes, void *opaque)
{
    size_t frames = nbytes / pa_frame_size(&spec);
    int16_t *buf;

    if (frames > st.frames_left) {
        frames = st.frames_left;
    }
    if (!frames) {
        return;
    }
    nbytes = frames * pa_frame_size(&spec);
    if (pa_stream_begin_write(s, (void **)&buf, &nbytes) < 0) {
        quit(1);
        return;
    }
    frames = nbytes / pa_frame_size(&spec);
    floor_fill(&st.sig, buf, frames);
    pa_stream_write(s, buf, frames * pa_frame_size(&spec), NULL, 0,
                    PA_SEEK_RELATIVE);
    floor_stamp(&st.sig, "PA-FLOOR-T");
    st.frames_left -= frames;
    if (!st.frames_left) {
        pa_operation_unref(pa_stream_drain(s, drained, NULL));
    }
}

static void underflow_cb(pa_stream *s, void *opaque)
{
    /* The stream runs dry once at the end, by design, while draining. */
    if (st.frames_left) {
        st.underruns++;
    }
}

static void stream_state_cb(pa_stream *s, void *opaque)
{
    switch (pa_stream_get_state(s)) {
    case PA_STREAM_READY: {
        /* What the server granted: the requests really are the ones asked. */
        const pa_buffer_attr *ba = pa_stream_get_buffer_attr(s);

        printf("PA-FLOOR-START tlength=%llu prebuf=%llu minreq=%llu\n",
               (unsigned long long)pa_bytes_to_usec(ba->tlength, &spec),
               (unsigned long long)pa_bytes_to_usec(ba->prebuf, &spec),
               (unsigned long long)pa_bytes_to_usec(ba->minreq, &spec));
        fflush(stdout);
        break;
    }
    case PA_STREAM_FAILED:
        fprintf(stderr, "pa-floor: stream: %s\n",
                pa_strerror(pa_context_errno(pa_stream_get_context(s))));
        quit(1);
        break;
    default:
        break;
    }
}

static void connect_stream(pa_context *ctx)
{
    uint32_t us = st.latency_us;
    uint32_t bite = us / 5 < BITE_MAX_US ? us / 5 : BITE_MAX_US;
    /*
     * This client has all its data at hand and fills up to tlength, so
     * tlength is latency - bite: the sink's bite on top makes the
     * latency.  That is where the fork's stream stays when nothing keeps
     * it fuller (its prebuffer); with AC97 keeping it full it sits up to
     * one request higher, at its tlength, the latency.
     */
    pa_buffer_attr ba = {
        .maxlength = (uint32_t)-1,
        .tlength = pa_usec_to_bytes(us - bite, &spec),
        .prebuf = pa_usec_to_bytes(us - bite, &spec),
        .minreq = pa_usec_to_bytes(bite, &spec),
        .fragsize = (uint32_t)-1,
    };
    pa_stream *s = pa_stream_new(ctx, "pa-floor", &spec, NULL);

    if (st.minreq_us) {
        ba.tlength = pa_usec_to_bytes(us, &spec);
        ba.prebuf = (uint32_t)-1;
        ba.minreq = pa_usec_to_bytes(st.minreq_us, &spec);
    }
    if (!s) {
        fprintf(stderr, "pa-floor: pa_stream_new: %s\n",
                pa_strerror(pa_context_errno(ctx)));
        quit(1);
        return;
    }
    pa_stream_set_state_callback(s, stream_state_cb, NULL);
    pa_stream_set_write_callback(s, write_cb, NULL);
    pa_stream_set_underflow_callback(s, underflow_cb, NULL);
    if (pa_stream_connect_playback(s, NULL, &ba,
                                   PA_STREAM_INTERPOLATE_TIMING |
                                   PA_STREAM_AUTO_TIMING_UPDATE |
                                   PA_STREAM_EARLY_REQUESTS,
                                   NULL, NULL) < 0) {
        fprintf(stderr, "pa-floor: connect: %s\n",
                pa_strerror(pa_context_errno(ctx)));
        quit(1);
    }
}

static void context_state_cb(pa_context *ctx, void *opaque)
{
    switch (pa_context_get_state(ctx)) {
    case PA_CONTEXT_READY:
        connect_stream(ctx);
        break;
    case PA_CONTEXT_FAILED:
        fprintf(stderr, "pa-floor: context: %s\n",
                pa_strerror(pa_context_errno(ctx)));
        quit(1);
        break;
    default:
        break;
    }
}

int main(int argc, char **argv)
{
    pa_context *ctx;
    long latency, seconds, minreq;
    bool args = argc == 4 || argc == 5;

    latency = args ? atol(argv[2]) : 0;
    seconds = args ? atol(argv[3]) : 0;
    minreq = argc == 5 ? atol(argv[4]) : 0;
    if (latency < 1000 || latency > 500000 || seconds < 1 ||
        (argc == 5 && (minreq < 1000 || minreq > latency))) {
        fprintf(stderr, "usage: pa-floor SERVER LATENCY_US(1000-500000) "
                "SECONDS [MINREQ_US(1000-LATENCY_US)]\n");
        return 2;
    }
    st.latency_us = latency;
    st.minreq_us = minreq;
    st.frames_left = (uint64_t)seconds * FLOOR_RATE;
    st.status = 1;
    st.loop = pa_mainloop_new();
    ctx = pa_context_new(pa_mainloop_get_api(st.loop), "qva-native-floor");
    pa_context_set_state_callback(ctx, context_state_cb, NULL);
    if (pa_context_connect(ctx, argv[1], PA_CONTEXT_NOAUTOSPAWN, NULL) < 0) {
        fprintf(stderr, "pa-floor: %s: %s\n", argv[1],
                pa_strerror(pa_context_errno(ctx)));
        return 1;
    }
    pa_mainloop_run(st.loop, NULL);
    pa_context_disconnect(ctx);
    pa_context_unref(ctx);
    pa_mainloop_free(st.loop);
    return st.status;
}
