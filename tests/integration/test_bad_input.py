"""Every value a user may get wrong, as a table.

A bad option or variable ends QEMU with exit status 1 and one short line
naming it and what it accepts; where a VM must not fail to start (no
server, a bogus one, a cookie that cannot be read) it runs on, with one
warning.  Never an abort, never a hang.  QEMU runs as root with a bare
environment whose $PULSE_SERVER names a socket that does not exist, so no
row finds a sound server of the machine's.
"""

import os
import shutil
import tempfile
import time

from harness import PulseDaemon, Qemu, ensure_user

USER = ("qva-desk4", 1704)

EXIT, RUNS = "exit 1, one line", "runs, one warning"

# How long a row that must run is watched: the connection is retried
# after 50, 100, 200 and 400 ms, so a warning repeated per attempt shows.
SETTLE = 1.5

AC97 = ["-device", "AC97,audiodev=a"]
LEGACY = ["-device", "AC97"]


def pa(opts):
    return ["-audiodev", f"pa,id=a,{opts}" if opts else "pa,id=a"] + AC97


def ac97(props):
    return ["-audiodev", "none,id=a", "-device", f"AC97,audiodev=a,{props}"]


def hda(props):
    return ["-audiodev", "none,id=a", "-device", "ich9-intel-hda",
            "-device", f"hda-duplex,audiodev=a,{props}"]


def legacy(**env):
    return dict(QEMU_AUDIO_DRV="pa", **env)


# (args, environment added, expectation, what stderr must say)
ROWS = [
    # -audiodev pa: latency
    (pa("out.latency=0"), {}, EXIT,
     ["out.latency=0 is out of range", "1000 to 2000000"]),
    (pa("out.latency=10"), {}, EXIT, ["out.latency=10 is out of range"]),
    (pa("in.latency=3000000"), {}, EXIT,
     ["in.latency=3000000 is out of range", "1000 to 2000000"]),
    (pa("out.latency=-5"), {}, EXIT,
     ["Parameter 'latency' expects uint32_t"]),
    (pa("out.latency=fast"), {}, EXIT,
     ["Parameter 'out.latency' expects integer"]),
    (pa("out.latency=99999999999"), {}, EXIT,
     ["Parameter 'latency' expects uint32_t"]),
    (pa("out.latency=8000,out.max-latency=4000"), {}, EXIT,
     ["out.max-latency=4000 is out of range", "out.latency"]),
    (pa("out.max-latency=3000000"), {}, EXIT,
     ["out.max-latency=3000000 is out of range", "2000000"]),
    (pa("in.max-latency=-1"), {}, EXIT,
     ["Parameter 'max-latency' expects uint32_t"]),
    # -audiodev pa: format, channels, frequency, buffer
    (pa("out.format=s24"), {}, EXIT,
     ["Parameter 'format' does not accept value 's24'"]),
    (pa("out.channels=0"), {}, EXIT,
     ["out.channels=0 is out of range", "1 to 32"]),
    (pa("out.channels=300"), {}, EXIT,
     ["out.channels=300 is out of range", "1 to 32"]),
    (pa("in.channels=33"), {}, EXIT,
     ["in.channels=33 is out of range", "1 to 32"]),
    (pa("out.channels=-1"), {}, EXIT,
     ["Parameter 'channels' expects uint32_t"]),
    (pa("out.mixing-engine=off,out.channels=300"), {}, EXIT,
     ["You can't use frequency, channels or format with "
      "fixed-settings=off"]),
    (pa("out.frequency=0"), {}, EXIT,
     ["out.frequency=0 is out of range", "1 to "]),
    (pa("out.frequency=10000000"), {}, EXIT,
     ["out.frequency=10000000 is out of range", "1 to "]),
    (pa("out.buffer-length=0"), {}, EXIT,
     ["out.buffer-length=0 is out of range", "1000 to "]),
    (pa("timer-period=x"), {}, EXIT,
     ["Parameter 'timer-period' expects"]),
    # -audiodev itself, and a device naming a missing one
    (["-audiodev", "foo,id=a"] + AC97, {}, EXIT,
     ["Parameter 'driver' does not accept value 'foo'"]),
    (["-audiodev", "pa"] + AC97, {}, EXIT, ["Parameter 'id' is missing"]),
    # 7.2: "AC97.audiodev ... can't find value 'b'"; 10.0: "-device
    # AC97,audiodev=b: audiodev 'b' not found"
    (["-audiodev", "none,id=a", "-device", "AC97,audiodev=b"], {}, EXIT,
     ["audiodev", "'b'"]),
    # AC97's pacing properties
    (ac97("timer-period=50"), {}, EXIT,
     ["timer-period=50 is out of range", "100 to 10000"]),
    (ac97("timer-period=20000"), {}, EXIT,
     ["timer-period=20000 is out of range", "100 to 10000"]),
    (ac97("timer-period=abc"), {}, EXIT,
     ["Parameter 'timer-period' expects integer"]),
    (ac97("use-timer=maybe"), {}, EXIT,
     ["Parameter 'use-timer' expects 'on' or 'off'"]),
    # HDA codecs' pacing properties
    (hda("timer-period=0"), {}, EXIT,
     ["hda-duplex timer-period=0 is out of range", "100 to 10000"]),
    (hda("timer-period=20000"), {}, EXIT,
     ["timer-period=20000 is out of range", "100 to 10000"]),
    (hda("timer-period=abc"), {}, EXIT,
     ["Parameter 'timer-period' expects integer"]),
    (hda("pacing=maybe"), {}, EXIT,
     ["Parameter 'pacing' expects 'on' or 'off'"]),
    # kernel_irqchip (applied to the KVM accelerator only)
    (["-accel", "kvm", "-M", "q35,kernel_irqchip=maybe"], {}, EXIT,
     ["kernel-irqchip=maybe", "does not accept value 'maybe'"]),
    (["-accel", "kvm,kernel-irqchip=maybe"], {}, EXIT,
     ["'kernel-irqchip' does not accept value 'maybe'"]),
    # -soundhw
    (["-soundhw", "foo"], {}, EXIT, ["Unknown sound card name `foo'"]),
    (["-soundhw", "ac97,es1370"], {}, EXIT, ["name one sound card"]),
    # 2019 environment variables
    (LEGACY, {"QEMU_AUDIO_DRV": "foo"}, EXIT,
     ["QEMU_AUDIO_DRV=foo", "pa"]),
    (LEGACY, legacy(QEMU_PA_SAMPLES="abc"), EXIT,
     ["QEMU_PA_SAMPLES=abc", "integer"]),
    (LEGACY, legacy(QEMU_PA_SAMPLES="-1"), EXIT,
     ["QEMU_PA_SAMPLES=-1", "integer"]),
    (LEGACY, legacy(QEMU_PA_SAMPLES="0"), EXIT,
     ["QEMU_PA_*", "buffer-length=0 is out of range"]),
    (LEGACY, legacy(QEMU_AUDIO_TIMER_PERIOD="abc"), EXIT,
     ["QEMU_AUDIO_TIMER_PERIOD=abc", "integer"]),
    (LEGACY, legacy(QEMU_AUDIO_TIMER_PERIOD="-1"), EXIT,
     ["QEMU_AUDIO_TIMER_PERIOD=-1", "integer"]),
    (LEGACY, legacy(QEMU_AUDIO_DAC_FIXED_FMT="s24"), EXIT,
     ["QEMU_AUDIO_DAC_FIXED_FMT=s24", "s16"]),
    (LEGACY, legacy(QEMU_AUDIO_DAC_FIXED_CHANNELS="300"), EXIT,
     ["QEMU_AUDIO_*", "out.channels=300 is out of range", "1 to 32"]),
    (LEGACY, legacy(QEMU_AUDIO_DAC_FIXED_SETTINGS="0",
                    QEMU_AUDIO_DAC_FIXED_FREQ="48000"), EXIT,
     ["QEMU_AUDIO_DAC_FIXED_SETTINGS=0", "QEMU_AUDIO_DAC_FIXED_FREQ"]),
    # no server, or a bogus one: the VM starts
    (pa(""), {}, RUNS, ["cannot connect to PulseAudio", "$PULSE_SERVER"]),
    (pa("server=unix:{tmp}/none"), {}, RUNS,
     ["cannot connect to PulseAudio server unix:{tmp}/none"]),
    (pa("server=unix:/dev/null"), {}, RUNS,
     ["cannot connect to PulseAudio server unix:/dev/null"]),
    (pa("server=tcp:127.0.0.1:1"), {}, RUNS,
     ["cannot connect to PulseAudio server tcp:127.0.0.1:1"]),
    (pa("server=bogus:::"), {}, RUNS,
     ["cannot connect to PulseAudio server bogus:::"]),
    (LEGACY, legacy(QEMU_PA_SERVER="unix:{tmp}/none"), RUNS,
     ["cannot connect to PulseAudio server unix:{tmp}/none"]),
    (LEGACY, legacy(QEMU_PA_SERVER=""), RUNS,
     ["cannot connect to PulseAudio"]),
]

# A real server, and a cookie that cannot be read: the VM starts.
COOKIE_ROWS = [
    (pa("server=unix:{server}"), {"PULSE_COOKIE": "{tmp}/none/cookie"},
     RUNS, ["$PULSE_COOKIE {tmp}/none/cookie", "No such file"]),
    (pa("server=unix:{server}"), {"PULSE_COOKIE": "{tmp}"},
     RUNS, ["$PULSE_COOKIE {tmp}", "not a regular file"]),
    # Readable, but not the server's: the server refuses the connection.
    (pa("server=unix:{server}"), {"PULSE_COOKIE": "{tmp}/wrong-cookie"},
     RUNS, ["unix:{server}", "Access denied"]),
]


def needs_kvm(args):
    return any(a.startswith("kvm") for a in args)


def run_row(args, env, expect, needles):
    """What went wrong with one row, or None."""
    q = Qemu(["-S"] + args, env=env, qtest=False)
    try:
        if expect == EXIT:
            rc = q.wait_exit(10)
            if rc is None:
                return "still running after 10 s"
        else:
            time.sleep(SETTLE)
            rc = q.proc.poll()
            if rc is None and not q.alive():
                return "running, but QMP does not answer"
        lines = [line for line in q.stderr().splitlines() if line.strip()]
        text = "\n".join(lines)
        if expect == EXIT:
            if rc != 1:
                return f"exit status {rc}: {text!r}"
            if len(lines) != 1:
                return f"{len(lines)} lines, not 1: {text!r}"
        else:
            if rc is not None:
                return f"exited with {rc}: {text!r}"
            warnings = [line for line in lines if "warning:" in line]
            other = [line for line in lines
                     if "warning:" not in line and "info:" not in line]
            if len(warnings) != 1 or other:
                return (f"{len(warnings)} warnings and {len(other)} other "
                        f"lines, not one warning: {text!r}")
        missing = [n for n in needles if n not in text]
        if missing:
            return f"does not say {missing}: {text!r}"
        return None
    finally:
        q.quit()


def check_rows(rows, subst):
    tmp = tempfile.mkdtemp(prefix="qva-bad-")
    os.chmod(tmp, 0o755)
    subst = dict(subst, tmp=tmp)
    with open(os.path.join(tmp, "wrong-cookie"), "wb") as f:
        f.write(bytes(range(256)))
    base = {"PATH": "/usr/bin:/bin", "HOME": tmp,
            "PULSE_SERVER": f"unix:{tmp}/no-server"}
    kvm = os.access("/dev/kvm", os.R_OK | os.W_OK)
    failed = []
    try:
        for args, env, expect, needles in rows:
            args = [a.format(**subst) for a in args]
            env = dict(base, **{k: v.format(**subst)
                                for k, v in env.items()})
            needles = [n.format(**subst) for n in needles]
            what = " ".join(f"{k}={v}" for k, v in env.items()
                            if k not in base or base[k] != v)
            what = f"{what} {' '.join(args)}".strip()
            if needs_kvm(args) and not kvm:
                print(f"# skipped, no /dev/kvm: {what}", flush=True)
                continue
            why = run_row(args, env, expect, needles)
            print(f"# {'FAIL' if why else 'ok'}: {what} ({expect})"
                  f"{': ' + why if why else ''}", flush=True)
            if why:
                failed.append(f"{what} ({expect}): {why}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert not failed, f"{len(failed)} of {len(rows)} rows:\n" + \
        "\n".join(failed)


def test_bad_values_fail_cleanly_or_run():
    """Every row of ROWS, each with its expectation."""
    check_rows(ROWS, {})


def test_unreadable_cookie_keeps_running():
    """$PULSE_COOKIE naming a missing file, a directory or another
    server's cookie, with a real server that then refuses: the VM runs
    on, and the one warning says what is wrong."""
    d = PulseDaemon(ensure_user(*USER)).start()
    try:
        check_rows(COOKIE_ROWS, {"server": d.socket})
    finally:
        d.stop()
