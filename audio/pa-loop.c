/*
 * libpulse's main loop, run by QEMU's main loop
 *
 * libpulse usually runs in a thread of its own (pa_threaded_mainloop).  At
 * the latencies this backend keeps, that thread wakes for every request the
 * server sends (a millisecond's worth each) and again for every write QEMU
 * hands it: some 1800 times a second, more than the rest of QEMU together,
 * and each wake-up costs the host a context switch.  Here libpulse's own
 * pa_mainloop runs in QEMU's main thread instead, one step at a time
 * (prepare, poll, dispatch; the poll is ours): its file descriptors and
 * its next deadline are handed to QEMU's main loop, and what a call into
 * libpulse queued (a write) is dispatched right after the call, not on a
 * wake-up.
 *
 * While a stream plays, the audio timer runs anyway, and each of its ticks
 * answers the server's requests: then the server's sockets are not watched
 * for input at all, and the tick pumps the loop instead.  QEMU wakes once
 * per tick, as stock QEMU's HDA codec does.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <poll.h>
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "pa-loop.h"
#include "trace.h"

/*
 * Rounds of prepare, poll and dispatch per run.  libpulse reads one piece
 * of one packet per round (a millisecond's requests are a few packets),
 * and what one dispatch queues (a reply that asks for more) goes out in
 * the next; bounded, so that a server that floods us, or an event libpulse
 * keeps enabled, cannot hold the main loop.
 */
#define ROUNDS_MAX      64

/* While paced, libpulse still runs this often if the pump stops. */
#define PACED_MAX_MS    20

typedef struct PALoopWatch {
    int fd;
    short events;
} PALoopWatch;

struct PALoop {
    pa_mainloop *m;
    QEMUTimer *timer;
    GArray *watched;    /* PALoopWatch: what QEMU's main loop polls for us */
    GArray *wanted;     /* struct pollfd: what libpulse last asked to poll */
    int timeout_ms;     /* and until when, -1: no deadline */
    bool poll_fds;      /* this run polls the fds */
    int ready;          /* fds found ready in this run */
    bool running;
    bool again;
    bool paced;
};

static void loop_iterate(PALoop *l, bool poll_fds);

static void loop_fd_ready(void *opaque)
{
    loop_iterate(opaque, true);
}

static void loop_timer(void *opaque)
{
    loop_iterate(opaque, true);
}

static int loop_poll(struct pollfd *fds, unsigned long n, int timeout_ms,
                     void *opaque)
{
    PALoop *l = opaque;
    unsigned long i;

    g_array_set_size(l->wanted, 0);
    g_array_append_vals(l->wanted, fds, n);
    l->timeout_ms = timeout_ms;
    if (l->poll_fds) {
        int ready = poll(fds, n, 0);

        l->ready += MAX(ready, 0);
        return ready;
    }
    for (i = 0; i < n; i++) {
        fds[i].revents = 0;
    }
    return 0;
}

static short wanted_events(PALoop *l, int fd)
{
    short events = 0;
    guint i;

    for (i = 0; i < l->wanted->len; i++) {
        struct pollfd *p = &g_array_index(l->wanted, struct pollfd, i);

        if (p->fd == fd) {
            events |= p->events & (POLLIN | POLLOUT);
        }
    }
    return l->paced ? events & ~POLLIN : events;
}

static bool is_watched(PALoop *l, int fd)
{
    guint i;

    for (i = 0; i < l->watched->len; i++) {
        if (g_array_index(l->watched, PALoopWatch, i).fd == fd) {
            return true;
        }
    }
    return false;
}

/* Hand QEMU's main loop what libpulse would have polled for. */
static void loop_watch(PALoop *l)
{
    int64_t timeout = l->timeout_ms;
    guint i = 0;

    while (i < l->watched->len) {
        PALoopWatch *w = &g_array_index(l->watched, PALoopWatch, i);

        if (wanted_events(l, w->fd) == w->events) {
            i++;
            continue;
        }
        qemu_set_fd_handler(w->fd, NULL, NULL, NULL);
        g_array_remove_index_fast(l->watched, i);
    }
    for (i = 0; i < l->wanted->len; i++) {
        PALoopWatch w = {
            .fd = g_array_index(l->wanted, struct pollfd, i).fd,
        };

        w.events = wanted_events(l, w.fd);
        if (w.events && !is_watched(l, w.fd)) {
            qemu_set_fd_handler(w.fd,
                                w.events & POLLIN ? loop_fd_ready : NULL,
                                w.events & POLLOUT ? loop_fd_ready : NULL, l);
            g_array_append_val(l->watched, w);
        }
    }
    if (l->paced && (timeout < 0 || timeout > PACED_MAX_MS)) {
        timeout = PACED_MAX_MS;
    }
    if (timeout < 0) {
        timer_del(l->timer);
    } else {
        timer_mod(l->timer,
                  qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + timeout);
    }
}

static void loop_iterate(PALoop *l, bool poll_fds)
{
    int rounds = 0;
    int n;

    if (l->running) {
        /* Called from a callback that called libpulse: go round again. */
        l->again = true;
        return;
    }
    l->running = true;
    l->poll_fds = poll_fds;
    l->ready = 0;
    do {
        l->again = false;
        if (pa_mainloop_prepare(l->m, -1) < 0 ||
            pa_mainloop_poll(l->m) < 0) {
            break;
        }
        n = pa_mainloop_dispatch(l->m);
    } while ((n > 0 || l->again) && ++rounds < ROUNDS_MAX);
    l->running = false;
    trace_pa_loop_run(poll_fds, l->ready, rounds, l->timeout_ms);
    loop_watch(l);
}

void pa_loop_run(PALoop *l)
{
    loop_iterate(l, false);
}

void pa_loop_pump(PALoop *l)
{
    loop_iterate(l, true);
}

void pa_loop_set_paced(PALoop *l, bool paced)
{
    if (l->paced != paced) {
        l->paced = paced;
        /* Input that came while paced is not lost: it is still there. */
        loop_iterate(l, !paced);
    }
}

pa_mainloop_api *pa_loop_api(PALoop *l)
{
    return pa_mainloop_get_api(l->m);
}

PALoop *pa_loop_new(void)
{
    PALoop *l = g_new0(PALoop, 1);

    l->m = pa_mainloop_new();
    if (!l->m) {
        g_free(l);
        return NULL;
    }
    pa_mainloop_set_poll_func(l->m, loop_poll, l);
    l->timer = timer_new_ms(QEMU_CLOCK_REALTIME, loop_timer, l);
    l->watched = g_array_new(false, false, sizeof(PALoopWatch));
    l->wanted = g_array_new(false, false, sizeof(struct pollfd));
    l->timeout_ms = -1;
    return l;
}

void pa_loop_free(PALoop *l)
{
    guint i;

    for (i = 0; i < l->watched->len; i++) {
        qemu_set_fd_handler(g_array_index(l->watched, PALoopWatch, i).fd,
                            NULL, NULL, NULL);
    }
    timer_free(l->timer);
    pa_mainloop_free(l->m);
    g_array_free(l->watched, true);
    g_array_free(l->wanted, true);
    g_free(l);
}
