/*
 * Finding the PulseAudio server (and its cookie) when none is configured
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef AUDIO_PA_DISCOVER_H
#define AUDIO_PA_DISCOVER_H

#define PA_COOKIE_SIZE 256      /* PA_NATIVE_COOKIE_LENGTH */

/* Where discovery looks; tests point these into a directory of their own. */
typedef struct PaDiscoverPaths {
    const char *run_user_dir;       /* per-user runtime dirs: /run/user */
    const char *system_socket;      /* system-wide server */
    const char *seat_file;          /* logind's seat0 state (ACTIVE_UID=) */
    const char *system_client_conf; /* /etc/pulse/client.conf */
} PaDiscoverPaths;

extern const PaDiscoverPaths pa_discover_system_paths;

typedef struct PaServerChoice {
    char *server;       /* for pa_context_connect() */
    char *rule;         /* why this server, for the log line */
    char *owner;        /* "alice (uid 1000)", or NULL if not a local socket */
    uid_t owner_uid;    /* (uid_t)-1 if not known */
    char *cookie_path;  /* the cookie we read, or NULL: libpulse's own */
    char *cookie_note;  /* why no cookie of ours, or NULL */
    uint8_t cookie[PA_COOKIE_SIZE];
} PaServerChoice;

/*
 * Choose the server for @explicit_server (the server= option, may be NULL)
 * as the user running QEMU, whoever that is: the user's own server in
 * libpulse's order, or, for root and service users (libvirt), the desktop
 * user's.  On failure, @errp lists every place tried and what to change.
 */
bool pa_discover(const char *explicit_server, const PaDiscoverPaths *paths,
                 PaServerChoice *choice, Error **errp);

/* The one line that says what was chosen and why. */
char *pa_server_choice_describe(const PaServerChoice *choice);

/*
 * The PipeWire daemon's socket beside @choice's pulse socket
 * (RUNTIME/pipewire-0 for RUNTIME/pulse/native), owned by the same user;
 * NULL if there is none.  Free it with g_free.
 */
char *pa_pipewire_socket(const PaServerChoice *choice);

void pa_server_choice_clear(PaServerChoice *choice);

/*
 * Read @owner's cookie from @path for a server of @owner: a regular file
 * of the right size, owned by @owner, not reached through a symlink.
 * Exposed for tests.
 */
bool pa_cookie_read(const char *path, uid_t owner,
                    uint8_t cookie[PA_COOKIE_SIZE], Error **errp);

/* default-server from a client.conf, or NULL.  Exposed for tests. */
char *pa_client_conf_default_server(const char *path);

#endif
