/*
 * Finding the PulseAudio server (and its cookie) when none is configured
 *
 * Upstream's pa backend refused to connect without server= unless
 * $XDG_RUNTIME_DIR/pulse/pid existed, which it never does for root, for
 * libvirt's QEMU, on headless hosts or with socket-activated
 * pipewire-pulse; and as root, even the right socket answers "Access
 * denied" without the owner's cookie.  This file finds the server the
 * way libpulse would for the user running QEMU, then, for root and for
 * service users, the desktop user's server and cookie.  It never runs a
 * helper program and never changes a permission.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <pwd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "qapi/error.h"
#include "qemu/cutils.h"
#include "pa-discover.h"

const PaDiscoverPaths pa_discover_system_paths = {
    .run_user_dir = "/run/user",
    .system_socket = "/run/pulse/native",
    .seat_file = "/run/systemd/seats/seat0",
    .system_client_conf = "/etc/pulse/client.conf",
};

/* Desktop users start here (Debian's FIRST_UID). */
#define FIRST_DESKTOP_UID 1000

static char *user_name(uid_t uid)
{
    struct passwd pwd, *res = NULL;
    char buf[4096];

    if (getpwuid_r(uid, &pwd, buf, sizeof(buf), &res) == 0 && res) {
        return g_strdup_printf("%s (uid %u)", res->pw_name, (unsigned)uid);
    }
    return g_strdup_printf("uid %u", (unsigned)uid);
}

/* From the password database: $HOME is libvirt's per-domain directory. */
static char *user_home(uid_t uid)
{
    struct passwd pwd, *res = NULL;
    char buf[4096];

    if (getpwuid_r(uid, &pwd, buf, sizeof(buf), &res) == 0 && res) {
        return g_strdup(res->pw_dir);
    }
    return NULL;
}

/* The local socket a server string names, if it names one. */
static const char *server_socket_path(const char *server)
{
    if (g_str_has_prefix(server, "unix:")) {
        return server + strlen("unix:");
    }
    return server[0] == '/' ? server : NULL;
}

/* Owner of the socket at @path, or -1 with errno set. */
static int socket_owner(const char *path, uid_t *owner)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        errno = ENOTSOCK;
        return -1;
    }
    *owner = st.st_uid;
    return 0;
}

char *pa_pipewire_socket(const PaServerChoice *choice)
{
    const char *path = choice->server ? server_socket_path(choice->server)
                                      : NULL;
    g_autofree char *pulse_dir = NULL;
    g_autofree char *runtime = NULL;
    char *pw;
    struct stat st;
    uid_t owner;

    if (!path || socket_owner(path, &owner) < 0) {
        return NULL;
    }
    pulse_dir = g_path_get_dirname(path);
    runtime = g_path_get_dirname(pulse_dir);
    pw = g_build_filename(runtime, "pipewire-0", NULL);
    if (lstat(pw, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_uid != owner) {
        g_free(pw);
        return NULL;
    }
    return pw;
}

/*
 * Whether a server listens at @path: a crashed server leaves its socket
 * behind, and libpulse too moves on from a refused connection.
 */
static int socket_listening(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd, ret;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    ret = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    return ret;
}

static void note_tried(GString *tried, const char *what, int err)
{
    g_string_append_printf(tried, "%s%s (%s)", tried->len ? "; " : "", what,
                           err ? g_strerror(err) : "not a server");
}

static void choose(PaServerChoice *c, const char *server, const char *rule)
{
    const char *path = server_socket_path(server);

    c->server = g_strdup(server);
    c->rule = g_strdup(rule);
    c->owner_uid = (uid_t)-1;
    if (path && socket_owner(path, &c->owner_uid) == 0) {
        c->owner = user_name(c->owner_uid);
    }
}

/* @uid's socket in the runtime directories, already checked. */
static void choose_user(PaServerChoice *c, const PaDiscoverPaths *paths,
                        uid_t uid, const char *rule)
{
    g_autofree char *server = g_strdup_printf("unix:%s/%u/pulse/native",
                                              paths->run_user_dir,
                                              (unsigned)uid);

    choose(c, server, rule);
}

/* A socket of @uid at @path: the server to use. */
static bool try_socket(PaServerChoice *c, const char *path, uid_t uid,
                       const char *rule, GString *tried)
{
    g_autofree char *server = NULL;
    uid_t owner;

    if (socket_owner(path, &owner) < 0) {
        note_tried(tried, path, errno);
        return false;
    }
    if (owner != uid) {
        g_autofree char *who = user_name(owner);

        g_string_append_printf(tried, "%s%s (owned by %s)",
                               tried->len ? "; " : "", path, who);
        return false;
    }
    if (socket_listening(path) < 0) {
        note_tried(tried, path, errno);
        return false;
    }
    server = g_strdup_printf("unix:%s", path);
    choose(c, server, rule);
    return true;
}

char *pa_client_conf_default_server(const char *path)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    char *found = NULL;
    int i;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        return NULL;
    }
    lines = g_strsplit(text, "\n", -1);
    for (i = 0; lines[i]; i++) {
        char *line = g_strstrip(lines[i]);
        char *eq = strchr(line, '=');

        if (!eq || line[0] == '#' || line[0] == ';') {
            continue;
        }
        *eq = '\0';
        if (!strcmp(g_strstrip(line), "default-server")) {
            g_free(found);
            found = g_strdup(g_strstrip(eq + 1));
        }
    }
    if (found && !*found) {
        g_clear_pointer(&found, g_free);
    }
    return found;
}

static bool from_client_conf(PaServerChoice *c, const PaDiscoverPaths *paths,
                             GString *tried)
{
    g_autofree char *user_conf = NULL;
    const char *xdg = g_getenv("XDG_CONFIG_HOME");
    const char *confs[2];
    int i;

    user_conf = xdg ? g_build_filename(xdg, "pulse", "client.conf", NULL)
                    : g_build_filename(g_get_home_dir(), ".config", "pulse",
                                       "client.conf", NULL);
    confs[0] = user_conf;
    confs[1] = paths->system_client_conf;
    for (i = 0; i < ARRAY_SIZE(confs); i++) {
        g_autofree char *server = pa_client_conf_default_server(confs[i]);

        if (server) {
            g_autofree char *rule = g_strdup_printf("default-server in %s",
                                                    confs[i]);
            choose(c, server, rule);
            return true;
        }
    }
    g_string_append_printf(tried, "%sdefault-server in %s or %s (not set)",
                           tried->len ? "; " : "", confs[0], confs[1]);
    return false;
}

/* The user's own runtime directory, as libpulse finds it. */
static bool from_own_runtime_dir(PaServerChoice *c, uid_t uid,
                                 const PaDiscoverPaths *paths, GString *tried)
{
    const char *rt = g_getenv("PULSE_RUNTIME_PATH");
    const char *xdg = g_getenv("XDG_RUNTIME_DIR");
    g_autofree char *path = NULL;
    g_autofree char *fallback = NULL;

    if (rt) {
        path = g_build_filename(rt, "native", NULL);
        if (try_socket(c, path, uid, "$PULSE_RUNTIME_PATH/native", tried)) {
            return true;
        }
    } else if (xdg) {
        path = g_build_filename(xdg, "pulse", "native", NULL);
        if (try_socket(c, path, uid, "$XDG_RUNTIME_DIR/pulse/native",
                       tried)) {
            return true;
        }
    }

    /* libvirt gives QEMU no XDG_RUNTIME_DIR, but the directory is there. */
    fallback = g_strdup_printf("%s/%u/pulse/native", paths->run_user_dir,
                               (unsigned)uid);
    if (path && !strcmp(path, fallback)) {
        return false;
    }
    return try_socket(c, fallback, uid,
                      "this user's runtime directory (no $XDG_RUNTIME_DIR)",
                      tried);
}

static bool parse_uid(const char *s, uid_t *uid)
{
    uint64_t v;

    if (!s || qemu_strtou64(s, NULL, 10, &v) < 0 || v >= (uid_t)-1) {
        return false;
    }
    *uid = v;
    return true;
}

static bool active_seat_uid(const PaDiscoverPaths *paths, uid_t *uid)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    int i;

    if (!g_file_get_contents(paths->seat_file, &text, NULL, NULL)) {
        return false;
    }
    lines = g_strsplit(text, "\n", -1);
    for (i = 0; lines[i]; i++) {
        if (g_str_has_prefix(lines[i], "ACTIVE_UID=")) {
            return parse_uid(lines[i] + strlen("ACTIVE_UID="), uid);
        }
    }
    return false;
}

/*
 * Root or a service user: the desktop user's server.  Sockets of users
 * we may not reach are remembered in @unreachable for the hint.
 */
static bool from_desktop_user(PaServerChoice *c, uid_t self,
                              const PaDiscoverPaths *paths, GString *tried,
                              GString *unreachable)
{
    const char *vars[] = { "SUDO_UID", "PKEXEC_UID" };
    g_autoptr(GArray) found = g_array_new(false, false, sizeof(uid_t));
    g_autoptr(GDir) dir = NULL;
    const char *name;
    uid_t pick, active;
    int i;

    for (i = 0; i < ARRAY_SIZE(vars); i++) {
        g_autofree char *path = NULL;
        g_autofree char *rule = NULL;
        uid_t uid;

        if (!parse_uid(g_getenv(vars[i]), &uid) || uid == self) {
            continue;
        }
        path = g_strdup_printf("%s/%u/pulse/native", paths->run_user_dir,
                               (unsigned)uid);
        rule = g_strdup_printf("$%s", vars[i]);
        if (try_socket(c, path, uid, rule, tried)) {
            return true;
        }
    }

    dir = g_dir_open(paths->run_user_dir, 0, NULL);
    while (dir && (name = g_dir_read_name(dir))) {
        g_autofree char *path = NULL;
        uid_t uid, owner;

        if (!parse_uid(name, &uid) || uid == self) {
            continue;
        }
        path = g_strdup_printf("%s/%s/pulse/native", paths->run_user_dir,
                               name);
        if (socket_owner(path, &owner) == 0 && owner == uid) {
            if (socket_listening(path) == 0) {
                g_array_append_val(found, uid);
            } else {
                note_tried(tried, path, errno);
            }
        } else if (errno == EACCES) {
            g_autofree char *who = user_name(uid);

            g_string_append_printf(unreachable, "%s%s's %s", unreachable->len ?
                                   ", " : "", who, path);
        }
    }
    if (!found->len) {
        g_string_append_printf(tried, "%sother users' %s/UID/pulse/native "
                               "(none reachable)", tried->len ? "; " : "",
                               paths->run_user_dir);
        return false;
    }

    pick = g_array_index(found, uid_t, 0);
    if (active_seat_uid(paths, &active)) {
        for (i = 0; i < found->len; i++) {
            if (g_array_index(found, uid_t, i) == active) {
                choose_user(c, paths, active, "the user of the active login "
                            "session (logind seat0)");
                return true;
            }
        }
    }
    if (found->len == 1) {
        choose_user(c, paths, pick, "the only user with a sound server");
        return true;
    }
    pick = (uid_t)-1;
    for (i = 0; i < found->len; i++) {
        uid_t uid = g_array_index(found, uid_t, i);

        if (uid >= FIRST_DESKTOP_UID && uid < pick) {
            pick = uid;
        }
    }
    if (pick != (uid_t)-1) {
        g_autofree char *rule = g_strdup_printf(
            "the lowest uid >= %d of %u users with a sound server and no "
            "active login session among them", FIRST_DESKTOP_UID, found->len);

        choose_user(c, paths, pick, rule);
        return true;
    }
    g_string_append_printf(tried, "%s%u users' servers, none a desktop user",
                           tried->len ? "; " : "", found->len);
    return false;
}

bool pa_cookie_read(const char *path, uid_t owner,
                    uint8_t cookie[PA_COOKIE_SIZE], Error **errp)
{
    struct stat st;
    size_t got = 0;
    int fd;

    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
              O_NONBLOCK);
    if (fd < 0) {
        if (errno == ELOOP) {
            error_setg(errp, "%s is a symbolic link, refused", path);
        } else {
            error_setg_errno(errp, errno, "%s", path);
        }
        return false;
    }
    if (fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "%s", path);
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        error_setg(errp, "%s is not a regular file, refused", path);
        goto fail;
    }
    if (st.st_uid != owner) {
        error_setg(errp, "%s belongs to uid %u, not to the server's owner "
                   "uid %u, refused", path, (unsigned)st.st_uid,
                   (unsigned)owner);
        goto fail;
    }
    if (st.st_size != PA_COOKIE_SIZE) {
        error_setg(errp, "%s has %" PRId64 " bytes, a cookie has %d, refused",
                   path, (int64_t)st.st_size, PA_COOKIE_SIZE);
        goto fail;
    }
    while (got < PA_COOKIE_SIZE) {
        ssize_t n = read(fd, cookie + got, PA_COOKIE_SIZE - got);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            error_setg_errno(errp, n < 0 ? errno : EIO, "%s", path);
            goto fail;
        }
        got += n;
    }
    close(fd);
    return true;

fail:
    close(fd);
    return false;
}

/*
 * $PULSE_COOKIE is libpulse's to read, and libpulse says nothing when it
 * cannot (it even creates a missing one, which no server knows): the
 * server's "Access denied" is all the user would see.  Say what is wrong
 * with it in the line that reports the connection.
 */
static char *env_cookie_note(const char *path)
{
    struct stat st;

    if (stat(path, &st) < 0) {
        return g_strdup_printf("$PULSE_COOKIE %s: %s", path,
                               g_strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        return g_strdup_printf("$PULSE_COOKIE %s: not a regular file", path);
    }
    if (access(path, R_OK) < 0) {
        return g_strdup_printf("$PULSE_COOKIE %s: %s", path,
                               g_strerror(errno));
    }
    if (st.st_size != PA_COOKIE_SIZE) {
        return g_strdup_printf("$PULSE_COOKIE %s: %" PRId64 " bytes, a "
                               "cookie has %d", path, (int64_t)st.st_size,
                               PA_COOKIE_SIZE);
    }
    return g_strdup_printf("$PULSE_COOKIE %s, read by libpulse", path);
}

/*
 * The cookie of the socket's owner, from the owner's home in the password
 * database, when libpulse would not find it: another user's server, or
 * our own under a $HOME that is not ours (libvirt's per-domain HOME).
 */
static void find_cookie(PaServerChoice *c)
{
    const char *env_cookie = g_getenv("PULSE_COOKIE");
    g_autofree char *home = NULL;
    g_autoptr(GString) notes = g_string_new(NULL);
    const char *names[] = { ".config/pulse/cookie", ".pulse-cookie" };
    int i;

    if (c->owner_uid == (uid_t)-1) {
        return;
    }
    if (env_cookie) {
        c->cookie_note = env_cookie_note(env_cookie);
        return;
    }
    home = user_home(c->owner_uid);
    if (!home) {
        c->cookie_note = g_strdup("none: the owner has no home directory");
        return;
    }
    if (c->owner_uid == geteuid() && !g_strcmp0(g_getenv("HOME"), home)) {
        c->cookie_note = g_strdup("the user's own, read by libpulse");
        return;
    }
    for (i = 0; i < ARRAY_SIZE(names); i++) {
        g_autofree char *path = g_build_filename(home, names[i], NULL);
        Error *err = NULL;

        if (pa_cookie_read(path, c->owner_uid, c->cookie, &err)) {
            c->cookie_path = g_steal_pointer(&path);
            return;
        }
        g_string_append_printf(notes, "%s%s", notes->len ? "; " : "",
                               error_get_pretty(err));
        error_free(err);
    }
    c->cookie_note = g_strdup_printf("none usable (%s)", notes->str);
}

bool pa_discover(const char *explicit_server, const PaDiscoverPaths *paths,
                 PaServerChoice *c, Error **errp)
{
    g_autoptr(GString) tried = g_string_new(NULL);
    g_autoptr(GString) unreachable = g_string_new(NULL);
    const char *env = g_getenv("PULSE_SERVER");
    uid_t self = geteuid();
    uid_t sys_owner;

    memset(c, 0, sizeof(*c));
    c->owner_uid = (uid_t)-1;

    if (explicit_server) {
        choose(c, explicit_server, "the server= option");
    } else if (env && *env) {
        choose(c, env, "$PULSE_SERVER");
    } else if (from_client_conf(c, paths, tried) ||
               from_own_runtime_dir(c, self, paths, tried) ||
               from_desktop_user(c, self, paths, tried, unreachable)) {
        /* chosen */
    } else if (socket_owner(paths->system_socket, &sys_owner) == 0 &&
               socket_listening(paths->system_socket) == 0) {
        g_autofree char *server = g_strdup_printf("unix:%s",
                                                  paths->system_socket);

        choose(c, server, "the system-wide server");
    } else {
        g_autofree char *me = user_name(self);

        note_tried(tried, paths->system_socket, errno);
        if (unreachable->len) {
            error_setg(errp, "no PulseAudio server reachable for %s; found "
                       "%s, but %s may not enter that runtime directory: "
                       "run QEMU as that user (libvirt: user= in "
                       "/etc/libvirt/qemu.conf) or give %s a socket it may "
                       "use and name it with server=; also tried: %s",
                       me, unreachable->str, me, me, tried->str);
        } else {
            error_setg(errp, "no PulseAudio server found for %s; tried: %s",
                       me, tried->str);
        }
        return false;
    }
    find_cookie(c);
    return true;
}

char *pa_server_choice_describe(const PaServerChoice *c)
{
    return g_strdup_printf("server %s (owner %s; chosen by %s; cookie %s)",
                           c->server, c->owner ? c->owner : "unknown",
                           c->rule, c->cookie_path ? c->cookie_path :
                           c->cookie_note ? c->cookie_note : "libpulse's own");
}

void pa_server_choice_clear(PaServerChoice *c)
{
    g_free(c->server);
    g_free(c->rule);
    g_free(c->owner);
    g_free(c->cookie_path);
    g_free(c->cookie_note);
    memset(c, 0, sizeof(*c));
    c->owner_uid = (uid_t)-1;
}
