/*
 * libpulse's main loop API on QEMU's main loop
 *
 * libpulse usually runs in a thread of its own (pa_threaded_mainloop).  At
 * the latencies this backend keeps, that thread wakes for every request the
 * server sends (a millisecond's worth each) and again for every write QEMU
 * hands it: some 1800 times a second, more than the rest of QEMU together,
 * and each wake-up costs the host a context switch.  Here libpulse runs in
 * QEMU's main thread instead, on a pa_mainloop_api of our own: its file
 * descriptors are QEMU fd handlers, its timers QEMU timers, and what a call
 * into libpulse queued (a write, a reply) is dispatched right after the
 * call, not on a wake-up.  libpulse's own pa_mainloop would do the same
 * through a wake-up pipe, a write() and a read() for every queued event and
 * a read() for every step of its loop, several times a millisecond.
 *
 * While a stream plays, the audio timer runs anyway, and each of its ticks
 * answers the server's requests: then the server's sockets are not watched
 * for input at all, and the tick pumps the loop instead.  QEMU wakes once
 * per tick, as stock QEMU's HDA codec does.
 *
 * Events libpulse frees are only marked dead, and reaped once no dispatch
 * runs, as pa_mainloop does: a callback may free its own event, or one a
 * dispatch is about to visit.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <poll.h>
#include <pulse/rtclock.h>
#include <pulse/timeval.h>
#include "qemu/main-loop.h"
#include "qemu/queue.h"
#include "qemu/timer.h"
#include "pa-loop.h"
#include "trace.h"

/*
 * Rounds of poll and dispatch per pump, and of deferred events per run.
 * libpulse reads one piece of one packet per dispatch of the server's
 * socket (a millisecond's requests are a few packets), and what one
 * dispatch queues (a reply that asks for more) goes out in the next;
 * bounded, so that a server that floods us, or an event libpulse keeps
 * enabled, cannot hold the main loop.
 */
#define ROUNDS_MAX      64

/* While paced, libpulse still runs this often if the pump stops. */
#define PACED_MAX_MS    20

/*
 * libpulse marks a time event's timeval as its rtclock (CLOCK_MONOTONIC)
 * with this bit in tv_usec (pulsecore's PA_TIMEVAL_RTCLOCK, unchanged
 * since 0.9.16); without it, the timeval is wall-clock time.
 */
#define LOOP_TV_RTCLOCK     (1U << 30)

struct pa_io_event {
    PALoop *l;
    int fd;
    pa_io_event_flags_t events;
    short watched;              /* what QEMU's main loop polls for */
    bool dead;
    pa_io_event_cb_t cb;
    void *userdata;
    pa_io_event_destroy_cb_t destroy;
    QTAILQ_ENTRY(pa_io_event) next;
};

struct pa_time_event {
    PALoop *l;
    QEMUTimer *timer;
    struct timeval tv;          /* as libpulse gave it, flag and all */
    bool dead;
    pa_time_event_cb_t cb;
    void *userdata;
    pa_time_event_destroy_cb_t destroy;
    QTAILQ_ENTRY(pa_time_event) next;
};

struct pa_defer_event {
    PALoop *l;
    bool enabled;
    bool dead;
    pa_defer_event_cb_t cb;
    void *userdata;
    pa_defer_event_destroy_cb_t destroy;
    QTAILQ_ENTRY(pa_defer_event) next;
};

struct PALoop {
    pa_mainloop_api api;
    QTAILQ_HEAD(, pa_io_event) ios;
    QTAILQ_HEAD(, pa_time_event) times;
    QTAILQ_HEAD(, pa_defer_event) defers;
    unsigned enabled_defers;
    unsigned dead;              /* events freed, not yet reaped */
    unsigned depth;             /* dispatches running */
    /*
     * Runs what was queued outside any dispatch and not run by
     * pa_loop_run (which cancels it), and reaps what was freed there.
     */
    QEMUBH *bh;
    QEMUTimer *paced_timer;
    int64_t last_pump_ms;
    bool paced;
    GArray *pollfds;            /* the pump's, struct pollfd */
    GPtrArray *polled;          /* pa_io_event of each pollfd */
};

/* --- dispatch ------------------------------------------------------------ */

static void loop_reap(PALoop *l)
{
    pa_io_event *io, *io_next;
    pa_time_event *t, *t_next;
    pa_defer_event *d, *d_next;

    QTAILQ_FOREACH_SAFE(io, &l->ios, next, io_next) {
        if (io->dead) {
            QTAILQ_REMOVE(&l->ios, io, next);
            if (io->destroy) {
                io->destroy(&l->api, io, io->userdata);
            }
            g_free(io);
        }
    }
    QTAILQ_FOREACH_SAFE(t, &l->times, next, t_next) {
        if (t->dead) {
            QTAILQ_REMOVE(&l->times, t, next);
            if (t->destroy) {
                t->destroy(&l->api, t, t->userdata);
            }
            timer_free(t->timer);
            g_free(t);
        }
    }
    QTAILQ_FOREACH_SAFE(d, &l->defers, next, d_next) {
        if (d->dead) {
            QTAILQ_REMOVE(&l->defers, d, next);
            if (d->destroy) {
                d->destroy(&l->api, d, d->userdata);
            }
            g_free(d);
        }
    }
    l->dead = 0;
}

/* Run the enabled deferred events until none is left; the rounds run. */
static int loop_run_defers(PALoop *l)
{
    pa_defer_event *d;
    int rounds = 0;

    while (l->enabled_defers && rounds++ < ROUNDS_MAX) {
        QTAILQ_FOREACH(d, &l->defers, next) {
            if (d->enabled && !d->dead) {
                d->cb(&l->api, d, d->userdata);
            }
        }
    }
    return rounds;
}

static void loop_enter(PALoop *l)
{
    l->depth++;
}

/* Run what the dispatch queued; the last one out reaps. */
static int loop_leave(PALoop *l)
{
    int rounds = loop_run_defers(l);

    if (--l->depth) {
        return rounds;
    }
    if (l->dead) {
        loop_reap(l);
    }
    if (l->enabled_defers) {
        /* Kept enabled past ROUNDS_MAX: the rest after the main loop's. */
        qemu_bh_schedule(l->bh);
    } else {
        qemu_bh_cancel(l->bh);
    }
    return rounds;
}

static void loop_bh(void *opaque)
{
    PALoop *l = opaque;

    loop_enter(l);
    loop_leave(l);
}

/* --- io events ----------------------------------------------------------- */

/* An event was marked dead: reaped by the dispatch running, or soon. */
static void loop_freed(PALoop *l)
{
    l->dead++;
    if (!l->depth) {
        qemu_bh_schedule(l->bh);
    }
}

static short io_poll_events(pa_io_event_flags_t f)
{
    return (f & PA_IO_EVENT_INPUT ? POLLIN : 0) |
           (f & PA_IO_EVENT_OUTPUT ? POLLOUT : 0);
}

static void io_dispatch(pa_io_event *e, pa_io_event_flags_t flags)
{
    PALoop *l = e->l;

    loop_enter(l);
    if (!e->dead) {
        e->cb(&l->api, e, e->fd, flags, e->userdata);
    }
    loop_leave(l);
}

static void io_readable(void *opaque)
{
    io_dispatch(opaque, PA_IO_EVENT_INPUT);
}

static void io_writable(void *opaque)
{
    io_dispatch(opaque, PA_IO_EVENT_OUTPUT);
}

/* Hand QEMU's main loop what libpulse wants polled; not input while paced. */
static void io_watch(pa_io_event *e)
{
    short want = e->dead ? 0 : io_poll_events(e->events);

    if (e->l->paced) {
        want &= ~POLLIN;
    }
    if (want != e->watched) {
        e->watched = want;
        qemu_set_fd_handler(e->fd, want & POLLIN ? io_readable : NULL,
                            want & POLLOUT ? io_writable : NULL, e);
    }
}

static pa_io_event *io_new(pa_mainloop_api *a, int fd,
                           pa_io_event_flags_t events, pa_io_event_cb_t cb,
                           void *userdata)
{
    PALoop *l = a->userdata;
    pa_io_event *e = g_new0(pa_io_event, 1);

    e->l = l;
    e->fd = fd;
    e->events = events;
    e->cb = cb;
    e->userdata = userdata;
    QTAILQ_INSERT_TAIL(&l->ios, e, next);
    io_watch(e);
    return e;
}

static void io_enable(pa_io_event *e, pa_io_event_flags_t events)
{
    e->events = events;
    io_watch(e);
}

static void io_free(pa_io_event *e)
{
    /* Now: libpulse may close the fd as soon as this returns. */
    e->dead = true;
    io_watch(e);
    loop_freed(e->l);
}

static void io_set_destroy(pa_io_event *e, pa_io_event_destroy_cb_t cb)
{
    e->destroy = cb;
}

/* --- time events --------------------------------------------------------- */

/* When @tv comes, on QEMU_CLOCK_REALTIME. */
static int64_t time_deadline_ns(const struct timeval *tv)
{
    int64_t now = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    struct timeval t = *tv;
    int64_t in_us;

    if ((unsigned long)t.tv_usec & LOOP_TV_RTCLOCK) {
        t.tv_usec &= ~(long)LOOP_TV_RTCLOCK;
        in_us = (int64_t)pa_timeval_load(&t) - (int64_t)pa_rtclock_now();
    } else {
        struct timeval wall;

        pa_gettimeofday(&wall);
        in_us = (int64_t)pa_timeval_load(&t) - (int64_t)pa_timeval_load(&wall);
    }
    return now + MAX(in_us, 0) * SCALE_US;
}

static void time_fire(void *opaque)
{
    pa_time_event *e = opaque;
    PALoop *l = e->l;

    loop_enter(l);
    if (!e->dead) {
        e->cb(&l->api, e, &e->tv, e->userdata);
    }
    loop_leave(l);
}

static void time_restart(pa_time_event *e, const struct timeval *tv)
{
    if (tv) {
        e->tv = *tv;
        timer_mod(e->timer, time_deadline_ns(tv));
    } else {
        timer_del(e->timer);
    }
}

static pa_time_event *time_new(pa_mainloop_api *a, const struct timeval *tv,
                               pa_time_event_cb_t cb, void *userdata)
{
    PALoop *l = a->userdata;
    pa_time_event *e = g_new0(pa_time_event, 1);

    e->l = l;
    e->timer = timer_new_ns(QEMU_CLOCK_REALTIME, time_fire, e);
    e->cb = cb;
    e->userdata = userdata;
    QTAILQ_INSERT_TAIL(&l->times, e, next);
    time_restart(e, tv);
    return e;
}

static void time_free(pa_time_event *e)
{
    e->dead = true;
    timer_del(e->timer);
    loop_freed(e->l);
}

static void time_set_destroy(pa_time_event *e, pa_time_event_destroy_cb_t cb)
{
    e->destroy = cb;
}

/* --- deferred events ----------------------------------------------------- */

static void defer_enable(pa_defer_event *e, int b)
{
    PALoop *l = e->l;

    if (e->enabled == !!b) {
        return;
    }
    e->enabled = b;
    if (!b) {
        l->enabled_defers--;
        return;
    }
    l->enabled_defers++;
    /*
     * Outside a dispatch, the pa_loop_run after the call that queued it
     * runs it and cancels this: no extra turn of QEMU's main loop.
     */
    if (!l->depth) {
        qemu_bh_schedule(l->bh);
    }
}

static pa_defer_event *defer_new(pa_mainloop_api *a, pa_defer_event_cb_t cb,
                                 void *userdata)
{
    PALoop *l = a->userdata;
    pa_defer_event *e = g_new0(pa_defer_event, 1);

    e->l = l;
    e->cb = cb;
    e->userdata = userdata;
    QTAILQ_INSERT_TAIL(&l->defers, e, next);
    defer_enable(e, true);
    return e;
}

static void defer_free(pa_defer_event *e)
{
    defer_enable(e, false);
    e->dead = true;
    loop_freed(e->l);
}

static void defer_set_destroy(pa_defer_event *e,
                              pa_defer_event_destroy_cb_t cb)
{
    e->destroy = cb;
}

static void loop_quit(pa_mainloop_api *a, int retval)
{
    /* Only a pa_mainloop's owner quits it; libpulse itself never does. */
}

/* --- the backend's side -------------------------------------------------- */

void pa_loop_run(PALoop *l)
{
    int rounds;

    if (!l->enabled_defers && !l->dead) {
        return;
    }
    loop_enter(l);
    rounds = loop_leave(l);
    trace_pa_loop_run(false, 0, rounds);
}

static pa_io_event_flags_t io_poll_flags(short revents)
{
    return (revents & POLLIN ? PA_IO_EVENT_INPUT : 0) |
           (revents & POLLOUT ? PA_IO_EVENT_OUTPUT : 0) |
           (revents & POLLHUP ? PA_IO_EVENT_HANGUP : 0) |
           (revents & (POLLERR | POLLNVAL) ? PA_IO_EVENT_ERROR : 0);
}

void pa_loop_pump(PALoop *l)
{
    pa_io_event *e;
    int rounds = 0, ready = 0;
    guint i;

    l->last_pump_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    loop_enter(l);
    while (rounds++ < ROUNDS_MAX) {
        int n;

        g_array_set_size(l->pollfds, 0);
        g_ptr_array_set_size(l->polled, 0);
        QTAILQ_FOREACH(e, &l->ios, next) {
            struct pollfd p = {
                .fd = e->fd, .events = io_poll_events(e->events),
            };

            if (!e->dead && p.events) {
                g_array_append_val(l->pollfds, p);
                g_ptr_array_add(l->polled, e);
            }
        }
        n = poll((struct pollfd *)l->pollfds->data, l->pollfds->len, 0);
        if (n <= 0) {
            break;
        }
        ready += n;
        for (i = 0; i < l->pollfds->len; i++) {
            struct pollfd *p = &g_array_index(l->pollfds, struct pollfd, i);

            e = g_ptr_array_index(l->polled, i);
            /* Dead, but not freed: nothing is reaped before we are out. */
            if (p->revents && !e->dead) {
                e->cb(&l->api, e, e->fd, io_poll_flags(p->revents),
                      e->userdata);
            }
        }
        loop_run_defers(l);
    }
    loop_leave(l);
    trace_pa_loop_run(true, ready, rounds);
}

static void loop_paced_timer(void *opaque)
{
    PALoop *l = opaque;

    if (!l->paced) {
        return;
    }
    if (qemu_clock_get_ms(QEMU_CLOCK_REALTIME) - l->last_pump_ms >=
        PACED_MAX_MS) {
        pa_loop_pump(l);
    }
    /* Re-armed from the last pump, not moved on every one of them. */
    timer_mod(l->paced_timer, l->last_pump_ms + PACED_MAX_MS);
}

void pa_loop_set_paced(PALoop *l, bool paced)
{
    pa_io_event *e;

    if (l->paced == paced) {
        return;
    }
    l->paced = paced;
    QTAILQ_FOREACH(e, &l->ios, next) {
        io_watch(e);
    }
    /* Input that came while paced is not lost: it is still there. */
    pa_loop_pump(l);
    if (paced) {
        timer_mod(l->paced_timer, l->last_pump_ms + PACED_MAX_MS);
    } else {
        timer_del(l->paced_timer);
    }
}

pa_mainloop_api *pa_loop_api(PALoop *l)
{
    return &l->api;
}

PALoop *pa_loop_new(void)
{
    PALoop *l = g_new0(PALoop, 1);

    l->api = (pa_mainloop_api) {
        .userdata = l,
        .io_new = io_new,
        .io_enable = io_enable,
        .io_free = io_free,
        .io_set_destroy = io_set_destroy,
        .time_new = time_new,
        .time_restart = time_restart,
        .time_free = time_free,
        .time_set_destroy = time_set_destroy,
        .defer_new = defer_new,
        .defer_enable = defer_enable,
        .defer_free = defer_free,
        .defer_set_destroy = defer_set_destroy,
        .quit = loop_quit,
    };
    QTAILQ_INIT(&l->ios);
    QTAILQ_INIT(&l->times);
    QTAILQ_INIT(&l->defers);
    l->bh = qemu_bh_new(loop_bh, l);
    l->paced_timer = timer_new_ms(QEMU_CLOCK_REALTIME, loop_paced_timer, l);
    l->pollfds = g_array_new(false, false, sizeof(struct pollfd));
    l->polled = g_ptr_array_new();
    return l;
}

/* After the context is gone: what is left is freed, as pa_mainloop does. */
void pa_loop_free(PALoop *l)
{
    pa_io_event *io;
    pa_time_event *t;
    pa_defer_event *d;

    assert(!l->depth);
    QTAILQ_FOREACH(io, &l->ios, next) {
        if (!io->dead) {
            io_free(io);
        }
    }
    QTAILQ_FOREACH(t, &l->times, next) {
        if (!t->dead) {
            time_free(t);
        }
    }
    QTAILQ_FOREACH(d, &l->defers, next) {
        if (!d->dead) {
            defer_free(d);
        }
    }
    loop_reap(l);
    qemu_bh_delete(l->bh);
    timer_free(l->paced_timer);
    g_array_free(l->pollfds, true);
    g_ptr_array_free(l->polled, true);
    g_free(l);
}
