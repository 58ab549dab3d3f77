"""Migration between Debian's stock binary and ours, with AC97 playing.

The pacing state is a subsection sent only while a paced stream runs, so
stock → fork always works, fork → stock works with use-timer=off (the
upstream behaviour, exactly), and a running paced stream is the one case
stock cannot take.
"""

import contextlib
import functools
import os
import re
import shutil
import subprocess
import tempfile

from harness import AC97Player, Qemu, Skip, pattern, RATE

STOCK = "/usr/bin/qemu-system-x86_64"


@functools.lru_cache(maxsize=None)
def q35():
    """The q35 type both binaries have: the stock binary's newest.  On
    the 10.0 base, plain q35 is pc-q35-10.0, which stock 7.2 lacks."""
    if not os.path.exists(STOCK):
        return "q35"
    out = subprocess.run([STOCK, "-M", "help"], capture_output=True,
                         text=True).stdout
    m = re.search(r"^q35\s.*\(alias of (\S+)\)", out, re.M)
    return m.group(1) if m else "q35"


def args(device_opts=""):
    return ["-M", q35(), "-audiodev", "none,id=snd0",
            "-device", "AC97,audiodev=snd0,addr=04.0" + device_opts]


@contextlib.contextmanager
def pair(src_binary, dst_binary, src_opts="", dst_opts="", args=args):
    if not os.path.exists(STOCK):
        raise Skip(f"{STOCK} (Debian's qemu-system-x86) is not installed")
    tmp = tempfile.mkdtemp(prefix="qva-migrate-")
    os.chmod(tmp, 0o777)
    uri = f"unix:{tmp}/migrate.sock"
    src = Qemu(args(src_opts), binary=src_binary)
    dst = None
    try:
        dst = Qemu(args(dst_opts) + ["-incoming", uri], binary=dst_binary)
        yield src, dst, uri
    finally:
        for q in (src, dst):
            if q:
                q.quit()
        shutil.rmtree(tmp, ignore_errors=True)


# 100 ms buffers: the ring plays for 3.2 s without the driver's help, long
# enough to migrate in the middle of it.
BUF_FRAMES = RATE // 10


def start_playing(src):
    player = AC97Player(src.qtest, buf_frames=BUF_FRAMES)
    player.setup()
    player.queue(pattern(RATE * 5))
    player.start()
    assert player.play(5, until=lambda: player.irqs >= 2)
    return player


def migrate(src, dst, uri):
    """Migrate; return the source's final migration status."""
    qmp = src.connect_qmp()
    qmp.command("migrate-set-capabilities", capabilities=[
        {"capability": "events", "state": True}])
    dst.connect_qmp()
    qmp.command("migrate", uri=uri)
    ev = qmp.wait_event("MIGRATION", lambda d: d["status"] in
                        ("completed", "failed", "cancelled"), timeout=60)
    assert ev is not None, "migration never ended"
    return ev["data"]["status"]


def destination_runs(dst):
    """The source says "completed" when it has sent everything; the
    destination runs once it has loaded it all (RESUME)."""
    assert dst.connect_qmp().wait_event("RESUME", timeout=20), dst.stderr()
    assert dst.cmd_qmp("query-status")["status"] == "running"


def destination_plays(dst):
    """The destination runs, and its AC97 goes on interrupting."""
    destination_runs(dst)
    dst.qtest.cmd("irq_intercept_in ioapic")
    player = AC97Player(dst.qtest, buf_frames=BUF_FRAMES)
    # The line is level-triggered: a completion the destination raised
    # before the interception stays high and is never seen as a change.
    # Acknowledge it; the player refills from CIV, so nothing is missed.
    dst.qtest.outw(player.NABM + player.CH + 0x6, 0x1c)
    player.last_civ = dst.qtest.inb(player.NABM + player.CH + 0x4)
    assert player.play(5, until=lambda: player.irqs >= 3), \
        "no interrupts on the destination"


def migrate_while_playing(src_binary, dst_binary, src_opts=""):
    with pair(src_binary, dst_binary, src_opts) as (src, dst, uri):
        start_playing(src)
        assert migrate(src, dst, uri) == "completed", dst.stderr()
        destination_plays(dst)


def test_stock_to_fork_while_playing():
    migrate_while_playing(STOCK, None)


def test_fork_to_stock_use_timer_off_while_playing():
    migrate_while_playing(None, STOCK, ",use-timer=off")


def test_fork_to_fork_paced_while_playing():
    migrate_while_playing(None, None)


def test_fork_to_stock_paced_idle():
    """No stream running: no subsection, stock takes it."""
    with pair(None, STOCK) as (src, dst, uri):
        AC97Player(src.qtest).setup()
        assert migrate(src, dst, uri) == "completed", dst.stderr()
        destination_runs(dst)


def test_fork_to_stock_paced_playing_is_refused():
    """The one case stock cannot take: the destination refuses the AC97
    state; the source, paused as after any migration, goes on with cont."""
    with pair(None, STOCK) as (src, dst, uri):
        start_playing(src)
        migrate(src, dst, uri)
        assert dst.wait_exit(20) not in (None, 0)
        assert "device '0000:00:04.0/ac97'" in dst.stderr(), dst.stderr()
        src.cmd_qmp("cont")
        assert src.cmd_qmp("query-status")["status"] == "running"
