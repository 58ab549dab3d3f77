/*
 * A PipeWire connection that survives its daemon, run by QEMU's main loop
 *
 * pipewire-pulse adds a quantum and its own tlength rules to every pulse
 * stream (21 ms for any 5 ms client here); a stream of our own on the
 * daemon's socket plays one quantum and our ring (README-fork, "The native
 * path").  This is the connection those streams live on.
 *
 * libpipewire's main loop runs in QEMU's: its fd is a handler of ours, and
 * QEMU's main thread enters the loop once, before the context exists, so
 * that what libpipewire invokes "on the main loop" runs there and not in
 * its real-time data thread.  The streams' process callbacks still run in
 * that data thread (pw-out.c).  As pa-conn.c does for PulseAudio, the
 * core's callbacks only schedule a bottom half; the daemon going away
 * tells the clients, and a retry timer with backoff connects again.
 *
 * A daemon never reached is given up on: pipewire-pulse may answer where
 * its daemon's socket does not (a libvirt AppArmor profile that lets QEMU
 * reach pulse/native only, as VFIO guides have users write), and the
 * owner then plays through pipewire-pulse rather than not at all.  Access
 * denied is final at once; anything else, once the daemon has had
 * GIVE_UP_MS to answer, more than PipeWire takes to start.  A daemon once
 * reached is always tried again: it restarts.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/rcu.h"
#include "qemu/timer.h"
#include "pw-link.h"
#include "trace.h"
#include "qemu-vfio-audio/compat.h"

/* As pa-conn.c: fast after a restart, then twice a second. */
#define RETRY_FIRST_MS  50
#define RETRY_MAX_MS    500
#define GIVE_UP_MS      3000

struct PWLink {
    char *id;
    char *socket;
    struct pw_loop *loop;
    struct pw_context *context;
    struct pw_core *core;
    struct spa_hook core_listener;
    int sync_seq;
    bool answered;      /* the core's sync came back */
    bool failed;        /* the core reported the daemon gone */

    int denied;         /* the daemon refused us access: EACCES, EPERM */
    const char *why;    /* the last failure, a static string */

    bool ready;
    bool ever_ready;
    bool given_up;
    bool said_failure;
    unsigned reconnects;
    unsigned attempts;
    int64_t retry_ms;

    QEMUTimer *retry_timer;
    QEMUTimer *give_up_timer;
    PWLinkGiveUp *give_up;
    void *give_up_opaque;
    QEMUBH *state_bh;
    QLIST_HEAD(, PWLinkClient) clients;
};

const char *pw_link_socket(PWLink *l)
{
    return l->socket;
}

unsigned pw_link_reconnects(PWLink *l)
{
    return l->reconnects;
}

static void loop_ready(void *opaque)
{
    PWLink *l = opaque;

    pw_loop_iterate(l->loop, 0);
}

/* PipeWire callbacks, in its main loop (ours): the news waits for a BH. */
static void core_done(void *opaque, uint32_t id, int seq)
{
    PWLink *l = opaque;

    if (id == PW_ID_CORE && seq == l->sync_seq) {
        l->answered = true;
        qemu_bh_schedule(l->state_bh);
    }
}

static void core_error(void *opaque, uint32_t id, int seq, int res,
                       const char *message)
{
    PWLink *l = opaque;

    trace_pw_link_error(l->id, id, res, message ? message : "");
    if (id == PW_ID_CORE && (res == -EACCES || res == -EPERM)) {
        l->denied = -res;
        qemu_bh_schedule(l->state_bh);
    } else if (id == PW_ID_CORE && res == -EPIPE) {
        l->failed = true;
        qemu_bh_schedule(l->state_bh);
    }
}

static const struct pw_core_events core_events = {
    PW_VERSION_CORE_EVENTS,
    .done = core_done,
    .error = core_error,
};

static void drop_core(PWLink *l)
{
    if (l->core) {
        spa_hook_remove(&l->core_listener);
        pw_core_disconnect(l->core);
        l->core = NULL;
    }
    l->answered = false;
    l->failed = false;
    l->denied = 0;
}

static void schedule_retry(PWLink *l)
{
    l->retry_ms = l->retry_ms ? MIN(l->retry_ms * 2, RETRY_MAX_MS)
                              : RETRY_FIRST_MS;
    timer_mod(l->retry_timer,
              qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + l->retry_ms);
}

/* Its owner hears of it once, from the link's give_up (pw-link.h). */
static void give_up(PWLink *l, const char *why)
{
    timer_del(l->retry_timer);
    timer_del(l->give_up_timer);
    drop_core(l);
    l->given_up = true;
    trace_pw_link_give_up(l->id, l->socket, why);
    l->give_up(l->give_up_opaque, l->socket, why);
}

static void give_up_timeout(void *opaque)
{
    PWLink *l = opaque;
    g_autofree char *why = NULL;

    if (l->ever_ready || l->given_up) {
        return;
    }
    why = g_strdup_printf("%s for %d s", l->why ? l->why : "no answer",
                          GIVE_UP_MS / 1000);
    give_up(l, why);
}

static void report_failure(PWLink *l, const char *why)
{
    trace_pw_link_failed(l->id, why, l->attempts);
    l->why = why;
    /* Until it gives up, the link has nothing to say. */
    if (!l->ever_ready) {
        return;
    }
    if (!l->said_failure) {
        l->said_failure = true;
        warn_report("audiodev %s: PipeWire %s: %s; playback goes on "
                    "without sound from it and connects when it answers",
                    l->id, l->socket, why);
    }
}

static void state_bh(void *opaque)
{
    PWLink *l = opaque;
    PWLinkClient *client;

    if (l->given_up) {
        return;
    }
    if (l->denied && !l->ever_ready) {
        give_up(l, g_strerror(l->denied));
    } else if (l->failed || l->denied) {
        if (l->ready) {
            l->ready = false;
            l->reconnects++;
            QLIST_FOREACH(client, &l->clients, next) {
                client->lost(client);
            }
            l->said_failure = false;
        }
        report_failure(l, "the daemon went away");
        drop_core(l);
        schedule_retry(l);
    } else if (l->answered && !l->ready) {
        l->ready = true;
        l->retry_ms = 0;
        l->attempts = 0;
        timer_del(l->give_up_timer);
        if (l->ever_ready || l->said_failure) {
            info_report("audiodev %s: playing through PipeWire %s again",
                        l->id, l->socket);
        }
        l->ever_ready = true;
        l->said_failure = false;
        QLIST_FOREACH(client, &l->clients, next) {
            client->ready(client, l->core);
        }
    }
}

/* Main loop: one attempt. */
static void pw_link_try(void *opaque)
{
    PWLink *l = opaque;
    struct pw_properties *props;
    int err;

    drop_core(l);
    if (!l->context || l->given_up) {
        return;
    }
    l->attempts++;
    trace_pw_link_try(l->id, l->socket, l->attempts);
    /* An inherited PIPEWIRE_REMOTE would win over remote.name. */
    props = pw_properties_new(PW_KEY_REMOTE_NAME, l->socket, NULL);
    l->core = pw_context_connect(l->context, props, 0);
    if (!l->core) {
        err = errno;
        if (!l->ever_ready && (err == EACCES || err == EPERM)) {
            give_up(l, g_strerror(err));
            return;
        }
        report_failure(l, g_strerror(err));
        schedule_retry(l);
        return;
    }
    pw_core_add_listener(l->core, &l->core_listener, &core_events, l);
    l->sync_seq = pw_core_sync(l->core, PW_ID_CORE, 0);
}

PWLink *pw_link_new(const char *socket, const char *id,
                    PWLinkGiveUp *on_give_up, void *opaque)
{
    static bool initialized;
    PWLink *l = g_new0(PWLink, 1);
    struct pw_properties *props;

    if (!initialized) {
        pw_init(NULL, NULL);
        initialized = true;
    }
    l->id = g_strdup(id);
    l->socket = g_strdup(socket);
    QLIST_INIT(&l->clients);
    l->state_bh = qemu_bh_new(state_bh, l);
    l->retry_timer = timer_new_ms(QEMU_CLOCK_REALTIME, pw_link_try, l);
    l->give_up = on_give_up;
    l->give_up_opaque = opaque;
    l->give_up_timer = timer_new_ms(QEMU_CLOCK_REALTIME, give_up_timeout, l);
    timer_mod(l->give_up_timer,
              qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + GIVE_UP_MS);
    l->loop = pw_loop_new(NULL);
    /* For good, and before the context: see the top of this file. */
    pw_loop_enter(l->loop);
    qemu_set_fd_handler(pw_loop_get_fd(l->loop), loop_ready, NULL, l);
    props = pw_properties_new(NULL, NULL);
#if !PW_CHECK_VERSION(1, 3, 81)
    /* Its data thread real-time, as client.conf has it since 1.3.81. */
    pw_properties_set(props, PW_KEY_CONFIG_NAME, "client-rt.conf");
#endif
    l->context = pw_context_new(l->loop, props, 0);
    if (!l->context) {
        give_up(l, g_strerror(errno));
        return l;
    }
    pw_link_try(l);
    return l;
}

/* Whether this thread (a context's data thread) registered with RCU. */
static __thread bool data_thread_registered;

void pw_link_data_thread_enter(void)
{
    if (!data_thread_registered) {
        rcu_register_thread();
        data_thread_registered = true;
    }
}

/*
 * Run in the data thread; or in the caller, if the thread is not running,
 * which then has nothing to unregister.
 */
static int data_thread_leave(struct spa_loop *loop, bool async, uint32_t seq,
                             const void *data, size_t size, void *opaque)
{
    if (data_thread_registered) {
        rcu_unregister_thread();
        data_thread_registered = false;
    }
    return 0;
}

void pw_link_add_client(PWLink *l, PWLinkClient *client)
{
    QLIST_INSERT_HEAD(&l->clients, client, next);
    if (l->ready) {
        client->ready(client, l->core);
    }
}

void pw_link_remove_client(PWLink *l, PWLinkClient *client)
{
    QLIST_REMOVE(client, next);
}

void pw_link_free(PWLink *l)
{
    timer_free(l->retry_timer);
    timer_free(l->give_up_timer);
    qemu_bh_delete(l->state_bh);
    drop_core(l);
    if (l->context) {
        pw_data_loop_invoke(pw_context_get_data_loop(l->context),
                            data_thread_leave, 0, NULL, 0, true, NULL);
        pw_context_destroy(l->context);
    }
    qemu_set_fd_handler(pw_loop_get_fd(l->loop), NULL, NULL, NULL);
    pw_loop_leave(l->loop);
    pw_loop_destroy(l->loop);
    g_free(l->socket);
    g_free(l->id);
    g_free(l);
}
