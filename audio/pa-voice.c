/*
 * Low-latency PulseAudio backend: -audiodev pa
 *
 * Replaces upstream's audio/paaudio.c under the same driver name and
 * options.  What differs, and why:
 *  - the buffer attributes come from the latency target alone: tlength
 *    is the latency, early requests keep the sink's share to ~1 ms bites,
 *    and the stream restarts after an underrun only once it is that full
 *    again (capture: small fragments and a backlog bounded to twice the
 *    latency); QEMU only produces what the stream can take right now, so
 *    nothing queues up in front of PulseAudio;
 *  - the audio timer defaults to 1 ms for pa, so data moves in small steps
 *    (a 10 ms timer cannot feed a 5 ms buffer);
 *  - an underrun raises the latency by a bounded step, once per burst, up
 *    to max-latency, instead of crackling forever, and a quiet spell
 *    brings it back down;
 *  - the connection (pa-conn.c) survives the server: while there is none,
 *    playback is discarded and capture is silence, both at the nominal rate
 *    so the guest never stalls, and the streams come back with the server;
 *  - libpulse runs in QEMU's main loop, not in a thread of its own, and
 *    while a stream plays the audio timer's tick takes in the server's
 *    requests (pa-loop.c): QEMU wakes once per tick, not three times;
 *  - when the server is pipewire-pulse, playback goes straight to the
 *    PipeWire daemon behind it (pw-link.c, pw-out.c), with the same
 *    latency control, stats and reconnect (pipewire=off keeps it on
 *    pipewire-pulse).
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/module.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "qapi/error.h"
#include "audio.h"

#define AUDIO_CAP "pa"
#include "audio_int.h"
#include "pa-conn.h"
#include "pa-voice.h"
#ifdef FORK_PA_PIPEWIRE
#include "pw-out.h"
#endif
#include "trace.h"
#include "qemu-vfio-audio/compat.h"
#include FORK_RUNSTATE_H

/* Defaults; bench/ has the measurements behind them. */
#define PA_OUT_LATENCY_US       5000
#define PA_IN_LATENCY_US        10000
#define PA_MAX_LATENCY_US       50000
#define PA_TIMER_PERIOD_US      1000
#define PA_FREQUENCY            48000

/* What a latency option may be, in microseconds. */
#define PA_LATENCY_MIN_US       1000
#define PA_LATENCY_LIMIT_US     2000000

/* buffer-length: below a latency's worth it holds nothing useful. */
#define PA_BUFFER_LIMIT_US      10000000

/*
 * An underrun burst raises the latency once, by a quarter, at least 1 ms;
 * half a second later another burst may raise it again.  Coming back is
 * sized by what the stream used: once 2 s passed without an underrun or a
 * change, it steps to twice the deepest it dipped below full over the
 * last second, and a millisecond more (not below the configured value),
 * if that saves a millisecond; else it looks again a second later.  A
 * load that has passed leaves the stream nearly full, and the latency
 * back in one step; a host that keeps the stream dipping keeps the spare
 * it needs, not a level halfway down that would underrun (halving the
 * excess every 2 s took some 12 s from 50 ms, and on a busy host went on
 * into fresh underruns).  A level that underruns within 2 s of being
 * stepped down to is the host's floor for now: the latency stays above it
 * for 4 s, and twice as long each time that level fails again (up to 5
 * minutes), so a host that cannot sustain it hears a gap less and less
 * often.
 */
#define PA_ADAPT_MIN_STEP_US    1000
#define PA_ADAPT_HOLDOFF_US     500000
#define PA_SHRINK_MIN_STEP_US   1000
#define PA_SHRINK_AFTER_US      (2 * 1000000)
#define PA_FLOOR_KEEP_US        (4 * 1000000)
#define PA_FLOOR_KEEP_MAX_US    (300 * 1000000LL)
/* The refill after an underrun, a raise or a start is not a dip. */
#define PA_DIP_SETTLE_US        1000000
#define PA_DIP_WINDOW_US        1000000

/* Room the server asks for at a time: small, so it asks often. */
#define PA_MINREQ_MAX_US        1000
/*
 * A stream the server has not answered for this long (ms) is asked for
 * again, then half as often each time, up to the maximum.
 */
#define PA_LINK_WAIT_MS         500
#define PA_LINK_WAIT_MAX_MS     4000

typedef struct PAAudio {
    Audiodev *dev;
    PAConn *conn;
#ifdef FORK_PA_PIPEWIRE
    PWLink *pw;                 /* pipewire-pulse's daemon, straight */
    bool pw_given_up;           /* it never let us in: pipewire-pulse */
    QEMUBH *pw_fallback_bh;
#endif
    QLIST_HEAD(, PAStream) streams;
    QTAILQ_ENTRY(PAAudio) next;
} PAAudio;

struct PAStream {
    PAConnClient client;
    PAAudio *pa;
    bool playback;
    char *name;                 /* the stream's name in PulseAudio */
    char *device;               /* sink or source, NULL for the default */
    struct audio_pcm_info *info;
    pa_sample_spec spec;
    pa_channel_map map;

    pa_stream *stream;          /* NULL while there is no server */
#ifdef FORK_PA_PIPEWIRE
    PWOut *native;              /* playback straight to PipeWire */
    uint64_t short_seen;
    uint8_t *scratch;           /* the audio layer's buffer for it */
    size_t scratch_len;
#endif
    QEMUTimer *link_timer;      /* the server has not answered it yet */
    int64_t link_wait_ms;
    bool enabled;
    uint32_t latency_us;        /* configured */
    uint32_t target_us;         /* in force, after adaptation */
    uint32_t max_latency_us;
    int64_t last_raise_us;
    int64_t last_shrink_us;
    int64_t last_underrun_us;
    uint32_t dip_us;            /* below full at a tick, deepest since */
    int64_t dip_from_us;        /* dip_us's window opens */
    uint32_t floor_us;          /* a level that underran, until floor_end */
    int64_t floor_end_us;
    int64_t floor_keep_us;
    bool adapt_logged;
    bool trim_logged;

    RateCtl rate;               /* pacing while there is no server */
    bool serverless;
    uint8_t *silence;
    size_t silence_len;

    const uint8_t *peek;        /* capture fragment being read */
    size_t peek_len;
    size_t peek_pos;

    PAStreamStats stats;
    QLIST_ENTRY(PAStream) next;
};

typedef struct PAVoiceOut {
    HWVoiceOut hw;
    PAStream s;
} PAVoiceOut;

typedef struct PAVoiceIn {
    HWVoiceIn hw;
    PAStream s;
} PAVoiceIn;

static QTAILQ_HEAD(, PAAudio) pa_audios = QTAILQ_HEAD_INITIALIZER(pa_audios);

/* --- buffer attributes -------------------------------------------------- */

static void stream_attr(PAStream *ps, pa_buffer_attr *ba)
{
    uint32_t us = ps->target_us;

    ba->maxlength = -1;
    ba->tlength = -1;
    ba->prebuf = -1;
    ba->minreq = -1;
    ba->fragsize = -1;
    if (ps->playback) {
        /*
         * The sink wakes every bite (early requests), and the stream is
         * kept between tlength and one request below it: requests come a
         * bite at a time, and AC97 steers its pace to leave no more room
         * than that (audio-pacing.c).  That level plus the sink's bite is
         * the latency.  After an underrun the stream starts again once it
         * is back at that level (prebuf), not earlier, emptier.
         */
        uint32_t bite = MIN(us / 5, PA_MINREQ_MAX_US);

        ba->minreq = pa_usec_to_bytes(bite, &ps->spec);
        ba->prebuf = pa_usec_to_bytes(us - bite, &ps->spec);
        ba->tlength = pa_usec_to_bytes(us, &ps->spec);
    } else {
        /* Old data is worth less than none: bound what may pile up. */
        ba->fragsize = pa_usec_to_bytes(us / 2, &ps->spec);
        ba->maxlength = pa_usec_to_bytes(us * 2, &ps->spec);
    }
}

static void dip_reset(PAStream *ps)
{
    ps->dip_us = 0;
    ps->dip_from_us = g_get_monotonic_time() + PA_DIP_SETTLE_US;
}

/* --- stream life, in the main loop, between pa_conn_enter and leave ------ */

static bool stream_ready(PAStream *ps)
{
    return ps->stream && pa_stream_get_state(ps->stream) == PA_STREAM_READY;
}

/* Playback takes what is written: through the pulse stream or our own. */
static bool out_ready(PAStream *ps)
{
#ifdef FORK_PA_PIPEWIRE
    if (ps->native) {
        return pw_out_ready(ps->native);
    }
#endif
    return stream_ready(ps);
}

/*
 * The latency the stream comes back down to: the configured one, or what
 * our own stream's ring holds at the least, which grows with the quantum.
 */
static uint32_t least_us(PAStream *ps)
{
#ifdef FORK_PA_PIPEWIRE
    if (ps->native) {
        return MAX(ps->latency_us, pw_out_least_us(ps->native));
    }
#endif
    return ps->latency_us;
}

static bool stream_pending(PAStream *ps)
{
    return ps->stream &&
           pa_stream_get_state(ps->stream) == PA_STREAM_CREATING;
}

static void underflow_cb(pa_stream *s, void *opaque);
static void overflow_cb(pa_stream *s, void *opaque);

static bool stream_failed(PAStream *ps)
{
    return ps->stream && pa_stream_get_state(ps->stream) == PA_STREAM_FAILED;
}

/*
 * A libpulse callback.  pipewire-pulse fails a stream that came before
 * its session manager could place it (right after a restart, as often as
 * not with a capture and a playback stream at once, as HDA's duplex codec
 * has): ask again, as for a stream it does not answer.
 */
static void state_cb(pa_stream *s, void *opaque)
{
    PAStream *ps = opaque;
    pa_context *ctx = pa_stream_get_context(s);
    pa_operation *op;

    /* A lost connection fails its streams too: that is pa-conn's. */
    if (pa_stream_get_state(s) == PA_STREAM_FAILED &&
        pa_context_get_state(ctx) == PA_CONTEXT_READY) {
        trace_pa_stream_failed(ps->name,
                               pa_strerror(pa_context_errno(ctx)));
        timer_mod(ps->link_timer,
                  qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + ps->link_wait_ms);
    }
    /*
     * The guest started or stopped while the server had yet to answer
     * (pipewire-pulse answers once its session manager linked the
     * stream): the stream was asked for as the guest was then, and a
     * guest that started would stay silent, or deaf, until it stopped.
     */
    if (pa_stream_get_state(s) == PA_STREAM_READY &&
        pa_stream_is_corked(s) == ps->enabled) {
        trace_pa_stream_cork(ps->name, !ps->enabled);
        op = pa_stream_cork(s, !ps->enabled, NULL, NULL);
        if (op) {
            pa_operation_unref(op);
        }
    }
}

static void stream_create(PAStream *ps, pa_context *ctx)
{
    pa_stream_flags_t flags = PA_STREAM_INTERPOLATE_TIMING |
                              PA_STREAM_AUTO_TIMING_UPDATE;
    pa_buffer_attr ba;
    pa_stream *s;
    int r;

    if (!ps->enabled) {
        flags |= PA_STREAM_START_CORKED;
    }
    flags |= ps->playback ? PA_STREAM_EARLY_REQUESTS :
                            PA_STREAM_ADJUST_LATENCY;
    stream_attr(ps, &ba);
    s = pa_stream_new(ctx, ps->name, &ps->spec, &ps->map);
    if (!s) {
        warn_report("audiodev %s: cannot create %s stream %s: %s",
                    ps->pa->dev->id, ps->playback ? "playback" : "capture",
                    ps->name, pa_strerror(pa_context_errno(ctx)));
        return;
    }
    pa_stream_set_state_callback(s, state_cb, ps);
    if (ps->playback) {
        pa_stream_set_underflow_callback(s, underflow_cb, ps);
        pa_stream_set_overflow_callback(s, overflow_cb, ps);
        r = pa_stream_connect_playback(s, ps->device, &ba, flags, NULL, NULL);
    } else {
        r = pa_stream_connect_record(s, ps->device, &ba, flags);
    }
    if (r < 0) {
        warn_report("audiodev %s: cannot connect %s stream %s: %s",
                    ps->pa->dev->id, ps->playback ? "playback" : "capture",
                    ps->name, pa_strerror(pa_context_errno(ctx)));
        pa_stream_unref(s);
        return;
    }
    ps->stream = s;
    ps->stats.streams++;
    dip_reset(ps);
    timer_mod(ps->link_timer,
              qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + ps->link_wait_ms);
    trace_pa_stream_create(ps->name, ps->target_us, ba.tlength, ba.prebuf,
                           ba.minreq, ba.fragsize, ba.maxlength);
}

static void stream_drop(PAStream *ps)
{
    timer_del(ps->link_timer);
    if (!ps->stream) {
        return;
    }
    if (ps->peek) {
        pa_stream_drop(ps->stream);
        ps->peek = NULL;
    }
    pa_stream_set_state_callback(ps->stream, NULL, NULL);
    pa_stream_set_underflow_callback(ps->stream, NULL, NULL);
    pa_stream_set_overflow_callback(ps->stream, NULL, NULL);
    pa_stream_disconnect(ps->stream);
    pa_stream_unref(ps->stream);
    ps->stream = NULL;
}

#ifdef FORK_PA_PIPEWIRE
static uint32_t spa_format(pa_sample_format_t f)
{
    switch (f) {
    case PA_SAMPLE_U8:
        return SPA_AUDIO_FORMAT_U8;
    case PA_SAMPLE_S16BE:
        return SPA_AUDIO_FORMAT_S16_BE;
    case PA_SAMPLE_S32LE:
        return SPA_AUDIO_FORMAT_S32_LE;
    case PA_SAMPLE_S32BE:
        return SPA_AUDIO_FORMAT_S32_BE;
    case PA_SAMPLE_FLOAT32LE:
        return SPA_AUDIO_FORMAT_F32_LE;
    case PA_SAMPLE_FLOAT32BE:
        return SPA_AUDIO_FORMAT_F32_BE;
    default:
        return SPA_AUDIO_FORMAT_S16_LE;
    }
}

/*
 * The daemon behind pipewire-pulse never let us in (pw-link.c): playback
 * goes through pipewire-pulse after all, for as long as QEMU runs, at the
 * latency configured.  Out of pw-link's callback, which frees nothing.
 */
static void pw_fallback_bh(void *opaque)
{
    PAAudio *pa = opaque;
    PAStream *ps;
    pa_context *ctx;

    pa_conn_enter(pa->conn);
    ctx = pa_conn_context(pa->conn);
    QLIST_FOREACH(ps, &pa->streams, next) {
        if (!ps->native) {
            continue;
        }
        pw_out_free(ps->native);
        ps->native = NULL;
        ps->target_us = ps->latency_us;
        dip_reset(ps);
        if (ctx) {
            stream_drop(ps);
            stream_create(ps, ctx);
        }
    }
    pa_conn_leave(pa->conn);
    if (pa->pw) {
        pw_link_free(pa->pw);
        pa->pw = NULL;
    }
}

static void pw_give_up(void *opaque, const char *socket, const char *why)
{
    PAAudio *pa = opaque;

    warn_report("audiodev %s: PipeWire %s: %s; playback goes through "
                "pipewire-pulse instead", pa->dev->id, socket, why);
    pa->pw_given_up = true;
    qemu_bh_schedule(pa->pw_fallback_bh);
}

/*
 * Playback, while the server is pipewire-pulse, goes to the PipeWire
 * daemon behind it (pw-out.c): pipewire-pulse makes any 5 ms pulse client
 * some 21 ms.  Once chosen it stays: its connection comes back by itself,
 * and pipewire-pulse restarts with the daemon.  Capture stays on the pulse
 * stream.
 */
/*
 * In PipeWire's data thread, for a cycle that found the ring short
 * (pw-out.c): the audio layer's tick, run now, moves what the guest has
 * played by now into the ring.  Only if the big lock is free: this thread
 * must never wait for QEMU.  Under the lock it is the ring's one writer,
 * as the main loop is.
 */
static bool native_rescue(void *opaque)
{
    PAStream *ps = opaque;

    if (!fork_bql_trylock()) {
        return false;
    }
    /* A stopped guest plays nothing: there is nothing to wait for. */
    if (runstate_is_running()) {
        audio_run(container_of(ps, PAVoiceOut, s)->hw.s, "pipewire");
    }
    fork_bql_unlock();
    return true;
}

static bool go_native(PAStream *ps)
{
    PAAudio *pa = ps->pa;
    g_autofree char *socket = NULL;
    PWOutSpec spec = {
        .name = ps->name,
        .target = ps->device,
        .format = spa_format(ps->spec.format),
        .rate = ps->spec.rate,
        .channels = ps->spec.channels,
        .frame = pa_frame_size(&ps->spec),
        .max_us = ps->max_latency_us,
        .tick_us = pa->dev->timer_period,
        .rescue = native_rescue,
        .opaque = ps,
    };

    if (ps->native) {
        return true;
    }
    if (!ps->playback || pa->pw_given_up ||
        (pa->dev->u.pa.has_pipewire && !pa->dev->u.pa.pipewire)) {
        return false;
    }
    socket = pa_conn_pipewire_socket(pa->conn);
    if (!socket) {
        return false;
    }
    if (!pa->pw) {
        info_report("audiodev %s: the server is pipewire-pulse; playback "
                    "goes to its PipeWire daemon directly (%s)",
                    pa->dev->id, socket);
        pa->pw = pw_link_new(socket, pa->dev->id, pw_give_up, pa);
    }
    ps->scratch = g_malloc(ps->scratch_len);
    ps->native = pw_out_new(pa->pw, &spec);
    /*
     * The configured latency covers a main loop that comes late, as it
     * does a pulse stream's; the quantum a cycle takes at once comes on
     * top.  From there the controller comes down by the headroom used,
     * no lower than least_us().
     */
    ps->target_us = MAX(ps->target_us, ps->latency_us +
                        pw_out_quantum_us(ps->native));
    pw_out_set_latency(ps->native, ps->target_us);
    pw_out_set_active(ps->native, ps->enabled);
    return true;
}
#else
static bool go_native(PAStream *ps)
{
    return false;
}
#endif

static void client_ready(PAConnClient *client, pa_context *ctx)
{
    PAStream *ps = container_of(client, PAStream, client);

    stream_drop(ps);
    ps->link_wait_ms = PA_LINK_WAIT_MS;
    if (!go_native(ps)) {
        stream_create(ps, ctx);
    }
}

/*
 * pipewire-pulse answers a new stream once its session manager has linked
 * it, and a stream that came before the session manager was up (we are
 * back within 50 ms of a restart of pipewire) may never be linked, or is
 * failed: the guest would stay silent.  Ask again, less and less often.
 */
static void link_timeout(void *opaque)
{
    PAStream *ps = opaque;
    pa_context *ctx;

    pa_conn_enter(ps->pa->conn);
    ctx = pa_conn_context(ps->pa->conn);
    if (ctx && (stream_pending(ps) || stream_failed(ps))) {
        if (stream_pending(ps)) {
            trace_pa_stream_unanswered(ps->name, ps->link_wait_ms);
        }
        ps->link_wait_ms = MIN(ps->link_wait_ms * 2, PA_LINK_WAIT_MAX_MS);
        stream_drop(ps);
        stream_create(ps, ctx);
    }
    pa_conn_leave(ps->pa->conn);
}

static void client_lost(PAConnClient *client)
{
    stream_drop(container_of(client, PAStream, client));
}

/* Between pa_conn_enter and leave. */
static void set_target(PAStream *ps, uint32_t us)
{
    pa_buffer_attr ba;
    pa_operation *op;

    trace_pa_latency(ps->name, ps->target_us, us);
    ps->target_us = us;
    dip_reset(ps);
    ps->stats.adjustments++;
#ifdef FORK_PA_PIPEWIRE
    if (ps->native) {
        pw_out_set_latency(ps->native, us);
        return;
    }
#endif
    stream_attr(ps, &ba);
    op = pa_stream_set_buffer_attr(ps->stream, &ba, NULL, NULL);
    if (op) {
        pa_operation_unref(op);
    }
}

/* Between pa_conn_enter and leave. */
static void maybe_shrink(PAStream *ps)
{
    int64_t now = g_get_monotonic_time();
    uint32_t to = least_us(ps);

    if (ps->target_us <= to || !out_ready(ps) ||
        !ps->enabled || now - ps->last_underrun_us < PA_SHRINK_AFTER_US ||
        now - ps->last_raise_us < PA_SHRINK_AFTER_US ||
        now - ps->last_shrink_us < PA_SHRINK_AFTER_US ||
        now - ps->dip_from_us < PA_DIP_WINDOW_US) {
        return;
    }
    if (now < ps->floor_end_us) {
        to = MAX(to, ps->floor_us + PA_SHRINK_MIN_STEP_US);
    }
    to = MAX(to, 2 * ps->dip_us + PA_SHRINK_MIN_STEP_US);
    trace_pa_headroom(ps->name, ps->target_us, ps->dip_us);
    if (to + PA_SHRINK_MIN_STEP_US <= ps->target_us) {
        ps->last_shrink_us = now;
        set_target(ps, to);
    } else {
        ps->dip_us = 0;
        ps->dip_from_us = now;
    }
}

/*
 * How far below full the stream is at a tick, before it is topped up: the
 * depth it reached since the last tick, near enough, as the server asks
 * for what it played (early requests, a bite at a time).
 */
static void note_dip(PAStream *ps, size_t room)
{
    uint64_t us = pa_bytes_to_usec(room, &ps->spec);

    if (g_get_monotonic_time() >= ps->dip_from_us) {
        ps->dip_us = MAX(ps->dip_us, MIN(us, PA_LATENCY_LIMIT_US));
    }
}

/*
 * An underrun means the main loop could not keep the buffer filled at
 * this latency; raise it once per burst, and say so the first time.
 */
static void stream_underrun(PAStream *ps)
{
    int64_t now = g_get_monotonic_time();
    uint32_t old;

    if (!ps->enabled) {
        /* A stopped stream playing out its end, not a glitch. */
        return;
    }
    ps->stats.underruns++;
    ps->last_underrun_us = now;
    dip_reset(ps);
    trace_pa_underrun(ps->name, ps->stats.underruns, ps->target_us);
    if (ps->last_shrink_us > ps->last_raise_us &&
        now - ps->last_shrink_us < PA_SHRINK_AFTER_US) {
        /* The level just stepped down to does not hold. */
        ps->floor_keep_us = ps->floor_us && ps->target_us <= ps->floor_us ?
                            MIN(ps->floor_keep_us * 2, PA_FLOOR_KEEP_MAX_US) :
                            PA_FLOOR_KEEP_US;
        ps->floor_us = ps->target_us;
        ps->floor_end_us = now + ps->floor_keep_us;
    }
    if (ps->target_us >= ps->max_latency_us ||
        now - ps->last_raise_us < PA_ADAPT_HOLDOFF_US) {
        return;
    }
    old = ps->target_us;
    ps->last_raise_us = now;
    set_target(ps, MIN(old + MAX(old / 4, PA_ADAPT_MIN_STEP_US),
                       ps->max_latency_us));
    if (!ps->adapt_logged) {
        ps->adapt_logged = true;
        warn_report("audiodev %s: playback underran at %u us; latency "
                    "raised to %u us (at most %u us, out.max-latency); "
                    "further changes are counted in 'info audio'",
                    ps->pa->dev->id, old, ps->target_us,
                    ps->max_latency_us);
    }
}

/* A libpulse callback. */
static void underflow_cb(pa_stream *s, void *opaque)
{
    stream_underrun(opaque);
}

static void overflow_cb(pa_stream *s, void *opaque)
{
    PAStream *ps = opaque;

    ps->stats.overruns++;
}

/* --- pacing while there is no server ------------------------------------ */

static size_t serverless_bytes(PAStream *ps)
{
    if (!ps->serverless) {
        ps->serverless = true;
        audio_rate_start(&ps->rate);
    }
    return audio_rate_peek_bytes(&ps->rate, ps->info);
}

static size_t frames_only(PAStream *ps, size_t bytes)
{
    return bytes - bytes % ps->info->bytes_per_frame;
}

/* Bytes playback may write now; 0 while the stream is being set up. */
static size_t out_room(PAStream *ps)
{
#ifdef FORK_PA_PIPEWIRE
    if (ps->native && pw_out_ready(ps->native)) {
        ps->serverless = false;
        return frames_only(ps, pw_out_room(ps->native));
    }
    if (ps->native) {
        return pw_out_connecting(ps->native) ? 0 : serverless_bytes(ps);
    }
#endif
    if (stream_ready(ps)) {
        size_t n = pa_stream_writable_size(ps->stream);

        ps->serverless = false;
        return n == (size_t)-1 ? 0 : frames_only(ps, n);
    }
    if (stream_pending(ps)) {
        return 0;
    }
    return serverless_bytes(ps);
}

/* --- playback ------------------------------------------------------------ */

static void stream_write(PAStream *ps, const void *buf, size_t size)
{
#ifdef FORK_PA_PIPEWIRE
    if (ps->native) {
        if (trace_event_get_state_backends(TRACE_PA_WRITE)) {
            trace_pa_write(ps->name, size, pw_out_room(ps->native));
        }
        ps->stats.bytes += pw_out_write(ps->native, buf, size);
        return;
    }
#endif
    if (trace_event_get_state_backends(TRACE_PA_WRITE)) {
        trace_pa_write(ps->name, size, pa_stream_writable_size(ps->stream));
    }
    pa_stream_write(ps->stream, buf, size, NULL, 0, PA_SEEK_RELATIVE);
    ps->stats.bytes += size;
}

#ifdef FORK_PA_PIPEWIRE
/* The cycles that found the ring short are this tick's underruns. */
static void native_tick(PAStream *ps)
{
    uint64_t n = pw_out_short_cycles(ps->native);

    if (n > ps->short_seen) {
        ps->short_seen = n;
        stream_underrun(ps);
    }
}
#endif

#define PA_OUT(hw) (&container_of(hw, PAVoiceOut, hw)->s)
#define PA_IN(hw) (&container_of(hw, PAVoiceIn, hw)->s)

static size_t pa_buffer_get_free(HWVoiceOut *hw)
{
    PAStream *ps = PA_OUT(hw);
    size_t n;

    pa_conn_enter(ps->pa->conn);
    /* Every tick: the server's requests since the last one. */
    pa_conn_pump(ps->pa->conn);
#ifdef FORK_PA_PIPEWIRE
    if (ps->native) {
        native_tick(ps);
    }
#endif
    maybe_shrink(ps);
    n = out_room(ps);
    if (out_ready(ps) && ps->enabled) {
        note_dip(ps, n);
    }
    pa_conn_leave(ps->pa->conn);
    return n;
}

/*
 * The stream's room is what it misses to reach its latency only in small
 * requests, as PulseAudio grants them; pipewire-pulse asks for a whole
 * quantum (~5 ms) at a time, and a device keeping that full would hold
 * back a quantum's worth it has no room for.
 */
static bool pa_wants_full_out(HWVoiceOut *hw)
{
    PAStream *ps = PA_OUT(hw);
    const pa_buffer_attr *ba;
    bool full;

    pa_conn_enter(ps->pa->conn);
    ba = stream_ready(ps) ? pa_stream_get_buffer_attr(ps->stream) : NULL;
    full = ba && ba->minreq <= pa_usec_to_bytes(PA_MINREQ_MAX_US, &ps->spec);
#ifdef FORK_PA_PIPEWIRE
    /* Our ring's level is its latency, as a pulse stream's is. */
    full |= ps->native && pw_out_ready(ps->native);
#endif
    pa_conn_leave(ps->pa->conn);
    return full;
}

static void pa_lost_out(HWVoiceOut *hw, size_t bytes)
{
    PA_OUT(hw)->stats.lost += bytes;
    PA_OUT(hw)->stats.drops++;
}

/*
 * The buffer is the stream's own (zero copy).  get and put run in the same
 * main loop iteration, and only the main loop drops streams, so the stream
 * that gave the buffer is the one that takes it back.
 */
static void *pa_get_buffer_out(HWVoiceOut *hw, size_t *size)
{
    PAStream *ps = PA_OUT(hw);
    void *data = NULL;

    pa_conn_enter(ps->pa->conn);
    *size = MIN(*size, out_room(ps));
#ifdef FORK_PA_PIPEWIRE
    if (ps->native && pw_out_ready(ps->native)) {
        *size = MIN(*size, ps->scratch_len);
        pa_conn_leave(ps->pa->conn);
        return ps->scratch;
    }
#endif
    if (*size && stream_ready(ps)) {
        size_t len = *size;

        if (pa_stream_begin_write(ps->stream, &data, &len) < 0) {
            data = NULL;
            len = 0;
        }
        *size = frames_only(ps, MIN(*size, len));
    }
    pa_conn_leave(ps->pa->conn);
    return data;
}

static size_t pa_put_buffer_out(HWVoiceOut *hw, void *buf, size_t size)
{
    PAStream *ps = PA_OUT(hw);

    pa_conn_enter(ps->pa->conn);
    if (buf && out_ready(ps)) {
        stream_write(ps, buf, size);
    } else if (buf && ps->stream) {
        pa_stream_cancel_write(ps->stream);
    } else {
        audio_rate_add_bytes(&ps->rate, size);
    }
    pa_conn_leave(ps->pa->conn);
    return size;
}

static size_t pa_write(HWVoiceOut *hw, void *buf, size_t size)
{
    PAStream *ps = PA_OUT(hw);

    pa_conn_enter(ps->pa->conn);
    size = MIN(size, out_room(ps));
    if (out_ready(ps)) {
        stream_write(ps, buf, size);
    } else {
        audio_rate_add_bytes(&ps->rate, size);
    }
    pa_conn_leave(ps->pa->conn);
    return size;
}

/* --- capture ------------------------------------------------------------- */

/*
 * More than twice the latency waiting means the guest fell behind: keep
 * the newest latency's worth, so the microphone never lags for good.
 */
static void trim_backlog(PAStream *ps)
{
    size_t keep = pa_usec_to_bytes(ps->target_us, &ps->spec);
    size_t avail = pa_stream_readable_size(ps->stream);
    size_t dropped = 0;
    const void *data;
    size_t len;

    if (avail == (size_t)-1 || avail <= keep * 2) {
        return;
    }
    while (avail > keep && pa_stream_peek(ps->stream, &data, &len) == 0 &&
           len) {
        pa_stream_drop(ps->stream);
        dropped += len;
        avail -= MIN(avail, len);
    }
    ps->stats.overruns++;
    trace_pa_capture_trim(ps->name, dropped);
    if (!ps->trim_logged) {
        ps->trim_logged = true;
        warn_report("audiodev %s: the guest fell behind on capture; dropped "
                    "%" PRIu64 " us of old input to keep in.latency",
                    ps->pa->dev->id,
                    (uint64_t)pa_bytes_to_usec(dropped, &ps->spec));
    }
}

static void *pa_get_buffer_in(HWVoiceIn *hw, size_t *size)
{
    PAStream *ps = PA_IN(hw);
    void *buf = NULL;

    pa_conn_enter(ps->pa->conn);
    if (!ps->peek) {
        /* Every tick: what the server recorded since the last one. */
        pa_conn_pump(ps->pa->conn);
    }
    if (stream_ready(ps)) {
        ps->serverless = false;
        if (!ps->peek) {
            const void *data;
            size_t len;

            trim_backlog(ps);
            if (pa_stream_peek(ps->stream, &data, &len) < 0 || !len) {
                len = 0;
            } else if (!data) {
                /* A hole in the stream: nothing to hand on. */
                pa_stream_drop(ps->stream);
                len = 0;
            } else {
                ps->peek = data;
                ps->peek_len = len;
                ps->peek_pos = 0;
            }
        }
        *size = ps->peek ? MIN(*size, ps->peek_len - ps->peek_pos) : 0;
        buf = ps->peek ? (void *)(ps->peek + ps->peek_pos) : NULL;
    } else if (stream_pending(ps)) {
        *size = 0;
    } else {
        *size = frames_only(ps, MIN(MIN(*size, serverless_bytes(ps)),
                                    ps->silence_len));
        buf = ps->silence;
    }
    pa_conn_leave(ps->pa->conn);
    return buf;
}

static void pa_put_buffer_in(HWVoiceIn *hw, void *buf, size_t size)
{
    PAStream *ps = PA_IN(hw);

    pa_conn_enter(ps->pa->conn);
    if (buf == ps->silence) {
        audio_rate_add_bytes(&ps->rate, size);
    } else if (ps->peek) {
        ps->peek_pos += size;
        ps->stats.bytes += size;
        if (ps->peek_pos >= ps->peek_len) {
            pa_stream_drop(ps->stream);
            ps->peek = NULL;
        }
    }
    pa_conn_leave(ps->pa->conn);
}

static size_t pa_read(HWVoiceIn *hw, void *dst, size_t size)
{
    size_t done = 0;

    while (done < size) {
        size_t n = size - done;
        void *src = pa_get_buffer_in(hw, &n);

        if (!n) {
            break;
        }
        memcpy((uint8_t *)dst + done, src, n);
        pa_put_buffer_in(hw, src, n);
        done += n;
    }
    return done;
}

/* --- both directions ----------------------------------------------------- */

/* A libpulse callback. */
static void drained_cb(pa_stream *s, int success, void *opaque)
{
    PAStream *ps = opaque;
    pa_operation *op;

    if (s != ps->stream || ps->enabled) {
        return;
    }
    op = pa_stream_cork(s, 1, NULL, NULL);
    if (op) {
        pa_operation_unref(op);
    }
}

static void stream_enable(PAStream *ps, bool enable)
{
    pa_operation *op = NULL;

    pa_conn_enter(ps->pa->conn);
    if (ps->enabled != enable) {
        ps->enabled = enable;
        dip_reset(ps);
        pa_conn_pace(ps->pa->conn, enable);
    }
    ps->serverless = false;
#ifdef FORK_PA_PIPEWIRE
    if (ps->native) {
        /* Off: what the ring holds plays out first, as a drain would. */
        pw_out_set_active(ps->native, enable);
    }
#endif
    if (stream_ready(ps)) {
        if (enable) {
            op = pa_stream_cork(ps->stream, 0, NULL, NULL);
        } else if (ps->playback) {
            /*
             * The audio layer disables a voice once the device has given
             * it the end of the sound: that end plays, then the stream
             * rests corked.
             */
            op = pa_stream_drain(ps->stream, drained_cb, ps);
        } else {
            op = pa_stream_cork(ps->stream, 1, NULL, NULL);
            if (op) {
                pa_operation_unref(op);
            }
            /* What was recorded meanwhile is old when capture resumes. */
            op = pa_stream_flush(ps->stream, NULL, NULL);
        }
        if (op) {
            pa_operation_unref(op);
        }
    }
    pa_conn_leave(ps->pa->conn);
}

static void pa_enable_out(HWVoiceOut *hw, bool enable)
{
    stream_enable(PA_OUT(hw), enable);
}

static void pa_enable_in(HWVoiceIn *hw, bool enable)
{
    stream_enable(PA_IN(hw), enable);
}

static pa_sample_format_t pa_format(struct audsettings *as)
{
    bool be = as->endianness;

    /* PulseAudio has no signed 8 or unsigned 16/32 bit: convert in QEMU. */
    switch (as->fmt) {
    case AUDIO_FORMAT_S8:
    case AUDIO_FORMAT_U8:
        as->fmt = AUDIO_FORMAT_U8;
        return PA_SAMPLE_U8;
    case AUDIO_FORMAT_S16:
    case AUDIO_FORMAT_U16:
        as->fmt = AUDIO_FORMAT_S16;
        return be ? PA_SAMPLE_S16BE : PA_SAMPLE_S16LE;
    case AUDIO_FORMAT_S32:
    case AUDIO_FORMAT_U32:
        as->fmt = AUDIO_FORMAT_S32;
        return be ? PA_SAMPLE_S32BE : PA_SAMPLE_S32LE;
    case AUDIO_FORMAT_F32:
        return be ? PA_SAMPLE_FLOAT32BE : PA_SAMPLE_FLOAT32LE;
    default:
        as->fmt = AUDIO_FORMAT_S16;
        return be ? PA_SAMPLE_S16BE : PA_SAMPLE_S16LE;
    }
}

static AudiodevPaPerDirectionOptions *pa_pdo(PAAudio *pa, bool playback)
{
    return playback ? pa->dev->u.pa.out : pa->dev->u.pa.in;
}

/*
 * Set up @ps from the options and @as (adjusted to what PulseAudio takes)
 * and return the mixing buffer size in frames, or -1 if PulseAudio cannot
 * take @as.
 */
static int stream_init(PAStream *ps, PAAudio *pa, bool playback,
                       struct audsettings *as, struct audio_pcm_info *info)
{
    AudiodevPaPerDirectionOptions *ppdo = pa_pdo(pa, playback);
    uint32_t buffer_us;

    /*
     * The options were checked (pa_check_direction); this is what a device
     * asks for with fixed-settings=off.  libpulse asserts on a channel
     * count it cannot take, so it must never see one.
     */
    if (as->nchannels < 1 || (unsigned)as->nchannels > PA_CHANNELS_MAX ||
        as->freq < 1 || (unsigned)as->freq > PA_RATE_MAX) {
        error_report("audiodev %s: PulseAudio cannot take %d channels at "
                     "%d Hz (1 to %u channels, 1 to %u Hz)", pa->dev->id,
                     as->nchannels, as->freq, PA_CHANNELS_MAX, PA_RATE_MAX);
        return -1;
    }
    ps->pa = pa;
    ps->playback = playback;
    ps->info = info;
    ps->spec.format = pa_format(as);
    ps->spec.rate = as->freq;
    ps->spec.channels = as->nchannels;
    pa_channel_map_init_extend(&ps->map, as->nchannels, PA_CHANNEL_MAP_ALSA);
    audio_pcm_init_info(info, as);

    ps->name = g_strdup(ppdo->stream_name ?: pa->dev->id);
    ps->device = g_strdup(ppdo->name);
    ps->latency_us = ppdo->has_latency ? ppdo->latency :
                     playback ? PA_OUT_LATENCY_US : PA_IN_LATENCY_US;
    ps->max_latency_us = ppdo->has_max_latency ? ppdo->max_latency :
                         MAX(PA_MAX_LATENCY_US, ps->latency_us);
    ps->target_us = ps->latency_us;
    ps->client.ready = client_ready;
    ps->client.lost = client_lost;

    /* Capacity, not queueing: only what the stream takes is produced. */
    buffer_us = MAX(2 * ps->max_latency_us, 3 * pa->dev->timer_period);
    return audio_buffer_frames(
        qapi_AudiodevPaPerDirectionOptions_base(ppdo), as, buffer_us);
}

static void stream_start(PAStream *ps)
{
    ps->link_timer = timer_new_ms(QEMU_CLOCK_REALTIME, link_timeout, ps);
    ps->link_wait_ms = PA_LINK_WAIT_MS;
    QLIST_INSERT_HEAD(&ps->pa->streams, ps, next);
    pa_conn_enter(ps->pa->conn);
    pa_conn_add_client(ps->pa->conn, &ps->client);
    pa_conn_leave(ps->pa->conn);
}

static void stream_fini(PAStream *ps)
{
    QLIST_REMOVE(ps, next);
    pa_conn_enter(ps->pa->conn);
    pa_conn_remove_client(ps->pa->conn, &ps->client);
    if (ps->enabled) {
        ps->enabled = false;
        pa_conn_pace(ps->pa->conn, false);
    }
    stream_drop(ps);
#ifdef FORK_PA_PIPEWIRE
    if (ps->native) {
        pw_out_free(ps->native);
        ps->native = NULL;
    }
    g_free(ps->scratch);
#endif
    pa_conn_leave(ps->pa->conn);
    timer_free(ps->link_timer);
    g_free(ps->name);
    g_free(ps->device);
    g_free(ps->silence);
}

static int pa_init_out(HWVoiceOut *hw, struct audsettings *as, void *opaque)
{
    PAStream *ps = PA_OUT(hw);
    int frames = stream_init(ps, opaque, true, as, &hw->info);

    if (frames < 0) {
        return -1;
    }
    hw->samples = frames;
#ifdef FORK_PA_PIPEWIRE
    ps->scratch_len = (size_t)frames * hw->info.bytes_per_frame;
#endif
    stream_start(ps);
    return 0;
}

static int pa_init_in(HWVoiceIn *hw, struct audsettings *as, void *opaque)
{
    PAStream *ps = PA_IN(hw);
    int frames = stream_init(ps, opaque, false, as, &hw->info);

    if (frames < 0) {
        return -1;
    }
    hw->samples = frames;
    ps->silence_len = hw->samples * hw->info.bytes_per_frame;
    ps->silence = g_malloc(ps->silence_len);
    audio_pcm_info_clear_buf(&hw->info, ps->silence, hw->samples);
    stream_start(ps);
    return 0;
}

static void pa_fini_out(HWVoiceOut *hw)
{
    stream_fini(PA_OUT(hw));
}

static void pa_fini_in(HWVoiceIn *hw)
{
    stream_fini(PA_IN(hw));
}

/* --- the driver ---------------------------------------------------------- */

/*
 * After the generic defaults, so channels and frequency are set; called
 * when the options are parsed (patches/0012), and again at init.
 */
static bool pa_check_direction(Audiodev *dev, const char *dir,
                               AudiodevPaPerDirectionOptions *ppdo,
                               Error **errp)
{
    AudiodevPerDirectionOptions *pdo =
        qapi_AudiodevPaPerDirectionOptions_base(ppdo);

    if (ppdo->has_latency && (ppdo->latency < PA_LATENCY_MIN_US ||
                              ppdo->latency > PA_LATENCY_LIMIT_US)) {
        error_setg(errp, "audiodev %s: %s.latency=%u is out of range; "
                   "accepted values are %u to %u (microseconds)", dev->id,
                   dir, ppdo->latency, PA_LATENCY_MIN_US,
                   PA_LATENCY_LIMIT_US);
        return false;
    }
    if (ppdo->has_max_latency &&
        (ppdo->max_latency > PA_LATENCY_LIMIT_US ||
         ppdo->max_latency < (ppdo->has_latency ? ppdo->latency :
                              PA_LATENCY_MIN_US))) {
        error_setg(errp, "audiodev %s: %s.max-latency=%u is out of range; "
                   "accepted values are %s.latency (or %u) to %u "
                   "(microseconds)", dev->id, dir, ppdo->max_latency, dir,
                   PA_LATENCY_MIN_US, PA_LATENCY_LIMIT_US);
        return false;
    }
    if (pdo->has_buffer_length &&
        (pdo->buffer_length < PA_LATENCY_MIN_US ||
         pdo->buffer_length > PA_BUFFER_LIMIT_US)) {
        error_setg(errp, "audiodev %s: %s.buffer-length=%u is out of range; "
                   "accepted values are %u to %u (microseconds)", dev->id,
                   dir, pdo->buffer_length, PA_LATENCY_MIN_US,
                   PA_BUFFER_LIMIT_US);
        return false;
    }
    /* Without fixed settings the device chooses (stream_init checks). */
    if (!pdo->fixed_settings) {
        return true;
    }
    /* libpulse asserts on a channel count it cannot take. */
    if (pdo->channels < 1 || pdo->channels > PA_CHANNELS_MAX) {
        error_setg(errp, "audiodev %s: %s.channels=%u is out of range; "
                   "accepted values are 1 to %u", dev->id, dir,
                   pdo->channels, PA_CHANNELS_MAX);
        return false;
    }
    if (pdo->frequency < 1 || pdo->frequency > PA_RATE_MAX) {
        error_setg(errp, "audiodev %s: %s.frequency=%u is out of range; "
                   "accepted values are 1 to %u (Hz)", dev->id, dir,
                   pdo->frequency, PA_RATE_MAX);
        return false;
    }
    return true;
}

static bool pa_check_opts(Audiodev *dev, Error **errp)
{
    return pa_check_direction(dev, "in", dev->u.pa.in, errp) &&
           pa_check_direction(dev, "out", dev->u.pa.out, errp);
}

static void *pa_audio_init(Audiodev *dev, Error **errp)
{
    AudiodevPaOptions *popts = &dev->u.pa;
    PAAudio *pa;

    if (!pa_check_opts(dev, errp)) {
        return NULL;
    }
    pa = g_new0(PAAudio, 1);
    pa->dev = dev;
    QLIST_INIT(&pa->streams);
    pa->conn = pa_conn_new(popts->server, dev->id);
#ifdef FORK_PA_PIPEWIRE
    pa->pw_fallback_bh = qemu_bh_new(pw_fallback_bh, pa);
#endif
    QTAILQ_INSERT_TAIL(&pa_audios, pa, next);
    return pa;
}
FORK_AUDIO_DRIVER_INIT_DEFINE(pa_audio_init)

static void pa_audio_fini(void *opaque)
{
    PAAudio *pa = opaque;

    QTAILQ_REMOVE(&pa_audios, pa, next);
#ifdef FORK_PA_PIPEWIRE
    if (pa->pw) {
        pw_link_free(pa->pw);
    }
    qemu_bh_delete(pa->pw_fallback_bh);
#endif
    pa_conn_free(pa->conn);
    g_free(pa);
}

/*
 * Before the generic defaults: a finer timer and the rate sinks run at,
 * unless the user chose (patches/0004-audio-driver-defaults.patch).
 */
static void pa_set_defaults(Audiodev *dev)
{
    AudiodevPerDirectionOptions *pdos[] = {
        qapi_AudiodevPaPerDirectionOptions_base(dev->u.pa.in),
        qapi_AudiodevPaPerDirectionOptions_base(dev->u.pa.out),
    };
    int i;

    if (!dev->has_timer_period) {
        dev->has_timer_period = true;
        dev->timer_period = PA_TIMER_PERIOD_US;
    }
    for (i = 0; i < ARRAY_SIZE(pdos); i++) {
        AudiodevPerDirectionOptions *pdo = pdos[i];
        bool fixed = pdo->has_fixed_settings ? pdo->fixed_settings :
                     !pdo->has_mixing_engine || pdo->mixing_engine;

        if (fixed && !pdo->has_frequency) {
            pdo->has_frequency = true;
            pdo->frequency = PA_FREQUENCY;
        }
    }
}

/*
 * What the server holds of the stream now: its last timing report, aged
 * by the time since.  Not pa_stream_get_latency(): its interpolated clock
 * never runs back, and read while the stream rests it runs far ahead; for
 * playback the answer is then 0 (never negative) until the write index
 * overtakes it, which for a stream as short as ours takes as long as the
 * rest did: the field went missing for whole sessions.  The report comes
 * every 1.5 s at most
 * (PA_STREAM_AUTO_TIMING_UPDATE); the age stands in for what the device
 * played or captured since, at the nominal rate.
 */
static bool stream_measured_us(PAStream *ps, uint64_t *us)
{
    const pa_timing_info *ti = pa_stream_get_timing_info(ps->stream);
    int64_t held, age = 0;

    if (!ti || ti->write_index_corrupt || ti->read_index_corrupt) {
        return false;
    }
    if (ti->playing && pa_stream_is_corked(ps->stream) == 0) {
        age = pa_timeval_age(&ti->timestamp);
    }
    held = ti->write_index - ti->read_index;
    held = held < 0 ? -(int64_t)pa_bytes_to_usec(-held, &ps->spec)
                    : (int64_t)pa_bytes_to_usec(held, &ps->spec);
    if (ps->playback) {
        held += ti->sink_usec - age;
    } else {
        held += ti->source_usec + age;
    }
    *us = MAX(held, 0);
    return true;
}

void pa_stream_stats_foreach(PAStreamStatsFn fn, void *opaque)
{
    PAAudio *pa;
    PAStream *ps;

    QTAILQ_FOREACH(pa, &pa_audios, next) {
        pa_conn_enter(pa->conn);
        QLIST_FOREACH(ps, &pa->streams, next) {
            PAStreamInfo info = {
                .audiodev = pa->dev->id,
                .stream = ps->name,
                .playback = ps->playback,
                .server = pa_conn_server(pa->conn),
                .connected = out_ready(ps),
                .latency_us = ps->latency_us,
                .target_us = ps->target_us,
                .max_latency_us = ps->max_latency_us,
                .reconnects = pa_conn_reconnects(pa->conn),
                .stats = ps->stats,
            };
            const pa_buffer_attr *ba;

#ifdef FORK_PA_PIPEWIRE
            if (ps->native) {
                info.server = pw_link_socket(pa->pw);
                info.reconnects = pw_link_reconnects(pa->pw);
                info.stats.streams += pw_out_streams(ps->native);
                info.has_rescues = true;
                info.rescues = pw_out_rescued_cycles(ps->native);
                info.has_measured = pw_out_measured_us(ps->native,
                                                       &info.measured_us);
                fn(&info, opaque);
                continue;
            }
#endif
            info.has_measured = info.connected &&
                                stream_measured_us(ps, &info.measured_us);
            ba = info.connected ? pa_stream_get_buffer_attr(ps->stream)
                                : NULL;
            if (ba) {
                info.attr = *ba;
                info.has_attr = true;
            }
            fn(&info, opaque);
        }
        pa_conn_leave(pa->conn);
    }
}

static struct audio_pcm_ops pa_pcm_ops = {
    .init_out         = pa_init_out,
    .fini_out         = pa_fini_out,
    .write            = pa_write,
    .buffer_get_free  = pa_buffer_get_free,
    .wants_full_out   = pa_wants_full_out,
    .lost_out         = pa_lost_out,
    .get_buffer_out   = pa_get_buffer_out,
    .put_buffer_out   = pa_put_buffer_out,
    .enable_out       = pa_enable_out,

    .init_in          = pa_init_in,
    .fini_in          = pa_fini_in,
    .read             = pa_read,
    .get_buffer_in    = pa_get_buffer_in,
    .put_buffer_in    = pa_put_buffer_in,
    .enable_in        = pa_enable_in,
};

static struct audio_driver pa_audio_driver = {
    .name           = "pa",
    .descr          = "PulseAudio, low latency (qemu-vfio-audio)",
    FORK_AUDIO_DRIVER_INIT(pa_audio_init),
    .fini           = pa_audio_fini,
    .set_defaults   = pa_set_defaults,
    .check_opts     = pa_check_opts,
    .pcm_ops        = &pa_pcm_ops,
    .max_voices_out = INT_MAX,
    .max_voices_in  = INT_MAX,
    .voice_size_out = sizeof(PAVoiceOut),
    .voice_size_in  = sizeof(PAVoiceIn),
};

static void register_audio_pa(void)
{
    audio_driver_register(&pa_audio_driver);
}
type_init(register_audio_pa);
