"""The benchmark's own tools, so that a bench run does not fail an hour
in: the native floor (bench/native/pa-floor.c) builds, plays the bench's
signal intact at a comfortable latency, and is measured by the same
analysis as QEMU's runs; the frame counter's reading (bench/latency.py)
counts what was lost, repeated and missing."""

import importlib.util
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import harness
from harness import PulseDaemon, TOP, ensure_user

DESK = ("qva-desk1", 1701)


def run_bench_module():
    spec = importlib.util.spec_from_file_location(
        "run_bench", os.path.join(TOP, "bench", "run-bench.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def signal(frames):
    """The bench's signal (bench/guest/signal.awk) for these frame
    numbers, None being a silent frame."""
    return b"".join(
        b"\0" * 4 if i is None else
        struct.pack("<hh", int(-16384 + 32768 * (i % 48) / 48),
                    -16384 + i % 32768)
        for i in frames)


def test_counter_reading():
    sys.path.insert(0, os.path.join(TOP, "bench"))
    import latency
    # 70000 frames played; a gap, 10 frames lost, 10 played twice, a
    # wrap of the counter, 100 missing at the end.
    frames = ([None] * 30 + list(range(1000)) + [None] * 50 +
              list(range(1000, 40000)) + list(range(40010, 50000)) +
              list(range(49990, 69900)))
    _, numbers, st = latency.unwrap(signal(frames), 70000, 0)
    assert (st["lost"], st["repeated"], st["head"], st["tail"]) == \
        (10, 1, 0, 100), st
    assert numbers[-1] == 69899
    # The same read as a resampled stream would be: a wobble of a few
    # frames is not a loss.
    wobbly = [i if i is None or i % 7 != 3 else i + 3 for i in frames]
    _, _, st = latency.unwrap(signal(wobbly), 70000, 4)
    assert (st["lost"], st["head"]) == (10, 0), st
    assert abs(st["tail"] - 100) <= 4, st
    # Chunks of 1200 frames, each arriving 3 ms after its last frame
    # played, one 40 ms late; a frame read 5 ms before it played.
    stamps = [(100 + k * 0.025 + (0.043 if k == 7 else 0.003), k * 4800)
              for k in range(1, 50)]
    clock = latency.SinkClock(stamps)
    offsets, numbers, _ = latency.unwrap(signal(range(48000)), 48000, 0)
    played = 100.003 + 23999 / 48000
    got = latency.latencies([(played - 0.005, 23999)], offsets, numbers,
                            clock)
    assert len(got) == 1 and abs(got[0] - 0.005) < 1e-6, got
    # The sink stopped for 50 ms after chunk 20 (PipeWire's graph as a
    # stream joins).  Frames read 5 ms before they played, one just
    # after the pause and one just before it: both 5 ms (the least of
    # both sides made the first -45 ms).
    stamps = [(100 + k * 0.025 + 0.003 + (0.05 if k > 20 else 0),
               k * 4800) for k in range(1, 50)]
    clock = latency.SinkClock(stamps)
    after = 100.003 + 0.05 + 26399 / 48000
    before = 100.003 + 23999 / 48000
    got = latency.latencies([(after - 0.005, 26399),
                             (before - 0.005, 23999)], offsets, numbers,
                            clock)
    assert len(got) == 2 and abs(got[0] - 0.005) < 1e-6 and \
        abs(got[1] - 0.005) < 1e-6, got


def test_disturbance_recovery():
    """bench/disturb.py's reading of a disturbed run: the level before
    the load, the peak, when the latency is back within 1 ms to stay,
    and the gaps by phase."""
    sys.path.insert(0, os.path.join(TOP, "bench"))
    import disturb
    # 5 ms until the load at 22.5 s, 20 ms during it, then down in steps
    # to 6.1 ms at 40 s (not yet within 1 ms), 5.9 ms at 41 s, a bounce
    # to 7 ms at 44 s: back 3.5 s after the load.
    steps = [(0, 5), (22.5, 20), (37.5, 20), (38, 12), (40, 6.1),
             (41, 5.9), (44, 7), (46, 5)]
    points = [(t / 10, next(v for a, v in reversed(steps) if a <= t / 10))
              for t in range(600)]
    before, peak, back = disturb.recovery(points, 22.5, 37.5)
    assert (before, peak) == (5, 20)
    assert abs(back - 3.5) < 0.11, back
    # Never back: None.
    stuck = [(t, v if t < 22.5 else 9) for t, v in points]
    assert disturb.recovery(stuck, 22.5, 37.5)[2] is None
    # PulseAudio's view is judged on its 1 s running median: one low
    # sample during the recovery is not being back (half a second late).
    noisy = [(t, 4.0 if abs(t - 38.5) < 0.01 else v) for t, v in points]
    back = disturb.recovery(noisy, 22.5, 37.5, smooth=True)[2]
    assert 3.5 <= back <= 4.1, back
    tl = disturb.timeline(0, [], [], points,
                          [(3, 5.3), (30, 5.3), (31, 5.3), (40, 5.3),
                           (55, 5.3)])
    s = disturb.summary(tl, 22.5, 37.5)
    assert (s["gaps_before"], s["gaps_during"], s["gaps_recovery"],
            s["gaps_after"]) == (1, 2, 1, 1), s
    assert (s["sink"]["before"], s["sink"]["peak"]) == (5, 20), s


def play_recorded(daemon, cmd, env, timeout):
    """Run a native floor @cmd against the started @daemon while its sink
    is recorded; stop the daemon.  Returns the process, the PCM and the
    recording (its sink timeline)."""
    try:
        rec = daemon.record()
        p = subprocess.run(cmd, env=dict(os.environ, **env),
                           capture_output=True, text=True, timeout=timeout)
        pcm = rec.stop()
    finally:
        daemon.stop()
    return p, pcm, rec


def granted(start_line):
    """pa-floor's "PA-FLOOR-START tlength=US prebuf=US minreq=US"."""
    return dict(kv.split("=") for kv in start_line.split()[1:])


def test_latency_in_force_from_the_trace():
    """A disturbed run's latency in force, read from QEMU's pa_latency
    lines (tracetool's log backend with -msg timestamp=on: "PID@SEC.USEC:")
    at each pactl sample's monotonic time; other lines are skipped, and
    before the first change it is the first QMP sample's."""
    rb = run_bench_module()
    tmp = tempfile.mkdtemp(prefix="qva-test-")
    log = os.path.join(tmp, "qemu-latency.log")
    with open(log, "w") as f:
        f.write("123@1000.500000:pa_latency stream snd0: "
                "latency 5000 -> 6250 us\n"
                "123@1000.600000:pa_headroom stream snd0: at 6250 us it "
                "dipped 2000 us below full at most\n"
                "123@1002.250000:pa_latency stream snd0: "
                "latency 6250 -> 5000 us\n")
    offset = 1000.0 - 10.0          # wall 1000.0 s is monotonic 10.0 s
    pa = [{"t": t} for t in (10.0, 10.4, 10.5, 11.0, 12.2, 12.3)]
    got = rb.in_force_from_trace(log, pa, [{"latency": 5000}], offset)
    assert [(s["t"], s["latency"]) for s in got] == [
        (10.0, 5000), (10.4, 5000), (10.5, 6250), (11.0, 6250),
        (12.2, 6250), (12.3, 5000)], got
    # The native path has no pactl samples: every 0.1 s over QMP's span.
    qmp = [{"t": 10.0, "latency": 5000}, {"t": 12.0, "latency": 5000}]
    got = rb.in_force_from_trace(log, [], qmp, offset)
    assert len(got) == 21, got
    assert [(round(s["t"], 1), s["latency"]) for s in got[4:7]] == [
        (10.4, 5000), (10.5, 6250), (10.6, 6250)], got
    assert got[-1]["latency"] == 6250, got
    # No trace file: the QMP samples stay.
    qmp = [{"t": 1.0, "latency": 5000}]
    assert rb.in_force_from_trace(os.path.join(tmp, "none"), pa, qmp,
                                  offset) is qmp
    shutil.rmtree(tmp)


def test_pactl_only_while_it_may_see_the_stream():
    """A stream PulseAudio has no view of is not sampled with pactl past
    the first PA_VIEW_GRACE_S of the playback: each pactl costs the
    measured client's CPU its start.  One it has a view of is sampled to
    the end."""
    rb = run_bench_module()
    assert rb.pa_view_wanted([{"t": 1.0}], 0.0, 50.0)
    assert rb.pa_view_wanted([], None, 50.0)
    assert not rb.pa_view_wanted([], 0.0, rb.PA_VIEW_GRACE_S)
    daemon = PulseDaemon(ensure_user(*DESK)).start()
    try:
        calls = []
        pactl = daemon.pactl

        def counted(*args):
            calls.append(time.monotonic())
            return pactl(*args)
        daemon.pactl = counted
        # The guest's console, with nothing playing to the daemon.
        proc = subprocess.Popen(
            ["sh", "-c", "sleep 0.5; echo BENCH-START; sleep 3; "
             "echo BENCH-END"], stdout=subprocess.PIPE, text=True)
        console = rb.Console(proc.stdout, lambda: proc.pid)
        pa, _, _ = rb.sample_until_done({"qmp_streams": False}, daemon,
                                        console, proc, None)
        proc.wait()
        start = console.marks["BENCH-START"]
        assert pa == [], pa
        assert [t for t in calls if t < start], calls
        last = start + rb.PA_VIEW_GRACE_S + 2 * rb.SAMPLE_INTERVAL
        assert not [t - start for t in calls if t > last], \
            [t - start for t in calls]
    finally:
        daemon.stop()


def test_price_of_low_latency_in_cpu():
    """The fork's CPU besides its vCPU over stock's, beside a native
    client's at 5 ms over one at stock's requests, per load; a load
    missing a partner gets no row."""
    rb = run_bench_module()

    def run(config, load, play, rest=None):
        return {"case": {"setting": "main", "load": load,
                         "config": config},
                "cpu_play": play, "cpu_play_rest": rest}
    table = rb.price_table([
        run("stock-hda", "idle", 0.22, 0.098),
        run("fork-hda", "idle", 0.25, 0.113),
        run("native-stock-guest", "idle", 0.02),
        run("native-5ms-guest", "idle", 0.07),
        run("fork-hda", "load", 0.25, 0.11),
        run("stock-hda", "load", 0.2, 0.1),
        run("native-5ms-guest", "load", 0.06),
        run("fork-hda", "stalls", 0.25, 0.09),
        run("stock-hda", "stalls", 0.2, 0.1),
        run("native-stock-guest", "stalls", 0.02),
        run("native-5ms-guest", "stalls", 0.06)])
    rows = table.splitlines()[2:]
    assert rows == ["| 256/1024 | idle | 1.5 | 5.0 | 0.30 |",
                    "| 256/1024 | stalls | -1.0 | 4.0 | fork ≤ stock |"], \
        table


def test_gaps_heard_by_both_recorders():
    """Two recorders of the sink: a gap is the sink's only where both
    heard it.  A recorder that misses a cycle under load records it as
    silence in place of the frames (or loses them), and that is its own
    loss, not the player's; a source's gap (silence between two frames
    that follow on) is in both, also where one recorder's own loss runs
    into it."""
    rb = run_bench_module()
    source = list(range(10000)) + [None] * 256
    a = (source + list(range(10000, 30000)) + [None] * 256 +
         list(range(30256, 90000)))
    b = (source + list(range(10000, 50000)) + [None] * 256 +
         list(range(50256, 90000)))
    sig = rb.two_recorders(rb.analyse_signal(signal(a)),
                           rb.analyse_signal(signal(b)))
    assert (sig["gaps"], sig["late_gaps"], sig["one_recorder"]) == \
        (1, 0, (1, 1)), sig
    assert sig["gap_ms"] == 256 * 1000 / rb.RATE, sig
    # B's own loss of the 256 frames before the source's gap.
    b = (list(range(9744)) + [None] * 512 + list(range(10000, 90000)))
    sig = rb.two_recorders(rb.analyse_signal(signal(a)),
                           rb.analyse_signal(signal(b)))
    assert (sig["gaps"], sig["one_recorder"]) == (1, (1, 0)), sig
    # The same counter one period (0.68 s) on is another gap.
    b = (list(range(10000 + 32768)) + [None] * 256 +
         list(range(10000 + 32768, 90000)))
    sig = rb.two_recorders(rb.analyse_signal(signal(a)),
                           rb.analyse_signal(signal(b)))
    assert (sig["gaps"], sig["one_recorder"]) == (0, (2, 1)), sig
    # Late: after SETTLED_S seconds of signal.
    late = rb.SETTLED_S * rb.RATE + 1000
    a = list(range(late)) + [None] * 256 + list(range(late, late + 9000))
    sig = rb.two_recorders(rb.analyse_signal(signal(a)),
                           rb.analyse_signal(signal(a)))
    assert (sig["gaps"], sig["late_gaps"], sig["one_recorder"]) == \
        (1, 1, (0, 0)), sig
    # What reached the sink is the better recorder's: the first lost 256
    # frames that the second has.
    played = list(range(rb.RATE))
    first = signal(played[:20000] + [None] * 256 + played[20256:])
    opts = rb.parse_args(["--seconds", "1"])
    result = {"stream_spec": "s16le 2ch 48000Hz", "pa_sink": {},
              "pa_buffer": {}}
    with tempfile.TemporaryDirectory() as rundir:
        sink = rb.sink_side(rundir, ((first, []), (signal(played), [])),
                            [], opts, result, 0)
    assert (sink["kept"], sink["lost"], sink["kept_by"]) == (1.0, 256, 2), \
        sink
    assert sink["kept_each"] == [1 - 256 / rb.RATE, 1.0], sink


def test_native_recorder_hears_the_sink():
    """The bench's second recorder on PipeWire is pw-record, a process
    of its own straight to the daemon: it records the null sink's
    monitor as raw frames, all of a player's, in order."""
    from harness import HostPlayer, find_pattern, pattern, pattern_complete
    if not shutil.which("pw-record"):
        raise harness.Skip("pw-record is not installed")
    daemon = PulseDaemon(ensure_user(*DESK), flavor="pipewire").start()
    try:
        rec = daemon.record(native=True)
        frames = 4800
        HostPlayer(daemon, pattern(frames))
        assert rec.wait_for(lambda data: pattern_complete(data, frames),
                            30), \
            len(rec.data)
        data = rec.stop()
    finally:
        daemon.stop()
    assert len(data) % 4 == 0, len(data)
    gaps, why = find_pattern(data, frames)
    assert why is None, why


def test_several_daemons_in_one_run():
    """--daemon a,b plays each config on each daemon in turn, in one run,
    a config only PipeWire plays on PipeWire's alone; each config's read
    → sink on each daemon then stands side by side, less the first
    daemon's.  A daemon not known is refused, naming what is."""
    rb = run_bench_module()
    opts = rb.parse_args(["--configs", "fork-hda,native-pw-10ms",
                          "--loads", "idle", "--settings", "main",
                          "--daemon", "rtkit,pipewire-rtkit"])
    cases = rb.plan(opts)
    assert [(c["config"], c["daemon"]) for c in cases] == [
        ("fork-hda@rtkit", "rtkit"),
        ("fork-hda@pipewire-rtkit", "pipewire-rtkit"),
        ("native-pw-10ms@pipewire-rtkit", "pipewire-rtkit")], cases
    results = [{"case": c, "signal": {"gaps": gaps},
                "sink": {"kept": kept, "absolute": {"median": median,
                                                    "p95": median + 1}}}
               for c, gaps, kept, median in zip(
                   cases, (2, 0, 0), (0.99996, 1.0, 1.0), (6.1, 7.3, 5.5))]
    rows = rb.daemons_table(results).splitlines()[2:]
    assert rows == [
        "| 256/1024 | idle | fork-hda | rtkit | 6.1 | 7.1 | 2 | 99.996 | "
        "0.0 |",
        "| 256/1024 | idle | fork-hda | pipewire-rtkit | 7.3 | 8.3 | 0 | "
        "100.000 | 1.2 |"], rows
    # One daemon: the names stay as they were, and there is no such table.
    one = rb.plan(rb.parse_args(["--configs", "fork-hda", "--loads", "idle",
                                 "--settings", "main", "--daemon", "rtkit"]))
    assert [c["config"] for c in one] == ["fork-hda"], one
    assert rb.daemons_table([dict(results[0], case=one[0])]) == ""
    r = subprocess.run([sys.executable,
                        os.path.join(TOP, "bench", "run-bench.py"),
                        "--daemon", "rtkit,pipewire-rtk"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r
    assert "--daemon: unknown daemon 'pipewire-rtk'; it accepts normal, " \
        "pipewire, pipewire-rtkit, rtkit" in r.stderr, r.stderr


def test_native_floor_plays_the_signal_intact():
    rb = run_bench_module()
    rb.build_native()
    daemon = PulseDaemon(ensure_user(*DESK)).start()
    # 50 ms: what is tested is the tool, not how tight this machine can
    # run.
    p, pcm, rec = play_recorded(daemon, [rb.NATIVE,
                                         f"unix:{daemon.socket}",
                                         "50000", "2"],
                                {"PULSE_COOKIE": daemon.cookie}, 30)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    reads = rb.latency.floor_reads(lines)
    assert [line.split()[0] for line in lines
            if not line.startswith("PA-FLOOR-T ")] \
        == ["PA-FLOOR-START", "PA-FLOOR-END"], p.stdout
    assert "PA-FLOOR-END underruns=0" in lines, p.stdout
    # The fork's requests at 50 ms: 1 ms bites, one below the latency.
    # PulseAudio grants a prebuf of at most tlength less about a request
    # (48020 us here).
    start = granted(lines[0])
    assert (start["tlength"], start["minreq"]) == ("49000", "1000"), lines[0]
    assert 47000 <= int(start["prebuf"]) <= 49000, lines[0]
    # One every 50 ms or so.
    assert len(reads) >= 10, reads
    sig = rb.analyse_signal(pcm)
    assert (sig["gaps"], sig["breaks"]) == (0, 0), sig["where"]
    assert abs(sig["signal_s"] - 2.0) < 0.01, sig
    offsets, numbers, st = rb.latency.unwrap(pcm, 2 * rb.RATE, 0)
    assert (st["lost"], st["repeated"], st["tail"]) == (0, 0, 0), st
    # Every frame it said it wrote is found at the sink, not before it
    # wrote it: the sink's timeline and the counter agree.  (A sink with
    # room renders a frame the moment it comes, and it plays a sink
    # latency later: the timeline's noise may put the render a little
    # before the write.  Mostly by far less than a millisecond, but by
    # up to 2.6 ms near the stream's end (a CI run, one read of 40),
    # where the sink takes back what it had rendered ahead; a counter
    # read against the wrong timeline is off by tens of ms.)
    lat = rb.latency.latencies(reads, offsets, numbers,
                               rb.latency.SinkClock(rec.stamps))
    assert len(lat) == len(reads) and min(lat) > -0.005, lat
    assert sorted(lat)[len(lat) // 2] > 0, lat


def test_native_floor_asks_for_stocks_requests():
    """native-stock-guest's pa-floor: the server grants Debian's 7.2's
    attributes at its defaults (tlength = out.latency, minreq 3/4 of the
    10 ms timer, its own prebuf), so that its CPU is a client's at stock's
    latency."""
    rb = run_bench_module()
    rb.build_native()
    latency, minreq = rb.CONFIGS["native-stock-guest"][2].split()
    daemon = PulseDaemon(ensure_user(*DESK)).start()
    try:
        p = subprocess.run([rb.NATIVE, f"unix:{daemon.socket}", latency,
                            "1", minreq],
                           env=dict(os.environ, PULSE_COOKIE=daemon.cookie),
                           capture_output=True, text=True, timeout=30)
    finally:
        daemon.stop()
    assert p.returncode == 0, p.stderr
    start = [line for line in p.stdout.splitlines()
             if line.startswith("PA-FLOOR-START")]
    got = granted(start[0])
    # Granted in whole frames at 48 kHz: within one frame (21 us).
    assert abs(int(got["tlength"]) - int(latency)) <= 21, start
    assert abs(int(got["minreq"]) - int(minreq)) <= 21, start
    # PulseAudio's default prebuf: tlength less one request.
    assert abs(int(got["prebuf"]) - int(latency) + int(minreq)) <= 42, start


def test_native_floor_rejects_bad_arguments():
    rb = run_bench_module()
    rb.build_native()
    for args in ([], ["unix:/nonexistent", "500", "2"],
                 ["unix:/nonexistent", "5000", "0"],
                 ["unix:/nonexistent", "5000", "2", "500"],
                 ["unix:/nonexistent", "5000", "2", "6000"]):
        p = subprocess.run([rb.NATIVE] + args, capture_output=True,
                           text=True)
        assert p.returncode == 2, (args, p.returncode)
        assert p.stderr.startswith("usage: pa-floor"), p.stderr


def test_native_pw_floor_plays_the_signal_through_its_ring():
    """pw-floor with a ring (native-pw-ring-*): a thread's 1 ms tick tops
    the ring up and the graph's cycles take from it; at a comfortable
    latency every frame reaches the sink once, in order, and no cycle
    found the ring short."""
    rb = run_bench_module()
    rb.build_native(rb.NATIVE_PW)
    daemon = PulseDaemon(ensure_user(*DESK), flavor="pipewire").start()
    # node.latency 20 ms (the graph at 512 frames), the ring topped up to
    # 40 ms: what is tested is the tool, not this machine.
    p, pcm, _ = play_recorded(daemon,
                              [rb.NATIVE_PW, "20000", "2", "40000"],
                              rb.pw_env(daemon), 60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    end = [line for line in lines if line.startswith("PW-FLOOR-END")]
    assert len(end) == 1 and end[0].endswith(" short=0"), p.stdout
    assert len(rb.floor_reads(lines, "PW-FLOOR")) >= 10, p.stdout
    sig = rb.analyse_signal(pcm)
    assert (sig["gaps"], sig["breaks"]) == (0, 0), sig["where"]
    # The tail is the recorder's: pw-floor ends once the graph took its
    # last buffer, and the monitor's recording stops before that has
    # played (256 frames short here at 20 ms, with or without the ring).
    offsets, numbers, st = rb.latency.unwrap(pcm, 2 * rb.RATE, 0)
    assert (st["lost"], st["repeated"], st["head"]) == (0, 0, 0), st


def test_native_pw_floor_cycles_in_a_realtime_thread():
    """pw-floor's data thread, where the graph's cycles call it, runs
    real-time (module-rt, from client-rt.conf), as pw-cat's and the fork's
    native path's do.  Built on pw_stream_new_simple() it read
    client.conf, and its data thread stayed SCHED_OTHER: at 128 frames
    the graph went on without it some 70 times a minute, and the bench
    took that for PipeWire's floor (README-fork, 2026-12-05)."""
    rb = run_bench_module()
    rb.build_native(rb.NATIVE_PW)
    daemon = PulseDaemon(ensure_user(*DESK), flavor="pipewire").start()
    try:
        p = subprocess.Popen([rb.NATIVE_PW, "20000", "2"],
                             env=dict(os.environ, **rb.pw_env(daemon)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        try:
            # Streaming: the data thread runs cycles (whose stamps may
            # come first).
            for line in p.stdout:
                if line.startswith("PW-FLOOR-START"):
                    break
            policies = {tid: os.sched_getscheduler(int(tid)) &
                        ~os.SCHED_RESET_ON_FORK
                        for tid in os.listdir(f"/proc/{p.pid}/task")}
            _, err = p.communicate(timeout=30)
        finally:
            p.kill()
            p.wait()
    finally:
        daemon.stop()
    assert p.returncode == 0, err
    assert os.SCHED_FIFO in policies.values() or \
        os.SCHED_RR in policies.values(), policies


def test_pipewire_daemon_gets_what_rtkit_grants():
    """--daemon pipewire-rtkit: the data loops of pipewire and
    pipewire-pulse real-time, their main threads at nice -11, as on a
    desktop with rtkit; wireplumber left alone."""
    daemon = PulseDaemon(ensure_user(*DESK), flavor="pipewire",
                         realtime=True).start()
    try:
        seen = {}
        # The daemons' own process group: a walk of all of /proc would
        # meet processes that end under it.
        group = subprocess.run(["pgrep", "-g", str(daemon.proc.pid)],
                               capture_output=True, text=True, check=True)
        for pid in group.stdout.split():
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
            for tid in map(int, os.listdir(f"/proc/{pid}/task")):
                policy = os.sched_getscheduler(tid)
                prio = os.sched_getparam(tid).sched_priority
                nice = os.getpriority(os.PRIO_PROCESS, tid)
                main = tid == int(pid)
                seen.setdefault(comm, set()).add(
                    (main, policy, prio, nice if policy == os.SCHED_OTHER
                     else None))
    finally:
        daemon.stop()
    for comm in ("pipewire", "pipewire-pulse"):
        assert seen[comm] == {(True, os.SCHED_OTHER, 0, -11),
                              (False, os.SCHED_FIFO, 20, None)}, seen
    assert all(policy == os.SCHED_OTHER and nice == 0
               for _, policy, _, nice in seen["wireplumber"]), seen
