/*
 * A PulseAudio connection that survives its server
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef AUDIO_PA_CONN_H
#define AUDIO_PA_CONN_H

#include <pulse/pulseaudio.h>
#include "qemu/queue.h"

typedef struct PAConn PAConn;

/*
 * Something that lives on the connection, such as a stream.  Both hooks
 * run in the main loop, between pa_conn_enter and pa_conn_leave: @ready when
 * the context becomes ready (at start, and after every reconnect), @lost
 * when it goes away, before the context is freed.
 */
typedef struct PAConnClient {
    void (*ready)(struct PAConnClient *client, pa_context *ctx);
    void (*lost)(struct PAConnClient *client);
    QLIST_ENTRY(PAConnClient) next;
} PAConnClient;

/*
 * Start connecting to @server (NULL: discover it) in the background; log
 * lines name the audiodev @id.  Never fails for want of a server: it keeps
 * trying, with backoff, until one answers.
 */
PAConn *pa_conn_new(const char *server, const char *id);
void pa_conn_free(PAConn *conn);

/*
 * Around every libpulse call on the connection's objects, in the main loop
 * (libpulse runs there).  Leaving runs libpulse's loop once, so that what
 * the calls queued (a write, a cork) reaches the server now, not when the
 * main loop next wakes up.
 */
void pa_conn_enter(PAConn *conn);
void pa_conn_leave(PAConn *conn);

/*
 * While a stream plays (@on), its audio timer takes in what the server sent
 * by calling pa_conn_pump on every tick, and nothing else wakes QEMU for
 * it; calls nest, one off for every on.
 */
void pa_conn_pace(PAConn *conn, bool on);
void pa_conn_pump(PAConn *conn);

/* The context when ready, else NULL.  Between enter and leave. */
pa_context *pa_conn_context(PAConn *conn);

/* Register @client; its @ready runs now if the context is ready. */
void pa_conn_add_client(PAConn *conn, PAConnClient *client);
void pa_conn_remove_client(PAConn *conn, PAConnClient *client);

/* For "info audio": the server in use and how often it came back. */
const char *pa_conn_server(PAConn *conn);
unsigned pa_conn_reconnects(PAConn *conn);
bool pa_conn_is_ready(PAConn *conn);

/*
 * While the server is pipewire-pulse: the PipeWire daemon's own socket
 * beside it (pa_pipewire_socket), else NULL.  Free it with g_free.
 */
char *pa_conn_pipewire_socket(PAConn *conn);

#endif
