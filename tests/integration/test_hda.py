"""Intel HDA (ich9-intel-hda with hda-duplex, libvirt's <sound
model='ich9'>): a real guest's sound reaches the backend whole, and
migration between Debian's stock binary and ours while a stream plays.

The fork's HDA pacing migrates nothing of its own: a running stream
restarts its clock on the destination, and upstream's ring subsection is
sent as upstream sends it (empty).  So, unlike AC97, migration works both
ways while playing, paced or not.
"""

import os
import re
import shutil
import tempfile

from guest import Console, build_bench_guest
from harness import FRAME, HDAPlayer, Qemu, pattern, RATE
from test_migration import STOCK, destination_runs, migrate, pair, q35


def hda_args(device_opts=""):
    return ["-M", q35(), "-audiodev", "none,id=snd0",
            "-device", "ich9-intel-hda,addr=1b.0",
            "-device", "hda-duplex,audiodev=snd0" + device_opts]


def start_playing(src):
    player = HDAPlayer(src.qtest)
    player.setup()
    player.start(pattern(RATE))
    assert player.completions(2) >= 2, "no interrupts on the source"
    return player


def destination_plays(dst):
    destination_runs(dst)
    player = HDAPlayer(dst.qtest)
    lpib = player.lpib()
    player.intercept()
    # Not 2 s: that is five whole turns of the 0.4 s ring, and a running
    # stream was once read back at the very position it started from.
    assert player.completions(2.1) >= 3, "no interrupts on the destination"
    assert player.lpib() != lpib


def migrate_while_playing(src_binary, dst_binary, src_opts=""):
    with pair(src_binary, dst_binary, src_opts,
              args=hda_args) as (src, dst, uri):
        start_playing(src)
        assert migrate(src, dst, uri) == "completed", dst.stderr()
        destination_plays(dst)


def test_migrate_stock_to_fork_while_playing():
    migrate_while_playing(STOCK, None)


def test_migrate_fork_to_stock_while_playing():
    migrate_while_playing(None, STOCK)


def test_migrate_fork_to_stock_pacing_off_while_playing():
    migrate_while_playing(None, STOCK, ",pacing=off")


def test_migrate_fork_to_fork_while_playing():
    migrate_while_playing(None, None)



# --- a real guest: nothing lost when the stream stops ----------------------

def guest_chime(binary, devices):
    """The bench guest (snd-intel8x0 or snd-hda-intel, aplay) plays its
    chime to a wav backend and powers off; the wav's bytes."""
    guest = build_bench_guest()
    tmp = tempfile.mkdtemp(prefix="qva-chime-")
    os.chmod(tmp, 0o777)
    wav = os.path.join(tmp, "out.wav")
    q = Qemu(["-accel", "tcg", "-M", "q35", "-m", "256", "-no-reboot",
              "-kernel", os.path.join(guest, "vmlinuz"),
              "-initrd", os.path.join(guest, "initrd.img"),
              "-append", "console=ttyS0 quiet panic=-1",
              "-audiodev", f"wav,id=snd0,path={wav},out.frequency={RATE}"]
             + devices, binary=binary, qtest=False, console=True)
    try:
        console = Console(q.console_path)
        assert console.wait_line("BENCH-END", 120), console.text()
        assert "BENCH-APLAY-EXIT 0" in console.text(), console.text()
        assert q.wait_exit(30) == 0, q.stderr()
        with open(wav, "rb") as f:
            return f.read()[44:]
    finally:
        q.quit()
        shutil.rmtree(tmp, ignore_errors=True)


def sound(pcm):
    """From the first to the last frame that is not silence."""
    frames = [pcm[i:i + FRAME] for i in range(0, len(pcm), FRAME)]
    loud = [i for i, f in enumerate(frames) if f != b"\0" * FRAME]
    return b"".join(frames[loud[0]:loud[-1] + 1]) if loud else b""


def chime():
    with open(os.path.join(build_bench_guest(), "work", "rootfs", "usr",
                           "share", "bench", "chime.raw"), "rb") as f:
        return sound(f.read())


def assert_whole_chime(devices, binary=None):
    """After the chime, the DMA may have read on into the guest's ring
    until the driver stopped the stream: what was left there plays too,
    as on a real card."""
    want = chime()
    got = sound(guest_chime(binary, devices))
    diff = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                None)
    print(f"# {len(want)} bytes of chime, {len(got)} bytes of sound at the "
          f"backend", flush=True)
    assert got[:len(want)] == want, f"the backend got {len(got)} bytes of " \
        f"sound, the guest played {len(want)}; first difference at byte " \
        f"{diff}"


def test_guest_hda_plays_the_whole_sound():
    """snd-hda-intel on ich9-intel-hda with hda-output: every sample the
    guest played reaches the backend, the last ones before the driver
    stopped the stream too."""
    assert_whole_chime(["-device", "ich9-intel-hda",
                        "-device", "hda-output,audiodev=snd0"])


def test_guest_ac97_plays_the_whole_sound():
    assert_whole_chime(["-device", "AC97,audiodev=snd0"])


# --- the command lines users have get the paced codec ----------------------

def codec_properties(args):
    """`info qtree`'s lines for the HDA codec that @args create."""
    q = Qemu(["-M", "q35", "-S", "-nodefaults"] + args, qtest=False)
    try:
        tree = q.cmd_qmp("human-monitor-command", **{
            "command-line": "info qtree"})
    finally:
        q.quit()
    block = re.search(r"dev: hda-(duplex|output|micro).*?(?=\n\s*dev: |\Z)",
                      tree, re.S)
    assert block, "no HDA codec in the qtree:\n" + tree
    return block.group(0)


def test_legacy_and_libvirt_command_lines_get_pacing():
    """-soundhw hda (2019), -audio pa,model=hda (7.1 on), and libvirt's
    <sound model='ich9'/> (-device ich9-intel-hda -device hda-duplex)."""
    for args in (["-soundhw", "hda"],
                 ["-audio", "none,model=hda"],
                 ["-audiodev", "none,id=a",
                  "-device", "ich9-intel-hda,id=sound0,bus=pcie.0,addr=0x1b",
                  "-device", "hda-duplex,id=sound0-codec0,bus=sound0.0,"
                             "cad=0,audiodev=a"]):
        props = codec_properties(args)
        assert "pacing = true" in props, f"{args}:\n{props}"
        assert "timer-period = 1000 (0x3e8)" in props, f"{args}:\n{props}"
