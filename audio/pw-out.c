/*
 * A playback stream straight to PipeWire, fed through a ring
 *
 * Each cycle of PipeWire's graph takes a quantum at once, in libpipewire's
 * real-time data thread (PW_STREAM_FLAG_RT_PROCESS), from a ring that the
 * device's audio timer tops up in QEMU's main loop.  The graph's share of
 * the latency is then one quantum; filling from the main loop instead
 * would queue a second.  The ring is kept at the latency the controller
 * (pa-voice.c) asks for, and at least at a quantum and a tick; the
 * controller raises it when a main loop that comes late leaves a cycle
 * short.  Before that, a cycle that finds the ring short asks for it to
 * be topped up at once, from its own thread (the rescue, pa-voice.c),
 * which works whenever the main loop is late but holds no lock, and is
 * tried again for a moment when it held the lock.
 *
 * The stream asks for 256 frames at 48 kHz.  At 128 it plays some 2.5 ms
 * earlier, but it sets the whole desktop's graph to 128 while the guest
 * plays, and a client beside it without real-time scheduling (a recorder
 * asking for 1024 frames) then loses quanta that at 256 it does not
 * (README-fork, "Filled in the cycle", stop 41).
 *
 * What crosses threads is read and written atomically: the ring's
 * positions and level, and what the data thread reports of its cycles.
 * The ring has one writer at a time, whoever holds the big QEMU lock: the
 * main loop, or the data thread during a rescue.
 * The data thread dequeues, copies and queues, and counts the cycles it
 * found the ring short.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "qemu/host-utils.h"
#include "qemu/units.h"
#include "qemu/timer.h"
#include <spa/param/audio/format-utils.h>
#include <spa/node/io.h>
#include "pw-out.h"
#include "trace.h"

/* node.latency: the quantum asked for, in frames at 48 kHz. */
#define QUANTUM_48K             256
/* What the graph may still hold once the ring is empty: two quanta. */
#define DRAIN_QUANTA            2
/* How long a rescue may try again, and how often (rescue()). */
#define RESCUE_WAIT_US          500
#define RESCUE_RETRY_US         50
/* A stream the daemon failed is asked for again after this long. */
#define RECREATE_MS             500

struct PWOut {
    PWLinkClient client;
    PWLink *link;
    char *name;
    char *target;
    uint32_t format;
    uint32_t rate;
    uint32_t channels;
    uint32_t frame;

    struct pw_stream *stream;   /* NULL while the link is down */
    struct spa_hook listener;
    enum pw_stream_state state;
    bool active;
    QEMUTimer *rest_timer;      /* the end played out: rest */
    QEMUTimer *recreate_timer;

    struct pw_core *core;       /* while the link is ready */
    uint32_t latency_us;        /* asked for */
    uint32_t tick_us;
    uint32_t keep;              /* bytes the ring is kept at */
    PWOutRescue *rescue;
    void *opaque;

    /* Crossing threads: the main loop writes wpos, the data thread rpos. */
    uint8_t *ring;
    uint32_t size;              /* a power of two */
    uint32_t wpos;
    uint32_t rpos;
    uint32_t cycle_frames;      /* the last cycle's quantum */
    uint32_t cycle_bytes;       /* what it took from the ring */
    int64_t cycle_ns;           /* and when, CLOCK_MONOTONIC */
    uint64_t short_cycles;
    uint64_t rescued_cycles;
    unsigned streams;           /* made, since the start */
    bool draining;
    unsigned epoch;             /* bumped at each start, each stream */

    /* The data thread's own. */
    struct spa_io_position *position;
    unsigned seen_epoch;
    bool primed;                /* the ring reached its level */
};

/* The main loop's view: the data thread is done with what it read. */
static uint32_t ring_fill(PWOut *o)
{
    return qatomic_read(&o->wpos) - qatomic_load_acquire(&o->rpos);
}

static uint32_t quantum_bytes(PWOut *o)
{
    uint32_t frames = qatomic_read(&o->cycle_frames);

    if (!frames) {
        frames = MAX((uint64_t)o->rate * QUANTUM_48K / 48000, 1);
    }
    return frames * o->frame;
}

/* --- the data thread -------------------------------------------------- */

/* The data thread's view: what the main loop has written is there. */
static uint32_t ring_avail(PWOut *o)
{
    return qatomic_load_acquire(&o->wpos) - qatomic_read(&o->rpos);
}

/* Up to @n bytes from the ring into @dst; returns how many. */
static uint32_t ring_take(PWOut *o, uint8_t *dst, uint32_t n)
{
    uint32_t r = qatomic_read(&o->rpos);
    uint32_t done = 0;

    n = MIN(n, ring_avail(o));
    while (done < n) {
        uint32_t at = (r + done) & (o->size - 1);
        uint32_t part = MIN(n - done, o->size - at);

        memcpy(dst + done, o->ring + at, part);
        done += part;
    }
    qatomic_store_release(&o->rpos, r + n);
    return n;
}

/*
 * The rescue, tried again for a while when it could not fill the cycle
 * but may soon: the lock was held (the main loop may be topping the ring
 * up itself), or the card had not yet played the few frames the ring
 * lacks.  A guest that played nothing is not waited for.  It never
 * blocks on the lock: it sleeps between tries, for at most a tenth of a
 * quantum in all.
 */
static void rescue(PWOut *o, uint32_t n)
{
    uint32_t had = ring_avail(o);
    uint32_t few = muldiv64(o->tick_us, o->rate, 1000000) * o->frame;
    int64_t until = get_clock() + RESCUE_WAIT_US * SCALE_US;
    unsigned tries = 0;
    bool ran;

    pw_link_data_thread_enter();
    for (;;) {
        uint32_t before = ring_avail(o);

        ran = o->rescue(o->opaque);
        tries++;
        if (ring_avail(o) >= n || get_clock() >= until ||
            (ran && ring_avail(o) == before && n - before > few)) {
            break;
        }
        g_usleep(RESCUE_RETRY_US);
    }
    trace_pw_out_rescue(o->name, ran, tries, had, ring_avail(o), n);
    if (ring_avail(o) >= n) {
        qatomic_set(&o->rescued_cycles,
                    qatomic_read(&o->rescued_cycles) + 1);
    }
}

static void out_process(void *opaque)
{
    PWOut *o = opaque;
    struct pw_buffer *b = pw_stream_dequeue_buffer(o->stream);
    struct spa_data *d;
    uint32_t n, got = 0;
    int64_t began, last;
    unsigned epoch;
    bool first = false;

    if (!b) {
        return;
    }
    d = &b->buffer->datas[0];
    if (!d->data) {
        pw_stream_queue_buffer(o->stream, b);
        return;
    }
    n = d->maxsize;
    if (b->requested) {
        n = MIN(n, b->requested * o->frame);
        qatomic_set(&o->cycle_frames, b->requested);
    }
    n -= n % o->frame;
    epoch = qatomic_read(&o->epoch);
    if (epoch != o->seen_epoch) {
        o->seen_epoch = epoch;
        o->primed = false;
    }
    /*
     * A start plays from the level the ring is kept at, as a pulse stream
     * plays from its prebuf: the ring fills no faster than the guest
     * plays, and taken as it came, every cycle would find it short until
     * the guest stopped.  Once the guest stops, what is left plays.
     */
    if (!o->primed && (ring_avail(o) >= qatomic_read(&o->keep) ||
                       qatomic_read(&o->draining))) {
        o->primed = true;
        first = true;
    }
    /*
     * The graph asks for a quantum once the sink has played the last one,
     * or given it up: none of that is left to play.  A cycle that ran
     * late is followed at once by the next, and both see the same clock;
     * counted as still to play, the first one's quantum left the second
     * one's rescue no room for what the guest had played meanwhile.
     */
    qatomic_set(&o->cycle_bytes, 0);
    /*
     * A main loop that comes late leaves the ring short of what the guest
     * has played by now; the rescue moves that now, from here, rather than
     * play a gap (README-fork, "Filled in the cycle").
     */
    if (o->primed && o->rescue && ring_avail(o) < n &&
        !qatomic_read(&o->draining)) {
        rescue(o, n);
    }
    if (o->primed) {
        got = ring_take(o, d->data, n);
    }
    if (first) {
        trace_pw_out_first(o->name, got, n);
    }
    qatomic_set(&o->cycle_bytes, got);
    /*
     * When the cycle began, as the graph's driver has it: this callback
     * runs up to a few milliseconds after that, and not by the same
     * each time.
     */
    last = qatomic_read(&o->cycle_ns);
    began = o->position ? (int64_t)o->position->clock.nsec : get_clock();
    qatomic_set(&o->cycle_ns, began);
    if (got < n) {
        memset((uint8_t *)d->data + got, 0, n - got);
        /*
         * Before the first sound and after the last, silence is due.  The
         * trace tells a cycle that came close behind the last (0 us: the
         * second of two run together) from a main loop that held the
         * lock through the rescue.
         */
        if (o->primed && !qatomic_read(&o->draining)) {
            qatomic_set(&o->short_cycles,
                        qatomic_read(&o->short_cycles) + 1);
            trace_pw_out_short(o->name, got, n, (began - last) / SCALE_US,
                               (get_clock() - began) / SCALE_US);
        }
    }
    d->chunk->offset = 0;
    d->chunk->stride = o->frame;
    d->chunk->size = n;
    pw_stream_queue_buffer(o->stream, b);
}

/* --- the main loop ----------------------------------------------------- */

static void out_state_changed(void *opaque, enum pw_stream_state old,
                              enum pw_stream_state state, const char *error)
{
    PWOut *o = opaque;

    trace_pw_out_state(o->name, pw_stream_state_as_string(state),
                       error ? error : "");
    o->state = state;
    if (state == PW_STREAM_STATE_ERROR) {
        timer_mod(o->recreate_timer,
                  qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + RECREATE_MS);
    }
}

/* In the data thread, before the cycles that use it. */
static void out_io_changed(void *opaque, uint32_t id, void *area,
                           uint32_t size)
{
    PWOut *o = opaque;

    if (id == SPA_IO_Position) {
        o->position = area && size >= sizeof(*o->position) ? area : NULL;
    }
}

static const struct pw_stream_events out_events = {
    PW_VERSION_STREAM_EVENTS,
    .state_changed = out_state_changed,
    .io_changed = out_io_changed,
    .process = out_process,
};

static void fill_positions(uint32_t channels, uint32_t *pos, uint32_t *flags)
{
    /* PulseAudio's ALSA map, which pa-voice.c gives the pulse stream. */
    static const uint32_t alsa[] = {
        SPA_AUDIO_CHANNEL_FL, SPA_AUDIO_CHANNEL_FR, SPA_AUDIO_CHANNEL_RL,
        SPA_AUDIO_CHANNEL_RR, SPA_AUDIO_CHANNEL_FC, SPA_AUDIO_CHANNEL_LFE,
        SPA_AUDIO_CHANNEL_SL, SPA_AUDIO_CHANNEL_SR,
    };
    uint32_t i;

    if (channels == 1) {
        pos[0] = SPA_AUDIO_CHANNEL_MONO;
    } else if (channels <= ARRAY_SIZE(alsa)) {
        for (i = 0; i < channels; i++) {
            pos[i] = alsa[i];
        }
    } else {
        *flags |= SPA_AUDIO_FLAG_UNPOSITIONED;
    }
}

static void stream_drop(PWOut *o)
{
    timer_del(o->recreate_timer);
    if (o->stream) {
        spa_hook_remove(&o->listener);
        pw_stream_destroy(o->stream);
        o->stream = NULL;
    }
    o->state = PW_STREAM_STATE_UNCONNECTED;
    /*
     * Nothing reads them any more.  What the ring held is old by the next
     * stream, and the position was the old graph's, mapped from a daemon
     * that may be gone: the next stream is told its own.
     */
    o->position = NULL;
    qatomic_set(&o->rpos, qatomic_read(&o->wpos));
}

static void stream_create(PWOut *o, struct pw_core *core)
{
    uint8_t pod[1024];
    struct spa_pod_builder builder = SPA_POD_BUILDER_INIT(pod, sizeof(pod));
    struct spa_audio_info_raw info = {
        .format = o->format,
        .rate = o->rate,
        .channels = MIN(o->channels, SPA_AUDIO_MAX_CHANNELS),
    };
    const struct spa_pod *params[1];
    struct pw_properties *props;
    enum pw_stream_flags flags = PW_STREAM_FLAG_AUTOCONNECT |
                                 PW_STREAM_FLAG_MAP_BUFFERS |
                                 PW_STREAM_FLAG_RT_PROCESS;

    fill_positions(info.channels, info.position, &info.flags);
    props = pw_properties_new(PW_KEY_MEDIA_TYPE, "Audio",
                              PW_KEY_MEDIA_CATEGORY, "Playback",
                              PW_KEY_MEDIA_ROLE, "Game",
                              PW_KEY_MEDIA_NAME, o->name,
                              PW_KEY_NODE_NAME, o->name,
                              PW_KEY_APP_NAME, "QEMU",
                              NULL);
    pw_properties_setf(props, PW_KEY_NODE_LATENCY, "%u/%u",
                       MAX((uint32_t)((uint64_t)o->rate * QUANTUM_48K /
                                      48000), 1), o->rate);
    if (o->target) {
        pw_properties_set(props, PW_KEY_TARGET_OBJECT, o->target);
    }
    o->stream = pw_stream_new(core, o->name, props);
    if (!o->stream) {
        trace_pw_out_state(o->name, "cannot create", g_strerror(errno));
        timer_mod(o->recreate_timer,
                  qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + RECREATE_MS);
        return;
    }
    pw_stream_add_listener(o->stream, &o->listener, &out_events, o);
    /* Its first cycles wait for the ring's level, as at a start. */
    qatomic_set(&o->epoch, qatomic_read(&o->epoch) + 1);
    params[0] = spa_format_audio_raw_build(&builder, SPA_PARAM_EnumFormat,
                                           &info);
    if (!o->active) {
        flags |= PW_STREAM_FLAG_INACTIVE;
    }
    if (pw_stream_connect(o->stream, PW_DIRECTION_OUTPUT, PW_ID_ANY, flags,
                          params, 1) < 0) {
        trace_pw_out_state(o->name, "cannot connect", g_strerror(errno));
        stream_drop(o);
        timer_mod(o->recreate_timer,
                  qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + RECREATE_MS);
        return;
    }
    o->streams++;
    trace_pw_out_create(o->name, o->rate, o->channels,
                        MAX(o->latency_us, pw_out_least_us(o)));
}

static void recreate(void *opaque)
{
    PWOut *o = opaque;

    if (o->core) {
        stream_drop(o);
        stream_create(o, o->core);
    }
}

static void out_ready(PWLinkClient *client, struct pw_core *core)
{
    PWOut *o = container_of(client, PWOut, client);

    stream_drop(o);
    o->core = core;
    stream_create(o, core);
}

static void out_lost(PWLinkClient *client)
{
    PWOut *o = container_of(client, PWOut, client);

    stream_drop(o);
    o->core = NULL;
}

static void rest(void *opaque)
{
    PWOut *o = opaque;

    if (o->stream && !o->active) {
        pw_stream_set_active(o->stream, false);
    }
}

bool pw_out_ready(PWOut *o)
{
    return o->stream && (o->state == PW_STREAM_STATE_PAUSED ||
                         o->state == PW_STREAM_STATE_STREAMING);
}

bool pw_out_connecting(PWOut *o)
{
    return o->core && !pw_out_ready(o);
}

/*
 * Of what the last cycle took from the ring, what the sink has yet to
 * play by now, at the stream's rate; nothing once the next one began.
 */
static uint32_t unplayed(PWOut *o)
{
    int64_t at = qatomic_read(&o->cycle_ns);
    uint32_t took = qatomic_read(&o->cycle_bytes);
    uint64_t played;

    if (!at || !took) {
        return 0;
    }
    played = muldiv64(MAX(get_clock() - at, 0), o->rate,
                      NANOSECONDS_PER_SECOND) * o->frame;
    return played < took ? took - played : 0;
}

/*
 * At the start of a cycle the ring must hold its quantum, and the last
 * top-up may be a tick old: anything less than a quantum and a tick is
 * short at every cycle.  A tick that comes late is the rescue's.  Before
 * it tried again (rescue()), that was a second tick here (README-fork,
 * "Tried again", stop 42).
 */
uint32_t pw_out_least_us(PWOut *o)
{
    return pw_out_quantum_us(o) + o->tick_us;
}

uint32_t pw_out_quantum_us(PWOut *o)
{
    return muldiv64(quantum_bytes(o), 1000000, (uint64_t)o->rate * o->frame);
}

/*
 * The level (the ring and what the sink has yet to play of the last
 * cycle) is the latency, as a pulse stream's buffer is: a cycle finds the
 * ring short once a late tick let the level fall a quantum below it, as a
 * pulse stream underruns once its buffer ran dry.  Below the least, the
 * level is the least (pa-voice.c asks for no less).
 */
void pw_out_set_latency(PWOut *o, uint32_t us)
{
    uint64_t bytes;

    o->latency_us = us;
    bytes = muldiv64(MAX(us, pw_out_least_us(o)), o->rate, 1000000);
    qatomic_set(&o->keep, MIN(bytes * o->frame, o->size - o->frame));
}

/*
 * Room below the level, the sink's progress through the last quantum
 * counted as if the ring still held what it has not played: the ring
 * alone drops a quantum at each cycle, and kept full by that it would
 * show room of up to a quantum at every tick, whereas this level moves as
 * smoothly as PulseAudio's requests do.  It sinks only if the graph's
 * clock runs faster than the device's, and then the device speeds up
 * (audio-pacing.c).
 */
size_t pw_out_room(PWOut *o)
{
    uint64_t level = ring_fill(o) + unplayed(o);
    uint64_t room;

    /* The quantum may have changed since the level was set. */
    pw_out_set_latency(o, o->latency_us);
    room = level < o->keep ? o->keep - level : 0;
    room = MIN(room, o->size - ring_fill(o));
    return room - room % o->frame;
}

size_t pw_out_write(PWOut *o, const void *buf, size_t size)
{
    uint32_t w = qatomic_read(&o->wpos);
    uint32_t n = MIN(size, o->size - ring_fill(o));
    uint32_t done = 0;

    while (done < n) {
        uint32_t at = (w + done) & (o->size - 1);
        uint32_t part = MIN(n - done, o->size - at);

        memcpy(o->ring + at, (const uint8_t *)buf + done, part);
        done += part;
    }
    qatomic_store_release(&o->wpos, w + n);
    return n;
}

void pw_out_set_active(PWOut *o, bool on)
{
    int64_t drain_ms;

    if (o->active == on) {
        return;
    }
    o->active = on;
    trace_pw_out_active(o->name, on);
    if (on) {
        timer_del(o->rest_timer);
        qatomic_set(&o->draining, false);
        qatomic_set(&o->epoch, qatomic_read(&o->epoch) + 1);
        if (o->stream) {
            pw_stream_set_active(o->stream, true);
        }
        return;
    }
    qatomic_set(&o->draining, true);
    drain_ms = muldiv64(ring_fill(o) + DRAIN_QUANTA * quantum_bytes(o),
                        1000, (uint64_t)o->rate * o->frame) + 1;
    timer_mod(o->rest_timer,
              qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + drain_ms);
}

unsigned pw_out_streams(PWOut *o)
{
    return o->streams;
}

uint64_t pw_out_short_cycles(PWOut *o)
{
    return qatomic_read(&o->short_cycles);
}

uint64_t pw_out_rescued_cycles(PWOut *o)
{
    return qatomic_read(&o->rescued_cycles);
}

bool pw_out_measured_us(PWOut *o, uint64_t *us)
{
    struct pw_time t;
    uint64_t held;

    if (!pw_out_ready(o) ||
        pw_stream_get_time_n(o->stream, &t, sizeof(t)) < 0 ||
        !t.rate.denom) {
        return false;
    }
    held = muldiv64(ring_fill(o) + t.queued, 1000000,
                    (uint64_t)o->rate * o->frame);
    if (t.delay > 0) {
        held += muldiv64(t.delay, 1000000ULL * t.rate.num, t.rate.denom);
    }
    *us = held;
    return true;
}

PWOut *pw_out_new(PWLink *link, const PWOutSpec *spec)
{
    PWOut *o = g_new0(PWOut, 1);
    uint64_t most = muldiv64(spec->max_us, spec->rate, 1000000) * spec->frame;

    o->link = link;
    o->name = g_strdup(spec->name);
    o->target = g_strdup(spec->target);
    o->format = spec->format;
    o->rate = MAX(spec->rate, 1);
    o->channels = spec->channels;
    o->frame = MAX(spec->frame, 1);
    o->tick_us = spec->tick_us;
    o->rescue = spec->rescue;
    o->opaque = spec->opaque;
    o->state = PW_STREAM_STATE_UNCONNECTED;
    /* Room for the deepest level, a quantum of any size, and a write. */
    o->size = pow2ceil(MAX(2 * most + 2 * (uint64_t)o->rate * o->frame / 10,
                           64 * KiB));
    o->ring = g_malloc0(o->size);
    o->rest_timer = timer_new_ms(QEMU_CLOCK_REALTIME, rest, o);
    o->recreate_timer = timer_new_ms(QEMU_CLOCK_REALTIME, recreate, o);
    o->client.ready = out_ready;
    o->client.lost = out_lost;
    pw_link_add_client(link, &o->client);
    return o;
}

void pw_out_free(PWOut *o)
{
    pw_link_remove_client(o->link, &o->client);
    stream_drop(o);
    timer_free(o->rest_timer);
    timer_free(o->recreate_timer);
    g_free(o->ring);
    g_free(o->name);
    g_free(o->target);
    g_free(o);
}
