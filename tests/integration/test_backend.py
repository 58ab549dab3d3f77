"""The pa backend against a real PulseAudio daemon.

Each test starts its own daemon as a throwaway desktop user on
/run/user/UID/pulse/native and QEMU as root naming that socket.
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

from harness import (AC97Player, AC97Recorder, FRAME, HostPlayer,
                     PulseDaemon, Qemu, RATE, ensure_user, find_pattern,
                     pattern, pattern_complete, pattern_frame,
                     pattern_in_order, qemu_binary, sound_in)

USER = ("qva-desk1", 1701)
PW_USER = ("qva-desk3", 1703)


@contextlib.contextmanager
def daemon(flavor="pulseaudio", **kw):
    user = PW_USER if flavor == "pipewire" else USER
    d = PulseDaemon(ensure_user(*user), flavor, **kw).start()
    try:
        yield d
    finally:
        d.stop()


@contextlib.contextmanager
def qemu(args, **kw):
    q = Qemu(args, **kw)
    try:
        yield q
    finally:
        q.quit()


def pa_args(server, extra=""):
    return ["-M", "q35", "-audiodev",
            f"pa,id=snd0,server=unix:{server}{extra}",
            "-device", "AC97,audiodev=snd0,addr=04.0"]


def stream(q, direction="playback"):
    for s in q.cmd_qmp("query-audio-streams"):
        if s["direction"] == direction:
            return s
    return None


def wait_connected(q, timeout=5, d=None):
    """The stream is up once the connection line came and QMP agrees;
    with the daemon @d, also once its sink plays at the stream's latency
    (the tests that time what the server takes)."""
    assert q.wait_line("PulseAudio server", timeout) is not None, \
        q.stderr()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = stream(q)
        if s and s["connected"]:
            if d:
                d.wait_sink_caught_up()
            return s
        time.sleep(0.01)
    raise AssertionError(f"stream never connected: {stream(q)}")


def start_playing(q, signal):
    """The guest's AC97 driver playing @signal (bytes) from now on."""
    player = AC97Player(q.qtest)
    player.setup()
    player.queue(signal)
    player.start()
    return player


def start_recording(q):
    """The guest's AC97 driver recording from now on."""
    rec = AC97Recorder(q.qtest)
    rec.setup()
    rec.start()
    return rec


def remove_sink(d):
    """The null sink's module unloaded, as when a headset is unplugged."""
    module = next(line.split()[0] for line in
                  d.pactl("list", "short", "modules").splitlines()
                  if "module-null-sink" in line)
    d.pactl("unload-module", module)


def restore_sink(d):
    d.pactl("load-module", "module-null-sink", "sink_name=null",
            "rate=48000", "format=s16le", "channels=2")
    d.pactl("set-default-sink", "null")


def play_and_check(d, q, seconds=2.0, exact=True, lead_in=True):
    frames = int(RATE * seconds)
    # Lead-in silence: a sink's monitor misses what PulseAudio rewinds
    # when a stream starts.
    signal = bytes(RATE // 10 * FRAME * lead_in) + pattern(frames)
    rec = d.record()
    player = start_playing(q, signal)
    try:
        assert player.play(seconds + 5), "the guest ran out of interrupts"
        assert rec.wait_for(lambda data: pattern_complete(data, frames), 5), \
            "the end of the signal never reached the sink"
    finally:
        data = rec.stop()
        player.stop()
    if not exact:
        skipped, why = pattern_in_order(data, frames)
        assert why is None, why
        assert skipped <= frames // 100, f"{skipped} frames skipped"
        return player, skipped
    gaps, why = find_pattern(data, frames)
    assert why is None, why
    return player, gaps


# An underrun makes PulseAudio skip what came late, so the data path is
# checked at a latency this machine sustains; what the default latency
# achieves is for bench/ to measure, not for a test to assert.
INTACT = ",out.latency=20000"


def test_playback_reaches_sink_intact():
    """AC97 → pa → null sink: every frame, in order, none repeated."""
    with daemon() as d, qemu(pa_args(d.socket, INTACT)) as q:
        wait_connected(q)
        play_and_check(d, q)
        assert q.alive()


# Connected, not yet played, as while the bench guest boots.
IDLE_START = 10


def us_to_bytes(us):
    return us * RATE // 1000000 * FRAME


def bytes_to_us(n):
    return n // FRAME * 1000000 // RATE


def check_attributes(d, s, latency):
    """tlength is the latency, prebuf one request less (where the stream
    sits, and where it starts again after an underrun), and with early
    requests the sink wakes every request (at most 1 ms)."""
    bite = min(latency // 5, 1000)
    assert s["configured-latency"] == latency, s
    assert s["latency"] == latency, s
    assert s["minreq"] == us_to_bytes(bite), s
    assert s["prebuf"] == us_to_bytes(latency - bite), s
    assert s["tlength"] == us_to_bytes(latency), s
    sink = d.sink_configured_latency_us()
    assert sink is not None and sink <= bite, (sink, s)


def test_buffer_attributes_follow_options():
    """What the server granted is what out.latency asks."""
    extra = ",out.latency=12000,out.max-latency=30000"
    with daemon() as d, qemu(pa_args(d.socket, extra)) as q:
        s = wait_connected(q)
        check_attributes(d, s, 12000)
        assert s["max-latency"] == 30000, s


def test_default_latency_is_5ms():
    with daemon() as d, qemu(pa_args(d.socket)) as q:
        s = wait_connected(q)
        check_attributes(d, s, 5000)
        assert s["max-latency"] == 50000, s


def test_process_keeps_its_name():
    """libpulse runs in QEMU's main loop (audio/pa-loop.c): it starts no
    thread of its own, and QEMU's main thread (what ps and top show)
    keeps its name."""
    with daemon() as d, qemu(pa_args(d.socket)) as q:
        wait_connected(q)
        pid = q.proc.pid
        with open(f"/proc/{pid}/exe", "rb"):
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
        names = {}
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                names[int(tid)] = f.read().strip()
        assert names[pid] == exe[:15], names
        assert not {"qemu-pa", "threaded-ml"} & set(names.values()), names


def test_underruns_raise_latency_within_bound():
    """A 20 ms audio timer cannot feed a 5 ms buffer: the latency grows by
    a quarter per underrun burst (5, 6.25, 7.81, 9.77 ms), says so once,
    and stops at out.max-latency."""
    extra = ",timer-period=20000,out.latency=5000,out.max-latency=11000"
    with daemon() as d, qemu(pa_args(d.socket, extra)) as q:
        wait_connected(q, d=d)
        player = start_playing(q, pattern(RATE * 30))
        assert player.play(10, until=lambda: stream(q)["latency"] >= 11000)
        # Underruns go on at the bound; the latency does not.
        seen = stream(q)["underruns"]
        assert player.play(10, until=lambda: stream(q)["underruns"] > seen)
        s = stream(q)
        assert s["latency"] == 11000, s
        assert s["adjustments"] == 4, s
        assert len([ln for ln in q.lines if "playback underran" in ln]) == 1
        assert q.alive()


STEP_LINE = re.compile(r"pa_(latency|headroom|underrun) .*stream \S+: "
                       r"(?:latency (\d+) -> (\d+)|at (\d+) us it dipped "
                       r"(\d+)|underrun)")


class LatencySteps:
    """The stream's latency changes from QEMU's trace (-trace pa_latency,
    pa_headroom, pa_underrun): (from, to, dip) for each step down, with
    the deepest the stream dipped below full before it."""

    TRACE = ["-trace", "pa_latency", "-trace", "pa_headroom",
             "-trace", "pa_underrun"]

    def __init__(self, q):
        self.q = q

    def events(self):
        for m in map(STEP_LINE.search, self.q.lines):
            if m and m.group(1) == "latency":
                yield "latency", int(m.group(2)), int(m.group(3))
            elif m and m.group(1) == "headroom":
                yield "headroom", int(m.group(4)), int(m.group(5))
            elif m:
                yield "underrun", 0, 0

    def looks(self):
        return sum(kind == "headroom" for kind, _, _ in self.events())

    def downs(self):
        """Steps down since the last underrun, each with its dip."""
        downs, dip = [], None
        for kind, a, b in self.events():
            if kind == "underrun":
                downs = []
            elif kind == "headroom":
                dip = b
            elif b < a:
                downs.append((a, b, dip))
        return downs


@contextlib.contextmanager
def playing_traced(extra):
    """QEMU with its latency steps traced, playing past prebuffering."""
    with daemon() as d, qemu(pa_args(d.socket, extra) +
                             LatencySteps.TRACE) as q:
        wait_connected(q, d=d)
        steps = LatencySteps(q)
        player = start_playing(q, pattern(RATE * 90))
        assert player.play(5, until=lambda: stream(q)["bytes"] > RATE * FRAME)
        yield q, steps, player


def step_to(configured, dip):
    """Where a step down goes with no failed level in the way."""
    return max(configured, 2 * dip + 1000)


def test_latency_steps_back_after_quiet_spell():
    """A stall raises the latency; 2 s without an underrun later the
    stream has shown it needs little of it (it never dipped far below
    full), and the latency is back at the configured value in one step
    (two where the host dipped it meanwhile), where halving what it was
    above that took five (50, 45, 42.5, 41.25, 40.25, 40 ms) and 12 s."""
    with playing_traced(",out.latency=40000,out.max-latency=80000") as \
            (q, steps, player):
        # QEMU stopped for longer than its buffer: the sink runs dry.
        os.kill(q.proc.pid, signal.SIGSTOP)
        time.sleep(0.07)
        os.kill(q.proc.pid, signal.SIGCONT)
        assert player.play(5, until=lambda: stream(q)["underruns"]), stream(q)
        assert stream(q)["latency"] == 50000, stream(q)
        # A stall of the host's own may raise it again meanwhile: what is
        # checked is the way down from the last underrun.
        # The trace, not QMP, so that every step is read by then.
        assert player.play(20, until=lambda: any(
            b == 40000 for _, b, _ in steps.downs())), \
            (stream(q), steps.downs())
        # One step; two where the host itself dipped the stream far
        # meanwhile (20 ms once, in CI), each to what its dip allowed.
        downs = steps.downs()
        assert len(downs) <= 2, downs
        assert all(b == step_to(40000, dip) for _, b, dip in downs), downs
        assert q.alive()


def test_step_down_keeps_twice_the_dip():
    """A stream fed every 10 ms dips some 10 ms below full between two
    feeds: a step down from stalls' 80 ms goes to twice that and a
    millisecond at once (not to the configured 5 ms, which would underrun,
    nor only halfway, as halving did), and no step goes lower later."""
    with playing_traced(",timer-period=10000,out.latency=5000,"
                        "out.max-latency=80000") as (q, steps, player):
        # Each stall raises the latency by a quarter, up to 80 ms.
        stalled = [time.monotonic()]

        def stall_until_high():
            if time.monotonic() - stalled[0] >= 0.6:
                os.kill(q.proc.pid, signal.SIGSTOP)
                time.sleep(0.1)
                os.kill(q.proc.pid, signal.SIGCONT)
                stalled[0] = time.monotonic()
            return stream(q)["latency"] == 80000

        assert player.play(30, until=stall_until_high), stream(q)
        assert player.play(10, until=lambda: steps.downs()), stream(q)
        a, b, dip = steps.downs()[0]
        assert 8000 <= dip < 20000 and b == step_to(5000, dip), \
            steps.downs()
        assert b < a - (a - 5000) // 2, "only halfway"
        # Three more looks at the dip, and whatever the host did meanwhile,
        # no step went below twice its own.
        looks = steps.looks()
        assert player.play(10, until=lambda: steps.looks() >= looks + 3), \
            stream(q)
        assert all(b >= step_to(5000, dip) for _, b, dip in
                   steps.downs()), steps.downs()
        assert q.alive()


class ServerStalls:
    """The daemon stopped for 40 ms whenever poll() finds 210 ms passed
    since the last stop; running again when the with block ends.  On a
    busy host this process may wake late and stop it longer: the longest
    stop is kept."""

    def __init__(self, d):
        self.d, self.count, self.next = d, 0, time.monotonic()
        self.longest = 0.0

    def poll(self):
        if time.monotonic() >= self.next:
            stopped = time.monotonic()
            os.kill(self.d.pid, signal.SIGSTOP)
            time.sleep(0.04)
            os.kill(self.d.pid, signal.SIGCONT)
            self.longest = max(self.longest, time.monotonic() - stopped)
            self.count += 1
            self.next = time.monotonic() + 0.21

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.kill(self.d.pid, signal.SIGCONT)


LATE_LINE = re.compile(r"audio_pacing_late .*dropped the oldest (\d+) bytes"
                       r".*: (\d)\)$")


def test_late_backlog_loses_only_its_excess():
    """A server that stalls 40 ms at a time, every 250 ms, leaves the
    guest's sound waiting a little longer each time (steering drains it
    at 1-2 %), until more than 100 ms of it waits and some must go.  What
    goes is the excess and 10 ms more: short holes, not ones of over
    100 ms (all but a tick, as it was).  Each drop is counted in info
    audio."""
    extra = ",out.latency=20000,out.max-latency=20000"
    trace = ["-trace", "audio_pacing_late", "-trace", "audio_pacing_overflow",
             "-trace", "audio_pacing_stall"]
    with daemon() as d, qemu(pa_args(d.socket, extra) + trace) as q:
        wait_connected(q, d=d)
        player = start_playing(q, pattern(RATE * 90))
        assert player.play(5, until=lambda: stream(q)["bytes"] > RATE * FRAME)
        stalls = ServerStalls(d)

        def stall_until_drops():
            stalls.poll()
            return stream(q)["drops"] >= 5

        with stalls:
            assert player.play(60, until=stall_until_drops), \
                (stalls.count, stream(q))
        s = stream(q)
        # The FIFO's own overflow (a third of a second) never comes: the
        # backlog is cut long before, at 100 ms.  Only a server stopped
        # for over 200 ms (this process late to wake it) or QEMU stalled
        # itself may fill it.
        over = [ln for ln in q.lines if "audio_pacing_overflow" in ln]
        stalled = [ln for ln in q.lines if "audio_pacing_stall" in ln]
        assert not over or stalls.longest > 0.2 or stalled, \
            (over, stalled, stalls.longest)
        drops = [m for m in map(LATE_LINE.search, q.lines) if m]
        late = [int(m.group(1)) for m in drops if m.group(2) == "0"]
        # Nor is anything cut as from a server that took nothing for
        # 100 ms (all but a tick), but after a stop that long.
        assert len(late) == len(drops) or stalls.longest > 0.1 or \
            stalled, ([m.group(0) for m in drops], stalls.longest)
        assert len(drops) == s["drops"], (len(drops), s)
        assert sum(int(m.group(1)) for m in drops) == s["lost"], s
        # 10 ms, and the room the server had at the tick before (up to
        # its 20 ms), and late ticks of a loaded host: up to 50 ms.  Cut
        # down to a tick, each was over 100 ms (114-134 ms here).
        assert late and max(late) <= us_to_bytes(50000), (late, stalls)
        assert q.alive()


TICK_LINE = re.compile(r"audio_pacing_tick .*stream 1: \d+ frames due, "
                       r"fifo (\d+) bytes, (-?\d+) ppm")


class PlaybackTicks:
    """PCM OUT's pacing ticks (fifo bytes, ppm) from QEMU's trace, read
    on as QEMU prints them."""

    def __init__(self, q):
        self.q, self.seen, self.ticks = q, len(q.lines), []

    def read(self):
        lines, self.seen = self.q.lines[self.seen:], len(self.q.lines)
        self.ticks += [(int(m.group(1)), int(m.group(2)))
                       for m in map(TICK_LINE.search, lines) if m]
        return self.ticks

    def backlog(self):
        ticks = self.read()
        return ticks[-1][0] if ticks else 0


def test_long_backlog_drains_faster():
    """What waited out the server's stalls drains as the guest is slowed
    down: by up to 1 % while less than 30 ms waits, more while more does
    (up to 2 %), so that 90 ms drain in some 4 s, not 9 s, and a loaded
    host's next stall finds less waiting."""
    extra = ",out.latency=20000,out.max-latency=20000"
    trace = ["-trace", "audio_pacing_tick"]
    with daemon() as d, qemu(pa_args(d.socket, extra) + trace) as q:
        wait_connected(q, d=d)
        player = start_playing(q, pattern(RATE * 90))
        assert player.play(5, until=lambda: stream(q)["bytes"] > RATE * FRAME)
        stalls = ServerStalls(d)
        ticks = PlaybackTicks(q)

        def stall_until_late():
            stalls.poll()
            return ticks.backlog() >= us_to_bytes(80000)

        with stalls:
            assert player.play(30, until=stall_until_late), \
                (stalls.count, ticks.backlog(), stream(q))
        ticks = PlaybackTicks(q)
        assert player.play(8, until=lambda: 0 < ticks.backlog() <
                           us_to_bytes(20000)), (ticks.backlog(), stream(q))
        # While 70 ms or more wait, the guest runs 1.5-2 % slow (the
        # steering follows the backlog through a 16-exchange average);
        # at 1 % it would take 9 s to drain 90 ms.
        long = [ppm for fifo, ppm in ticks.read()
                if fifo >= us_to_bytes(70000)]
        slowed = sum(ppm <= -15000 for ppm in long)
        assert long and slowed >= len(long) * 9 // 10, \
            (slowed, len(long), min(long, default=0), max(long, default=0))
        assert min(ppm for _, ppm in ticks.read()) >= -20000
        assert q.alive()


def test_stream_stays_full_against_a_fast_sink():
    """PulseAudio's null sink rounds each chunk it plays down to a whole
    microsecond and so consumes a few hundred ppm faster than QEMU's clock
    feeds it (a sound card's crystal may be off as much).  AC97 steers its
    pace by the room the stream has left, so the stream stays at its
    latency instead of draining by ~0.5 ms a second towards an
    underrun."""
    latency = 20000
    extra = f",out.latency={latency},out.max-latency={latency}"
    with daemon() as d, qemu(pa_args(d.socket, extra)) as q:
        wait_connected(q, d=d)
        player = start_playing(q, pattern(RATE * 40))
        start = time.monotonic()
        seen = []
        next_sample = [start]

        def sampled():
            now = time.monotonic()
            if now >= next_sample[0]:
                next_sample[0] = now + 0.1
                s = stream(q)
                if now - start > 5 and s.get("measured-latency"):
                    seen.append(s["measured-latency"])
            return now - start > 25

        assert player.play(30, until=sampled), stream(q)
        # Drifting, the stream would cross the whole range between its
        # latency and an underrun every 20-40 s: half the samples far
        # below it.  Kept full, it stays within a few requests of it,
        # but for a stall of this host's now and then (seen in CI: one
        # dip to 7 ms, steered back up within 5 s).
        # In time order, with the stream's counters, for the next failure
        # (one in CI, spread evenly over 11.6-18.9 ms, cause not found).
        median = sorted(seen)[len(seen) // 2]
        assert len(seen) > 100 and median >= latency - 3000, \
            (median, stream(q), seen)
        assert q.alive()


def test_measured_latency_is_reported_after_an_idle_start():
    """QMP's measured-latency is PulseAudio's view of the stream (what it
    holds, plus the sink's latency), there while the guest plays at the
    defaults, also when it was asked for while the stream rested, as the
    bench does while its guest boots.  libpulse's own interpolated answer,
    taken before, was read then far ahead of the stream's time, and as it
    never runs back, it answered 0 for the next seconds of playback: the
    field went missing for the whole of the bench's runs."""
    with daemon() as d, qemu(pa_args(d.socket)) as q:
        wait_connected(q)
        # Watched while it rests, as the bench and a user's monitoring do.
        rest_end = time.monotonic() + IDLE_START
        while time.monotonic() < rest_end:
            stream(q)
            time.sleep(0.5)
        player = start_playing(q, pattern(RATE * 30))
        start = time.monotonic()
        seen = []
        next_sample = [start + 0.5]

        def sampled():
            now = time.monotonic()
            if now >= next_sample[0]:
                next_sample[0] = now + 0.5
                s = stream(q)
                seen.append((s.get("measured-latency"), s["latency"]))
            return now - start > 8

        assert player.play(15, until=sampled), stream(q)
        measured = sorted(m for m, _ in seen if m is not None)
        assert len(measured) >= len(seen) * 9 // 10, seen
        # Near the latency in force, not 0, not seconds.
        median = measured[len(measured) // 2]
        assert 1000 <= median <= max(f for _, f in seen) + 20000, \
            (median, seen)
        assert q.alive()


def wait_connected_again(q, since, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = stream(q)
        if s and s["connected"]:
            return time.monotonic() - since
        time.sleep(0.01)
    raise AssertionError(f"stream never came back: {stream(q)}")


def test_server_restart_mid_stream():
    """Kill the daemon while playing: the guest runs on, sound comes back."""
    with daemon() as d, qemu(pa_args(d.socket)) as q:
        wait_connected(q)
        player = start_playing(q, pattern(RATE * 30))
        assert player.play(5, until=lambda: player.irqs >= 50)

        mark = len(q.lines)
        d.kill()
        assert q.wait_line("lost PulseAudio", 5, mark) is not None, \
            q.stderr()
        # The guest keeps getting its interrupts while there is no server.
        before = player.irqs
        assert player.play(2, until=lambda: player.irqs >= before + 50)

        d.start()
        ready = time.monotonic()
        back = q.wait_line("reconnected to PulseAudio", 5, mark)
        assert back is not None, q.stderr()
        took = wait_connected_again(q, ready)
        assert took < 1.0, f"the stream was back {took:.2f}s after the restart"
        rec = d.record()
        try:
            heard = player.play(5, until=lambda: any(
                rec.data[i:i + FRAME] != b"\0" * FRAME
                for i in range(0, len(rec.data), FRAME * 64)))
        finally:
            rec.stop()
        assert heard, "no sound after the restart"
        s = stream(q)
        assert s["connected"] and s["reconnects"] == 1, s
        assert q.alive()


def test_stream_back_after_its_sink_is_removed():
    """The sink a stream plays to goes away (a USB headset unplugged, its
    module unloaded) and no other sink is there: PulseAudio fails the
    stream, the server itself staying up.  The guest plays on, and when a
    sink is back, so is the sound."""
    with daemon() as d, \
            qemu(pa_args(d.socket) + ["-trace", "pa_stream_failed"]) as q:
        wait_connected(q)
        player = start_playing(q, pattern(RATE * 60))
        assert player.play(5, until=lambda: player.irqs >= 50)
        remove_sink(d)
        assert q.wait_line("the server failed it", 5) is not None, \
            q.stderr()
        before = player.irqs
        assert player.play(2, until=lambda: player.irqs >= before + 50)
        restore_sink(d)
        rec = d.record()
        try:
            # Asked again 0.5, 1, 2, then every 4 s.
            heard = player.play(8, until=lambda: sound_in(rec.data))
        finally:
            rec.stop()
        assert heard, "no sound once the sink was back\n" + q.stderr()
        assert q.alive()


def test_server_started_after_qemu():
    """A socket-activated or late server is connected when it appears."""
    pw = ensure_user(*USER)
    d = PulseDaemon(pw)
    with qemu(pa_args(d.socket)) as q:
        assert q.wait_line("cannot connect to PulseAudio", 5) is not None, \
            q.stderr()
        assert q.alive()
        d.start()
        try:
            s = wait_connected(q)
            assert s["reconnects"] == 0, s
        finally:
            d.stop()


BAD_OPTIONS = [
    ("out.latency=10", "out.latency=10 is out of range; accepted values "
     "are 1000 to 2000000"),
    ("in.latency=3000000", "in.latency=3000000 is out of range"),
    ("out.latency=8000,out.max-latency=4000", "out.max-latency=4000 is out "
     "of range"),
    ("out.latency=fast", "Parameter 'out.latency' expects"),
    ("out.max-latency=-1", "Parameter 'max-latency' expects"),
    ("timer-period=x", "Parameter 'timer-period' expects"),
    ("out.format=s24", "Parameter 'format' does not accept value 's24'"),
    ("out.mixing-engine=off,out.frequency=48000", "You can't use frequency, "
     "channels or format with fixed-settings=off"),
]


def test_bad_options_fail_cleanly():
    """Each bad value: exit 1, the option named, no abort."""
    for opts, message in BAD_OPTIONS:
        r = subprocess.run(
            [qemu_binary(), "-nodefaults", "-display", "none", "-S",
             "-audiodev", f"pa,id=snd0,{opts}",
             "-device", "AC97,audiodev=snd0"],
            capture_output=True, text=True, timeout=20)
        assert r.returncode == 1, (opts, r.returncode, r.stderr)
        assert message in r.stderr, (opts, r.stderr)


def test_pipewire_pulse_playback():
    """The same playback on a PipeWire desktop, from its first frame.  The
    server found is pipewire-pulse, which would make the stream ~21 ms
    whatever it asks: playback goes to the PipeWire daemon behind it, on
    its own socket, and says so once.  What waited while the graph
    started plays late, none of it lost, and the stream counts no loss."""
    with daemon("pipewire") as d, qemu(pa_args(d.socket, INTACT)) as q:
        wait_connected(q, timeout=15)
        at = q.wait_line("goes to its PipeWire daemon directly", 1)
        assert at is not None, q.stderr()
        socket = os.path.join(d.runtime, "pipewire-0")
        assert socket in q.lines[at] and stream(q)["server"] == socket, \
            (q.lines[at], stream(q))
        # A cycle takes a whole quantum (256 frames, 5333 us) at once: the
        # ring starts that much above the latency asked for.
        s = stream(q)
        assert s["latency"] >= s["configured-latency"] + 5333, s
        play_and_check(d, q, lead_in=False)
        assert stream(q)["lost"] == 0, stream(q)


def test_pipewire_cycles_fill_while_the_main_loop_stalls():
    """A main loop that comes late leaves the native stream's ring short:
    a host that ran PipeWire's real-time thread first, a main thread
    runnable behind another task (README-fork, "Filled in the cycle").
    Here QEMU's main thread is stopped for 30 ms, several times the ring,
    five times while the guest plays.  A cycle that finds the ring short
    runs the audio layer from PipeWire's thread and plays what the guest
    played by then: no cycle in a stall is short.  Without that, each
    stall was an underrun.  (A short cycle outside the stalls, one a
    minute on the bench, is a main loop holding the lock as a cycle came:
    not this test's.)  Stopped in ppoll, the main thread holds no lock,
    and the halted vCPU takes none."""
    with daemon("pipewire") as d, \
            qemu(pa_args(d.socket) + ["-trace", "pw_out_rescue",
                                      "-trace", "pw_out_short",
                                      "-msg", "timestamp=on"]) as q:
        wait_connected(q, timeout=15)
        player = start_playing(q, pattern(RATE * 10))
        stalls = []
        try:
            assert player.play(5, until=lambda: player.irqs >= 30)
            before = stream(q)
            mark = len(q.lines)
            for _ in range(5):
                stalls.append(q.stall_main_loop(0.03))
                irqs = player.irqs
                assert player.play(5, until=lambda: player.irqs >= irqs + 3)
            after = stream(q)
        finally:
            player.stop()

        def during_stalls(event):
            """The lines of @event traced while the main thread was
            stopped.  Once let go, it holds the lock as it catches up, and
            a cycle then may be short (slower under ASan)."""
            return [line for line in q.lines[mark:]
                    if (m := re.search(r"@(\d+\.\d+):" + event, line)) and
                    any(a <= float(m[1]) <= b for a, b in stalls)]
        filled = [line for line in during_stalls("pw_out_rescue")
                  if (m := re.search(r"then (\d+), of the (\d+)", line)) and
                  int(m[1]) >= int(m[2])]
        assert len(filled) >= 5, q.stderr()[-3000:]
        assert not during_stalls("pw_out_short"), \
            "\n".join(during_stalls("pw_out_(short|rescue)"))
        assert after["lost"] == before["lost"], (before, after)
        # What the monitor tells of them: a pulse stream has no such count.
        assert after["rescues"] - before["rescues"] >= len(filled), \
            (before, after, len(filled))


def test_pipewire_start_takes_a_whole_quantum():
    """The native stream plays from the level it keeps, as a pulse stream
    plays from its prebuf: the first cycle after each start of the guest
    takes a whole quantum.  It used to take the few frames the ring had by
    then, and the cycles after it came short too (the ring fills no faster
    than the guest plays): an underrun at every start, which raised the
    latency."""
    with daemon("pipewire") as d, \
            qemu(pa_args(d.socket, INTACT) +
                 ["-trace", "pw_out_first", "-trace", "pw_out_active"]) as q:
        wait_connected(q, timeout=15)
        for start in range(2):
            mark = len(q.lines)
            player = start_playing(q, pattern(RATE // 2))
            try:
                assert player.play(5), "the guest ran out of interrupts"
            finally:
                player.stop()
            assert q.wait_line("active 0", 5, mark) is not None, q.stderr()
            at = q.wait_line("the first cycle took", 1, mark)
            assert at is not None, q.stderr()
            took = re.search(r"took (\d+) of the (\d+) bytes", q.lines[at])
            assert took[1] == took[2], (start, q.lines[at])
        assert stream(q)["underruns"] == 0, stream(q)


def fifo_after_start(q, mark, first, last):
    """The playback FIFO's level, in ms of sound, at the card's ticks
    @first to @last (1 ms each) after the start at line @mark."""
    ticks = [int(m[1]) for m in
             (re.search(r"stream 1: \d+ frames due, fifo (\d+) bytes", ln)
              for ln in q.lines[mark:]) if m]
    assert len(ticks) > last, (len(ticks), q.stderr()[-2000:])
    return [bytes_to_us(n) / 1000 for n in ticks[first:last]]


def test_pipewire_start_is_not_held_back():
    """The card's clock starts as the backend does.  PipeWire's graph
    takes a new stream's first quantum late, and in the bench then nothing
    for some 40 ms; a clock that ran on meanwhile left it all in the
    card's FIFO, to play that late while steering drained it over seconds
    (53 ms of it at the bench's starts, 28 ms still 2 s later; here, where
    the graph does not pause, 1.8-2.4 ms at 128 frames).  After each
    exchange with the backend, less than a tick is left.  Whether the
    clock had to wait is not asked: a backend that takes at the first
    tick leaves nothing to wait for (CI, both bases, at 128 frames)."""
    with daemon("pipewire") as d, \
            qemu(pa_args(d.socket) + ["-trace", "audio_pacing_tick",
                                      "-trace", "audio_pacing_held"]) as q:
        wait_connected(q, timeout=15)
        mark = len(q.lines)
        player = start_playing(q, pattern(RATE))
        try:
            assert player.play(1), "the guest ran out of interrupts"
        finally:
            player.stop()
        # Every other reading is the tick's, a tick's worth higher.
        late = sorted(fifo_after_start(q, mark, 150, 400))
        held = q.wait_line("the clock waits", 0, mark) is not None
        assert late[len(late) // 4] < 1, \
            (late[::25], "the clock waited" if held else "no wait")


def test_pipewire_off_keeps_pipewire_pulse():
    """pipewire=off: playback stays on pipewire-pulse, as a user may want
    of a daemon whose own socket misbehaves, and plays all the same, in
    order.  Not exactly: pipewire-pulse itself drops a 256-frame quantum
    now and then (CI, 10.0 base: frame 5376 of 2 s), and does so to a
    native pulse client as well: the bench's pa-floor through it lost
    one quantum in 60 s idle, and two loaded, in whole quanta
    (RESULTS-2026-12-04-native-pw-2/-3; issue 15 item 4).
    The exact check is the native path's, above."""
    with daemon("pipewire") as d, \
            qemu(pa_args(d.socket, INTACT + ",pipewire=off")) as q:
        wait_connected(q, timeout=15)
        assert stream(q)["server"] == f"unix:{d.socket}", stream(q)
        play_and_check(d, q, exact=False, lead_in=False)
        assert not any("PipeWire daemon directly" in ln for ln in q.lines)


@contextlib.contextmanager
def pipewire_socket_seen_as(d, mode, listen):
    """A command prefix that runs QEMU in a mount namespace of its own,
    where @d's pipewire-0 is another socket of the same owner, of @mode,
    listening (@listen) without ever answering, or not.  pipewire-pulse
    connects to the real one for each of its clients, so the real one
    stays as it is for everyone else."""
    where = tempfile.mkdtemp(prefix="qva-pw-")
    fake = os.path.join(where, "pipewire-0")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(fake)
        if listen:
            sock.listen(8)
        os.chown(fake, d.pw.pw_uid, d.pw.pw_gid)
        os.chmod(fake, mode)
        yield ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh",
               fake, os.path.join(d.runtime, "pipewire-0")]
    finally:
        sock.close()
        shutil.rmtree(where)


def falls_back(q, d, why, timeout):
    """Playback through pipewire-pulse after the daemon's own socket was
    given up on for @why, said once; then it plays, in order (not exactly:
    see above)."""
    at = q.wait_line("playback goes through pipewire-pulse instead",
                     timeout)
    assert at is not None, q.stderr()
    assert why in q.lines[at], q.lines[at]
    wait_connected(q, timeout=15)
    assert stream(q)["server"] == f"unix:{d.socket}", stream(q)
    play_and_check(d, q, exact=False, lead_in=False)
    assert sum("pipewire-pulse instead" in ln for ln in q.lines) == 1, \
        q.stderr()
    assert q.alive()


def test_pipewire_denied_plays_through_pipewire_pulse():
    """A daemon socket QEMU may not connect to while pipewire-pulse's lets
    it in, as under a libvirt AppArmor profile that allows pulse/native
    only (here QEMU runs as the desktop user and sees the socket with
    mode 0): playback goes through pipewire-pulse at once, rather than
    nowhere."""
    with daemon("pipewire") as d, \
            pipewire_socket_seen_as(d, 0, listen=True) as prefix, \
            qemu(pa_args(d.socket, INTACT), user=d.pw, env=d.env,
                 prefix=prefix) as q:
        falls_back(q, d, "Permission denied", 5)


def test_pipewire_silent_plays_through_pipewire_pulse():
    """A daemon socket that takes the connection and never answers (a
    daemon hung): after 3 s playback goes through pipewire-pulse."""
    with daemon("pipewire") as d, \
            pipewire_socket_seen_as(d, 0o777, listen=True) as prefix, \
            qemu(pa_args(d.socket, INTACT), prefix=prefix) as q:
        falls_back(q, d, "no answer for 3 s", 10)


class Needle:
    """@needle in a recording that grows, searched from where the last
    search ended."""

    def __init__(self, needle):
        self.needle = needle
        self.at = 0

    def find(self, data):
        found = data.find(self.needle, self.at) >= 0
        self.at = max(len(data) - len(self.needle) + 1, 0)
        return found


def capturing(q):
    s = stream(q, "capture")
    return s is not None and s["connected"]


def host_sound_reaches_guest(d, q, rec):
    """A native client plays the pattern into the null sink, and the
    guest's AC97, recording from the sink's monitor, gets every frame in
    order, none repeated or altered; of a capture stream that overran, at
    most 1 % skipped.  pipewire-pulse's null sink, and so its monitor,
    runs only while something plays: the stream only has to be up."""
    frames = RATE * 2
    assert rec.play(10, until=lambda: capturing(q)), stream(q, "capture")
    # Silence around it: a monitor misses what PulseAudio rewinds as a
    # stream starts, and pacat's last frames wait for more.
    tenth = bytes(RATE // 10 * FRAME)
    last = Needle(struct.pack("<hh", *pattern_frame(frames - 1)))
    monitor = d.record()
    host = HostPlayer(d, tenth + pattern(frames) + tenth)
    try:
        assert rec.play(15, until=lambda: last.find(rec.data)), \
            (len(rec.data), stream(q, "capture"))
        assert host.wait(10) == 0
    finally:
        host.stop()
        rec.stop()
        native = monitor.stop()
    skipped, why = pattern_in_order(bytes(rec.data), frames)
    assert why is None, (why, "native:", pattern_in_order(native, frames))
    assert skipped <= frames // 100, f"{skipped} frames skipped"
    assert q.alive()


MONITOR = ",in.name=null.monitor"


def test_capture_from_pulseaudio():
    """The guest records what a native client plays through PulseAudio."""
    with daemon() as d, qemu(pa_args(d.socket, MONITOR)) as q:
        wait_connected(q)
        host_sound_reaches_guest(d, q, start_recording(q))


def test_capture_from_pipewire_pulse():
    """The same through pipewire-pulse (issue 15)."""
    with daemon("pipewire") as d, qemu(pa_args(d.socket, MONITOR)) as q:
        wait_connected(q, timeout=15)
        host_sound_reaches_guest(d, q, start_recording(q))


def test_capture_started_while_the_stream_is_created():
    """The guest starts recording while the server has yet to answer its
    stream, which was asked for corked (the guest was not recording):
    after its device went away, here, or through pipewire-pulse, which
    answers only once its session manager linked the stream (1 run in 5
    of a capture test).  Once answered, the stream records."""
    trace = ["-trace", "pa_stream_failed", "-trace", "pa_stream_create"]
    with daemon() as d, qemu(pa_args(d.socket, MONITOR) + trace) as q:
        wait_connected(q)
        assert capturing(q)
        mark = len(q.lines)
        remove_sink(d)
        assert q.wait_line("the server failed it", 5, mark) is not None, \
            q.stderr()
        restore_sink(d)
        # Both streams are asked for again 0.5 s after they failed; the
        # server, stopped, answers once the guest recorded.  Asked for
        # again only after another second: well after that.
        os.kill(d.pid, signal.SIGSTOP)
        try:
            first = q.wait_line("pa_stream_create", 5, mark)
            assert first is not None, q.stderr()
            assert q.wait_line("pa_stream_create", 5, first + 1) \
                is not None, q.stderr()
            rec = start_recording(q)
        finally:
            os.kill(d.pid, signal.SIGCONT)
        host_sound_reaches_guest(d, q, rec)


def test_pipewire_pulse_restart():
    """pipewire-pulse killed and started again: the stream comes back, and
    says it is a new one.  The native stream can beat wireplumber to the
    restarted daemon, which then fails it ("no node available") and the
    backend makes it once more: one in 15 restarts here (stop 41)."""
    with daemon("pipewire") as d, \
            qemu(pa_args(d.socket) + ["-trace", "pw_out_state",
                                      "-trace", "pw_out_create"]) as q:
        wait_connected(q)
        mark = len(q.lines)
        d.kill()
        assert q.wait_line("lost PulseAudio", 5, mark) is not None, \
            q.stderr()
        assert q.alive()
        d.start()
        ready = time.monotonic()
        assert q.wait_line("reconnected to PulseAudio", 5, mark) is not None
        took = wait_connected_again(q, ready)
        assert took < 1.0, f"the stream was back {took:.2f}s after the restart"
        # Playback's stream, on PipeWire's own socket, was made again,
        # and after that only in place of one the daemon failed.
        made = stream(q)["streams"]
        creates, at = [], -1
        for n in range(made):
            at = q.wait_line("pw_out_create", 5, at + 1)
            assert at is not None, f"stream {n + 1} of {made} was not traced"
            creates.append(at)
        again = [i for i in creates if i > mark]
        assert again, f"no stream was made after the restart: {stream(q)}"
        for prev, cur in zip(again, again[1:]):
            assert any(re.search(r"pw_out_state stream \S+: error ", line)
                       for line in q.lines[prev:cur]), \
                "a working stream was made again:\n" + \
                "\n".join(q.lines[mark:cur + 1])


def test_unanswered_stream_is_asked_for_again():
    """pipewire-pulse without its session manager accepts a stream and
    never answers it, as it may when QEMU came back before wireplumber
    after a restart.  The backend asks again after 0.5 s, then 1, 2, 4 s
    apart; QEMU runs on."""
    with daemon("pipewire", session_manager=False) as d, \
            qemu(pa_args(d.socket) + ["-trace", "pa_stream_unanswered"]) as q:
        for ms in (500, 1000, 2000):
            assert q.wait_line(f"no answer from the server in {ms} ms",
                               ms / 1000 + 3) is not None, q.stderr()
        # Capture: playback goes to the daemon itself, which links a
        # stream once its session manager comes up.
        s = stream(q, "capture")
        assert s["streams"] >= 4 and not s["connected"], s
        assert q.alive()
