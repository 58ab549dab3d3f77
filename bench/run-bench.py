#!/usr/bin/env python3
"""Audio benchmark: stock Debian QEMU's pa backend against the fork's.

Boots the benchmark guest (bench/guest/) once per case, plays its signal
(a sawtooth beside a frame counter) through AC97 or Intel HDA into a real
PulseAudio daemon with a null sink, and measures, side by side and under
the same conditions:

  - the stream latency PulseAudio reports (pactl, sampled every ~100 ms),
  - silent gaps and phase breaks in the null sink's monitor (gaps heard
    by two recorders of it, so that a recorder's own are not counted),
  - what share of the guest's frames reached the sink, and how long after
    the emulated DMA read them (bench/latency.py),
  - the guest's ALSA underruns,
  - QEMU's CPU use,
  - for the fork, what QEMU reports itself (QMP query-audio-streams),
  - with pipewire as the sound server, what PipeWire says of the stream
    (pw-dump, and the graph's quantum from pw-profiler),

beside Debian's QEMU 10.0 from bookworm-backports (unpacked under
bench/out/, not installed) and upstream's own PipeWire backend
(-audiodev pipewire) in both binaries, and, as the floor, a native
PulseAudio client (bench/native/pa-floor.c) playing the same signal with
the fork's requests at the same latency: what any client at that latency
gets on this machine (and, with pipewire, a native PipeWire client,
bench/native/pw-floor.c).

It is a benchmark, not a test: it never judges the numbers, it prints a
Markdown table and writes it to bench/results/RESULTS-<date>.md (and the
raw numbers to a .json beside it).  Run as root; see bench/README.md.
"""

import argparse
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import harness  # noqa: E402  (the daemon and recorder the pa tests use)
sys.path.insert(0, HERE)
import latency  # noqa: E402  (the DMA probe and the sink's clock)
import disturb  # noqa: E402  (the disturbance case)

STOCK = "/usr/bin/qemu-system-x86_64"
FORK = os.path.join(TOP, "build", "qemu-system-x86_64")
# Debian's QEMU 10.0, the fork's second base, beside the installed 7.2:
# unpacked from bookworm-backports' packages once (fetch_stock10()), not
# installed, so that the host's stock 7.2 stays what stock-* runs.
STOCK10_DIR = os.path.join(TOP, "bench", "out", "stock-10.0")
STOCK10 = os.path.join(STOCK10_DIR, "usr", "bin", "qemu-system-x86_64")
STOCK10_SUITE = "bookworm-backports"
# One build: its modules load only into the binary they were built with.
# -system-gui has the audio modules (audio-pa.so, audio-pipewire.so),
# -system-data the option ROMs a -kernel boot reads (linuxboot_dma.bin,
# kvmvapic.bin).
STOCK10_QEMU = ("qemu-system-x86", "qemu-system-common",
                "qemu-system-data", "qemu-system-gui")
# Its firmware, from other source packages: it depends on seabios >>
# 1.16.3-1~, newer than bookworm's 1.16.2 (backports has 1.16.3), and on
# any ipxe-qemu.
STOCK10_FIRMWARE = (f"seabios/{STOCK10_SUITE}", "ipxe-qemu")
STOCK10_MANIFEST = os.path.join(STOCK10_DIR, "PACKAGES")
GUEST = os.path.join(TOP, "bench", "out", "guest")
NATIVE = os.path.join(TOP, "bench", "out", "pa-floor")
NATIVE_SRC = os.path.join(HERE, "native", "pa-floor.c")
# Its PipeWire counterpart: a pw_stream straight to the pipewire daemon.
NATIVE_PW = os.path.join(TOP, "bench", "out", "pw-floor")
NATIVE_PW_SRC = os.path.join(HERE, "native", "pw-floor.c")
# binary: (source, pkg-config package, Debian package with its .pc)
NATIVE_BUILDS = {
    NATIVE: (NATIVE_SRC, "libpulse", "libpulse-dev"),
    NATIVE_PW: (NATIVE_PW_SRC, "libpipewire-0.3", "libpipewire-0.3-dev"),
}
# The signal both make (the source of their stamps' meaning too).
NATIVE_HEADER = os.path.join(HERE, "native", "floor-signal.h")
NATIVE_CLIENT = "qva-native-floor"
RUN_GUEST = os.path.join(HERE, "guest", "run-guest.sh")
# Our own throwaway user, not the tests' (qva-desk*), so that a `make
# check` running at the same time cannot collide with our daemon's socket.
BENCH_USER = ("qva-bench", 1760)

RATE = 48000
# The guest's sawtooth (bench/guest/signal.awk), in the left channel: one
# cycle of rate/1000 frames, left = int(-16384 + 32768 * i / cycle).  The
# right channel is the frame counter bench/latency.py reads.
CYCLE = RATE // 1000
STEP = 32768 / CYCLE            # rise per frame, 682.7
# Stock QEMU runs its pa stream at 44.1 kHz, so the sawtooth reaches the
# monitor resampled twice (QEMU 48->44.1, PulseAudio 44.1->48) and rings
# for ~8 frames around each wrap, the falling edge crossing every value on
# the way.  So the phase is followed only on samples that sit on the middle
# of the ramp (|v| <= 9000, 26 of 48 frames) and rose from the previous
# sample by about one step: there the resampled ramp is within a few LSB
# of the exact one.
RELIABLE = 9000
STEP_SLACK = 100
# A phase break is a jump of more than a quarter frame.  Exact signals
# stay within 1/680 of a frame, resampled ones within ~1/50.
BREAK_TOLERANCE = 0.25
# At another rate than 48 kHz the right channel is -left, and the frame
# passes through (0, 0) once per cycle, so a silent gap is two or more
# zero frames in a row.
MIN_GAP = 2
# Gaps and breaks listed with their time (the disturbance plot marks them).
WHERE_MAX = 2000
# The fork raises its latency after underruns, mostly in the first
# seconds; gaps after this many seconds of signal are counted apart too.
SETTLED_S = 5

# name: (binary, -audiodev driver, options appended to -audiodev or
# pa-floor's latency, the guest's card)
CONFIGS = {
    "stock-default": (STOCK, "pa", "", "ac97"),
    "stock-tuned": (STOCK, "pa", ",out.latency=10000,timer-period=1000,"
                                 "out.buffer-length=3000", "ac97"),
    "fork-default": (FORK, "pa", "", "ac97"),
    # Intel HDA as libvirt's <sound model='ich9'/> makes it: what Windows
    # guests play through.
    "stock-hda": (STOCK, "pa", "", "hda"),
    "fork-hda": (FORK, "pa", "", "hda"),
    # The latency target in us, for pa-floor.
    "native-5ms": (NATIVE, None, "5000", None),
    "native-10ms": (NATIVE, None, "10000", None),
    # pa-floor at 5 ms beside the guest on stock QEMU playing the same
    # signal into -audiodev none: the floor with a busy TCG vCPU on the
    # host, as every guest config has one.
    "native-5ms-guest": (NATIVE, None, "5000", "hda"),
    # pa-floor with Debian's 7.2's requests at its defaults (paaudio.c:
    # tlength = out.latency 46440 us, minreq 3/4 of the 10 ms timer), beside
    # the guest as native-5ms-guest: what a client pays for stock's
    # latency, so that what 5 ms costs a client can be set beside what it
    # costs the fork.
    "native-stock-guest": (NATIVE, None, "46440 7500", "hda"),
    # pw-floor: node.latency of 5 / 10 ms in frames, a pw_stream straight
    # to the daemon as upstream's backend in QEMU is.  --daemon pipewire
    # only.
    "native-pw-5ms": (NATIVE_PW, "pipewire", "5000", None),
    "native-pw-10ms": (NATIVE_PW, "pipewire", "10000", None),
    # pw-floor at 10 ms beside the guest on stock QEMU, as
    # native-5ms-guest: the floor for a PipeWire client on a host with a
    # busy TCG vCPU.  --daemon pipewire only.
    "native-pw-10ms-guest": (NATIVE_PW, "pipewire", "10000", "hda"),
    # The same at 5 ms (the graph at 128 frames, as the fork's native
    # path asks).
    "native-pw-5ms-guest": (NATIVE_PW, "pipewire", "5000", "hda"),
    # node.latency exactly 128 frames, as the fork's native path asks
    # (native-pw-5ms asks for 240; the graph runs at 128 for both).
    "native-pw-128": (NATIVE_PW, "pipewire", "2667", None),
    # pw-floor as the fork's native path would play: node.latency 5 ms
    # (the graph runs at 128 frames), fed from a ring that a 1 ms tick
    # tops up to 4 / 6 ms; and at node.latency 10 ms (256 frames) from
    # one kept at 8 ms.  A cycle takes a quantum at once, so the ring
    # must hold a quantum and a tick.  --daemon pipewire only.
    "native-pw-ring-4ms": (NATIVE_PW, "pipewire", "5000 4000", None),
    "native-pw-ring-6ms": (NATIVE_PW, "pipewire", "5000 6000", None),
    "native-pw-ring-8ms": (NATIVE_PW, "pipewire", "10000 8000", None),
    # The ring at a quantum and a tick, the least pw-out.c keeps, alone
    # and beside a guest.  pw-floor tops it up whatever the sink has yet
    # to play of the last cycle, where the fork counts that in its level,
    # so it plays some 4 ms later than the fork does.
    "native-pw-ring-6ms3": (NATIVE_PW, "pipewire", "10000 6333", None),
    "native-pw-ring-6ms3-guest": (NATIVE_PW, "pipewire", "10000 6333",
                                  "hda"),
    # Debian's 10.0 (the fork's newer base), through the same daemon.
    "stock10-hda": (STOCK10, "pa", "", "hda"),
    # Upstream's PipeWire backend (audio/pwaudio.c), with its defaults,
    # in Debian's 10.0 and in the fork: a desktop's other way to reach
    # pipewire, without pipewire-pulse in between.  --daemon pipewire
    # only.
    "stock10-pw-hda": (STOCK10, "pipewire", "", "hda"),
    "fork-pw-hda": (FORK, "pipewire", "", "hda"),
    # Since the native path (audio/pw-*.c), fork-hda plays straight to a
    # PipeWire daemon; this is the fork's pulse stream through
    # pipewire-pulse, as before it.
    "fork-hda-pwpulse": (FORK, "pa", ",pipewire=off", "hda"),
}
# What runs without --configs: the original set, so that a plain run
# takes as long as it always did and needs neither the 10.0 download nor
# pipewire.
DEFAULT_CONFIGS = ("stock-default", "stock-tuned", "fork-default",
                   "stock-hda", "fork-hda", "native-5ms", "native-10ms")
# Each fork config and what the ratio table divides it by, in order; a
# partner that did not run is left out.
RATIO_PAIRS = {
    "fork-default": ("stock-default", "stock-tuned", "native-5ms",
                     "native-5ms-guest"),
    "fork-hda": ("stock-hda", "stock10-hda", "stock10-pw-hda",
                 "fork-pw-hda", "fork-hda-pwpulse", "fork-default",
                 "native-5ms", "native-pw-10ms", "native-5ms-guest",
                 "native-pw-10ms-guest"),
    # Upstream's backend in the fork against the same in Debian's 10.0:
    # what the fork's HDA changes do without our pa backend.
    "fork-pw-hda": ("stock10-pw-hda", "native-5ms", "native-pw-5ms"),
    "native-5ms-guest": ("native-stock-guest",),
}
# The guest's sound card: QEMU's -device arguments (bench/guest/run-guest.sh).
CARDS = {
    "ac97": "AC97 (snd-intel8x0)",
    "hda": "ich9-intel-hda with hda-duplex (snd-hda-intel)",
}
# Guest ALSA settings, in frames at 48 kHz: (period, buffer).
SETTINGS = {
    "main": (256, 1024),        # 5.3 ms periods, 21.3 ms buffer
    "small": (128, 512),        # 2.7 ms periods, 10.7 ms buffer
}
# disturb: both cores loaded for the middle quarter of the run only
# (bench/disturb.py); run it with --seconds 60.  stalls: instead, the sound
# server stopped STALL_S every STALL_EVERY_S for that quarter, what a
# loaded host does to a server at normal priority on a bad day (both
# cores busy, 2026-12-02: backlogs up to 100 ms behind a guest), the same
# on every day.
LOADS = ("idle", "load", "disturb", "stalls")
DISTURBANCES = ("disturb", "stalls")
STALL_S, STALL_EVERY_S = 0.04, 0.25
SERVER_NAMES = "pulseaudio, or pipewire under pipewire-pulse"

# A desktop's sound server gets real-time scheduling from rtkit; here
# there is no rtkit (nor D-Bus system bus), so the bench grants the same
# from outside (harness.PulseDaemon(realtime=True)).
DAEMON_PRIORITY = {
    "rtkit": "I/O threads SCHED_RR 5 and main thread nice -11, as rtkit "
             "grants on a desktop",
    "normal": "daemon at normal priority",
    # What most desktops run today: pipewire, wireplumber and
    # pipewire-pulse on a private D-Bus session, as Debian packages them
    # (harness.PulseDaemon(flavor="pipewire")).
    "pipewire": "pipewire + wireplumber + pipewire-pulse instead of "
                "PulseAudio, on a private D-Bus session, at normal priority",
    # The same with what module-rt gets from rtkit on a desktop
    # (harness.PulseDaemon(flavor="pipewire", realtime=True)).
    "pipewire-rtkit": "pipewire + wireplumber + pipewire-pulse instead of "
                      "PulseAudio, on a private D-Bus session; pipewire's "
                      "and pipewire-pulse's data threads SCHED_FIFO 20 and "
                      "their main threads nice -11, as rtkit grants on a "
                      "desktop",
}


def on_pipewire(daemon):
    """@daemon, a --daemon name, runs pipewire (and pipewire-pulse)."""
    return daemon.startswith("pipewire")


SAMPLE_INTERVAL = 0.1           # pactl, seconds
# A stream PulseAudio has no view of (the fork's native path, pw-floor,
# upstream's pipewire backend) is not sampled once the playback has run
# this long without a sample finding it: each pactl is a process that
# starts, mostly in the kernel, and on the bench's host (its scheduler
# packs tasks onto one CPU, preempt=none) the thread it shares a CPU with
# waits behind it.  Traced (perf sched), 3 of each 4-5 cycles that found
# the fork's ring short in 30-60 s came after its main loop had waited
# 1.2-2 ms for a pactl that measured nothing.
PA_VIEW_GRACE_S = 1.0
# query-audio-streams (fork), seconds.  In a disturbed run the latency in
# force over time comes from the trace (in_force_from_trace): ten queries
# a second would cost the fork's QEMU CPU that stock, which has no such
# query, is not charged.
QMP_INTERVAL = 1.0
IN_FORCE_LOG = "qemu-latency.log"
LATENCY_LINE = re.compile(r"^\d+@(\d+)\.(\d{6}):pa_latency stream \S+: "
                          r"latency (\d+) -> (\d+) us$")


def log(msg):
    print(f"run-bench: {msg}", file=sys.stderr, flush=True)


# --- the machine ---------------------------------------------------------

def first_line(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True).stdout
    except OSError as e:
        return f"({e})"
    return out.splitlines()[0] if out else "?"


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def device_props(binary, device="AC97"):
    """`-device DEVICE,help` lines, to show what the fork's device adds."""
    out = subprocess.run([binary, "-device", f"{device},help"],
                         capture_output=True, text=True).stdout
    return {line.strip() for line in out.splitlines()[1:]}


def machine_info(fork, stock10=None):
    """The machine and the binaries; @stock10 and @fork only if a case
    runs them (None otherwise)."""
    if fork is None:
        return dict(machine_info(STOCK, stock10), fork="(no case runs it)",
                    fork_sha256="–", ac97_fork_only=[], hda_fork_only=[],
                    props_against_stock10=False)
    fork_version = first_line([fork, "--version"])
    # The fork's own device properties show against stock of its own
    # base when that runs too: against 7.2, a 10.0 fork lists all that
    # upstream added since.
    base = (stock10 if stock10 and
            re.search(r"version 10\.", fork_version) else STOCK)
    return {
        "stock10": first_line([stock10, "--version"]) if stock10 else None,
        "stock10_packages": stock10_packages(stock10) if stock10 else None,
        "fork_sha256": sha256(fork),
        "props_against_stock10": base != STOCK,
        "ac97_fork_only": sorted(device_props(fork) - device_props(base)),
        "hda_fork_only": sorted(device_props(fork, "hda-duplex") -
                                device_props(base, "hda-duplex")),
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "kernel": " ".join(os.uname()[2:4]),
        "pulseaudio": first_line(["pulseaudio", "--version"]),
        "pipewire": first_line(["dpkg-query", "-W", "-f", "${Version}",
                                "pipewire"]),
        "stock": first_line([STOCK, "--version"]),
        "fork": fork_version,
        "stress-ng": first_line(["stress-ng", "--version"]),
        "python": sys.version.split()[0],
    }


def snapshot_fork(src, rundir):
    """A private copy of the fork's binary, so that a rebuild in the
    checkout during the hour-long run cannot mix two builds in one table.
    It finds its firmware by the absolute paths it was configured with
    (Debian's packages), so it runs from anywhere."""
    dst = os.path.join(rundir, "fork", "qemu-system-x86_64")
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy2(os.path.realpath(src), dst)
    return dst


# --- what the benchmark needs on the host ----------------------------------

def apt_install(*pkgs):
    log(f"installing {' '.join(pkgs)}")
    subprocess.run(["apt-get", "install", "-y", "-q",
                    "--no-install-recommends", *pkgs],
                   check=True, stdout=sys.stderr,
                   env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def ensure_prerequisites(need_load, need_plot, stock10=None,
                         binaries=(STOCK, FORK)):
    """What the cases need; @binaries: those they run (a native run
    needs neither the fork nor the guest)."""
    if os.geteuid() != 0:
        sys.exit("run-bench: run as root (QEMU runs as root, as in the "
                 "fork's use case, and the daemon as a throwaway user)")
    # Debian ships stock QEMU's pa driver as a module in qemu-system-gui;
    # without it the stock binary says "Unknown audio driver `pa'".
    if not os.path.exists("/usr/lib/x86_64-linux-gnu/qemu/audio-pa.so"):
        apt_install("qemu-system-gui")
    if need_load and not shutil.which("stress-ng"):
        apt_install("stress-ng")
    if need_plot and subprocess.run([disturb.PLOT_PYTHON, "-c",
                                     "import matplotlib"],
                                    capture_output=True).returncode:
        apt_install("python3-matplotlib")
    build_native()
    if NATIVE_PW in binaries:
        build_native(NATIVE_PW)
    # Stock's device properties are read whatever runs (machine_info()).
    for binary in (STOCK, FORK):
        if (binary == STOCK or binary in binaries) and \
                not os.path.exists(binary):
            sys.exit(f"run-bench: {binary} is missing (stock: apt-get "
                     "install qemu-system-x86; fork: make)")
    if stock10 == STOCK10:
        fetch_stock10()
    elif stock10 and not os.access(stock10, os.X_OK):
        sys.exit(f"run-bench: --stock10 {stock10}: no such executable")
    # Cheap when nothing changed; a guest built before it carried
    # snd-hda-intel would not find the HDA card.  Native runs boot none.
    if any(b not in NATIVE_BUILDS for b in binaries):
        subprocess.run([os.path.join(HERE, "guest", "build-guest.sh"),
                        GUEST], check=True, stdout=sys.stderr)


def build_native(binary=NATIVE):
    """pa-floor (or pw-floor), rebuilt when its source or the signal's
    header is newer (libpulse-dev and libpipewire-0.3-dev are among the
    fork's build dependencies)."""
    src, pkg, deb = NATIVE_BUILDS[binary]
    if (os.path.exists(binary) and os.path.getmtime(binary) >=
            max(os.path.getmtime(src), os.path.getmtime(NATIVE_HEADER))):
        return
    if subprocess.run(["pkg-config", "--exists", pkg]).returncode:
        apt_install(deb, "pkg-config")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", pkg],
                           check=True, capture_output=True,
                           text=True).stdout.split()
    os.makedirs(os.path.dirname(binary), exist_ok=True)
    subprocess.run(["cc", "-O2", "-Wall", "-o", binary, src, *flags],
                   check=True, stdout=sys.stderr)


def apt_madison(pkg, suite):
    """The version of @pkg that @suite offers, or None."""
    out = subprocess.run(["apt-cache", "madison", pkg], capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) == 3 and f" {suite}/" in fields[2]:
            return fields[1]
    return None


def fetch_stock10():
    """Debian's QEMU 10.0 from bookworm-backports, unpacked under
    bench/out/stock-10.0/ once: `apt-get download` and `dpkg -x`, as
    build-guest.sh gets the guest's packages, so that the host keeps its
    installed 7.2.

    Debian builds it for /usr and not relocatable: run from elsewhere, it
    still loads its modules from /usr/lib/x86_64-linux-gnu/qemu (the 7.2
    ones, which it refuses: "Only modules from the same build can be
    loaded") and its firmware from /usr/share.  But a `qemu-bundle` beside
    the binary makes it look for every configured path under that
    directory instead (util/cutils.c, get_relocated_path()), so
    usr/bin/qemu-bundle -> ../.. points it at the unpacked tree."""
    if os.path.exists(STOCK10_MANIFEST) and os.path.exists(STOCK10):
        return
    version = apt_madison(STOCK10_QEMU[0], STOCK10_SUITE)
    if version is None:
        # A machine that never ran apt-get update since the suite was
        # added has no list for it.
        log(f"no {STOCK10_QEMU[0]} in {STOCK10_SUITE}'s list, running "
            "apt-get update")
        subprocess.run(["apt-get", "update", "-q"], check=True,
                       stdout=sys.stderr)
        version = apt_madison(STOCK10_QEMU[0], STOCK10_SUITE)
    if version is None:
        sys.exit(f"run-bench: apt offers no {STOCK10_QEMU[0]} from "
                 f"{STOCK10_SUITE}; add the suite to apt's sources (see "
                 "upstream-version)")
    log(f"fetching Debian's QEMU {version} into {STOCK10_DIR}")
    shutil.rmtree(STOCK10_DIR, ignore_errors=True)
    debs = os.path.join(STOCK10_DIR, "debs")
    os.makedirs(debs)
    # Sandbox user root: _apt cannot write into bench/out.
    subprocess.run(["apt-get", "download", "-q", "-o",
                    "APT::Sandbox::User=root",
                    *[f"{p}={version}" for p in STOCK10_QEMU],
                    *STOCK10_FIRMWARE],
                   cwd=debs, check=True, stdout=sys.stderr)
    manifest = []
    for deb in sorted(os.listdir(debs)):
        path = os.path.join(debs, deb)
        subprocess.run(["dpkg", "-x", path, STOCK10_DIR], check=True)
        manifest.append(subprocess.run(
            ["dpkg-deb", "-f", path, "Package", "Version"], check=True,
            capture_output=True, text=True).stdout.replace("\n", " ")
            .replace("Package: ", "").replace("Version: ", "").strip())
    os.symlink("../..", os.path.join(os.path.dirname(STOCK10),
                                     "qemu-bundle"))
    # What the bench loads must resolve on this host; the other modules
    # (GTK, SDL, JACK...) are never loaded here and only reported.
    moddir = os.path.join(STOCK10_DIR, "usr", "lib", "x86_64-linux-gnu",
                          "qemu")
    needed = {STOCK10, os.path.join(moddir, "audio-pa.so"),
              os.path.join(moddir, "audio-pipewire.so")}
    missing = {}
    for path in sorted(needed | {os.path.join(moddir, m)
                                 for m in os.listdir(moddir)}):
        out = subprocess.run(["ldd", path], capture_output=True,
                             text=True).stdout
        libs = [line.split()[0] for line in out.splitlines()
                if "not found" in line]
        if libs:
            missing[path] = libs
    for path, libs in missing.items():
        log(f"{os.path.relpath(path, STOCK10_DIR)}: not found on this "
            f"host: {', '.join(libs)}")
    if needed & set(missing):
        sys.exit("run-bench: Debian's QEMU 10.0 needs libraries this host "
                 "lacks (above); install them from bookworm or "
                 f"{STOCK10_SUITE} and run again")
    drivers = subprocess.run([STOCK10, "-audiodev", "help"],
                             capture_output=True, text=True).stdout.split()
    if "pa" not in drivers or "pipewire" not in drivers:
        sys.exit(f"run-bench: {STOCK10} does not load its pa and pipewire "
                 f"modules (audio drivers: {' '.join(drivers[3:])})")
    with open(STOCK10_MANIFEST, "w") as f:
        f.write("\n".join(manifest) + "\n")
    log(f"{first_line([STOCK10, '--version'])}; "
        f"unpacked {', '.join(manifest)}")


def stock10_packages(binary):
    """The packages a fetched stock 10.0 came from, or None for a binary
    given with --stock10."""
    if binary != STOCK10:
        return None
    with open(STOCK10_MANIFEST) as f:
        return [line.strip() for line in f if line.strip()]


# --- load ----------------------------------------------------------------

def start_load(settle=True):
    """One CPU hog per host core at normal priority, in its own process
    group so that stop_load() ends exactly these processes."""
    cmd = ["stress-ng", "--cpu", str(os.cpu_count()), "--quiet"]
    # stderr is dropped: stress-ng warns "finished prematurely" when it is
    # stopped, which is how it is meant to end here.
    proc = subprocess.Popen(cmd, start_new_session=True,
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    if settle:
        time.sleep(1)   # let the workers spin up before QEMU starts
    return proc


class ServerStalls:
    """The sound server's process (@pid) stopped for STALL_S every
    STALL_EVERY_S until stop(); the same interface as start_load's
    process for stop_load."""

    def __init__(self, pid):
        self.pid = pid
        self.done = threading.Event()
        self.count = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.wait(STALL_EVERY_S - STALL_S):
            os.kill(self.pid, signal.SIGSTOP)
            try:
                time.sleep(STALL_S)
            finally:
                os.kill(self.pid, signal.SIGCONT)
            self.count += 1

    def stop(self):
        self.done.set()
        self.thread.join()
        os.kill(self.pid, signal.SIGCONT)


def server_pid(daemon):
    """The process that plays: PulseAudio, or pipewire's graph."""
    if daemon.flavor != "pipewire":
        return daemon.pid
    found = subprocess.run(["pgrep", "-x", "-g", str(daemon.proc.pid),
                            "pipewire"], capture_output=True, text=True)
    return int(found.stdout.split()[0])


def stop_load(proc):
    if proc is None:
        return
    if isinstance(proc, ServerStalls):
        proc.stop()
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


# --- CPU accounting ---------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_times(pid):
    """(CPU seconds user+sys, start time in seconds since boot) of @pid."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces; the fields follow its ')'.
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime, start = int(fields[11]), int(fields[12]), int(fields[19])
    return (utime + stime) / CLK_TCK, start / CLK_TCK


def uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def host_times():
    """(busy, total, steal) jiffies of all host CPUs, from /proc/stat.
    Steal is time the hypervisor gave our vCPUs to someone else: on a
    shared machine, a stall no program here can avoid."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + vals[4]            # idle + iowait
    return sum(vals) - idle, sum(vals), vals[7]


def wakeups(pid):
    """Times any thread of @pid went to sleep and was woken (voluntary
    context switches, summed over its threads)."""
    n = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        n += int(line.split()[1])
        except FileNotFoundError:
            pass                # a thread that just ended
    return n


def vcpu_times(pid):
    """CPU seconds of @pid's vCPU threads (named "CPU n/TCG" or "CPU n/KVM":
    run-guest.sh asks for debug-threads).  Under TCG they hold the guest's
    own work, whose noise swamps what the sound path costs."""
    n = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if not f.read().startswith("CPU "):
                    continue
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            n += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except FileNotFoundError:
            pass                # a thread that just ended
    return n


def snapshot(pid):
    """Everything a CPU ratio between two moments needs."""
    return {"t": time.monotonic(), "qemu_cpu": proc_times(pid)[0],
            "vcpu": vcpu_times(pid), "wakeups": wakeups(pid),
            "host": host_times()}


def cpu_ratio(a, b):
    """QEMU CPU seconds per wall second, and the host's busy and steal
    fractions, a -> b."""
    wall = b["t"] - a["t"]
    busy, total, steal = (y - x for x, y in zip(a["host"], b["host"]))
    return ((b["qemu_cpu"] - a["qemu_cpu"]) / wall if wall > 0 else None,
            busy / total if total else None,
            steal / total if total else None)


# --- the guest's console --------------------------------------------------

class Console:
    """Reads run-guest.sh's output (the serial console) line by line and
    timestamps the BENCH- markers; CPU snapshots are taken right when the
    playback starts and ends, not at the next sampling tick."""

    def __init__(self, stream, pid_getter, start="BENCH-START",
                 end="BENCH-APLAY-EXIT", done="BENCH-END"):
        self.stream = stream
        self.pid_getter = pid_getter
        # Playback runs from @start to @end; the run is over at @done.
        self.start, self.end, self.done = start, end, done
        self.lines = []
        self.marks = {}                 # marker -> monotonic time
        self.snaps = {}                 # "start"/"end" -> snapshot()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.stream:
            line = line.rstrip("\r\n")
            self.lines.append(line)
            m = re.match(r"((?:BENCH|PA-FLOOR|PW-FLOOR)-[A-Z-]+)", line)
            if not m or m.group(1) in self.marks:
                continue
            self.marks[m.group(1)] = time.monotonic()
            snap = {self.start: "start", self.end: "end"}.get(m.group(1))
            pid = self.pid_getter()
            if snap and pid:
                try:
                    self.snaps[snap] = snapshot(pid)
                except OSError:
                    pass

    def value(self, marker):
        """The rest of the first line starting with @marker, or None."""
        for line in self.lines:
            if line.startswith(marker + " "):
                return line[len(marker) + 1:].strip()
        return None


# --- PulseAudio's side ----------------------------------------------------

def parse_sink_inputs(text):
    """The measured playback stream (QEMU's or pa-floor's) from `pactl
    list sink-inputs`:
    (buffer latency us, sink latency us, corked) or None."""
    for block in text.split("Sink Input #")[1:]:
        if "qemu" not in block and NATIVE_CLIENT not in block:
            continue
        buf = re.search(r"Buffer Latency: (\d+) usec", block)
        sink = re.search(r"Sink Latency: (\d+) usec", block)
        corked = re.search(r"Corked: (\w+)", block)
        spec = re.search(r"Sample Specification: (.*)", block)
        if buf and sink:
            return {"buffer_us": int(buf.group(1)),
                    "sink_us": int(sink.group(1)),
                    "corked": bool(corked and corked.group(1) == "yes"),
                    "spec": spec.group(1).strip() if spec else "?"}
    return None


def percentile(sorted_vals, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1,
                   int(round(p / 100 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def latency_stats(samples_us):
    vals = sorted(v / 1000 for v in samples_us)
    if not vals:
        return {"n": 0}
    return {"n": len(vals), "median": statistics.median(vals),
            "p95": percentile(vals, 95), "p99": percentile(vals, 99),
            "max": vals[-1]}


# --- PipeWire's side ------------------------------------------------------

# When PipeWire's view is taken: this share into the playback (before a
# disturbance's load starts), at least a second in; the profiler then
# listens for a second.
PW_VIEW_AT = 0.25
PW_PROFILE_S = 1


def pw_env(daemon):
    """What QEMU's pipewire backend needs to find the bench's daemon: it
    runs as root, the daemon as the bench's user, so the root's own
    runtime directory holds no pipewire-0.  libpipewire looks for the
    socket PIPEWIRE_REMOTE in PIPEWIRE_RUNTIME_DIR before
    XDG_RUNTIME_DIR; root may enter the user's 0700 directory, and
    PipeWire's access module lets any local client in (pw-dump shows it
    as pipewire.access "unrestricted", uid 0)."""
    return {"PIPEWIRE_RUNTIME_DIR": daemon.runtime,
            "PIPEWIRE_REMOTE": "pipewire-0"}


class PipeWireView:
    """One look at PipeWire's graph while the source plays, in a thread of
    its own so that the sampling goes on: `pw-dump` (the stream's node,
    the node.latency it asked for, its format, what it is linked to) and
    `pw-profiler` for a second (the quantum the graph runs at, the QUANT
    of pw-top, whose Debian 12 version has no batch mode), both as the
    daemon's user, as the desktop user's own tools would.  Taken in every
    run with --daemon pipewire, pa and native ones too, so that every run
    bears the same disturbance."""

    def __init__(self, daemon, rundir, seconds):
        self.daemon, self.rundir = daemon, rundir
        self.delay = max(1.0, seconds * PW_VIEW_AT)
        self.thread = None
        self.result = None

    def poll(self, start, t):
        """Start the look once the playback (started at @start) has run
        for its delay."""
        if self.thread is None and start is not None and \
                t >= start + self.delay:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()

    def join(self):
        """What was seen, or None if the playback never got that far."""
        if self.thread:
            self.thread.join(30)
        return self.result

    def _run(self):
        try:
            self.result = self._look()
        except (OSError, ValueError, KeyError,
                subprocess.SubprocessError) as e:
            # Keep what was read before (the sink's latency).
            self.result = dict(self.result or {}, error=str(e))

    def _look(self):
        prefix, env = harness.as_user(self.daemon.pw, self.daemon.env)
        # pw-profiler writes its log and plot scripts into its working
        # directory: one of the user's own.
        work = tempfile.mkdtemp(prefix="qva-pw-")
        os.chown(work, self.daemon.pw.pw_uid, self.daemon.pw.pw_gid)
        try:
            dump = subprocess.run(prefix + ["pw-dump"], env=env, cwd="/",
                                  capture_output=True, text=True,
                                  check=True, timeout=10).stdout
            # timeout ends it with SIGTERM, which it takes as its quit.
            subprocess.run(prefix + ["timeout", str(PW_PROFILE_S),
                                     "pw-profiler", "-o", "profiler.log"],
                           env=env, cwd=work, capture_output=True,
                           timeout=10)
            with open(os.path.join(work, "profiler.log")) as f:
                profile = f.read()
        finally:
            shutil.rmtree(work, ignore_errors=True)
        sinks = self.daemon.pactl("list", "sinks")
        with open(os.path.join(self.rundir, "pw-dump.json"), "w") as f:
            f.write(dump)
        with open(os.path.join(self.rundir, "pw-profiler.log"), "w") as f:
            f.write(profile)
        # The sink's latency first: the read → sink column needs it even
        # if the dump cannot be read.
        m = re.search(r"Name: null\n(?:.*\n)*?\s*Latency: (\d+) usec",
                      sinks)
        self.result = {"sink_latency_us": int(m.group(1)) if m else None}
        self.result.update(pw_summary(pw_objects(dump), profile))
        return self.result


def pw_objects(text):
    """The objects of a pw-dump: it prints the graph as one JSON array,
    then one more per change it saw before it quit (an object with "info"
    null is gone), so the last word on each id counts."""
    objects, decoder, pos = {}, json.JSONDecoder(), 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            break
        doc, pos = decoder.raw_decode(text, pos)
        for o in doc:
            if o.get("info", True) is None:
                objects.pop(o["id"], None)
            else:
                objects[o["id"]] = o
    return list(objects.values())


def pw_summary(objects, profile):
    """The measured stream's node in a pw-dump, and the graph's quantum
    in pw-profiler's log while that node took part."""
    def props(o):
        return o.get("info", {}).get("props", {})

    nodes = {o["id"]: o for o in objects
             if o.get("type") == "PipeWire:Interface:Node"}
    streams = [o for o in nodes.values()
               if props(o).get("media.class") == "Stream/Output/Audio" and
               any("qemu" in str(v).lower() or NATIVE_CLIENT in str(v)
                   for v in props(o).values())]
    # A running one first: the paplay that proved the daemon ready may
    # linger, QEMU's are its only playback.
    streams.sort(key=lambda o: o.get("info", {}).get("state") != "running")
    settings = next((o for o in objects
                     if props(o).get("metadata.name") == "settings"), {})
    rate = next((m.get("value") for m in settings.get("metadata") or []
                 if m.get("key") == "clock.rate"), None) or RATE
    if not streams:
        return {"node": None}
    node = streams[0]
    p = props(node)
    params = node.get("info", {}).get("params", {})
    fmt_ = (params.get("Format") or params.get("EnumFormat") or [{}])[0]
    linked = sorted({props(nodes[o["info"]["input-node-id"]]).get(
                        "node.name", "?")
                     for o in objects
                     if o.get("type") == "PipeWire:Interface:Link" and
                     o["info"].get("output-node-id") == node["id"] and
                     o["info"].get("input-node-id") in nodes})
    # pw-profiler's line per cycle: 4 columns of the driver, the 4th its
    # period in us (clock.duration / rate), then 8 per follower node, the
    # first its id.
    periods = []
    for line in profile.splitlines():
        cols = line.split("\t")
        if len(cols) > 4 and str(node["id"]) in {
                cols[i].strip() for i in range(4, len(cols), 8)}:
            periods.append(int(cols[3]))
    quantum = (round(statistics.median(periods) * rate / 1e6)
               if periods else None)
    return {"node": node["id"], "name": p.get("node.name"),
            "node_latency": p.get("node.latency"),
            "format": (f"{fmt_.get('format', '?')} "
                       f"{fmt_.get('channels', '?')}ch "
                       f"{fmt_.get('rate', '?')}Hz"),
            "linked_to": linked, "rate": rate, "quantum": quantum,
            "cycles": len(periods)}


# --- the recorded signal ----------------------------------------------------

def analyse_signal(pcm):
    """Silent gaps and phase breaks of the sawtooth in the monitor's
    recording (s16le stereo, 48 kHz).

    The signal runs from the first to the last non-silent frame.  Silence
    inside it (>= MIN_GAP zero frames) is a gap: PulseAudio had nothing
    from QEMU.  Across gaps the sawtooth must go on where it stopped; a
    phase that does not is a break: frames lost or played twice (e.g. a
    stale buffer replayed during a guest underrun).  A break by a whole
    number of cycles (48 frames) cannot be seen in a periodic signal.
    """
    samples = array("h")
    samples.frombytes(pcm[:len(pcm) - len(pcm) % 4])
    left, right = samples[0::2], samples[1::2]
    n = len(left)
    first = next((i for i in range(n) if left[i] or right[i]), None)
    if first is None:
        return {"signal_s": 0.0, "gaps": 0, "gap_ms": 0.0, "breaks": 0,
                "late_gaps": 0, "where": [], "gap_marks": []}
    last = next(i for i in range(n - 1, -1, -1) if left[i] or right[i])
    gaps = gap_frames = breaks = signal_frames = late_gaps = 0
    where = []                  # (seconds into the signal, what), the first
                                # WHERE_MAX
    marks = []                  # per gap: seconds in, frames, the counter
                                # before and after it (two_recorders())
    zero_run = 0
    ref_phase = None            # phase of the last reliable sample
    since_ref = 0               # signal frames since that sample
    prev = None                 # the previous signal sample, gaps skipped
    for i in range(first, last + 1):
        v = left[i]
        if v == 0 and right[i] == 0:
            zero_run += 1
            continue
        if zero_run >= MIN_GAP:
            gaps += 1
            gap_frames += zero_run
            if i - first >= SETTLED_S * RATE:
                late_gaps += 1
            if len(where) < WHERE_MAX:
                where.append((round((i - first) / RATE, 4),
                              f"gap {zero_run}"))
            if len(marks) < WHERE_MAX:
                marks.append(((i - first) / RATE, zero_run,
                              latency.counter(right[i - zero_run - 1]),
                              latency.counter(right[i])))
        elif zero_run:
            # The sawtooth's own zero crossing: signal, not silence.
            signal_frames += 1
            since_ref += 1
            prev = 0
        zero_run = 0
        signal_frames += 1
        since_ref += 1
        on_ramp = prev is not None and abs(v - prev - STEP) <= STEP_SLACK
        prev = v
        if on_ramp and -RELIABLE <= v <= RELIABLE:
            phase = (v + 16384) * CYCLE / 32768
            if ref_phase is not None:
                err = (phase - ref_phase - since_ref) % CYCLE
                if err > CYCLE / 2:
                    err -= CYCLE
                if abs(err) > BREAK_TOLERANCE:
                    breaks += 1
                    if len(where) < WHERE_MAX:
                        where.append((round((i - first) / RATE, 4),
                                      f"break {err:+.2f}"))
            ref_phase, since_ref = phase, 0
    return {"signal_s": signal_frames / RATE, "gaps": gaps,
            "gap_ms": gap_frames * 1000 / RATE, "breaks": breaks,
            "late_gaps": late_gaps,
            "where": where, "gap_marks": marks}


# Two recorders' gaps are one gap of the sink when they are this close
# in the recordings (less than half the counter's period, 0.68 s, so that
# the counter tells which) ...
SAME_GAP_S = 0.25
# ... and the signal's frames on either side overlap, give or take this
# many (a resampled counter is read within ±4; one faded in after
# silence says less).
SAME_GAP_FRAMES = 48


def two_recorders(a, b):
    """What the sink played, from analyse_signal() of two recordings of it:
    @a with its gaps counted only where @b heard them too, each
    recorder's others apart.  A recorder that misses a cycle (parec
    through pipewire-pulse, under load) has silence in place of frames,
    or lacks them; its twin does not.  A gap of the sink is in both, at
    the same place in the signal: the same frames before and after it,
    or frames that overlap where one recorder's own loss runs into it.
    At a rate other than 48 kHz the right channel is no counter
    (MIN_GAP) and the place is the time alone."""
    def same(x, y):
        if abs(x[0] - y[0]) > SAME_GAP_S:
            return False
        # y's frames before and after, from x's frame before, within
        # half a period either way.
        lo = (y[2] - x[2] + latency.RAMP // 2) % latency.RAMP - \
            latency.RAMP // 2
        hi = lo + (y[3] - y[2]) % latency.RAMP
        return (lo <= (x[3] - x[2]) % latency.RAMP + SAME_GAP_FRAMES and
                hi >= -SAME_GAP_FRAMES)

    both = [x for x in a["gap_marks"]
            if any(same(x, y) for y in b["gap_marks"])]
    b_only = [y for y in b["gap_marks"]
              if not any(same(x, y) for x in a["gap_marks"])]
    return dict(a, gaps=len(both),
                late_gaps=sum(1 for x in both if x[0] >= SETTLED_S),
                gap_ms=sum(x[1] for x in both) * 1000 / RATE,
                one_recorder=(len(a["gap_marks"]) - len(both),
                              len(b_only)))


# --- one case -------------------------------------------------------------

def qmp_playback(qmp):
    """The fork's playback stream from query-audio-streams, or None."""
    for s in qmp.command("query-audio-streams"):
        if s.get("direction") == "playback":
            return s
    return None


def wait_for_file(path, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return int(text)
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.05)
    return None


def pa_view_wanted(pa_samples, start, now):
    """Whether PulseAudio's view is still worth a pactl: until the
    playback (from @start, None before) has run PA_VIEW_GRACE_S with no
    sample of the stream, it may yet be a pulse stream."""
    return bool(pa_samples) or start is None or \
        now - start < PA_VIEW_GRACE_S


def sample_until_done(case, daemon, console, proc, qmp_path, dist=None,
                      view=None):
    """Sample PulseAudio's stream latency (and the fork's own view) while
    the guest runs, disturb it if @dist and take PipeWire's @view; return
    (pactl samples, QMP samples, the QMP connection if one was opened)."""
    pa_samples, qmp_samples = [], []
    qmp = None
    next_qmp = 0.0
    while proc.poll() is None and console.done not in console.marks:
        t = time.monotonic()
        if dist:
            dist.poll(console.marks.get(console.start), t)
        if view:
            view.poll(console.marks.get(console.start), t)
        s = None
        if pa_view_wanted(pa_samples, console.marks.get(console.start), t):
            try:
                s = parse_sink_inputs(daemon.pactl("list", "sink-inputs"))
            except subprocess.CalledProcessError:
                pass
        if s:
            s["t"] = t
            pa_samples.append(s)
        if case["qmp_streams"] and t >= next_qmp:
            next_qmp = t + QMP_INTERVAL
            try:
                qmp = qmp or harness.QMP(qmp_path)
                st = qmp_playback(qmp)
                if st:
                    qmp_samples.append(dict(st, t=t))
            except (OSError, ValueError) as e:
                log(f"QMP: {e}")
        time.sleep(max(0.0, t + SAMPLE_INTERVAL - time.monotonic()))
    return pa_samples, qmp_samples, qmp


def finish_qemu(proc, qmp, qmp_path, pid, case):
    """After BENCH-END: wait for the guest's power-off (-no-shutdown keeps
    QEMU there, paused), take the final CPU and QMP readings, then quit."""
    final = {}
    try:
        qmp = qmp or harness.QMP(qmp_path)
        deadline = time.monotonic() + 15
        while (qmp.command("query-status").get("running") and
               time.monotonic() < deadline):
            time.sleep(0.05)
        cpu, start = proc_times(pid)
        final["cpu_s"] = cpu
        final["wall_s"] = uptime() - start
        if case["qmp_streams"]:
            final["qmp"] = qmp_playback(qmp)
        qmp.command("quit")
    except (OSError, ValueError) as e:
        log(f"finishing QEMU: {e}")
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()         # run-guest.sh; its timeout ends QEMU
        proc.wait()
    if qmp:
        qmp.close()
    return final


@contextlib.contextmanager
def conditions(case, opts):
    """The sound server, and the load if the case has one, for one run;
    yields the daemon and the disturbance (None unless the case's load is
    disturb)."""
    flavor = "pipewire" if on_pipewire(case["daemon"]) else "pulseaudio"
    daemon = harness.PulseDaemon(harness.ensure_user(*BENCH_USER),
                                 realtime=case["daemon"].endswith("rtkit"),
                                 flavor=flavor).start()
    load = dist = None
    try:
        load = start_load() if case["load"] == "load" else None
        if case["load"] == "disturb":
            dist = disturb.Disturbance(opts.seconds, start_load, stop_load)
        elif case["load"] == "stalls":
            pid = server_pid(daemon)
            dist = disturb.Disturbance(
                opts.seconds, lambda settle: ServerStalls(pid), stop_load)
        yield daemon, dist
    finally:
        if dist:
            dist.close()
        stop_load(load)
        daemon.stop()


def in_force_from_trace(path, pa_samples, qmp_samples, wall_offset):
    """The fork's latency in force at each of @pa_samples' times, as QMP
    samples ({"t", "latency"}), from its pa_latency trace lines (wall
    clock; @wall_offset is time.time() - time.monotonic()).  Before the
    first change it is what the first QMP sample said.  A stream
    pipewire-pulse does not list (the fork's native path) has no
    PulseAudio samples: then every SAMPLE_INTERVAL over the QMP samples'
    span."""
    changes = []
    try:
        with open(path) as f:
            for line in f:
                m = LATENCY_LINE.match(line.strip())
                if m:
                    t = int(m.group(1)) + int(m.group(2)) / 1e6 - wall_offset
                    changes.append((t, int(m.group(3)), int(m.group(4))))
    except FileNotFoundError:
        return qmp_samples
    if not qmp_samples and not changes:
        return qmp_samples
    level = changes[0][1] if changes else qmp_samples[0]["latency"]
    times = [s["t"] for s in pa_samples]
    if not times and len(qmp_samples) > 1:
        first, last = qmp_samples[0]["t"], qmp_samples[-1]["t"]
        times = [first + i * SAMPLE_INTERVAL for i in
                 range(int((last - first) / SAMPLE_INTERVAL) + 1)]
    out, i = [], 0
    for t in times:
        while i < len(changes) and changes[i][0] <= t:
            level = changes[i][2]
            i += 1
        out.append({"t": t, "latency": level})
    return out


def recorders(daemon, case):
    """The sink's two recorders (two_recorders()).  On PipeWire the second
    is pw-record: two parec through pipewire-pulse miss the same cycles
    when pipewire-pulse does.  PulseAudio has no client but its own, so
    there both are parec, and only a recorder's own losses (its pipe
    read late) are told apart."""
    return daemon.record(), daemon.record(native=on_pipewire(case["daemon"]))


def save_run(rundir, opts, pcms, console, pa_samples, qmp_samples):
    """@pcms: the two recorders' recordings (two_recorders())."""
    if opts.keep_audio:
        for name, pcm in zip(("monitor.raw", "monitor-twin.raw"), pcms):
            with open(os.path.join(rundir, name), "wb") as f:
                f.write(pcm)
    with open(os.path.join(rundir, "console.log"), "w") as f:
        f.write("\n".join(console.lines) + "\n")
    with open(os.path.join(rundir, "samples.json"), "w") as f:
        json.dump({"marks": console.marks, "pactl": pa_samples,
                   "qmp": qmp_samples}, f)


def guest_append(case, seconds):
    """The guest's bench.* parameters (bench/guest/init) for @case."""
    period, buffer = SETTINGS[case["setting"]]
    return (f"bench.period={period} bench.buffer={buffer} "
            f"bench.seconds={seconds}")


def run_case(case, opts, rundir):
    """Boot the guest once for @case and return everything measured."""
    if case["binary"] in NATIVE_BUILDS:
        return run_native_case(case, opts, rundir)
    tmp = tempfile.mkdtemp(prefix="qva-bench-")
    qmp_path = os.path.join(tmp, "qmp.sock")
    probe_path = os.path.join(tmp, "probe.sock")
    pidfile = os.path.join(tmp, "qemu.pid")
    append = guest_append(case, opts.seconds)
    result = {"case": case, "append": append}
    view = None
    try:
        with conditions(case, opts) as (daemon, dist):
            # --trace takes -trace and -D for itself: QMP then stands in.
            in_force_traced = bool(dist and case["qmp_streams"] and
                                   not opts.trace)
            if case["backend"] == "pipewire":
                audiodev = f"pipewire,id=snd0{case['opts']}"
                qemu_env = pw_env(daemon)
            else:
                audiodev = (f"pa,id=snd0,server=unix:{daemon.socket}"
                            f"{case['opts']}")
                qemu_env = {"PULSE_COOKIE": daemon.cookie}
            result["env"] = qemu_env
            # -no-shutdown: the guest's power-off pauses QEMU instead of
            # ending it, so its CPU time and the fork's stream counters
            # can still be read.
            cmd = [RUN_GUEST, case["binary"], GUEST, "-audiodev", audiodev,
                   "-qmp", f"unix:{qmp_path},server=on,wait=off",
                   "-qmp", f"unix:{probe_path},server=on,wait=off",
                   "-pidfile", pidfile, "-no-shutdown"]
            if opts.trace:
                for pattern in opts.trace.split(","):
                    cmd += ["-trace", pattern]
                cmd += ["-msg", "timestamp=on",
                        "-D", os.path.join(rundir, "qemu-trace.log")]
            elif in_force_traced:
                cmd += ["-trace", "pa_latency", "-msg", "timestamp=on",
                        "-D", os.path.join(rundir, IN_FORCE_LOG)]
            env = dict(os.environ, BENCH_APPEND=append,
                       BENCH_CARD=case["card"], **qemu_env)
            if on_pipewire(case["daemon"]):
                view = PipeWireView(daemon, rundir, opts.seconds)
            rec, twin = recorders(daemon, case)
            t0 = time.monotonic()
            with open(os.path.join(rundir, "qemu-stderr.log"), "w") as err:
                proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=err,
                                        text=True, errors="replace")
            pid_box = []
            console = Console(proc.stdout, lambda: pid_box[0] if pid_box
                              else None)
            probe = latency.DmaProbe(probe_path, case["card"])
            pid = wait_for_file(pidfile, proc)
            if pid:
                pid_box.append(pid)
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().decode().split("\0")[:-1]
                result["cmdline"] = shlex.join(argv)
            wall_offset = time.time() - time.monotonic()
            pa_samples, qmp_samples, qmp = sample_until_done(
                case, daemon, console, proc, qmp_path, dist, view)
            probe.stop()
            result["pw"] = view and view.join()
            final = {}
            if pid:
                final = finish_qemu(proc, qmp, qmp_path, pid, case)
            else:
                proc.wait()     # QEMU never started: run-guest.sh says why
            console.thread.join(10)
            result["run_s"] = time.monotonic() - t0
            result["exit"] = proc.returncode
            pcm, twin_pcm = rec.stop(), twin.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    save_run(rundir, opts, (pcm, twin_pcm), console, pa_samples,
             qmp_samples)
    # A pipewire backend's stream is no PulseAudio stream: pipewire-pulse
    # lists it as a sink input with a buffer and sink latency of 0, which
    # is not a measurement.  Its format there is right.
    pa_view = case["backend"] == "pa"
    result.update(summarise(console, pa_samples, qmp_samples, final, pcm,
                            pa_view))
    result["signal"] = two_recorders(result["signal"],
                                     analyse_signal(twin_pcm))
    result["sink"] = sink_side(rundir, ((pcm, rec.stamps),
                                        (twin_pcm, twin.stamps)),
                               probe.samples, opts, result, probe.errors)
    if in_force_traced:
        qmp_samples = in_force_from_trace(
            os.path.join(rundir, IN_FORCE_LOG), pa_samples, qmp_samples,
            wall_offset)
    disturbed(result, dist, console, pa_samples if pa_view else [],
              qmp_samples)
    return result


def floor_reads(lines, tag):
    """latency.floor_reads() for either native floor: pw-floor's
    "PW-FLOOR-T NS FRAME" means what pa-floor's "PA-FLOOR-T" does."""
    head = f"{tag}-T "
    return latency.floor_reads(["PA-FLOOR-T " + line[len(head):]
                                for line in lines if line.startswith(head)])


@contextlib.contextmanager
def guest_beside(case, opts, rundir):
    """With a card in @case, the guest on stock QEMU playing the signal
    into -audiodev none, from its first sound until the block ends: what
    a native client shares the host with in the -guest configs.  It stays
    in the bench's session, as QEMU does in the guest configs: with the
    kernel's autogroups a session of its own would have its own share of
    the CPU and leave the native client's to it alone."""
    if not case["card"]:
        yield
        return
    # Longer than the native client's playback, which starts later.
    append = guest_append(case, opts.seconds + 15)
    tmp = tempfile.mkdtemp(prefix="qva-bench-")
    pidfile = os.path.join(tmp, "qemu.pid")
    with open(os.path.join(rundir, "guest-beside.log"), "w") as out:
        proc = subprocess.Popen([RUN_GUEST, STOCK, GUEST, "-audiodev",
                                 "none,id=snd0", "-pidfile", pidfile],
                                env=dict(os.environ, BENCH_APPEND=append,
                                         BENCH_CARD=case["card"]),
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=out,
                                text=True, errors="replace")
    try:
        console = Console(proc.stdout, lambda: None)
        while "BENCH-START" not in console.marks:
            if proc.poll() is not None:
                raise RuntimeError("the guest beside ended before playing: "
                                   f"{rundir}/guest-beside.log")
            time.sleep(0.05)
        yield
        if "BENCH-APLAY-EXIT" in console.marks:
            log(f"{case['config']}: the guest beside stopped playing first")
    finally:
        pid = wait_for_file(pidfile, proc, timeout=1)
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def run_native_case(case, opts, rundir):
    """Play the signal with pa-floor (or pw-floor) instead of a guest,
    under the same conditions, and measure it the same way."""
    pw = case["binary"] == NATIVE_PW
    tag = "PW-FLOOR" if pw else "PA-FLOOR"
    result = {"case": case, "append": "(no guest)" if not case["card"]
              else "(beside a guest on stock QEMU, -audiodev none)"}
    view = None
    with conditions(case, opts) as (daemon, dist), \
            guest_beside(case, opts, rundir):
        if pw:
            # As upstream's backend in QEMU: root, straight to the
            # daemon's socket.
            env = pw_env(daemon)
            latency, *ring = case["opts"].split()
            cmd = [NATIVE_PW, latency, str(opts.seconds), *ring]
        else:
            env = {"PULSE_COOKIE": daemon.cookie}
            latency, *minreq = case["opts"].split()
            cmd = [NATIVE, f"unix:{daemon.socket}", latency,
                   str(opts.seconds), *minreq]
        result["env"] = env
        if on_pipewire(case["daemon"]):
            view = PipeWireView(daemon, rundir, opts.seconds)
        rec, twin = recorders(daemon, case)
        t0 = time.monotonic()
        with open(os.path.join(rundir, "qemu-stderr.log"), "w") as err:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=err,
                                    text=True, errors="replace",
                                    env=dict(os.environ, **env))
        result["cmdline"] = shlex.join(cmd)
        console = Console(proc.stdout, lambda: proc.pid,
                          start=f"{tag}-START", end=f"{tag}-END",
                          done=f"{tag}-END")
        pa_samples, _, _ = sample_until_done(case, daemon, console, proc,
                                             None, dist, view)
        proc.wait()
        result["pw"] = view and view.join()
        console.thread.join(10)
        result["run_s"] = time.monotonic() - t0
        result["exit"] = proc.returncode
        pcm, twin_pcm = rec.stop(), twin.stop()
    save_run(rundir, opts, (pcm, twin_pcm), console, pa_samples, [])
    # pw-floor's stream is no PulseAudio stream: as for upstream's
    # backend, pipewire-pulse's latencies of it are 0 (run_case()).
    result.update(summarise(console, pa_samples, [], {}, pcm, not pw))
    result["signal"] = two_recorders(result["signal"],
                                     analyse_signal(twin_pcm))
    result["sink"] = sink_side(rundir, ((pcm, rec.stamps),
                                        (twin_pcm, twin.stamps)),
                               floor_reads(console.lines, tag), opts,
                               result, 0)
    end = console.value(f"{tag}-END") or ""
    m = re.search(r"underruns=(\d+)", end)
    result["server_underruns"] = int(m.group(1)) if m else None
    m = re.search(r"quantum=(\d+-\d+)", end)
    result["client_quantum"] = m.group(1) if m else None
    m = re.search(r"short=(\d+)", end)
    result["short_cycles"] = int(m.group(1)) if m and case["opts"].split()[1:] \
        else None
    disturbed(result, dist, console, [] if pw else pa_samples, [])
    return result


def disturbed(result, dist, console, pa_samples, qmp_samples):
    """A disturbed run's timeline and recovery (bench/disturb.py)."""
    start = console.marks.get(console.start)
    sink = result.pop("read_to_sink", [])
    if not dist or dist.on is None or dist.off is None or start is None:
        return
    gaps = [(t, int(what.split()[1]) * 1000 / RATE)
            for t, what in result["signal"]["where"]
            if what.startswith("gap")]
    tl = disturb.timeline(start, pa_samples, qmp_samples, sink, gaps)
    result["timeline"] = tl
    result["disturb"] = disturb.summary(tl, dist.on - start,
                                        dist.off - start)


def summarise(console, pa_samples, qmp_samples, final, pcm, pa_view=True):
    """The numbers of one run from its raw observations; PulseAudio's
    latency only if @pa_view (the stream is a PulseAudio client's)."""
    out = {"error": console.value("BENCH-ERROR")}
    xruns = console.value("BENCH-UNDERRUNS")
    out["guest_underruns"] = int(xruns) if xruns else None
    out["guest_elapsed"] = console.value("BENCH-ELAPSED")
    # Latency while the guest plays: between aplay's start and exit, and
    # only while the stream is uncorked.
    start = console.marks.get(console.start, float("inf"))
    end = console.marks.get(console.end, float("inf"))
    playing = [s for s in pa_samples
               if start <= s["t"] <= end and not s["corked"]]
    seen = playing if pa_view else []
    out["pa_latency"] = latency_stats(
        [s["buffer_us"] + s["sink_us"] for s in seen])
    out["pa_buffer"] = latency_stats([s["buffer_us"] for s in seen])
    out["pa_sink"] = latency_stats([s["sink_us"] for s in seen])
    out["stream_spec"] = playing[0]["spec"] if playing else None
    snaps = console.snaps
    if "start" in snaps and "end" in snaps:
        out["cpu_play"], out["host_busy"], out["host_steal"] = cpu_ratio(
            snaps["start"], snaps["end"])
        a, b = snaps["start"], snaps["end"]
        if b["t"] > a["t"]:
            out["wakeups_play"] = (b["wakeups"] - a["wakeups"]) / (
                b["t"] - a["t"])
            if b.get("vcpu"):
                out["cpu_play_rest"] = (
                    b["qemu_cpu"] - a["qemu_cpu"] -
                    (b["vcpu"] - a["vcpu"])) / (b["t"] - a["t"])
    if final.get("wall_s"):
        out["cpu_whole"] = final["cpu_s"] / final["wall_s"]
    if final.get("qmp") is not None:
        q = final["qmp"]
        measured = [s["measured-latency"] for s in qmp_samples
                    if start <= s["t"] <= end and "measured-latency" in s]
        out["qmp"] = {k: q.get(k) for k in (
            "configured-latency", "latency", "max-latency", "underruns",
            "overruns", "adjustments", "tlength", "minreq", "lost",
            "drops")}
        # The fork reports 0 for a while after the stream starts (a
        # negative libpulse latency, clamped): count those apart.
        out["qmp"]["measured"] = latency_stats([v for v in measured if v])
        out["qmp"]["measured_zero"] = sum(1 for v in measured if not v)
        out["qmp"]["measured_n"] = len(measured)
    out["signal"] = analyse_signal(pcm)
    return out


def sink_side(rundir, recordings, reads, opts, result, probe_errors):
    """What reached the sink, and how late: the frame counter of the
    signal against the source's reads of it (bench/latency.py).
    @recordings: each recorder's (recording, stamps).  All is the first
    recorder's but what was kept: a frame one recorder missed by itself
    the sink still played (two_recorders()), so that is the better
    recorder's."""
    exact = "48000Hz" in (result.get("stream_spec") or "")
    played = opts.seconds * RATE
    runs = [latency.unwrap(pcm, played, 0 if exact else 4)
            for pcm, _ in recordings]
    offsets, numbers, out = runs[0]
    stamps = recordings[0][1]
    kept_each = [stats["kept"] for _, _, stats in runs]
    out.update(exact=exact, reads=len(reads), probe_errors=probe_errors,
               kept=max(kept_each), kept_each=kept_each,
               kept_by=kept_each.index(max(kept_each)) + 1)
    if not numbers:
        return out
    with open(os.path.join(rundir, "sink.json"), "w") as f:
        json.dump({"stamps": stamps, "reads": reads}, f)
    clock = latency.SinkClock(stamps)
    if reads:
        noise = clock.noise(reads[0][0], reads[-1][0])
        out["chunk_delay_ms"] = None if noise is None else noise * 1000
    # The monitor has a frame once the sink rendered it; PulseAudio's
    # sink latency is the time from there until it plays.
    timed = latency.timed_latencies(reads, offsets, numbers, clock)
    to_render = [v * 1e6 for _, v in timed]
    out["render"] = latency_stats(to_render)
    sink = result["pa_sink"].get("median")
    buf = result["pa_buffer"].get("median")
    if sink is None and (result.get("pw") or {}).get(
            "sink_latency_us") is not None:
        # No PulseAudio stream (upstream's pipewire backend): the sink's
        # own latency, as pipewire-pulse reports it for the null sink.
        sink = result["pw"]["sink_latency_us"] / 1000
    if out["render"].get("median") is not None and sink is not None:
        out["absolute"] = latency_stats([v + sink * 1000
                                         for v in to_render])
        if buf is not None:
            out["hidden_ms"] = out["render"]["median"] - buf
    # Over time, for the disturbance's timeline (not kept otherwise).
    result["read_to_sink"] = [(t, v * 1000 + (sink or 0)) for t, v in timed]
    return out


# --- output ---------------------------------------------------------------

def fmt(v, digits=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def pct(v, digits=0):
    return "–" if v is None else f"{100 * v:.{digits}f}"


def result_row(r):
    c, lat, sig = r["case"], r["pa_latency"], r["signal"]
    period, buffer = SETTINGS[c["setting"]]
    note = "ERROR " + r["error"] if r.get("error") else ""
    if r.get("client_quantum"):
        # pw-floor's: cycles the graph ran without it, by its clock.
        note += (f"{r['server_underruns']} cycles missed, quantum "
                 f"{r['client_quantum']}, seen by pw-floor")
        if r.get("short_cycles") is not None:
            note += f"; {r['short_cycles']} cycles found the ring short"
    elif r.get("server_underruns") is not None:
        note += f"{r['server_underruns']} underruns reported by the server"
    if r.get("exit"):
        note += f" exit {r['exit']}"
    return (f"| {period}/{buffer} | {c['config']} | {c['load']} | "
            f"{fmt(lat.get('median'))} | {fmt(lat.get('p95'))} | "
            f"{fmt(lat.get('p99'))} | {fmt(lat.get('max'))} | "
            f"{sig['gaps']} | {sig['late_gaps']} | "
            f"{'/'.join(map(str, sig.get('one_recorder') or '–'))} | "
            f"{fmt(sig['gap_ms'])} | {sig['breaks']} | "
            f"{fmt(sig['signal_s'], 2)} | {fmt(r.get('guest_underruns'))} | "
            f"{pct(r.get('cpu_play'))} | {pct(r.get('cpu_play_rest'), 1)} | "
            f"{fmt(r.get('wakeups_play'), 0)} | "
            f"{pct(r.get('cpu_whole'))} | "
            f"{pct(r.get('host_busy'))} | {pct(r.get('host_steal'))} | "
            f"{note.strip()} |")


SINK_NOTE = (
    "kept: the share of the frames the source played (seconds × 48000) "
    "that reached the sink, by the counter in the signal's right channel, "
    "in the recording of the recorder that kept more ((2): the second "
    "recorder's; the rest of the row is always the first's); "
    "lost: frames skipped, repeated: jumps back (a resampled stream, "
    "stock's 44.1 kHz, is read within ±4 frames); head/tail: frames "
    "missing before the first and after the last that arrived.  read → "
    "sink: from the guest's DMA reading a frame (polled through HMP every "
    "50 ms: the card's position, then the frame there in guest memory) "
    "or pa-floor handing it to libpulse, to the sink playing it (its "
    "monitor's timeline plus PulseAudio's sink latency).  hidden: that "
    "median minus PulseAudio's view (buffer + sink latency): what the "
    "source holds before PulseAudio sees it; the native client's is the "
    "measurement's own error.  chunk delay: the recorder's median lateness "
    "behind its least late chunk (the timeline's noise).")

PW_NOTE = (
    "One look per run, a quarter into the playback: the stream's node in "
    "`pw-dump` (its node.latency request, its format, the node it is "
    "linked to) and, from `pw-profiler` over one second, the quantum the "
    "graph ran at while the node took part (frames at the graph's rate; "
    "pw-top's QUANT), with the cycles it was seen in.  Files: "
    "pw-dump.json, pw-profiler.log in the run's directory.")

TABLE_HEAD = (
    "| period/buffer | config | load | PA lat median ms | p95 | p99 | max | "
    f"gaps | gaps after {SETTLED_S} s | one recorder's | gap ms | breaks | "
    "signal s | guest xruns | CPU % play | besides vCPU | wake-ups/s play | "
    "CPU % whole | host busy % | steal % | notes |\n"
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    "---:|---:|---:|---:|---:|---:|---|")


def run_table(results, key, head, row):
    """A table of one row per run that has @key: the Markdown lines of
    @head, then row(r[key], its case, the case's "period/buffer") each;
    "" if no run has it."""
    rows = [r for r in results if r.get(key)]
    if not rows:
        return ""
    out = list(head)
    for r in rows:
        c = r["case"]
        out.append(row(r[key], c, "%d/%d" % SETTINGS[c["setting"]]))
    return "\n".join(out)


def qmp_table(results):
    def row(q, c, pb):
        ms = (lambda v: None if v is None else v / 1000)
        return (f"| {pb} | {c['config']} | {c['load']} | "
                f"{fmt(ms(q['configured-latency']))} | "
                f"{fmt(ms(q['latency']))} | "
                f"{fmt(q['measured'].get('median'))} | "
                f"{fmt(q['measured'].get('max'))} | "
                f"{q['measured_zero']}/{q['measured_n']} | "
                f"{q['underruns']} | {q['adjustments']} | "
                f"{fmt(q['tlength'])} | {fmt(q['minreq'])} | "
                f"{fmt(q.get('lost'))} | {fmt(q.get('drops'))} |")
    return run_table(results, "qmp", [
        "| period/buffer | config | load | configured ms | in force ms | "
        "measured median ms | measured max ms | measured 0 | underruns |"
        " adjustments | tlength B | minreq B | dropped B | drops |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        "---:|"], row)


def sink_table(results):
    """Per run: the share of the source's frames that reached the sink,
    and the latency from its read (a guest's DMA, pa-floor's write) to
    the sink (bench/latency.py)."""
    def row(k, c, pb):
        a = k.get("absolute", {})
        kept = k.get("kept")
        second = " (2)" if k.get("kept_by") == 2 else ""
        return (f"| {pb} | {c['config']} | {c['load']} | "
                f"{'–' if kept is None else f'{100 * kept:.3f}'}{second} | "
                f"{fmt(k.get('lost'))}{'' if k.get('exact') else ' (±4)'} | "
                f"{fmt(k.get('repeated'))} | "
                f"{fmt(k.get('head'))}/{fmt(k.get('tail'))} | "
                f"{fmt(a.get('median'))} | {fmt(a.get('p95'))} | "
                f"{fmt(a.get('p99'))} | {fmt(k.get('hidden_ms'))} | "
                f"{k.get('reads')} | {fmt(k.get('chunk_delay_ms'))} |")
    return run_table(results, "sink", [
        "| period/buffer | config | load | kept % | lost | repeated | "
        "head/tail missing | read → sink median ms | p95 | p99 | "
        "hidden ms | reads | chunk delay ms |",
        "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"], row)


def ratio(fork, stock, get):
    """get(fork) / get(stock), formatted; '–' if either is missing."""
    a, b = get(fork), get(stock)
    return fmt(None if a is None or not b else a / b, 2)


DAEMONS_NOTE = (
    "A run of several daemons (--daemon a,b) plays each config on each, "
    "one after the other under the same load: read → sink from the guest's "
    "DMA read (or the native client's write) to the sink, as in the table "
    "above, and each daemon's median less the first daemon's.")


def case_base(c):
    """The config's own name, without the daemon a run of several adds."""
    return c.get("base", c["config"])


def by_config(results):
    """The results by setting, load, daemon and config."""
    return {(r["case"]["setting"], r["case"]["load"],
             r["case"].get("daemon", ""), case_base(r["case"])): r
            for r in results}


def daemons_table(results):
    """Each config that ran on several daemons in this run: its read →
    sink median on each, and how far each is from the first daemon's."""
    by = by_config(results)
    out = ["| period/buffer | load | config | daemon | read → sink median ms "
           "| p95 | gaps | kept % | − first daemon's median, ms |",
           "|---|---|---|---|---:|---:|---:|---:|---:|"]
    daemons = list(dict.fromkeys(d for _, _, d, _ in by))
    seen = set()
    for setting, load, _, base in by:
        if (setting, load, base) in seen:
            continue
        seen.add((setting, load, base))
        runs = [(d, by[(setting, load, d, base)]) for d in daemons
                if (setting, load, d, base) in by]
        if len(runs) < 2:
            continue
        period, buffer = SETTINGS[setting]
        first = runs[0][1].get("sink", {}).get("absolute", {}).get("median")
        for d, r in runs:
            sink = r.get("sink", {})
            ab = sink.get("absolute", {})
            med, kept = ab.get("median"), sink.get("kept")
            off = None if med is None or first is None else med - first
            out.append(
                f"| {period}/{buffer} | {load} | {base} | {d} | "
                f"{fmt(med, 1)} | {fmt(ab.get('p95'), 1)} | "
                f"{fmt(r.get('signal', {}).get('gaps'))} | "
                f"{fmt(None if kept is None else 100 * kept, 3)} | "
                f"{fmt(off, 1)} |")
    return "\n".join(out) if len(out) > 2 else ""


def ratio_table(results):
    """Each fork config vs its partners in RATIO_PAIRS (stock, the other
    backend, the native floor), per setting and load."""
    by = by_config(results)
    # read → sink too: PulseAudio's view is missing for upstream's
    # pipewire backend, and pipewire-pulse reports 0 for every stream.
    out = ["| period/buffer | load | fork | vs | median latency fork/other | "
           "read → sink fork/other | "
           "CPU play fork/other | besides vCPU | "
           "wake-ups play fork/other | CPU whole fork/other |",
           "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for (setting, load, daemon, base), fork in by.items():
        config = fork["case"]["config"]
        for stock_base in RATIO_PAIRS.get(base, ()):
            stock = by.get((setting, load, daemon, stock_base))
            if not stock:
                continue
            stock_cfg = stock["case"]["config"]
            period, buffer = SETTINGS[setting]
            lat = ratio(fork, stock, lambda r: r["pa_latency"].get("median"))
            sink = ratio(fork, stock, lambda r: r.get("sink", {}).get(
                "absolute", {}).get("median"))
            play = ratio(fork, stock, lambda r: r.get("cpu_play"))
            rest = ratio(fork, stock, lambda r: r.get("cpu_play_rest"))
            wake = ratio(fork, stock, lambda r: r.get("wakeups_play"))
            whole = ratio(fork, stock, lambda r: r.get("cpu_whole"))
            out.append(f"| {period}/{buffer} | {load} | {config} | "
                       f"{stock_cfg} | {lat} | {sink} | "
                       f"{play} | {rest} | {wake} | {whole} |")
    return "\n".join(out) if len(out) > 2 else ""


PRICE_NOTE = (
    "CPU while playing, in percentage points of one core: the fork's QEMU "
    "besides its vCPU threads minus stock's (fork-hda − stock-hda), beside "
    "pa-floor at the fork's 5 ms requests minus pa-floor at stock's "
    "(native-5ms-guest − native-stock-guest), both in the same run.  The "
    "native pair is what moving the same signal at 5 ms instead of stock's "
    "latency costs any PulseAudio client on this host; a ratio below 1 "
    "means the fork pays less than that for it.")

# What 5 ms costs over stock's latency: QEMU's sound path (besides the
# vCPU) in the fork against stock, and a native client at the fork's
# requests against one at stock's, in the same run.
PRICE_PAIRS = (("fork-hda", "stock-hda"),
               ("native-5ms-guest", "native-stock-guest"))


def price_table(results):
    """Percentage points of a core each low-latency source pays over its
    stock-latency partner, per setting and load; the fork's besides its
    vCPU (a native client has none)."""
    by = by_config(results)
    out = ["| period/buffer | load | fork − stock, % of a core | "
           "native 5 ms − native stock, % of a core | fork's / native's |",
           "|---|---|---:|---:|---:|"]
    keys = sorted({(s, ld, d) for s, ld, d, _ in by})
    for setting, load, daemon in keys:
        cost = []
        for low, high in PRICE_PAIRS:
            a = by.get((setting, load, daemon, low))
            b = by.get((setting, load, daemon, high))
            get = (lambda r: r.get("cpu_play_rest")) if low == "fork-hda" \
                else (lambda r: r.get("cpu_play"))
            cost.append(None if not a or not b or get(a) is None or
                        get(b) is None else get(a) - get(b))
        if None in cost:
            continue
        period, buffer = SETTINGS[setting]
        share = ("fork ≤ stock" if cost[0] <= 0 else
                 fmt(cost[0] / cost[1] if cost[1] > 0 else None, 2))
        out.append(f"| {period}/{buffer} | {load} | {pct(cost[0], 1)} | "
                   f"{pct(cost[1], 1)} | {share} |")
    return "\n".join(out) if len(out) > 2 else ""


def pw_table(results):
    """PipeWire's view of each run's stream (PipeWireView)."""
    def row(v, c, pb):
        if v.get("error"):
            return (f"| {pb} | {c['config']} | {c['load']} | "
                    f"{v['error']} | | | | | | |")
        q = v.get("quantum")
        return (f"| {pb} | {c['config']} | {c['load']} | "
                f"{fmt(v.get('name'))} | {fmt(v.get('node_latency'))} | "
                f"{fmt(v.get('format'))} | "
                f"{', '.join(v.get('linked_to') or []) or '–'} | "
                f"{fmt(q)} | "
                f"{fmt(None if q is None else q * 1000 / v['rate'], 2)} | "
                f"{fmt(v.get('cycles'))} |")
    return run_table(results, "pw", [
        "| period/buffer | config | load | node | node.latency asked | "
        "format | linked to | graph quantum | quantum ms | cycles |",
        "|---|---|---|---|---|---|---|---:|---:|---:|"], row)


def command_lines(results):
    """One exact QEMU command line per config (the socket and temporary
    paths differ between runs, nothing else does)."""
    seen, out = set(), []
    for r in results:
        cfg = r["case"]["config"]
        if cfg in seen or not r.get("cmdline"):
            continue
        seen.add(cfg)
        env = " ".join(f"{k}={v}" for k, v in (r.get("env") or {}).items())
        out.append(f"- {cfg} (guest: `{r['append']}` in -append):\n\n"
                   f"  ```\n  {env} {r['cmdline']}\n  ```")
    return "\n".join(out)


def stderr_notes(rundirs):
    """Distinct QEMU stderr lines per config, so warnings are not lost."""
    out = []
    for cfg, dirs in rundirs.items():
        lines = {}
        for d in dirs:
            with open(os.path.join(d, "qemu-stderr.log"),
                      errors="replace") as f:
                for line in f:
                    line = re.sub(r"\d+", "N", line.strip())
                    lines[line] = lines.get(line, 0) + 1
        for line, n in list(lines.items())[:6]:
            out.append(f"- {cfg}: `{line}` ({n}×)")
    return "\n".join(out) or "- (none)"


def disturbance_words(results):
    """What disturbed the runs in @results, in a few words."""
    loads = sorted({r["case"]["load"] for r in results if r.get("disturb")})
    return " / ".join(
        f"the sound server stopped {STALL_S * 1000:.0f} ms every "
        f"{STALL_EVERY_S * 1000:.0f} ms" if load == "stalls" else
        "both cores loaded" for load in loads)


def disturb_section(results, plot):
    """The disturbed runs: recovery table, and the plot beside it."""
    rows = [(r["case"]["config"], r["disturb"]) for r in results
            if r.get("disturb")]
    if not rows:
        return []
    return [f"## Disturbance: {disturbance_words(results)} from "
            f"{disturb.ON_AT:.0%} to {disturb.ON_AT + disturb.LASTS:.0%} "
            "of the run", "",
            "in force: the fork's latency target (its pa_latency trace "
            "events, read every 0.1 s, so that no QMP query costs the "
            "fork CPU stock is not charged); PA "
            "view: buffer + sink latency (pactl, every 0.1 s), and read → "
            "sink: the frame counter's (the DMA probe's reads, every "
            "50 ms), both judged on their "
            f"{disturb.SMOOTH_S:.0f} s running median; before: the median "
            f"over the {disturb.BEFORE_S:.0f} s before the load; back after: "
            "seconds from the load's end until the latency is first back "
            f"within {disturb.WITHIN_MS:.0f} ms of before (– never); gaps: "
            "silent gaps at the sink, by when they came.", "", disturb.table(rows), "",
            f"![latency over time]({os.path.basename(plot)})", ""]


def render(results, info, opts, started, finished, rundirs, plot=None):
    main = [r for r in results if not r["case"]["extra"]]
    extra = [r for r in results if r["case"]["extra"]]
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(started))
    against = (" (against stock 10.0)" if info.get("props_against_stock10")
               else "")
    lines = [
        f"# Audio benchmark {when}",
        "",
        f"`bench/run-bench.py {' '.join(opts.argv)}` — {len(results)} runs "
        f"of {opts.seconds} s of audio each, total "
        f"{(finished - started) / 60:.1f} min.  Columns: bench/README.md.",
        "",
        "## Machine",
        "",
        f"- nproc: {info['nproc']}; CPU: {info['cpu']}",
        f"- kernel: {info['kernel']}",
        f"- PulseAudio: {info['pulseaudio']}; PipeWire: {info['pipewire']} "
        "(null sink, 48 kHz s16le "
        "stereo, as a throwaway user; " +
        "; ".join((f"{d}: " if len(opts.daemons) > 1 else "") +
                  DAEMON_PRIORITY[d] for d in opts.daemons) + ")",
        *([f"- daemons: each of {', '.join(opts.daemons)} in turn, a "
           "fresh one per run; a config's name says which (config@daemon)"]
          if len(opts.daemons) > 1 else []),
        f"- stock: `{STOCK}`: {info['stock']}",
        *([f"- stock 10.0: `{opts.stock10}`: {info['stock10']}" + (
            " (unpacked, not installed, from Debian's packages "
            f"{', '.join(info['stock10_packages'])})"
            if info["stock10_packages"] else "")]
          if info.get("stock10") else []),
        f"- fork: `{opts.fork}`: {info['fork']}" + (
            "" if opts.no_snapshot or info["fork_sha256"] == "–" else
            " (run from a copy taken at the start, path below)") +
        f"; sha256 {info['fork_sha256'][:16]}",
        f"- AC97 properties only the fork has{against}: " + (
            ", ".join(f"`{p}`" for p in info["ac97_fork_only"]) or "none"),
        f"- HDA codec properties only the fork has{against}: " + (
            ", ".join(f"`{p}`" for p in info["hda_fork_only"]) or "none"),
        f"- load: `stress-ng --cpu {info['nproc']}` ({info['stress-ng']}) "
        "at normal priority, from before QEMU starts until it has quit",
        *([f"- stalls: the sound server's process ({SERVER_NAMES}) "
           f"stopped (SIGSTOP) for {STALL_S * 1000:.0f} ms every "
           f"{STALL_EVERY_S * 1000:.0f} ms from "
           f"{disturb.ON_AT:.0%} to {disturb.ON_AT + disturb.LASTS:.0%} "
           "of the run"]
          if any(r["case"]["load"] == "stalls" for r in results) else []),
        "- guest: TCG, q35, aplay to hw:0,0, 1 kHz sawtooth beside a frame "
        "counter (bench/guest/signal.awk); the card: "
        + "; ".join(f"{k}: {v}" for k, v in CARDS.items()) + " (configs "
        "named -hda play through HDA, the others through AC97)",
        *(["- configs named -pw-: upstream's PipeWire backend "
           "(`-audiodev pipewire,id=snd0`, its defaults), straight to the "
           "pipewire daemon (PIPEWIRE_RUNTIME_DIR set to its runtime "
           "directory), not through pipewire-pulse; PulseAudio's latency "
           "view does not apply to them"]
          if any(r["case"].get("backend") == "pipewire" and
                 r["case"]["binary"] != NATIVE_PW for r in results)
          else []),
        "- native-5ms, native-10ms: no guest and no QEMU: `bench/native/"
        "pa-floor.c` plays the same signal with the fork's requests at "
        "that latency (tlength = prebuf = latency - 1 ms, minreq "
        "1 ms, early requests), writing what the server asks for as it "
        "asks, at normal priority: the floor for any client at that "
        "latency on this machine",
        *(["- native-5ms-guest: pa-floor at 5 ms as native-5ms, while "
           "the guest on stock QEMU plays the same signal through HDA "
           "into `-audiodev none` (from the guest's first sound until "
           "pa-floor has ended): the floor with a TCG vCPU as busy as "
           "every guest config's on the same host"]
          if any(case_base(r["case"]) == "native-5ms-guest"
                 for r in results)
          else []),
        *(["- native-stock-guest: pa-floor as native-5ms-guest, but with "
           "the requests of Debian's 7.2 at its defaults (tlength 46.44 ms, "
           "minreq 7.5 ms, the server's prebuf, early requests): what a "
           "client pays at stock's latency"]
          if any(case_base(r["case"]) == "native-stock-guest"
                 for r in results) else []),
        *(["- native-pw-5ms, native-pw-10ms: no guest and no QEMU: "
           "`bench/native/pw-floor.c` plays the same signal as a pw_stream "
           "straight to the pipewire daemon (as root, like -audiodev "
           "pipewire), node.latency = that latency in frames, filling "
           "in the graph's real-time thread exactly what each cycle "
           "requests: the floor for a native PipeWire client; its stamps "
           "are when it queued a buffer"]
          if any(r["case"]["binary"] == NATIVE_PW for r in results)
          else []),
        "",
        "## Results",
        "",
        TABLE_HEAD,
        *[result_row(r) for r in main],
        "",
    ]
    sink = sink_table(main)
    if sink:
        lines += ["## At the sink: what arrived, and when (frame counter)",
                  "", SINK_NOTE, "", sink, ""]
    pw = pw_table(main)
    if pw:
        lines += ["## PipeWire's view of the stream", "", PW_NOTE, "", pw,
                  ""]
    across = daemons_table(main)
    if across:
        lines += ["## The same config on each daemon", "", DAEMONS_NOTE, "",
                  across, ""]
    ratios = ratio_table(main)
    if ratios:
        lines += ["## Fork default vs stock and the native floor", "",
                  ratios, ""]
    price = price_table(main)
    if price:
        lines += ["## What the low latency costs in CPU", "", PRICE_NOTE, "",
                  price, ""]
    lines += disturb_section(main, plot)
    qt = qmp_table(main)
    if qt:
        lines += ["## The fork's own view (QMP query-audio-streams at the "
                  "end of the run; measured = sampled during playback)",
                  "", qt, ""]
    if extra:
        lines += ["## Optional: extra fork variants", "", TABLE_HEAD,
                  *[result_row(r) for r in extra], "", qmp_table(extra), ""]
    specs = sorted({(r["case"]["config"], r.get("stream_spec") or "?")
                    for r in results})
    lines += [
        "## Stream formats PulseAudio saw",
        "",
        *[f"- {cfg}: {spec}" for cfg, spec in specs],
        "",
        "## Command lines",
        "",
        command_lines(results),
        "",
        "## QEMU stderr (digits replaced by N)",
        "",
        stderr_notes(rundirs),
        "",
        "## Why these guest settings",
        "",
        "period 256 / buffer 1024 frames (5.3 / 21.3 ms) is the main case: "
        "a buffer a desktop player might use that is still more than twice "
        "stock QEMU's default 10 ms audio timer, so stock can keep it fed "
        "when idle and the comparison is about latency and glitches, not "
        "an outright failure.  period 128 / buffer 512 (10.7 ms) is the "
        "small-buffer case: about one stock timer tick of buffer.",
        "",
    ]
    return "\n".join(lines)


# --- main -----------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=60,
                   help="audio the guest plays per run (default 60)")
    p.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                   help=f"comma list of {', '.join(CONFIGS)} (default: "
                        "all but the stock10-* and *-pw-* ones)")
    p.add_argument("--loads", default=",".join(LOADS),
                   help="comma list of idle, load, disturb (both cores "
                        "loaded for the middle quarter of the run only; "
                        "with --seconds 60), stalls (the sound server "
                        f"stopped {STALL_S * 1000:.0f} ms every "
                        f"{STALL_EVERY_S * 1000:.0f} ms for that quarter "
                        "instead)")
    p.add_argument("--settings", default=",".join(SETTINGS),
                   help="comma list of main (256/1024), small (128/512)")
    p.add_argument("--fork-variant", action="append", default=[],
                   metavar="NAME=OPTS",
                   help="an extra fork run with ',OPTS' added to -audiodev,"
                        " e.g. fork-lat10=out.latency=10000 (repeatable;"
                        " reported in a separate section)")
    p.add_argument("--daemon", default="normal",
                   help="the sound server: PulseAudio at normal priority "
                        "(normal, the default) or with what rtkit grants on "
                        "a desktop (rtkit), or pipewire-pulse at normal "
                        "priority (pipewire) or with what rtkit grants "
                        "(pipewire-rtkit); a comma list runs every config "
                        "on each in turn, in the same run (a config only "
                        "PipeWire can play runs on its daemons alone)")
    p.add_argument("--trace", metavar="PATTERN",
                   help="QEMU trace events to record in every guest run "
                        "(-trace PATTERN; a comma list for several), into "
                        "qemu-trace.log in the run's directory, e.g. "
                        "'pa_underrun,pa_latency' or 'audio_pacing_*'")
    p.add_argument("--output", help="Markdown file (default bench/results/"
                                    "RESULTS-<date>.md)")
    p.add_argument("--fork", default=FORK, metavar="BINARY",
                   help="the fork's binary (default build/qemu-system-x86_64"
                        "), e.g. a copy of an earlier build to compare with")
    p.add_argument("--stock10", default=STOCK10, metavar="BINARY",
                   help="Debian's QEMU 10.0 for the stock10-* configs "
                        "(default: fetched from bookworm-backports into "
                        "bench/out/stock-10.0/ on first use)")
    p.add_argument("--no-snapshot", action="store_true",
                   help="run build/qemu-system-x86_64 in place instead of "
                        "a copy taken at the start")
    p.add_argument("--keep-audio", action="store_true",
                   help="keep each run's monitor recording (raw s16le)")
    opts = p.parse_args(argv)
    opts.argv = argv
    opts.daemons = opts.daemon.split(",")
    for d in opts.daemons:
        if d not in DAEMON_PRIORITY:
            p.error(f"--daemon: unknown daemon {d!r}; it accepts "
                    f"{', '.join(sorted(DAEMON_PRIORITY))}, or a comma "
                    "list of them")
    return opts


def plan(opts):
    """The cases to run, in order: settings, then loads, then configs, so
    that the cases compared with each other run close together in time."""
    configs = {}
    for name in opts.configs.split(","):
        if name not in CONFIGS:
            sys.exit(f"run-bench: unknown config {name}")
        binary, backend, extra_opts, card = CONFIGS[name]
        if backend == "pipewire" and not any(map(on_pipewire,
                                                 opts.daemons)):
            how = ("plays straight to pipewire" if binary == NATIVE_PW
                   else "plays through -audiodev pipewire")
            sys.exit(f"run-bench: {name} {how} and needs --daemon "
                     "pipewire or pipewire-rtkit")
        configs[name] = {"binary": binary, "backend": backend,
                         "opts": extra_opts, "card": card, "extra": False}
    for v in opts.fork_variant:
        name, _, extra_opts = v.partition("=")
        configs[name] = {"binary": FORK, "backend": "pa",
                         "opts": "," + extra_opts,
                         "card": "hda" if "hda" in name else "ac97",
                         "extra": True}
    cases = []
    for setting in opts.settings.split(","):
        if setting not in SETTINGS:
            sys.exit(f"run-bench: unknown setting {setting}")
        for load in opts.loads.split(","):
            if load not in LOADS:
                sys.exit(f"run-bench: unknown load {load}")
            for daemon in opts.daemons:
                for name, c in configs.items():
                    if (c["backend"] == "pipewire" and
                            not on_pipewire(daemon)):
                        continue
                    # query-audio-streams is the fork's pa backend's own.
                    cases.append(dict(
                        c, base=name, daemon=daemon, setting=setting,
                        load=load,
                        config=(f"{name}@{daemon}" if len(opts.daemons) > 1
                                else name),
                        qmp_streams=c["binary"] == FORK and
                        c["backend"] == "pa"))
    return cases


def main():
    # Python runs no finally on SIGTERM: a bench stopped with kill would
    # leave its load spinning and its daemon playing, and void the next
    # measurement on this host (or a CI run).  As an exception, the
    # cleanup in conditions() and run_case() runs.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    opts = parse_args(sys.argv[1:])
    cases = plan(opts)
    stock10 = (opts.stock10 if any(c["binary"] == STOCK10 for c in cases)
               else None)
    binaries = {c["binary"] for c in cases}
    ensure_prerequisites(any(c["load"] != "idle" for c in cases),
                         any(c["load"] in DISTURBANCES for c in cases),
                         stock10, binaries)
    started = time.time()
    stamp = time.strftime("%Y-%m-%d", time.localtime(started))
    output = opts.output or os.path.join(HERE, "results",
                                         f"RESULTS-{stamp}.md")
    runs = os.path.join(TOP, "bench", "out", "runs",
                        time.strftime("%Y%m%d-%H%M%S"))
    fork = (None if FORK not in binaries else opts.fork if opts.no_snapshot
            else snapshot_fork(opts.fork, runs))
    for c in cases:
        if c["binary"] == FORK:
            c["binary"] = fork
        elif c["binary"] == STOCK10:
            c["binary"] = stock10
    info = machine_info(fork, stock10)
    log(f"{len(cases)} runs of {opts.seconds} s; raw data in {runs}")
    results, rundirs = [], {}
    for n, case in enumerate(cases, 1):
        name = f"{case['setting']}-{case['config']}-{case['load']}"
        rundir = os.path.join(runs, name)
        os.makedirs(rundir, exist_ok=True)
        rundirs.setdefault(case["config"], []).append(rundir)
        log(f"[{n}/{len(cases)}] {name} "
            f"({(time.time() - started) / 60:.1f} min so far)")
        r = run_case(case, opts, rundir)
        results.append(r)
        log("  " + result_row(r))
    finished = time.time()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    plot = os.path.splitext(output)[0] + "-disturb.png"
    runs_disturbed = [(r["case"]["config"], r["timeline"], r["disturb"])
                      for r in results if r.get("disturb")]
    if runs_disturbed:
        disturb.plot(runs_disturbed, plot,
                     f"{opts.daemon}: {disturbance_words(results)} for "
                     f"{opts.seconds * disturb.LASTS:.0f} s")
    text = render(results, info, opts, started, finished, rundirs, plot)
    with open(output, "w") as f:
        f.write(text)
    with open(os.path.splitext(output)[0] + ".json", "w") as f:
        json.dump({"machine": info, "results": results}, f, indent=1)
    print(text)
    log(f"wrote {output}")


if __name__ == "__main__":
    main()
