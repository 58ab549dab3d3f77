#!/usr/bin/env python3
"""Soak: the bench guest plays while the sound server is ended and started
again many times at random moments, by SIGKILL or a clean exit.

usage: tests/integration/soak_restarts.py [--restarts N] [--seed S]
                                          [pulseaudio|pipewire ...]
(`make soak`; as root, with QEMU_BINARY set or build/ built.)

Per restart it prints how long the stream took to be connected again
(QMP query-audio-streams), how long until the guest's sound was at the
sink, and QEMU's open file descriptors and resident memory; at the end,
aplay's status, the longest span the card's DMA position stood still, and
the verdict: QEMU alive, aplay 0, no still span over STALL_MAX, every
stream back within 1 s, and descriptors and memory after the last restart
as after the first (RSS within RSS_SLACK_KIB).  Exit status 1 if not.
"""

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import BenchGuest  # noqa: E402
from harness import PulseDaemon, ensure_user  # noqa: E402

USERS = {"pulseaudio": ("qva-desk1", 1701), "pipewire": ("qva-desk3", 1703)}
STALL_MAX = 0.1
BACK_WITHIN = 1.0
RSS_SLACK_KIB = 2048
# A random moment, a random absence, and up to ~2.5 s until the sound is
# at the sink (a fresh PulseAudio's null sink renders 2 s ahead).
SECONDS_PER_RESTART = 6


def stream_back(g, since, timeout=10):
    """Seconds from @since until the playback stream is connected."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for s in g.qemu.cmd_qmp("query-audio-streams"):
            if s["direction"] == "playback" and s["connected"]:
                return time.monotonic() - since
        time.sleep(0.01)
    return None


def soak(flavor, restarts, rng):
    seconds = restarts * SECONDS_PER_RESTART + 10
    d = PulseDaemon(ensure_user(*USERS[flavor]), flavor).start()
    rows, failures = [], []
    g = None
    try:
        g = BenchGuest(f"pa,id=snd0,server=unix:{d.socket},"
                       "out.frequency=48000", seconds)
        g.wait_playing()
        for i in range(restarts):
            how = rng.choice(["kill", "terminate"])
            away = rng.uniform(0.1, 1.0)
            time.sleep(rng.uniform(0.2, 1.5))
            if g.console.wait_line("BENCH-STOPPED", 0):
                failures.append(f"playback ended before restart {i + 1}")
                break
            since = d.restart(how, away)
            back = stream_back(g, since)
            heard = d.hears_sound(10)
            sound = time.monotonic() - since if heard else None
            fds, rss = g.resources()
            rows.append((i + 1, how, away, back, sound, fds, rss))
            print(f"{flavor} restart {i + 1:2}: {how:9} away {away:.2f} s, "
                  f"stream back {back if back is None else f'{back:.3f}'}"
                  f" s, sound at the sink after "
                  f"{sound if sound is None else f'{sound:.2f}'} s, "
                  f"{fds} fds, RSS {rss} KiB", flush=True)
            if back is None or back > BACK_WITHIN:
                failures.append(f"restart {i + 1}: stream back after {back}")
            if sound is None:
                failures.append(f"restart {i + 1}: no sound at the sink")
        status, elapsed = g.wait_done(timeout=seconds + 60)
        stalls, moves = g.stalls()
        alive = g.qemu.proc.poll() is None
    finally:
        if g:
            g.quit()
        d.stop()
    longest = stalls[0][0] if stalls else 0
    print(f"{flavor}: {len(rows)} restarts; QEMU alive {alive}; aplay "
          f"{status}, {seconds} s played in {elapsed} s; DMA moved {moves} "
          f"times, longest still {longest * 1000:.0f} ms; stream back "
          f"within {max(r[3] or 99 for r in rows):.3f} s; fds "
          f"{rows[0][5]} -> {rows[-1][5]}; RSS {rows[0][6]} -> "
          f"{rows[-1][6]} KiB", flush=True)
    if not alive:
        failures.append("QEMU died")
    if status != 0:
        failures.append(f"aplay exited {status}")
    if longest > STALL_MAX:
        failures.append(f"the DMA stood still for {longest * 1000:.0f} ms")
    if rows and rows[-1][5] != rows[0][5]:
        failures.append(f"fds {rows[0][5]} -> {rows[-1][5]}")
    if rows and rows[-1][6] - rows[0][6] > RSS_SLACK_KIB:
        failures.append(f"RSS {rows[0][6]} -> {rows[-1][6]} KiB")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--restarts", type=int, default=20)
    ap.add_argument("--seed", type=int, default=random.randrange(1 << 32))
    ap.add_argument("flavors", nargs="*", metavar="pulseaudio|pipewire")
    args = ap.parse_args()
    args.flavors = args.flavors or list(USERS)
    for flavor in args.flavors:
        if flavor not in USERS:
            ap.error(f"{flavor}: the servers are {', '.join(USERS)}")
    print(f"seed {args.seed}", flush=True)
    failed = False
    for flavor in args.flavors:
        failures = soak(flavor, args.restarts, random.Random(args.seed))
        for f in failures:
            print(f"{flavor}: FAIL: {f}", flush=True)
        failed |= bool(failures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
