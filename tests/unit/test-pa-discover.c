/*
 * Unit tests for audio/pa-discover.c: the rules that pick a desktop
 * user's server, client.conf parsing and the cookie checks, on real
 * sockets and files in a directory of the test's own.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/socket.h>
#include <sys/un.h>
#include "qapi/error.h"
#include "../../audio/pa-discover.h"

typedef struct Fixture {
    char *dir;
    char *run_user;
    char *seat;
    char *conf;
    GArray *listeners;
    PaDiscoverPaths paths;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data)
{
    f->dir = g_dir_make_tmp("pa-discover-XXXXXX", NULL);
    g_assert_nonnull(f->dir);
    f->run_user = g_build_filename(f->dir, "run-user", NULL);
    f->seat = g_build_filename(f->dir, "seat0", NULL);
    f->conf = g_build_filename(f->dir, "client.conf", NULL);
    g_assert_cmpint(mkdir(f->run_user, 0755), ==, 0);
    f->listeners = g_array_new(false, false, sizeof(int));
    f->paths = (PaDiscoverPaths) {
        .run_user_dir = f->run_user,
        .system_socket = "/nonexistent/pulse/native",
        .seat_file = f->seat,
        .system_client_conf = f->conf,
    };
    /* Only the rules under test may find anything. */
    g_unsetenv("PULSE_SERVER");
    g_unsetenv("PULSE_RUNTIME_PATH");
    g_unsetenv("PULSE_COOKIE");
    g_unsetenv("SUDO_UID");
    g_unsetenv("PKEXEC_UID");
    g_setenv("XDG_RUNTIME_DIR", f->dir, true);
    g_setenv("XDG_CONFIG_HOME", f->dir, true);
}

static void fixture_teardown(Fixture *f, gconstpointer data)
{
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", f->dir);

    int i;

    for (i = 0; i < f->listeners->len; i++) {
        close(g_array_index(f->listeners, int, i));
    }
    g_array_free(f->listeners, true);
    g_assert_cmpint(system(cmd), ==, 0);
    g_free(f->run_user);
    g_free(f->seat);
    g_free(f->conf);
    g_free(f->dir);
}

/* A socket listening at @path, owned by @uid. */
static void make_socket(Fixture *f, const char *path, uid_t uid)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    g_assert_cmpint(fd, >=, 0);
    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(listen(fd, 4), ==, 0);
    g_array_append_val(f->listeners, fd);
    g_assert_cmpint(chown(path, uid, uid), ==, 0);
}

/* A socket listening at RUN/UID/pulse/native, owned by @uid. */
static char *make_server(Fixture *f, uid_t uid)
{
    g_autofree char *pulse = g_strdup_printf("%s/%u/pulse", f->run_user,
                                             (unsigned)uid);
    char *path = g_strdup_printf("%s/native", pulse);

    g_assert_cmpint(g_mkdir_with_parents(pulse, 0700), ==, 0);
    make_socket(f, path, uid);
    return path;
}

static void write_file(const char *path, const char *text)
{
    g_assert_true(g_file_set_contents(path, text, -1, NULL));
}

static bool need_root(void)
{
    if (geteuid() != 0) {
        g_test_skip("needs root to give sockets and files other owners");
        return false;
    }
    return true;
}

static void discover(Fixture *f, PaServerChoice *c)
{
    Error *err = NULL;

    g_assert_true(pa_discover(NULL, &f->paths, c, &err));
    g_assert_null(err);
}

/* Discovery picks the server at @sock, by a rule that starts with @rule. */
static void expect_choice(Fixture *f, const char *sock, const char *rule)
{
    PaServerChoice c;

    discover(f, &c);
    g_assert_true(g_str_has_suffix(c.server, sock));
    g_assert_true(g_str_has_prefix(c.rule, rule));
    pa_server_choice_clear(&c);
}

static void test_only_user(Fixture *f, gconstpointer data)
{
    g_autofree char *sock = NULL;
    PaServerChoice c;

    if (!need_root()) {
        return;
    }
    sock = make_server(f, 1801);
    expect_choice(f, sock, "the only user with a sound server");
    discover(f, &c);
    g_assert_cmpuint(c.owner_uid, ==, 1801);
    pa_server_choice_clear(&c);
}

static void test_active_session_wins(Fixture *f, gconstpointer data)
{
    g_autofree char *a = NULL, *b = NULL;

    if (!need_root()) {
        return;
    }
    a = make_server(f, 1801);
    b = make_server(f, 1802);
    write_file(f->seat, "IS_SEAT0=1\nACTIVE=c2\nACTIVE_UID=1802\n");
    expect_choice(f, b, "the user of the active login session");
}

static void test_lowest_desktop_uid(Fixture *f, gconstpointer data)
{
    g_autofree char *a = NULL, *b = NULL, *sys = NULL;

    if (!need_root()) {
        return;
    }
    sys = make_server(f, 999);
    b = make_server(f, 1803);
    a = make_server(f, 1802);
    /* A seat whose user has no server changes nothing. */
    write_file(f->seat, "ACTIVE_UID=1900\n");
    expect_choice(f, a, "the lowest uid >= 1000 of 3");
}

static void test_sudo_uid(Fixture *f, gconstpointer data)
{
    g_autofree char *a = NULL, *b = NULL;

    if (!need_root()) {
        return;
    }
    a = make_server(f, 1801);
    b = make_server(f, 1802);
    g_setenv("SUDO_UID", "1802", true);
    expect_choice(f, b, "$SUDO_UID");
}

static void test_stale_socket_skipped(Fixture *f, gconstpointer data)
{
    g_autofree char *live = NULL, *dead = NULL;

    if (!need_root()) {
        return;
    }
    /* A crashed server's socket (nobody listening) is passed over. */
    dead = make_server(f, 1801);
    live = make_server(f, 1802);
    close(g_array_index(f->listeners, int, 0));
    g_array_index(f->listeners, int, 0) = -1;
    expect_choice(f, live, "the only user with a sound server");
}

static void test_socket_of_someone_else(Fixture *f, gconstpointer data)
{
    g_autofree char *a = NULL;
    g_autofree char *wrong = g_strdup_printf("%s/1805", f->run_user);
    g_autofree char *renamed = NULL;
    PaServerChoice c;
    Error *err = NULL;

    if (!need_root()) {
        return;
    }
    /* RUN/1805/pulse/native owned by 1804 is not 1805's server. */
    a = make_server(f, 1804);
    renamed = g_strdup_printf("%s/1804", f->run_user);
    g_assert_cmpint(rename(renamed, wrong), ==, 0);
    g_assert_false(pa_discover(NULL, &f->paths, &c, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "tried:"));
    error_free(err);
}

static void test_env_and_conf_first(Fixture *f, gconstpointer data)
{
    PaServerChoice c;

    write_file(f->conf, "; comment\n# default-server = nope\n"
               "default-server = tcp:example:4713\n");
    discover(f, &c);
    g_assert_cmpstr(c.server, ==, "tcp:example:4713");
    g_assert_true(g_str_has_prefix(c.rule, "default-server in "));
    pa_server_choice_clear(&c);

    g_setenv("PULSE_SERVER", "unix:/elsewhere", true);
    discover(f, &c);
    g_assert_cmpstr(c.server, ==, "unix:/elsewhere");
    g_assert_cmpstr(c.rule, ==, "$PULSE_SERVER");
    pa_server_choice_clear(&c);
}

static void test_client_conf_parsing(Fixture *f, gconstpointer data)
{
    g_autofree char *s = NULL;

    write_file(f->conf, "autospawn = no\n  default-server   =  a\n"
               "default-server=b\n");
    s = pa_client_conf_default_server(f->conf);
    g_assert_cmpstr(s, ==, "b");
    g_free(g_steal_pointer(&s));
    write_file(f->conf, "default-server =\n");
    g_assert_null(pa_client_conf_default_server(f->conf));
    g_assert_null(pa_client_conf_default_server("/nonexistent"));
}

static void test_cookie_checks(Fixture *f, gconstpointer data)
{
    g_autofree char *good = g_build_filename(f->dir, "cookie", NULL);
    g_autofree char *link = g_build_filename(f->dir, "link", NULL);
    g_autofree char *small = g_build_filename(f->dir, "small", NULL);
    uint8_t bytes[PA_COOKIE_SIZE], got[PA_COOKIE_SIZE];
    Error *err = NULL;
    int i;

    for (i = 0; i < PA_COOKIE_SIZE; i++) {
        bytes[i] = i;
    }
    g_assert_true(g_file_set_contents(good, (char *)bytes, sizeof(bytes),
                                      NULL));
    g_assert_true(pa_cookie_read(good, geteuid(), got, &error_abort));
    g_assert_cmpmem(got, sizeof(got), bytes, sizeof(bytes));

    g_assert_false(pa_cookie_read(good, geteuid() + 1, got, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "belongs to uid"));
    g_clear_pointer(&err, error_free);

    g_assert_cmpint(symlink(good, link), ==, 0);
    g_assert_false(pa_cookie_read(link, geteuid(), got, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "symbolic link"));
    g_clear_pointer(&err, error_free);

    write_file(small, "short");
    g_assert_false(pa_cookie_read(small, geteuid(), got, &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "a cookie has 256"));
    g_clear_pointer(&err, error_free);

    g_assert_false(pa_cookie_read(f->dir, geteuid(), got, &err));
    g_clear_pointer(&err, error_free);
}

/*
 * pipewire-pulse's daemon is found beside its socket, and only as a
 * socket of the same user's.
 */
static void test_pipewire_beside(Fixture *f, gconstpointer data)
{
    g_autofree char *sock = NULL;
    g_autofree char *pw = NULL;
    g_autofree char *found = NULL;
    PaServerChoice c = { .owner_uid = (uid_t)-1 };

    if (!need_root()) {
        return;
    }
    sock = make_server(f, 1801);
    pw = g_strdup_printf("%s/1801/pipewire-0", f->run_user);
    c.server = g_strdup_printf("unix:%s", sock);
    g_assert_null(pa_pipewire_socket(&c));

    write_file(pw, "");
    g_assert_null(pa_pipewire_socket(&c));
    g_assert_cmpint(unlink(pw), ==, 0);

    make_socket(f, pw, 1802);
    g_assert_null(pa_pipewire_socket(&c));
    g_assert_cmpint(chown(pw, 1801, 1801), ==, 0);
    found = pa_pipewire_socket(&c);
    g_assert_cmpstr(found, ==, pw);

    g_free(c.server);
    c.server = g_strdup("tcp:localhost:4713");
    g_assert_null(pa_pipewire_socket(&c));
    pa_server_choice_clear(&c);
}

#define ADD(path, fn) \
    g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    ADD("/pa-discover/desktop/only-user", test_only_user);
    ADD("/pa-discover/desktop/active-session", test_active_session_wins);
    ADD("/pa-discover/desktop/lowest-uid", test_lowest_desktop_uid);
    ADD("/pa-discover/desktop/sudo-uid", test_sudo_uid);
    ADD("/pa-discover/desktop/socket-owner", test_socket_of_someone_else);
    ADD("/pa-discover/desktop/stale-socket", test_stale_socket_skipped);
    ADD("/pa-discover/order/env-and-client-conf", test_env_and_conf_first);
    ADD("/pa-discover/client-conf", test_client_conf_parsing);
    ADD("/pa-discover/cookie", test_cookie_checks);
    ADD("/pa-discover/pipewire-beside", test_pipewire_beside);
    return g_test_run();
}
