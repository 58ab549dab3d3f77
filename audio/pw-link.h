/*
 * A PipeWire connection that survives its daemon, run by QEMU's main loop
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef AUDIO_PW_LINK_H
#define AUDIO_PW_LINK_H

#include <pipewire/pipewire.h>
#include "qemu/queue.h"

typedef struct PWLink PWLink;

/*
 * Something that lives on the connection (a stream).  Both hooks run in
 * the main loop, outside PipeWire's callbacks: @ready once the daemon has
 * answered (at start, and after every reconnect), @lost when it went away,
 * before the core is disconnected.
 */
typedef struct PWLinkClient {
    void (*ready)(struct PWLinkClient *client, struct pw_core *core);
    void (*lost)(struct PWLinkClient *client);
    QLIST_ENTRY(PWLinkClient) next;
} PWLinkClient;

/*
 * Called once, in the main loop, when the daemon on @socket was never
 * reached and the link gives up on it (pw-link.c): @why says what it got.
 * The link does nothing more; its owner frees it, not from here.
 */
typedef void PWLinkGiveUp(void *opaque, const char *socket, const char *why);

/*
 * Connect to the daemon listening on @socket (an absolute path) in the
 * background, and again whenever it goes away; log lines name the
 * audiodev @id.
 */
PWLink *pw_link_new(const char *socket, const char *id,
                    PWLinkGiveUp *on_give_up, void *opaque);
void pw_link_free(PWLink *link);

void pw_link_add_client(PWLink *link, PWLinkClient *client);
void pw_link_remove_client(PWLink *link, PWLinkClient *client);

/*
 * In the data thread, before it runs QEMU code that reads what RCU
 * protects (a device's DMA): it registers once, and pw_link_free()
 * unregisters it before the thread ends with the context.
 */
void pw_link_data_thread_enter(void);

const char *pw_link_socket(PWLink *link);
unsigned pw_link_reconnects(PWLink *link);

#endif
