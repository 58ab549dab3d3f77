"""The benchmark's own tools, so that a bench run does not fail an hour
in: the native floor (bench/native/pa-floor.c) builds, plays the bench's
sawtooth intact at a comfortable latency, and is measured by the same
analysis as QEMU's runs."""

import importlib.util
import os
import subprocess

from harness import PulseDaemon, TOP, ensure_user

DESK = ("qva-desk1", 1701)


def run_bench_module():
    spec = importlib.util.spec_from_file_location(
        "run_bench", os.path.join(TOP, "bench", "run-bench.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_native_floor_plays_the_sawtooth_intact():
    rb = run_bench_module()
    rb.build_native()
    daemon = PulseDaemon(ensure_user(*DESK)).start()
    try:
        rec = daemon.record()
        # 50 ms: what is tested is the tool, not how tight this machine
        # can run.
        p = subprocess.run([rb.NATIVE, f"unix:{daemon.socket}", "50000", "2"],
                           env=dict(os.environ, PULSE_COOKIE=daemon.cookie),
                           capture_output=True, text=True, timeout=30)
        pcm = rec.stop()
    finally:
        daemon.stop()
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["PA-FLOOR-START",
                                     "PA-FLOOR-END underruns=0"], p.stdout
    sig = rb.analyse_signal(pcm)
    assert (sig["gaps"], sig["breaks"]) == (0, 0), sig["where"]
    assert abs(sig["signal_s"] - 2.0) < 0.01, sig


def test_native_floor_rejects_bad_arguments():
    rb = run_bench_module()
    rb.build_native()
    for args in ([], ["unix:/nonexistent", "500", "2"],
                 ["unix:/nonexistent", "5000", "0"]):
        p = subprocess.run([rb.NATIVE] + args, capture_output=True,
                           text=True)
        assert p.returncode == 2, (args, p.returncode)
        assert p.stderr.startswith("usage: pa-floor"), p.stderr
