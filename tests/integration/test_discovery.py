"""Finding the sound server with no server= given: as the desktop user, as
root, under a libvirt-like environment, with sudo; and what happens when
nothing usable is found.  Daemons run as throwaway desktop users on
/run/user/UID; QEMU runs as root or as those users.
"""

import contextlib
import os
import shutil
import socket
import tempfile

from harness import PulseDaemon, Qemu, Skip, ensure_user

DESK1 = ("qva-desk1", 1701)
DESK2 = ("qva-desk2", 1702)
SERVICE = ("qva-svc", 1750)

ARGS = ["-M", "q35", "-S", "-audiodev", "pa,id=snd0",
        "-device", "AC97,audiodev=snd0"]
BARE_ENV = {"PATH": "/usr/bin:/bin"}


OURS = {DESK1[1], DESK2[1], 1703, SERVICE[1]}


def require_no_foreign_server():
    """Discovery looks at every user's server on the machine: these tests
    need a machine where only theirs run."""
    for name in os.listdir("/run/user") if os.path.isdir("/run/user") else []:
        path = f"/run/user/{name}/pulse/native"
        if not name.isdigit() or int(name) in OURS:
            continue
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
        except OSError:
            continue
        finally:
            s.close()
        raise Skip(f"another sound server runs on this machine ({path})")
    if os.path.exists("/run/pulse/native"):
        raise Skip("a system-wide PulseAudio runs on this machine")


@contextlib.contextmanager
def daemons(*users):
    require_no_foreign_server()
    started = []
    try:
        for u in users:
            started.append(PulseDaemon(ensure_user(*u)).start())
        yield started
    finally:
        for d in started:
            d.stop()


@contextlib.contextmanager
def qemu(args=ARGS, env=BARE_ENV, user=None):
    require_no_foreign_server()
    q = Qemu(args, env=env, user=user, qtest=False)
    try:
        yield q
    finally:
        q.quit()


def chosen_line(q):
    i = q.wait_line("PulseAudio server", 10)
    assert i is not None, q.stderr()
    return q.lines[i]


def warning_line(q, needle="warning: audiodev snd0"):
    i = q.wait_line(needle, 10)
    assert i is not None, q.stderr()
    return q.lines[i]


def assert_connected(q):
    streams = q.cmd_qmp("query-audio-streams")
    assert streams, "no streams"
    for s in streams:
        assert s["server"], s
    return streams


def test_root_bare_environment():
    """Stock failure 1: root, env -i, no server=: the desktop user's."""
    with daemons(DESK1) as (d,), qemu() as q:
        line = chosen_line(q)
        assert f"unix:{d.socket}" in line, line
        assert "owner qva-desk1 (uid 1701)" in line, line
        assert "chosen by the only user with a sound server" in line, line
        assert f"cookie {d.cookie}" in line, line
        assert q.wait_line("Access denied", 1) is None, q.stderr()
        assert_connected(q)


def test_root_explicit_socket_gets_cookie():
    """Stock failure 2: server= the user's socket, as root: no longer
    "Access denied", the owner's cookie goes with it."""
    with daemons(DESK1) as (d,):
        args = ARGS[:4] + [f"pa,id=snd0,server={d.socket}"] + ARGS[5:]
        with qemu(args) as q:
            line = chosen_line(q)
            assert "chosen by the server= option" in line, line
            assert f"cookie {d.cookie}" in line, line
            assert q.wait_line("Access denied", 1) is None, q.stderr()


def libvirt_env(pw, home):
    """What libvirt gives QEMU: a per-domain HOME, no XDG_RUNTIME_DIR."""
    os.makedirs(os.path.join(home, ".config"), exist_ok=True)
    shutil.chown(home, pw.pw_uid, pw.pw_gid)
    return {"PATH": "/usr/bin:/bin", "HOME": home,
            "XDG_CONFIG_HOME": os.path.join(home, ".config"),
            "USER": pw.pw_name}


def test_libvirt_like_as_desktop_user():
    """qemu.conf user= the desktop user: found with the passwd home's
    cookie although HOME points elsewhere."""
    with daemons(DESK1) as (d,):
        home = tempfile.mkdtemp(prefix="domain-1-")
        try:
            with qemu(env=libvirt_env(d.pw, home), user=d.pw) as q:
                line = chosen_line(q)
                assert "this user's runtime directory" in line, line
                assert f"cookie {d.cookie}" in line, line
        finally:
            shutil.rmtree(home)


def test_desktop_user_own_session():
    """The plain case: the user's own XDG_RUNTIME_DIR."""
    with daemons(DESK1) as (d,):
        with qemu(env=d.env, user=d.pw) as q:
            line = chosen_line(q)
            assert "chosen by $XDG_RUNTIME_DIR/pulse/native" in line, line
            assert "libpulse" in line, line


def test_sudo_picks_the_invoking_user():
    with daemons(DESK1, DESK2) as (_, d2):
        env = dict(BARE_ENV, SUDO_UID=str(d2.pw.pw_uid))
        with qemu(env=env) as q:
            line = chosen_line(q)
            assert f"unix:{d2.socket}" in line, line
            assert "chosen by $SUDO_UID" in line, line


def test_two_users_lowest_uid():
    if os.path.exists("/run/systemd/seats/seat0"):
        return      # a real login session decides instead; covered in unit
    with daemons(DESK1, DESK2) as (d1, _):
        with qemu() as q:
            line = chosen_line(q)
            assert f"unix:{d1.socket}" in line, line
            assert "the lowest uid >= 1000 of 2 users" in line, line


def test_no_server_keeps_running():
    """No server anywhere: one warning listing the places, VM runs on."""
    with qemu() as q:
        line = warning_line(q)
        assert "no PulseAudio server found for root (uid 0); tried:" in line
        assert "/run/pulse/native" in line, line
        assert q.alive()
        streams = q.cmd_qmp("query-audio-streams")
        assert streams and not any(s["connected"] for s in streams), streams
        assert len([ln for ln in q.lines if "warning:" in ln]) == 1, \
            q.stderr()


def test_legacy_env_without_server_does_not_abort():
    """Stock failure 3: QEMU_AUDIO_DRV=pa with nothing to reach."""
    env = dict(BARE_ENV, QEMU_AUDIO_DRV="pa")
    with qemu(["-M", "pc", "-S", "-device", "AC97"], env=env) as q:
        warning_line(q, "warning: audiodev pa:")
        assert q.alive()


def test_soundhw_ac97_with_legacy_env():
    """Stock failure 4: -soundhw ac97 is accepted, and plays through the
    legacy environment's driver."""
    with daemons(DESK1) as (d,):
        env = dict(BARE_ENV, QEMU_AUDIO_DRV="pa")
        with qemu(["-M", "pc", "-S", "-soundhw", "ac97"], env=env) as q:
            assert q.wait_line("-soundhw ac97 is deprecated", 10) is not None
            line = chosen_line(q)
            assert f"unix:{d.socket}" in line, line
            assert q.alive()


@contextlib.contextmanager
def cookie_replaced(d, how):
    """Swap the user's cookie for a bad one, and put it back."""
    saved = d.cookie + ".saved"
    os.rename(d.cookie, saved)
    try:
        if how == "symlink":
            shutil.copy2(saved, d.cookie + ".real")
            os.symlink(d.cookie + ".real", d.cookie)
        elif how == "wrong-owner":
            shutil.copy2(saved, d.cookie)
            os.chown(d.cookie, 0, 0)
        elif how == "unreadable":
            shutil.copy2(saved, d.cookie)
            shutil.chown(d.cookie, d.pw.pw_uid, d.pw.pw_gid)
            os.chmod(d.cookie, 0)
        elif how == "short":
            with open(saved, "rb") as f, open(d.cookie, "wb") as out:
                out.write(f.read(100))
            shutil.chown(d.cookie, d.pw.pw_uid, d.pw.pw_gid)
        yield
    finally:
        for leftover in (d.cookie, d.cookie + ".real"):
            if os.path.lexists(leftover):
                os.unlink(leftover)
        os.rename(saved, d.cookie)


def check_bad_cookie(how, expect, user=False):
    with daemons(DESK1) as (d,), cookie_replaced(d, how):
        home = tempfile.mkdtemp(prefix="domain-1-")
        env = libvirt_env(d.pw, home) if user else BARE_ENV
        try:
            with qemu(env=env, user=d.pw if user else None) as q:
                line = warning_line(q)
                assert expect in line, line
                assert "Access denied" in line, line
                assert q.alive()
        finally:
            shutil.rmtree(home)


def test_cookie_missing():
    check_bad_cookie("missing", "cookie none usable (")


def test_cookie_symlink_refused():
    check_bad_cookie("symlink", "is a symbolic link, refused")


def test_cookie_wrong_owner_refused():
    check_bad_cookie("wrong-owner", "belongs to uid 0, not to the server's "
                     "owner uid 1701, refused")


def test_cookie_wrong_size_refused():
    check_bad_cookie("short", "has 100 bytes, a cookie has 256, refused")


def test_cookie_unreadable_own_server():
    """The socket's owner with an unreadable cookie: said, and the server
    still lets its own user in by credentials."""
    with daemons(DESK1) as (d,), cookie_replaced(d, "unreadable"):
        home = tempfile.mkdtemp(prefix="domain-1-")
        try:
            with qemu(env=libvirt_env(d.pw, home), user=d.pw) as q:
                line = chosen_line(q)
                assert "cookie none usable (" in line, line
                assert "cookie: Permission denied" in line, line
                assert q.wait_line("Access denied", 1) is None, q.stderr()
                assert q.alive()
        finally:
            shutil.rmtree(home)


def test_service_user_is_told_what_to_change():
    """libvirt's own qemu user cannot enter a desktop user's 0700 runtime
    directory: the line says what was found and what to change."""
    svc = ensure_user(*SERVICE)
    with daemons(DESK1) as (d,):
        home = tempfile.mkdtemp(prefix="domain-2-")
        try:
            with qemu(env=libvirt_env(svc, home), user=svc) as q:
                line = warning_line(q)
                assert "no PulseAudio server reachable for qva-svc " \
                    "(uid 1750)" in line, line
                assert f"qva-desk1 (uid 1701)'s {d.socket}" in line, line
                assert "user= in /etc/libvirt/qemu.conf" in line, line
                assert q.alive()
        finally:
            shutil.rmtree(home)


