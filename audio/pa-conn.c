/*
 * A PulseAudio connection that survives its server
 *
 * The sound server may be missing when QEMU starts (socket-activated
 * pipewire-pulse, a VM autostarted before the desktop login), and may die
 * or restart while the guest plays.  None of that may stall the guest or
 * end QEMU: the connection is made in the background, retried with backoff
 * while there is no server, and its clients (the streams) are told when it
 * comes and goes so they can recreate themselves.  Every state change is
 * one log line.
 *
 * libpulse runs in QEMU's main loop (pa-loop.c); the context's callback
 * only schedules a bottom half, so that state changes, and the calls into
 * the streams' hooks, never run inside a libpulse callback.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/mman.h>
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "pa-conn.h"
#include "pa-loop.h"
#include "pa-discover.h"
#include "trace.h"
#include "qemu-vfio-audio/compat.h"

/* Retries start fast, for a server restart, and settle at twice a second. */
#define RETRY_FIRST_MS  50
#define RETRY_MAX_MS    500

struct PAConn {
    char *id;
    char *server_opt;
    PALoop *loop;
    unsigned paced;     /* streams whose audio timer pumps the loop */
    pa_context *ctx;
    PaServerChoice choice;
    int cookie_fd;

    bool ready;
    bool ever_ready;
    bool info_asked;
    char *server_name;      /* the server's own, once it answered */
    char *last_failure;     /* said already, until the next success */
    unsigned reconnects;
    unsigned attempts;
    int64_t retry_ms;

    QEMUTimer *retry_timer;
    QEMUBH *state_bh;
    QLIST_HEAD(, PAConnClient) clients;
};

static void pa_conn_try(void *opaque);

void pa_conn_enter(PAConn *c)
{
    assert(fork_bql_locked());
}

void pa_conn_leave(PAConn *c)
{
    pa_loop_run(c->loop);
}

void pa_conn_pump(PAConn *c)
{
    if (c->paced) {
        pa_loop_pump(c->loop);
    }
}

void pa_conn_pace(PAConn *c, bool on)
{
    assert(on || c->paced);
    c->paced += on ? 1 : -1;
    pa_loop_set_paced(c->loop, c->paced);
}

pa_context *pa_conn_context(PAConn *c)
{
    return c->ready ? c->ctx : NULL;
}

const char *pa_conn_server(PAConn *c)
{
    return c->choice.server ? c->choice.server : "";
}

unsigned pa_conn_reconnects(PAConn *c)
{
    return c->reconnects;
}

bool pa_conn_is_ready(PAConn *c)
{
    return c->ready;
}

char *pa_conn_pipewire_socket(PAConn *c)
{
    if (!c->ready || !strstr(c->server_name, "on PipeWire")) {
        return NULL;
    }
    return pa_pipewire_socket(&c->choice);
}

/* A libpulse callback; "PulseAudio (on PipeWire 0.3.65)" for pipewire-pulse. */
static void server_info_cb(pa_context *ctx, const pa_server_info *i,
                           void *opaque)
{
    PAConn *c = opaque;

    if (ctx == c->ctx && !c->server_name) {
        c->server_name = g_strdup(i && i->server_name ? i->server_name : "");
        qemu_bh_schedule(c->state_bh);
    }
}

/* In a libpulse callback: the news waits for a bottom half. */
static void context_state_cb(pa_context *ctx, void *opaque)
{
    PAConn *c = opaque;

    qemu_bh_schedule(c->state_bh);
}

static void drop_context(PAConn *c)
{
    if (c->ctx) {
        pa_context_set_state_callback(c->ctx, NULL, NULL);
        pa_context_disconnect(c->ctx);
        pa_context_unref(c->ctx);
        c->ctx = NULL;
    }
    c->info_asked = false;
    g_clear_pointer(&c->server_name, g_free);
    if (c->cookie_fd >= 0) {
        close(c->cookie_fd);
        c->cookie_fd = -1;
    }
}

static void schedule_retry(PAConn *c)
{
    c->retry_ms = c->retry_ms ? MIN(c->retry_ms * 2, RETRY_MAX_MS)
                              : RETRY_FIRST_MS;
    timer_mod(c->retry_timer,
              qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + c->retry_ms);
}

/* One line per state change: the first failure after a success, or ever. */
static void report_failure(PAConn *c, const char *why)
{
    trace_pa_conn_failed(c->id, why, c->attempts);
    if (c->last_failure) {
        return;
    }
    c->last_failure = g_strdup(why);
    warn_report("audiodev %s: %s; the VM runs on without sound from it "
                "and connects when a server answers", c->id, why);
}

static void on_ready(PAConn *c)
{
    g_autofree char *desc = pa_server_choice_describe(&c->choice);
    PAConnClient *client;

    c->ready = true;
    c->retry_ms = 0;
    g_clear_pointer(&c->last_failure, g_free);
    if (c->ever_ready) {
        info_report("audiodev %s: reconnected to PulseAudio %s",
                    c->id, c->choice.server);
    } else {
        info_report("audiodev %s: PulseAudio %s", c->id, desc);
    }
    c->ever_ready = true;
    c->attempts = 0;
    QLIST_FOREACH(client, &c->clients, next) {
        client->ready(client, c->ctx);
    }
}

static void on_failure(PAConn *c, int err)
{
    PAConnClient *client;

    if (c->ready) {
        c->ready = false;
        c->reconnects++;
        QLIST_FOREACH(client, &c->clients, next) {
            client->lost(client);
        }
        c->last_failure = g_strdup("lost");
        warn_report("audiodev %s: lost PulseAudio %s (%s); reconnecting in "
                    "the background", c->id, c->choice.server,
                    pa_strerror(err));
    } else {
        g_autofree char *desc = pa_server_choice_describe(&c->choice);
        g_autofree char *why = g_strdup_printf("cannot connect to PulseAudio "
                                               "%s: %s", desc,
                                               pa_strerror(err));
        report_failure(c, why);
    }
    drop_context(c);
    schedule_retry(c);
}

static void state_bh(void *opaque)
{
    PAConn *c = opaque;
    pa_context_state_t state;

    pa_conn_enter(c);
    if (c->ctx) {
        state = pa_context_get_state(c->ctx);
        trace_pa_conn_state(c->id, state);
        if (state == PA_CONTEXT_READY && !c->ready && c->server_name) {
            on_ready(c);
        } else if (state == PA_CONTEXT_READY && !c->info_asked) {
            /* Its clients choose their path by the server's name. */
            pa_operation *op = pa_context_get_server_info(c->ctx,
                                                          server_info_cb, c);

            c->info_asked = true;
            if (op) {
                pa_operation_unref(op);
            } else {
                c->server_name = g_strdup("");
                qemu_bh_schedule(c->state_bh);
            }
        } else if (!PA_CONTEXT_IS_GOOD(state)) {
            on_failure(c, pa_context_errno(c->ctx));
        }
    }
    pa_conn_leave(c);
}

/*
 * Hand the validated cookie to libpulse without naming a file an attacker
 * could swap: libpulse reads it by path, at connect time, so give it an
 * anonymous file of ours.
 */
static void load_cookie(PAConn *c)
{
    g_autofree char *path = NULL;

    if (!c->choice.cookie_path) {
        return;
    }
    c->cookie_fd = memfd_create("qemu-pa-cookie", MFD_CLOEXEC);
    if (c->cookie_fd < 0 ||
        write(c->cookie_fd, c->choice.cookie, PA_COOKIE_SIZE) !=
        PA_COOKIE_SIZE) {
        warn_report("audiodev %s: cannot pass the cookie %s on: %s", c->id,
                    c->choice.cookie_path, g_strerror(errno));
        return;
    }
    path = g_strdup_printf("/proc/self/fd/%d", c->cookie_fd);
    pa_context_load_cookie_from_file(c->ctx, path);
}

/* Main loop: one attempt, with a fresh look for the server. */
static void pa_conn_try(void *opaque)
{
    PAConn *c = opaque;
    Error *err = NULL;

    pa_conn_enter(c);
    drop_context(c);
    pa_server_choice_clear(&c->choice);
    c->attempts++;
    if (!pa_discover(c->server_opt, &pa_discover_system_paths, &c->choice,
                     &err)) {
        report_failure(c, error_get_pretty(err));
        error_free(err);
        schedule_retry(c);
        pa_conn_leave(c);
        return;
    }
    trace_pa_conn_try(c->id, c->choice.server, c->attempts);

    c->ctx = pa_context_new(pa_loop_api(c->loop), "QEMU");
    load_cookie(c);
    pa_context_set_state_callback(c->ctx, context_state_cb, c);
    if (pa_context_connect(c->ctx, c->choice.server, PA_CONTEXT_NOAUTOSPAWN,
                           NULL) < 0) {
        on_failure(c, pa_context_errno(c->ctx));
    }
    pa_conn_leave(c);
}

PAConn *pa_conn_new(const char *server, const char *id)
{
    PAConn *c = g_new0(PAConn, 1);

    c->id = g_strdup(id);
    c->server_opt = g_strdup(server);
    c->cookie_fd = -1;
    c->choice.owner_uid = (uid_t)-1;
    QLIST_INIT(&c->clients);
    c->state_bh = qemu_bh_new(state_bh, c);
    c->retry_timer = timer_new_ms(QEMU_CLOCK_REALTIME, pa_conn_try, c);
    c->loop = pa_loop_new();
    pa_conn_try(c);
    return c;
}

void pa_conn_add_client(PAConn *c, PAConnClient *client)
{
    QLIST_INSERT_HEAD(&c->clients, client, next);
    if (c->ready) {
        client->ready(client, c->ctx);
    }
}

void pa_conn_remove_client(PAConn *c, PAConnClient *client)
{
    QLIST_REMOVE(client, next);
}

void pa_conn_free(PAConn *c)
{
    timer_free(c->retry_timer);
    qemu_bh_delete(c->state_bh);
    pa_conn_enter(c);
    drop_context(c);
    pa_conn_leave(c);
    pa_loop_free(c->loop);
    pa_server_choice_clear(&c->choice);
    g_free(c->last_failure);
    g_free(c->server_opt);
    g_free(c->id);
    g_free(c);
}
