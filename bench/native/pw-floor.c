/*
 * pw-floor: the benchmark's native PipeWire baseline.  Plays the bench's
 * signal (bench/guest/signal.awk: a 1 kHz sawtooth beside a frame
 * counter, made by floor-signal.h as pa-floor makes it) straight to
 * PipeWire as a pw_stream, without pipewire-pulse in between: it asks for
 * a quantum no longer than the latency (node.latency) and fills each
 * buffer with exactly what the graph's cycle asks for, in the graph's own
 * real-time thread (PW_STREAM_FLAG_RT_PROCESS), so that the stream holds
 * nothing between two cycles.  No guest, no QEMU: what a native PipeWire
 * client gets at that latency on the machine, beside pa-floor's figures
 * through pipewire-pulse.
 *
 * usage: pw-floor LATENCY_US SECONDS [RING_US]
 * With RING_US, as the fork's native path would play (README-fork, "The
 * native path"): a thread standing in for QEMU's main loop tops a ring up
 * to RING_US every millisecond (its audio timer, re-armed a period after
 * each tick, so a late tick delays the next), and each cycle takes what
 * it consumes from the ring; a cycle that finds less plays silence for
 * the rest and is counted as short.  The stamps are then when a frame
 * went into the ring, the counterpart of a device's DMA reading it.
 * Connects where libpipewire looks (PIPEWIRE_REMOTE in
 * PIPEWIRE_RUNTIME_DIR or XDG_RUNTIME_DIR).  Prints "PW-FLOOR-START",
 * then "PW-FLOOR-END underruns=N quantum=MIN-MAX short=N" when the last
 * frame has
 * played; every 50 ms or so in between "PW-FLOOR-T NS FRAME", as
 * pa-floor's "PA-FLOOR-T": the CLOCK_MONOTONIC time when it handed
 * PipeWire the frame numbered FRAME mod 32768 (queued the buffer that
 * ends with it), the counterpart of a guest's DMA reading it
 * (bench/latency.py).
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <pipewire/pipewire.h>
#include <spa/param/audio/format-utils.h>
#include <spa/node/io.h>
#include "floor-signal.h"

#define CHANNELS 2
#define STRIDE (CHANNELS * sizeof(int16_t))
/* Give up this long past SECONDS: a stream never linked waits for good. */
#define GRACE_S 20
/* The ring (a power of two, in frames) and the tick that fills it. */
#define RING_FRAMES 32768
#define TICK_NS 1000000

static struct {
    struct pw_main_loop *loop;
    struct pw_context *context;
    struct pw_core *core;
    struct pw_stream *stream;
    struct spa_hook stream_listener;
    /* The graph's clock, as the node sees it each cycle. */
    struct spa_io_position *position;
    uint64_t frames_left;
    FloorSignal sig;
    /* Where the clock is due at our next cycle, and on which clock. */
    uint64_t next_position;
    uint32_t clock_id;
    unsigned underruns;
    uint64_t quantum_min, quantum_max;
    bool started, done;
    int status;

    /* With RING_US: the producer's, then the data thread's. */
    uint64_t ring_target;       /* frames; 0: no ring */
    uint64_t produce_left;
    _Atomic uint64_t wpos, rpos;
    bool primed;
    unsigned short_cycles;
    pthread_t producer;
    bool producing;
    atomic_bool stop;
    int16_t ring[RING_FRAMES * CHANNELS];
} st;

static void quit(int status)
{
    st.status = status;
    pw_main_loop_quit(st.loop);
}

/*
 * Underruns, as far as the client can tell: a cycle of the graph that
 * went by without calling us (the clock's position got further than one
 * quantum since our last cycle: the sink played that quantum without
 * our data), and a call that found no buffer to fill (never seen: in RT
 * mode PipeWire calls only when one is free).  A cycle in which we were
 * called but finished too late is the driver's to count (pw-top's ERR)
 * and is not seen here; a gap at the sink shows it all the same.
 */
static void count_cycle(void)
{
    struct spa_io_position *pos = st.position;
    uint64_t now, quantum;

    if (!pos) {
        return;
    }
    now = pos->clock.position;
    quantum = pos->clock.duration;
    if (st.next_position && pos->clock.id == st.clock_id &&
        now > st.next_position) {
        st.underruns += quantum ? (now - st.next_position + quantum - 1) /
                                  quantum : 1;
    }
    st.clock_id = pos->clock.id;
    st.next_position = now + quantum;
    if (!st.quantum_min || quantum < st.quantum_min) {
        st.quantum_min = quantum;
    }
    if (quantum > st.quantum_max) {
        st.quantum_max = quantum;
    }
}

/* The stand-in for QEMU's main loop: each tick tops the ring up. */
static void *produce(void *opaque SPA_UNUSED)
{
    while (!atomic_load(&st.stop) && st.produce_left) {
        uint64_t w = atomic_load_explicit(&st.wpos, memory_order_relaxed);
        uint64_t fill = w - atomic_load_explicit(&st.rpos,
                                                 memory_order_acquire);
        int64_t next;
        struct timespec ts;

        if (fill < st.ring_target) {
            uint64_t n = st.ring_target - fill, done = 0;

            n = n < st.produce_left ? n : st.produce_left;
            while (done < n) {
                uint64_t at = (w + done) % RING_FRAMES;
                uint64_t part = RING_FRAMES - at < n - done ?
                                RING_FRAMES - at : n - done;

                floor_fill(&st.sig, &st.ring[at * CHANNELS], part);
                done += part;
            }
            atomic_store_explicit(&st.wpos, w + n, memory_order_release);
            floor_stamp(&st.sig, "PW-FLOOR-T");
            st.produce_left -= n;
        }
        next = floor_now_ns() + TICK_NS;
        ts.tv_sec = next / 1000000000;
        ts.tv_nsec = next % 1000000000;
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
    return NULL;
}

/*
 * What the ring holds, up to @frames, into @dst; the rest silence.  Returns
 * the frames of signal.
 */
static uint64_t take_from_ring(int16_t *dst, uint64_t frames)
{
    uint64_t r = atomic_load_explicit(&st.rpos, memory_order_relaxed);
    uint64_t avail = atomic_load_explicit(&st.wpos, memory_order_acquire) - r;
    uint64_t n = avail < frames ? avail : frames, done = 0;

    while (done < n) {
        uint64_t at = (r + done) % RING_FRAMES;
        uint64_t part = RING_FRAMES - at < n - done ? RING_FRAMES - at
                                                    : n - done;

        memcpy(&dst[done * CHANNELS], &st.ring[at * CHANNELS],
               part * STRIDE);
        done += part;
    }
    atomic_store_explicit(&st.rpos, r + n, memory_order_release);
    st.primed |= n > 0;
    if (n < frames && st.primed && st.frames_left > n) {
        st.short_cycles++;
        memset(&dst[n * CHANNELS], 0, (frames - n) * STRIDE);
    }
    return n;
}

/* In the data thread, once per cycle of the graph, in the cycle itself. */
static void on_process(void *opaque SPA_UNUSED)
{
    struct pw_buffer *b;
    struct spa_data *d;
    uint64_t frames;

    if (!st.frames_left) {
        return;         /* draining: PipeWire should not ask any more */
    }
    count_cycle();
    b = pw_stream_dequeue_buffer(st.stream);
    if (!b) {
        st.underruns++;
        return;
    }
    d = &b->buffer->datas[0];
    if (!d->data) {
        st.underruns++;
        d->chunk->size = 0;
        pw_stream_queue_buffer(st.stream, b);
        return;
    }
    /*
     * Exactly what this cycle consumes (the quantum, in our frames):
     * more would wait in the stream for the next cycle and add to the
     * latency, less would leave a hole.
     */
    frames = d->maxsize / STRIDE;
    if (b->requested && b->requested < frames) {
        frames = b->requested;
    }
    if (st.ring_target) {
        uint64_t got = take_from_ring(d->data, frames);

        /* Silence after the signal's end would only delay the drain. */
        if (got == st.frames_left || (!got && !st.primed)) {
            frames = got;
        }
        st.frames_left -= got;
    } else {
        if (frames > st.frames_left) {
            frames = st.frames_left;
        }
        floor_fill(&st.sig, d->data, frames);
        st.frames_left -= frames;
    }
    d->chunk->offset = 0;
    d->chunk->stride = STRIDE;
    d->chunk->size = frames * STRIDE;
    pw_stream_queue_buffer(st.stream, b);
    if (!st.ring_target) {
        floor_stamp(&st.sig, "PW-FLOOR-T");
    }
    if (!st.frames_left) {
        /*
         * In the data loop's own thread this takes effect at once: the
         * buffer just queued still plays, then the stream reports
         * drained (on_drained, in the main loop).
         */
        pw_stream_flush(st.stream, true);
    }
}

static void on_io_changed(void *opaque SPA_UNUSED, uint32_t id, void *area,
                          uint32_t size)
{
    if (id == SPA_IO_Position) {
        st.position = area && size >= sizeof(*st.position) ? area : NULL;
    }
}

static void on_drained(void *opaque SPA_UNUSED)
{
    printf("PW-FLOOR-END underruns=%u quantum=%llu-%llu short=%u\n",
           st.underruns, (unsigned long long)st.quantum_min,
           (unsigned long long)st.quantum_max, st.short_cycles);
    st.done = true;
    quit(0);
}

static void on_state_changed(void *opaque SPA_UNUSED,
                             enum pw_stream_state old SPA_UNUSED,
                             enum pw_stream_state state, const char *error)
{
    switch (state) {
    case PW_STREAM_STATE_STREAMING:
        if (!st.started) {
            st.started = true;
            printf("PW-FLOOR-START\n");
            fflush(stdout);
            if (st.ring_target &&
                pthread_create(&st.producer, NULL, produce, NULL) == 0) {
                st.producing = true;
            } else if (st.ring_target) {
                fprintf(stderr, "pw-floor: cannot start the producer\n");
                quit(1);
            }
        }
        break;
    case PW_STREAM_STATE_ERROR:
        fprintf(stderr, "pw-floor: stream: %s\n", error ? error : "error");
        quit(1);
        break;
    case PW_STREAM_STATE_UNCONNECTED:
        /* The server's doing before the end; ours at the end. */
        if (!st.done) {
            fprintf(stderr, "pw-floor: stream: disconnected\n");
            quit(1);
        }
        break;
    default:
        break;
    }
}

static const struct pw_stream_events stream_events = {
    PW_VERSION_STREAM_EVENTS,
    .state_changed = on_state_changed,
    .io_changed = on_io_changed,
    .process = on_process,
    .drained = on_drained,
};

static void on_timeout(void *opaque SPA_UNUSED,
                       uint64_t expirations SPA_UNUSED)
{
    fprintf(stderr, "pw-floor: the stream did not finish in time "
            "(%s)\n", st.started ? "started" : "never started");
    quit(1);
}

int main(int argc, char **argv)
{
    uint8_t pod[1024];
    struct spa_pod_builder builder = SPA_POD_BUILDER_INIT(pod, sizeof(pod));
    const struct spa_pod *params[1];
    struct pw_properties *props;
    struct spa_source *timer;
    struct timespec grace = { 0 };
    long latency, seconds, ring;
    bool args = argc == 3 || argc == 4;
    unsigned quantum;

    latency = args ? atol(argv[1]) : 0;
    seconds = args ? atol(argv[2]) : 0;
    ring = argc == 4 ? atol(argv[3]) : 0;
    if (latency < 300 || latency > 500000 || seconds < 1 ||
        (argc == 4 && (ring < 1000 || ring > 500000))) {
        fprintf(stderr, "usage: pw-floor LATENCY_US(300-500000) SECONDS "
                "[RING_US(1000-500000)]\n");
        return 2;
    }
    st.ring_target = ((uint64_t)ring * FLOOR_RATE + 500000) / 1000000;
    /*
     * node.latency is the longest quantum the node will take: the graph
     * runs at the shortest any of its running nodes asks for (within
     * its clock.min-quantum and clock.max-quantum, and rounded down to
     * a power of two where clock.power-of-two-quantum is set).
     */
    quantum = ((uint64_t)latency * FLOOR_RATE + 500000) / 1000000;
    st.frames_left = (uint64_t)seconds * FLOOR_RATE;
    st.produce_left = st.frames_left;
    st.status = 1;

    pw_init(&argc, &argv);
    st.loop = pw_main_loop_new(NULL);
    if (!st.loop) {
        fprintf(stderr, "pw-floor: pw_main_loop_new failed\n");
        return 1;
    }
    props = pw_properties_new(PW_KEY_MEDIA_TYPE, "Audio",
                              PW_KEY_MEDIA_CATEGORY, "Playback",
                              PW_KEY_APP_NAME, "qva-native-floor",
                              PW_KEY_NODE_NAME, "pw-floor",
                              NULL);
    pw_properties_setf(props, PW_KEY_NODE_LATENCY, "%u/%u", quantum,
                       FLOOR_RATE);
    /*
     * client-rt.conf, as pw-cat and the fork's native path (pw-link.c)
     * take it: it loads module-rt, which makes the data thread real-time.
     * pw_stream_new_simple()'s context reads client.conf, and its data
     * thread stayed SCHED_OTHER: at 128 frames the graph then went on
     * without it some 70 times a minute (README-fork, 2026-12-05).
     */
    st.context = pw_context_new(pw_main_loop_get_loop(st.loop),
                                pw_properties_new(PW_KEY_CONFIG_NAME,
                                                  "client-rt.conf", NULL),
                                0);
    st.core = st.context ? pw_context_connect(st.context, NULL, 0) : NULL;
    if (!st.core) {
        fprintf(stderr, "pw-floor: cannot connect to PipeWire\n");
        return 1;
    }
    st.stream = pw_stream_new(st.core, "pw-floor", props);
    if (!st.stream) {
        fprintf(stderr, "pw-floor: pw_stream_new failed\n");
        return 1;
    }
    pw_stream_add_listener(st.stream, &st.stream_listener, &stream_events,
                           NULL);
    params[0] = spa_format_audio_raw_build(&builder, SPA_PARAM_EnumFormat,
        &SPA_AUDIO_INFO_RAW_INIT(.format = SPA_AUDIO_FORMAT_S16_LE,
                                 .rate = FLOOR_RATE,
                                 .channels = CHANNELS,
                                 .position = { SPA_AUDIO_CHANNEL_FL,
                                               SPA_AUDIO_CHANNEL_FR }));
    if (pw_stream_connect(st.stream, PW_DIRECTION_OUTPUT, PW_ID_ANY,
                          PW_STREAM_FLAG_AUTOCONNECT |
                          PW_STREAM_FLAG_MAP_BUFFERS |
                          PW_STREAM_FLAG_RT_PROCESS,
                          params, 1) < 0) {
        fprintf(stderr, "pw-floor: pw_stream_connect failed\n");
        return 1;
    }
    timer = pw_loop_add_timer(pw_main_loop_get_loop(st.loop), on_timeout,
                              NULL);
    grace.tv_sec = seconds + GRACE_S;
    pw_loop_update_timer(pw_main_loop_get_loop(st.loop), timer, &grace,
                         NULL, false);
    pw_main_loop_run(st.loop);
    if (st.producing) {
        atomic_store(&st.stop, true);
        pthread_join(st.producer, NULL);
    }
    pw_stream_destroy(st.stream);
    pw_core_disconnect(st.core);
    pw_context_destroy(st.context);
    pw_main_loop_destroy(st.loop);
    pw_deinit();
    return st.status;
}
