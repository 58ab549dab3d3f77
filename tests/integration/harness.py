"""Harness for the pa backend's integration tests.

Real pieces only: Debian's pulseaudio (or pipewire-pulse) daemons started
here on private sockets as throwaway users, the built QEMU binary, and an
AC97 driven through the qtest protocol while a TCG vCPU sits halted, so
the virtual clock (and with it the audio timer) runs in real time.
"""

import base64
import collections
import ctypes
import json
import os
import pwd
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))

RATE = 48000
FRAME = 4                       # s16le stereo


class Skip(Exception):
    """A test that cannot run here, with the reason."""


# --- users and daemons -------------------------------------------------------

def _wait_group(pgid, timeout):
    """Wait until no process of group @pgid is left (they need not be our
    children: a pidfd turns readable when its process exits)."""
    deadline = time.monotonic() + timeout
    for pid in os.listdir("/proc"):
        try:
            if not pid.isdigit() or os.getpgid(int(pid)) != pgid:
                continue
            fd = os.pidfd_open(int(pid))
        except (ProcessLookupError, PermissionError):
            continue
        try:
            if not select.select([fd], [], [],
                                 max(0, deadline - time.monotonic()))[0]:
                return False
        finally:
            os.close(fd)
    return True


def ensure_user(name, uid):
    """A local user with a home, created on first use (needs root)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise Skip("creating test users needs root")
    subprocess.run(["useradd", "--create-home", "--uid", str(uid),
                    "--user-group", "--shell", "/usr/sbin/nologin", name],
                   check=True)
    return pwd.getpwnam(name)


def run_dir(pw):
    return f"/run/user/{pw.pw_uid}"


def make_run_dir(pw):
    """/run/user/UID as logind makes it: 0700, owned by the user."""
    path = run_dir(pw)
    os.makedirs(path, exist_ok=True)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, 0o700)
    return path


def as_user(pw, env):
    """Command prefix and environment to run something as @pw."""
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
            "--init-groups", "--"], env


PW_NULL_SINK = """
context.objects = [
    { factory = adapter
      args = {
        factory.name   = support.null-audio-sink
        node.name      = "null"
        media.class    = "Audio/Sink"
        audio.position = [ FL FR ]
        audio.rate     = 48000
      }
    }
]
"""

PA_CONFIG = """
load-module module-native-protocol-unix
load-module module-null-sink sink_name=null rate=48000 format=s16le \
channels=2
set-default-sink null
"""


def _grant(pid, policy, prio):
    """rtkit's grant to process @pid: the real-time @policy at @prio for
    every thread but the main one, which gets nice -11."""
    for tid in map(int, os.listdir(f"/proc/{pid}/task")):
        if tid == pid:
            os.setpriority(os.PRIO_PROCESS, tid, -11)
        else:
            os.sched_setscheduler(tid, policy, os.sched_param(prio))


class PulseDaemon:
    """pulseaudio for @pw on /run/user/UID/pulse/native, with a null sink."""

    def __init__(self, pw, flavor="pulseaudio", realtime=False,
                 session_manager=True):
        self.pw = pw
        self.flavor = flavor
        self.realtime = realtime
        # pipewire without wireplumber accepts streams and never links
        # them: a server that never starts a stream.
        self.session_manager = session_manager
        self.proc = None
        self.pid = None
        self.runtime = make_run_dir(pw)
        self.socket = os.path.join(self.runtime, "pulse", "native")
        self.env = {"HOME": pw.pw_dir, "USER": pw.pw_name,
                    "XDG_RUNTIME_DIR": self.runtime,
                    "PATH": "/usr/bin:/bin"}
        self.config = os.path.join(tempfile.mkdtemp(prefix="pa-conf-"),
                                   "test.pa")
        with open(self.config, "w") as f:
            f.write(PA_CONFIG)
        os.chmod(os.path.dirname(self.config), 0o755)
        os.chmod(self.config, 0o644)

    @property
    def cookie(self):
        return os.path.join(self.pw.pw_dir, ".config", "pulse", "cookie")

    def start(self):
        if self.flavor == "pipewire":
            return self._start_pipewire()
        if not shutil.which("pulseaudio"):
            raise Skip("pulseaudio is not installed")
        prefix, env = as_user(self.pw, self.env)
        # --daemonize=yes returns once the daemon is ready to take clients.
        subprocess.run(prefix + ["pulseaudio", "-n", "-F", self.config,
                                 "--daemonize=yes", "--exit-idle-time=-1",
                                 "--log-target=syslog", "--use-pid-file=yes"],
                       env=env, check=True, cwd="/")
        with open(os.path.join(self.runtime, "pulse", "pid")) as f:
            self.pid = int(f.read())
        if self.realtime:
            self._grant_realtime()
        return self

    def _grant_realtime(self):
        """What rtkit grants a desktop user's daemon on request (the
        daemon's log says "Failed to acquire real-time scheduling" without
        it): SCHED_RR at priority 5 for its I/O threads, nice -11 for the
        main thread.  Done from outside, as rtkit does."""
        _grant(self.pid, os.SCHED_RR, 5)

    def _grant_realtime_pipewire(self):
        """What module-rt gets from rtkit on a desktop for pipewire and
        pipewire-pulse (their logs say "could not get system bus" without
        it): SCHED_FIFO at rtkit's ceiling, 20, for the data loop, the
        only thread besides the main one, and nice -11 for the main
        thread.  wireplumber plays no part in a cycle."""
        for comm in ("pipewire", "pipewire-pulse"):
            found = subprocess.run(["pgrep", "-x", "-g", str(self.proc.pid),
                                    comm], capture_output=True, text=True)
            pids = found.stdout.split()
            if len(pids) != 1:
                raise AssertionError(f"{comm}: {len(pids)} processes")
            _grant(int(pids[0]), os.SCHED_FIFO, 20)

    def _start_pipewire(self):
        """pipewire, wireplumber and pipewire-pulse on a private D-Bus
        session (wireplumber needs one), with a null sink of the same
        name as pulseaudio's."""
        for tool in ("pipewire", "pipewire-pulse", "wireplumber",
                     "dbus-run-session", "pw-link"):
            if not shutil.which(tool):
                raise Skip(f"{tool} is not installed (pipewire-pulse, "
                           "wireplumber, dbus)")
        conf = os.path.join(os.path.dirname(self.config), "pipewire",
                            "pipewire.conf.d")
        os.makedirs(conf, exist_ok=True)
        with open(os.path.join(conf, "null-sink.conf"), "w") as f:
            f.write(PW_NULL_SINK)
        for d, _, files in os.walk(os.path.dirname(self.config)):
            os.chmod(d, 0o755)
            for name in files:
                os.chmod(os.path.join(d, name), 0o644)
        env = dict(self.env, XDG_CONFIG_HOME=os.path.dirname(self.config))
        prefix, env = as_user(self.pw, env)
        # wireplumber and pipewire-pulse started before pipewire's socket
        # exists fail to connect ("Failed to connect to PipeWire"), and
        # then no stream is ever linked: they start once it is there.
        # A pulse client (QEMU reconnecting) whose streams come while
        # wireplumber 0.4.13 is still setting up can leave it unable to
        # activate the sink for good (it logs "pending linkable(s) not
        # activated"), and no client of the server gets an answer again:
        # pipewire-pulse starts once wireplumber has given the sink its
        # ports.
        wait_sm = ("wireplumber & n=0; "
                   "until pw-link -i 2>/dev/null | grep -q '^null:'; do "
                   "[ $n -lt 200 ] || break; sleep 0.05; n=$((n + 1)); "
                   "done; ")
        self.proc = subprocess.Popen(
            prefix + ["dbus-run-session", "--", "sh", "-c",
                      "pipewire & n=0; "
                      'while [ ! -S "$XDG_RUNTIME_DIR/pipewire-0" ] && '
                      "[ $n -lt 200 ]; do sleep 0.05; n=$((n + 1)); done; "
                      + (wait_sm if self.session_manager else "")
                      + "pipewire-pulse & wait"],
            env=env, cwd="/", stdout=self._log(),
            stderr=subprocess.STDOUT, start_new_session=True)
        # No readiness notification without systemd: ask until the sink
        # is there (bounded).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("pipewire exited at start" +
                                     self._log_tail())
            try:
                if "null" in self.pactl("list", "short", "sinks"):
                    self.pid = None
                    if self.realtime:
                        self._grant_realtime_pipewire()
                    if self.session_manager:
                        self._wait_streams_play(deadline)
                    return self
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.1)
        raise AssertionError("pipewire-pulse never offered the null sink" +
                             self._log_tail())

    def _wait_streams_play(self, deadline):
        """The sink is there before wireplumber links streams to it, and a
        stream is only created once linked: under load that can take
        seconds after the start.  Ready is when a short sound plays."""
        probe = os.path.join(os.path.dirname(self.config), "probe.wav")
        with wave.open(probe, "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(48000)
            w.writeframes(bytes(4 * 480))
        os.chmod(probe, 0o644)
        prefix, env = as_user(self.pw, self.env)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("pipewire-pulse never played a stream" +
                                     self._log_tail())
            # A stream that was never linked waits for good: ask again.
            try:
                subprocess.run(prefix + ["paplay", probe], env=env, cwd="/",
                               capture_output=True, check=True,
                               timeout=min(left, 3))
                return
            except subprocess.CalledProcessError:
                time.sleep(0.1)
            except subprocess.TimeoutExpired:
                pass

    def _log(self):
        """The daemons' output of this start, for a failure to quote."""
        self.log_path = os.path.join(os.path.dirname(self.config),
                                     "daemon.log")
        return open(self.log_path, "w")

    def _log_tail(self, lines=30):
        with open(self.log_path, errors="replace") as f:
            return "\n" + "".join(f.readlines()[-lines:])

    def kill(self):
        """Gone at once, as when the server crashes."""
        self._end(signal.SIGKILL)

    def terminate(self):
        """A clean exit, as when the user restarts the sound server
        (pulseaudio -k, systemctl --user restart)."""
        self._end(signal.SIGTERM)

    def _end(self, sig):
        if self.proc:
            os.killpg(self.proc.pid, sig)
            self.proc.wait()
            # dbus-run-session ends first, the daemons as they finish.
            if not _wait_group(self.proc.pid, 10):
                os.killpg(self.proc.pid, signal.SIGKILL)
                _wait_group(self.proc.pid, 5)
            self.proc = None
            for leftover in os.listdir(self.runtime):
                path = os.path.join(self.runtime, leftover)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
            return
        if self.pid is None:
            return              # ended already
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            fd = None
        if fd is not None:
            try:
                os.kill(self.pid, sig)
                # Not our child: its pidfd turns readable when it exits.
                if not select.select([fd], [], [], 10)[0]:
                    os.kill(self.pid, signal.SIGKILL)
                    select.select([fd], [], [], 5)
            except ProcessLookupError:
                pass
            finally:
                os.close(fd)
        self.pid = None
        for leftover in ("native", "pid"):
            try:
                os.unlink(os.path.join(self.runtime, "pulse", leftover))
            except FileNotFoundError:
                pass

    def stop(self):
        self.kill()

    def restart(self, how, away):
        """End the server by @how ("kill" or "terminate"), start it again
        @away seconds later; returns when the new one started."""
        getattr(self, how)()
        time.sleep(away)
        self.start()
        return time.monotonic()

    def hears_sound(self, timeout):
        """Sound reaches the sink within @timeout seconds from now."""
        rec = self.record()
        try:
            return rec.wait_for(sound_in, timeout)
        finally:
            rec.stop()

    def pactl(self, *args):
        prefix, env = as_user(self.pw, self.env)
        return subprocess.run(prefix + ["pactl"] + list(args), env=env,
                              cwd="/", capture_output=True, text=True,
                              check=True).stdout

    def sink_latency_us(self):
        """The null sink's latency now and the one PulseAudio configured
        it for, or None."""
        m = re.search(r"Latency: (\d+) usec, configured (\d+) usec",
                      self.pactl("list", "sinks"))
        return (int(m.group(1)), int(m.group(2))) if m else None

    def sink_configured_latency_us(self):
        """The latency PulseAudio configured the null sink for."""
        got = self.sink_latency_us()
        return got[1] if got else None

    def wait_sink_caught_up(self, timeout=5):
        """Until the null sink renders no further ahead than its streams
        asked.  Alone, it renders 2 s ahead; a stream that joins lowers
        the sink's latency, but the sink takes back (rewinds) no more of
        what it rendered than that new latency, so the stream's first
        sound waits out the rest of the 2 s (up to 1.8 s, seen here).
        That is module-null-sink's: an ALSA sink rewinds it all
        (alsa-sink.c, "Requesting rewind due to latency change").
        pipewire-pulse reports no such latency."""
        if self.flavor != "pulseaudio":
            return
        deadline = time.monotonic() + timeout
        while True:
            got = self.sink_latency_us()
            if got and got[0] <= got[1] + 1000:
                return
            assert time.monotonic() < deadline, \
                f"the sink stays ahead of its latency: {got}"
            time.sleep(0.01)

    def record(self, native=False):
        """A recorder of the sink, already receiving (the monitor sends
        silence while nothing plays); Recorder's @native."""
        rec = Recorder(self, native)
        if not rec.wait_for(lambda data: len(data) > 0, 10):
            rec.stop()
            tool = "pw-record" if native else "parec"
            raise AssertionError(f"{tool} never started recording")
        return rec


class HostPlayer:
    """pacat playing @data into the null sink: a native client of the
    daemon, as a desktop's player is."""

    def __init__(self, daemon, data):
        prefix, env = as_user(daemon.pw, daemon.env)
        self.proc = subprocess.Popen(
            prefix + ["pacat", "--playback", "--device=null", "--raw",
                      "--format=s16le", f"--rate={RATE}", "--channels=2",
                      "--latency-msec=20"],
            env=env, stdin=subprocess.PIPE, cwd="/")
        self.thread = threading.Thread(target=self._feed, args=(data,),
                                       daemon=True)
        self.thread.start()

    def _feed(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def wait(self, timeout):
        """pacat's exit status once it played everything (it drains)."""
        self.thread.join(timeout)
        return self.proc.wait(timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        self.thread.join()


class Recorder:
    """parec on the null sink's monitor, read as it arrives.  Its buffer is
    generous: a recorder that falls behind drops a block of what it
    records (seen with pipewire-pulse), which would pass for a lost
    block in what QEMU played.

    @native: pw-record instead, PipeWire's own client, straight to the
    daemon: a recorder of its own process, which does not miss what
    pipewire-pulse's clients miss together."""

    def __init__(self, daemon, native=False):
        prefix, env = as_user(daemon.pw, daemon.env)
        if native:
            cmd = ["pw-record", "--target=null",
                   "--properties=stream.capture.sink=true",
                   f"--rate={RATE}", "--channels=2", "--format=s16",
                   "--latency=50ms", "-"]
        else:
            cmd = ["parec", "--device=null.monitor", "--raw",
                   "--format=s16le", f"--rate={RATE}", "--channels=2",
                   "--latency-msec=50"]
        self.proc = subprocess.Popen(prefix + cmd, env=env,
                                     stdout=subprocess.PIPE, cwd="/")
        self.data = bytearray()
        # (arrival time, bytes so far) per chunk: when the sink played
        # what (bench/latency.py).
        self.stamps = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        while True:
            chunk = self.proc.stdout.read1(65536)
            t = time.monotonic()
            with self.cond:
                if not chunk:
                    self.cond.notify_all()
                    return
                self.data += chunk
                self.stamps.append((t, len(self.data)))
                self.cond.notify_all()

    def wait_for(self, predicate, timeout):
        """Wait until predicate(data) holds, as data arrives."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.data):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return False
                self.cond.wait(left)
            return True

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.thread.join()
        return bytes(self.data)


# --- the signal --------------------------------------------------------------

def sound_in(data, frames=4800):
    """Roughly @frames frames of sound (0.1 s at 48 kHz): counted as
    non-zero bytes, which is fast on a growing recording."""
    return len(data) - data.count(0) >= frames * FRAME


def pattern_frame(i):
    """Frame i of the test signal: a counter that never repeats a frame
    (for 15 hours) and is never silent."""
    return 1000 + i % 30000, -1000 - i // 30000 % 30000


def pattern(frames, start=0):
    return b"".join(struct.pack("<hh", *pattern_frame(i))
                    for i in range(start, start + frames))


def strip_silence(data):
    """The frames of @data that are not silent, and how many silent runs
    interrupted them (underrun gaps; the pattern has no silent frame)."""
    zero = b"\0" * FRAME
    out = bytearray()
    gaps = 0
    in_gap = False
    for i in range(0, len(data) - FRAME + 1, FRAME):
        frame = data[i:i + FRAME]
        if frame == zero:
            in_gap = bool(out)
            continue
        if in_gap:
            gaps += 1
            in_gap = False
        out += frame
    return bytes(out), gaps


def pattern_complete(data, frames):
    """True once @data holds the pattern's first frame and enough after."""
    at = data.find(struct.pack("<hh", *pattern_frame(0)))
    return at >= 0 and len(data) - at >= frames * FRAME


def pattern_in_order(data, frames):
    """The pattern's frames that @data holds, silence aside: (skipped, why)
    where why is None if they are all pattern frames, strictly in order,
    from the first to the last, none repeated; skipped counts the missing.
    """
    sound, _ = strip_silence(data)
    expect, skipped = 0, 0
    for i in range(0, len(sound) - FRAME + 1, FRAME):
        left, right = struct.unpack_from("<hh", sound, i)
        n = (left - 1000) + (-right - 1000) * 30000
        if not 0 <= left - 1000 < 30000 or n < expect:
            return None, (f"frame {i // FRAME} is {(left, right)}: not the "
                          f"pattern, or repeated (expected #{expect})")
        skipped += n - expect
        expect = n + 1
        if expect == frames:
            return skipped, None
    return None, f"the sound ends at pattern frame #{expect} of {frames}"


def find_pattern(data, frames):
    """Check that @data holds all @frames of the pattern, in order, none
    lost or repeated, silence aside.  Returns (gaps, None) or (None, why).
    """
    sound, gaps = strip_silence(data)
    want = pattern(frames)
    if sound[:len(want)] == want:
        return gaps, None
    first = struct.pack("<hh", *pattern_frame(0))
    if not sound.startswith(first):
        head = struct.unpack("<hh", sound[:FRAME]) if sound else None
        return None, f"the sound starts with {head}, not {pattern_frame(0)}"
    for i in range(0, min(len(want), len(sound)), FRAME):
        if sound[i:i + FRAME] != want[i:i + FRAME]:
            seen = struct.unpack("<hh", sound[i:i + FRAME])
            return None, (f"frame {i // FRAME} is {seen}, expected "
                          f"{pattern_frame(i // FRAME)}")
    return None, f"only {len(sound) // FRAME} of {frames} frames arrived"


# --- QEMU ------------------------------------------------------------------

# ptrace(2) and wait(2) on one thread; x86_64's ppoll.
PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207
WALL = 0x40000000
SYS_PPOLL = 271


def qemu_binary():
    path = os.environ.get("QEMU_BINARY",
                          os.path.join(TOP, "build", "qemu-system-x86_64"))
    if not os.path.exists(path):
        raise Skip(f"{path} is not built")
    return os.path.realpath(path)


def halt_bios(directory):
    """A 64 KiB firmware whose reset vector is cli; hlt: the vCPU sleeps."""
    path = os.path.join(directory, "halt.bin")
    image = bytearray(b"\xf4" * 65536)
    image[0xfff0:0xfff4] = b"\xfa\xf4\xeb\xfd"
    with open(path, "wb") as f:
        f.write(image)
    os.chmod(path, 0o644)
    return path


class Qemu:
    """The binary with QMP and a qtest channel, its stderr read as lines."""

    def __init__(self, args, env=None, user=None, qtest=True, binary=None,
                 console=False, prefix=()):
        self.dir = tempfile.mkdtemp(prefix="qva-qemu-")
        os.chmod(self.dir, 0o777)
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.qtest_path = os.path.join(self.dir, "qtest.sock")
        self.console_path = os.path.join(self.dir, "console.sock")
        # A second monitor, for a watcher thread of its own.
        self.watch_path = os.path.join(self.dir, "watch.sock")
        self.lines = []
        self.line_cond = threading.Condition()
        cmd = [binary or qemu_binary(), "-nodefaults", "-display", "none",
               "-chardev", f"socket,id=qmp,path={self.qmp_path},"
                           "server=on,wait=off",
               "-mon", "chardev=qmp,mode=control"]
        self.qtest_listener = None
        if qtest:
            self.qtest_listener = socket.socket(socket.AF_UNIX)
            self.qtest_listener.bind(self.qtest_path)
            os.chmod(self.qtest_path, 0o777)
            self.qtest_listener.listen(1)
            cmd += ["-qtest", f"unix:{self.qtest_path}",
                    "-qtest-log", "/dev/null",
                    "-bios", halt_bios(self.dir), "-accel", "tcg"]
        if console:
            # The guest starts once its console is connected: no line lost.
            cmd += ["-chardev", f"socket,id=con,path={self.console_path},"
                                "server=on,wait=on", "-serial", "chardev:con",
                    "-chardev", f"socket,id=watch,path={self.watch_path},"
                                "server=on,wait=off",
                    "-mon", "chardev=watch,mode=control"]
        cmd += args
        env = dict(env if env is not None else os.environ)
        # Under make check-sanitizers every QEMU reports to its files,
        # whatever environment a test gives it.
        for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
            if var in os.environ:
                env.setdefault(var, os.environ[var])
        # @prefix runs first (as root), then the switch to @user.
        prefix = list(prefix)
        if user:
            switch, env = as_user(user, env)
            prefix += switch
        self.cmd = cmd
        self.proc = subprocess.Popen(prefix + cmd, env=env, cwd="/",
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.err_thread = threading.Thread(target=self._read_err,
                                           daemon=True)
        self.err_thread.start()
        self.qtest = None
        self.qmp = None
        if qtest:
            self.qtest_listener.settimeout(20)
            conn, _ = self.qtest_listener.accept()
            self.qtest = QTest(conn)

    def _read_err(self):
        for line in self.proc.stderr:
            with self.line_cond:
                self.lines.append(line.rstrip("\n"))
                self.line_cond.notify_all()
        with self.line_cond:
            self.line_cond.notify_all()

    def wait_line(self, needle, timeout=10, start=0):
        """Index of the first stderr line from @start containing @needle."""
        deadline = time.monotonic() + timeout
        with self.line_cond:
            while True:
                for i in range(start, len(self.lines)):
                    if needle in self.lines[i]:
                        return i
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and
                                 not self.err_thread.is_alive()):
                    return None
                self.line_cond.wait(left)

    def stderr(self):
        with self.line_cond:
            return "\n".join(self.lines)

    def connect_qmp(self):
        if not self.qmp:
            self.qmp = QMP(self.qmp_path)
        return self.qmp

    def cmd_qmp(self, name, **args):
        return self.connect_qmp().command(name, **args)

    def alive(self):
        """The process is there and its monitor answers."""
        if self.proc.poll() is not None:
            return False
        return "status" in self.cmd_qmp("query-status")

    def stall_main_loop(self, seconds, tries=100):
        """QEMU's main thread stopped for @seconds while its other threads
        run, as when its timer comes late: ptrace stops that thread alone.
        It is stopped where the main loop waits (ppoll), holding no lock;
        anywhere else it is let go and stopped again.  Returns a time
        after it stopped and one before it was let go, as time.time()
        (the trace's clock)."""
        libc = ctypes.CDLL(None, use_errno=True)
        libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long,
                                ctypes.c_void_p, ctypes.c_void_p]
        tid = self.proc.pid
        for _ in range(tries):
            if libc.ptrace(PTRACE_SEIZE, tid, None, None) or \
                    libc.ptrace(PTRACE_INTERRUPT, tid, None, None):
                raise OSError(ctypes.get_errno(), "ptrace")
            os.waitpid(tid, WALL)
            try:
                with open(f"/proc/{tid}/syscall") as f:
                    waiting = f.read().split()[0] == str(SYS_PPOLL)
                if waiting:
                    start = time.time()
                    time.sleep(seconds)
                    end = time.time()
            finally:
                libc.ptrace(PTRACE_DETACH, tid, None, None)
            if waiting:
                return start, end
        raise AssertionError(f"QEMU's main thread never stopped in ppoll "
                             f"in {tries} tries")

    def wait_exit(self, timeout=20):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.err_thread.join()
        return rc

    def quit(self):
        if self.proc.poll() is None:
            try:
                self.cmd_qmp("quit")
            except (OSError, ValueError):
                self.proc.kill()
        rc = self.wait_exit()
        if rc is None:
            self.proc.kill()
            rc = self.wait_exit()
        for s in (self.qmp, self.qtest):
            if s:
                s.close()
        if self.qtest_listener:
            self.qtest_listener.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc


class LineSocket:
    """Lines from a socket, waited for with a deadline (select) rather
    than with socket timeouts, which break Python's buffered files."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def readline(self, deadline=None):
        """One line, or None if @deadline passes first."""
        while b"\n" not in self.buf:
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                if not select.select([self.sock], [], [], left)[0]:
                    return None
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ValueError("connection closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()

    def close(self):
        self.sock.close()


def connect_unix(path, timeout=20):
    """A socket connected to QEMU's listening @path, once QEMU made it
    (chardevs have no readiness notification: ask again, bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class QMP(LineSocket):
    """QMP over a unix socket: commands, and events waited for."""

    def __init__(self, path):
        super().__init__(connect_unix(path))
        self.events = collections.deque()
        self._read(None)                            # greeting
        self.command("qmp_capabilities")

    def _read(self, deadline):
        """One JSON message, or None if @deadline passes first."""
        line = self.readline(deadline)
        return None if line is None else json.loads(line)

    def command(self, name, **args):
        self.sock.sendall(json.dumps({"execute": name, "arguments": args})
                          .encode() + b"\n")
        while True:
            reply = self._read(None)
            if "event" in reply:
                self.events.append(reply)
            elif "return" in reply:
                return reply["return"]
            elif "error" in reply:
                raise ValueError(reply["error"]["desc"])

    def wait_event(self, name, match=lambda data: True, timeout=20):
        """The first event @name whose data @match, or None."""
        deadline = time.monotonic() + timeout
        while True:
            while self.events:
                ev = self.events.popleft()
                if ev["event"] == name and match(ev.get("data", {})):
                    return ev
            msg = self._read(deadline)
            if msg is None:
                return None
            if "event" in msg:
                self.events.append(msg)


class MonitorReads:
    """What a running QEMU's registers and memory hold, read through HMP
    over a QMP connection: I/O ports, guest-physical memory (MMIO
    included).  Neither read has a side effect on a sound card."""

    def __init__(self, qmp):
        self.qmp = qmp

    def _hmp(self, line):
        return self.qmp.command("human-monitor-command",
                                **{"command-line": line})

    def port(self, fmt, port):
        """An I/O port: @fmt b, h or w for 8, 16 or 32 bits."""
        return int(self._hmp(f"i/{fmt} 0x{port:x}").split("=")[1], 16)

    def mem(self, addr, n=1):
        """@n 32-bit words at guest-physical @addr."""
        out = self._hmp(f"xp /{n}wx 0x{addr:x}")
        return [int(w, 16) for line in out.splitlines()
                for w in line.split(":", 1)[1].split()]


# The sound cards as query-pci names them.
AC97_ID = (0x8086, 0x2415)
# AC97's PCM OUT box in the bus master block (BAR1).
AC97_PO_BDBAR, AC97_PO_CIV, AC97_PO_PICB = 0x10, 0x14, 0x18
HDA_IDS = ((0x8086, 0x293e), (0x8086, 0x2668))  # ich9-intel-hda, intel-hda
# Intel HDA stream descriptors: 0x20 bytes each from 0x80, QEMU's
# controllers having 4 input streams, then 4 output ones.
HDA_SD0, HDA_SD_SIZE, HDA_OUTPUT_SDS = 0x80, 0x20, range(4, 8)
HDA_SD_LPIB = 0x04


def hda_running_output(reads, bar):
    """The MMIO address of the first output stream descriptor the guest
    runs (RUN set) on the controller at @bar, or None."""
    for n in HDA_OUTPUT_SDS:
        sd = bar + HDA_SD0 + HDA_SD_SIZE * n
        if reads.mem(sd)[0] & 2:
            return sd
    return None


def pci_bar(devices, ids, bar):
    """The address the firmware gave BAR @bar of the first function
    whose (vendor, device) is in @ids, from query-pci's reply @devices;
    None while unassigned."""
    for bus in devices:
        for dev in bus["devices"]:
            if (dev["id"]["vendor"], dev["id"]["device"]) in ids:
                for region in dev["regions"]:
                    if region["bar"] == bar and region["address"] > 0:
                        return region["address"]
    return None


class QTest(LineSocket):
    """The qtest text protocol: requests, replies, and IRQ events."""

    def __init__(self, conn):
        super().__init__(conn)
        self.irqs = collections.deque()

    def _event(self, line):
        if line.startswith("IRQ "):
            _, kind, num = line.split()
            self.irqs.append((kind == "raise", int(num)))
            return True
        return False

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\n")
        while True:
            line = self.readline().strip()
            if self._event(line):
                continue
            if not line.startswith("OK"):
                raise ValueError(f"qtest: {text}: {line}")
            return line[2:].strip()

    def outb(self, port, v):
        self.cmd(f"outb 0x{port:x} 0x{v:x}")

    def outw(self, port, v):
        self.cmd(f"outw 0x{port:x} 0x{v:x}")

    def outl(self, port, v):
        self.cmd(f"outl 0x{port:x} 0x{v:x}")

    def inb(self, port):
        return int(self.cmd(f"inb 0x{port:x}"), 16)

    def inw(self, port):
        return int(self.cmd(f"inw 0x{port:x}"), 16)

    def inl(self, port):
        return int(self.cmd(f"inl 0x{port:x}"), 16)

    def writeb(self, addr, v):
        self.cmd(f"writeb 0x{addr:x} 0x{v:x}")

    def writew(self, addr, v):
        self.cmd(f"writew 0x{addr:x} 0x{v:x}")

    def writel(self, addr, v):
        self.cmd(f"writel 0x{addr:x} 0x{v:x}")

    def readb(self, addr):
        return int(self.cmd(f"readb 0x{addr:x}"), 16)

    def readl(self, addr):
        return int(self.cmd(f"readl 0x{addr:x}"), 16)

    def memwrite(self, addr, data):
        b64 = base64.b64encode(data).decode()
        self.cmd(f"b64write 0x{addr:x} 0x{len(data):x} {b64}")

    def memread(self, addr, size):
        return base64.b64decode(self.cmd(f"b64read 0x{addr:x} 0x{size:x}"))

    def wait_irq(self, timeout):
        """Next IRQ event (raise?, pin), or None after @timeout."""
        deadline = time.monotonic() + timeout
        while not self.irqs:
            line = self.readline(deadline)
            if line is None:
                return None
            self._event(line.strip())
        return self.irqs.popleft()


class PCIFunction:
    """A PCI function's configuration space, through ports 0xcf8/0xcfc."""

    def __init__(self, qt, devfn):
        self.qt = qt
        dev, fn = devfn
        self.cfg = 0x80000000 | (dev << 11) | (fn << 8)

    def _cfg_write(self, off, v, size):
        self.qt.outl(0xcf8, self.cfg | (off & 0xfc))
        port = 0xcfc + (off & 3)
        {1: self.qt.outb, 2: self.qt.outw, 4: self.qt.outl}[size](port, v)


# --- Intel HDA, driven as a guest driver would -----------------------------

class HDAPlayer(PCIFunction):
    """ich9-intel-hda's first output stream through its codec's DAC (node
    2 on hda-output, hda-duplex and hda-micro), playing a looped ring of
    four buffers; hda-pacing-test.c has the registers' story."""

    BAR = 0xfeb00000
    CORB, RIRB, BDL, PCM = 0x100000, 0x101000, 0x103000, 0x110000
    SD = 0x80 + 4 * 0x20                        # output stream 0
    FMT = 0x0011                                # 48 kHz, 16 bit, stereo
    TAG = 1

    def __init__(self, qt, devfn=(0x1b, 0), buf_frames=RATE // 10):
        super().__init__(qt, devfn)
        self.buf_bytes = buf_frames * FRAME
        self.corb_wp = 0

    def verb(self, nid, verb, payload):
        cmd = nid << 20 | payload | (verb << 8 if verb > 0xf else verb << 16)
        self.corb_wp = (self.corb_wp + 1) & 0xff
        self.qt.memwrite(self.CORB + 4 * self.corb_wp,
                         struct.pack("<I", cmd))
        self.qt.writew(self.BAR + 0x48, self.corb_wp)

    def setup(self):
        qt, b = self.qt, self.BAR
        self._cfg_write(0x10, b, 4)
        self._cfg_write(0x14, 0, 4)
        self._cfg_write(0x04, 0x6, 2)           # memory space, bus master
        qt.writel(b + 0x08, 1)                  # out of reset
        qt.writel(b + 0x40, self.CORB)
        qt.writel(b + 0x44, 0)
        qt.writel(b + 0x50, self.RIRB)
        qt.writel(b + 0x54, 0)
        qt.writew(b + 0x5a, 0xff)
        qt.writeb(b + 0x5c, 0x02)               # RIRB DMA
        qt.writeb(b + 0x4c, 0x02)               # CORB run
        qt.writel(b + 0x20, 1 << 31 | 1 << 4)   # GIE, output stream 0
        self.intercept()
        self.verb(2, 0x2, self.FMT)             # DAC: format
        self.verb(2, 0x706, self.TAG << 4)      # DAC: stream tag, channel 0

    def start(self, data=b""):
        qt, sd = self.qt, self.BAR + self.SD
        ring = data[:4 * self.buf_bytes].ljust(4 * self.buf_bytes, b"\0")
        qt.memwrite(self.PCM, ring)
        qt.memwrite(self.BDL, b"".join(
            struct.pack("<QII", self.PCM + i * self.buf_bytes,
                        self.buf_bytes, 1) for i in range(4)))
        qt.writel(sd + 0x00, 1)                 # stream reset
        qt.writel(sd + 0x00, 0)
        qt.writel(sd + 0x08, 4 * self.buf_bytes)
        qt.writew(sd + 0x0c, 3)
        qt.writew(sd + 0x12, self.FMT)
        qt.writel(sd + 0x18, self.BDL)
        qt.writel(sd + 0x1c, 0)
        qt.writel(sd + 0x00, self.TAG << 20 | 0x6)  # run, IOC interrupts

    def lpib(self):
        return self.qt.readl(self.BAR + self.SD + 0x04)

    def intercept(self):
        """Watch the IOAPIC; a completion raised before is acked, since
        the line is level-triggered and would never be seen to change."""
        self.qt.cmd("irq_intercept_in ioapic")
        self.qt.writeb(self.BAR + self.SD + 0x03, 0x04)

    def completions(self, seconds):
        """Buffer-completion interrupts in @seconds, each acked."""
        sts = self.BAR + self.SD + 0x03
        n = 0
        end = time.monotonic() + seconds
        while True:
            ev = self.qt.wait_irq(max(end - time.monotonic(), 0))
            if ev is None:
                return n
            raised, pin = ev
            # PCI INTx reaches q35's IOAPIC on pins 16..23.
            if raised and pin >= 16 and self.qt.readb(sts) & 0x04:
                self.qt.writeb(sts, 0x04)
                n += 1


# --- AC97, driven as a guest driver would ----------------------------------

class AC97Player(PCIFunction):
    """PCM OUT with a ring of 32 buffers, refilled on each interrupt."""

    NAM, NABM = 0xd000, 0xd100
    BDL, PCM = 0x100000, 0x110000
    CH = 0x10                                   # PCM OUT's registers
    BUF_FRAMES = RATE // 100                    # 10 ms

    def __init__(self, qt, devfn=(4, 0), buf_frames=None):
        super().__init__(qt, devfn)
        if buf_frames:
            self.BUF_FRAMES = buf_frames
        self.chunks = []
        self.next_chunk = 0
        self.irqs = 0
        self.done = False

    def setup(self):
        self._cfg_write(0x10, self.NAM | 1, 4)
        self._cfg_write(0x14, self.NABM | 1, 4)
        self._cfg_write(0x04, 0x5, 2)           # I/O space, bus master
        qt = self.qt
        qt.cmd("irq_intercept_in ioapic")
        qt.outw(self.NAM + 0x00, 0)             # codec reset
        qt.outw(self.NAM + 0x02, 0)             # master: 0 dB, unmuted
        qt.outw(self.NAM + 0x18, 0)             # PCM out: unity here
        qt.outw(self.NAM + 0x2a, qt.inw(self.NAM + 0x2a) | 1)   # VRA
        qt.outw(self.NAM + 0x2c, RATE)
        if qt.inw(self.NAM + 0x2c) != RATE:
            raise AssertionError("the codec did not take 48 kHz")

    def queue(self, data):
        """Data to play, in whole buffers (padded with silence)."""
        size = self.BUF_FRAMES * FRAME
        for i in range(0, len(data), size):
            self.chunks.append(data[i:i + size].ljust(size, b"\0"))

    def _prime(self, idx):
        self._fill(idx)

    def _complete(self, idx):
        self._fill(idx)

    def _fill(self, idx):
        size = self.BUF_FRAMES * FRAME
        if self.next_chunk < len(self.chunks):
            chunk = self.chunks[self.next_chunk]
            self.next_chunk += 1
        else:
            chunk = b"\0" * size
        self.qt.memwrite(self.PCM + idx * size, chunk)

    def start(self):
        desc = b""
        size = self.BUF_FRAMES * FRAME
        for i in range(32):
            desc += struct.pack("<II", self.PCM + i * size,
                                (1 << 31) | (self.BUF_FRAMES * 2))
            self._prime(i)
        self.qt.memwrite(self.BDL, desc)
        self.qt.outl(self.NABM + self.CH + 0x0, self.BDL)
        self.qt.outb(self.NABM + self.CH + 0x5, 31)
        self.qt.outb(self.NABM + self.CH + 0xb, 0x15)   # RPBM|LVBIE|IOCE
        self.last_civ = 0

    def service(self, timeout=1.0):
        """Handle one completion interrupt; False if none came in time."""
        ev = self.qt.wait_irq(timeout)
        if ev is None:
            return False
        raised, pin = ev
        if not raised or pin < 16:
            # PCI INTx reaches q35's IOAPIC on pins 16..23; the rest is
            # the board's own (the PIT ticks on pin 0 under TCG).
            return True
        self.irqs += 1
        civ = self.qt.inb(self.NABM + self.CH + 0x4)
        self.qt.outw(self.NABM + self.CH + 0x6, 0x1c)   # ack BCIS|LVBCI|FIFOE
        while self.last_civ != civ:
            self._complete(self.last_civ)
            self.qt.outb(self.NABM + self.CH + 0x5, self.last_civ)
            self.last_civ = (self.last_civ + 1) % 32
        self.done = self.next_chunk >= len(self.chunks)
        return True

    def play(self, seconds_max, until=None):
        """Service interrupts until all chunks are queued (or @until())."""
        deadline = time.monotonic() + seconds_max
        while time.monotonic() < deadline:
            if until is not None and until():
                return True
            if until is None and self.done:
                return True
            if not self.service(timeout=max(0.0,
                                            deadline - time.monotonic())):
                return False
        return False

    def stop(self):
        self.qt.outb(self.NABM + self.CH + 0xb, 0)


class AC97Recorder(AC97Player):
    """PCM IN with a ring of 32 buffers, read on each interrupt, as a
    guest's capture driver does."""

    BDL, PCM = 0x101000, 0x180000
    CH = 0x00                                   # PCM IN's registers

    def __init__(self, qt, devfn=(4, 0), buf_frames=None):
        super().__init__(qt, devfn, buf_frames)
        self.data = bytearray()

    def setup(self):
        super().setup()
        qt = self.qt
        # Record gain at its top, unmuted: QEMU's AC97 takes the gain for
        # a volume, 0 dB (0) silent and +22.5 dB (15) unity.
        qt.outw(self.NAM + 0x1c, 0x0f0f)
        qt.outw(self.NAM + 0x32, RATE)
        if qt.inw(self.NAM + 0x32) != RATE:
            raise AssertionError("the codec did not take 48 kHz capture")

    def _prime(self, idx):
        pass

    def _complete(self, idx):
        size = self.BUF_FRAMES * FRAME
        self.data += self.qt.memread(self.PCM + idx * size, size)
