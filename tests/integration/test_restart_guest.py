"""A real guest while the sound server dies, restarts, suspends its sink or
never starts its stream.

The bench guest (snd-intel8x0, or snd-hda-intel on Intel HDA; aplay of the
bench signal with 4096-frame periods in a 16384-frame buffer, as desktop
players ask) plays through the fork while the harness ends the desktop
user's real sound server at random moments, cleanly or with SIGKILL, and
starts it again after 0.3 s, 3 s or 30 s.  A guest driver gives up when
the card's DMA position stops moving (aplay: "write error: Input/output
error"), and a game then has no sound until it reopens the device.  So
each test asks: aplay ends with status 0; the DMA position, read from
outside through the monitor, never stands still between two moves for
longer than STALL_MAX; the guest's own clock counts the playback's length;
and the guest's sound reaches the sink again after every restart.  The
same for a sink the server suspends under the playing stream (what
`pactl suspend-sink`, a power manager or module-suspend-on-idle does).
"""

import contextlib
import random
import time

from guest import BenchGuest
from harness import PulseDaemon, ensure_user

USER = ("qva-desk1", 1701)
PW_USER = ("qva-desk3", 1703)

# Samples come every 5 ms; a host stall of this machine's (up to ~12 ms
# measured) is far below this, a driver's give-up (~1 s) far above.
STALL_MAX = 0.1
# aplay -d counts written frames; then it drains the 341 ms buffer.
ELAPSED_SLACK = 1.5
# A fresh PulseAudio's null sink has rendered up to 2 s of silence ahead
# when the first stream comes; a restarted server may need that long.
SOUND_BACK_WITHIN = 10


@contextlib.contextmanager
def playing_guest(d, seconds, card="ac97"):
    g = BenchGuest(f"pa,id=snd0,server=unix:{d.socket},out.frequency=48000",
                   seconds, card=card)
    try:
        g.wait_playing()
        yield g
    finally:
        g.quit()


def check_guest(g, seconds, what, back=()):
    status, elapsed = g.wait_done()
    stalls, moves = g.stalls()
    console = g.console.text()
    # What a guest experiences, for README-fork.md.
    print(f"# {what}: aplay {status}, {seconds} s played in {elapsed} s; "
          f"DMA moved {moves} times, longest stills "
          f"{[round(s * 1000) for s, _ in stalls[:3]]} ms; sound back "
          f"{[f'{how} {away}s: {took:.2f}s' for how, away, took in back]}",
          flush=True)
    assert status == 0, f"{what}: aplay failed ({status}):\n{console}"
    assert moves > seconds * 50, f"{what}: the DMA moved {moves} times"
    assert not stalls or stalls[0][0] <= STALL_MAX, \
        f"{what}: the DMA position stood still for " \
        f"{', '.join(f'{s * 1000:.0f}' for s, _ in stalls[:5])} ms"
    assert elapsed <= seconds + ELAPSED_SLACK, \
        f"{what}: {seconds} s of sound took the guest {elapsed} s"
    return stalls


def restart_while_playing(flavor, user, schedule, seconds, card="ac97"):
    """Play for @seconds on @card; for each (how, away) of @schedule, at a
    random moment end the server by @how and start it again @away s
    later."""
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    what = f"{flavor} ({card}), seed {seed}"
    back = []
    d = PulseDaemon(ensure_user(*user), flavor).start()
    try:
        with playing_guest(d, seconds, card) as g:
            for how, away in schedule:
                time.sleep(rng.uniform(0.5, 2.0))
                assert g.console.wait_line("BENCH-STOPPED", 0) is None, \
                    f"{what}: the playback ended before {how}/{away}s"
                started = d.restart(how, away)
                assert d.hears_sound(SOUND_BACK_WITHIN), \
                    f"{what}: no sound at the sink within " \
                    f"{SOUND_BACK_WITHIN} s of the restart ({how}, {away} s)" \
                    f"\n{g.qemu.stderr()}"
                back.append((how, away, time.monotonic() - started))
            return check_guest(g, seconds, what, back)
    finally:
        d.stop()


def test_guest_plays_on_across_pulseaudio_restarts():
    restart_while_playing("pulseaudio", USER,
                          [("terminate", 0.3), ("kill", 0.3), ("kill", 3),
                           ("terminate", 30)], 70)


def test_guest_plays_on_across_pipewire_restarts():
    restart_while_playing("pipewire", PW_USER,
                          [("kill", 0.3), ("terminate", 3)], 30)


def test_hda_guest_plays_on_across_restarts():
    """Intel HDA (snd-hda-intel), what Windows guests play through, on the
    same engine: one restart of each server kind."""
    restart_while_playing("pulseaudio", USER, [("kill", 0.3)], 20, "hda")
    restart_while_playing("pipewire", PW_USER, [("terminate", 0.3)], 30,
                          "hda")


def test_guest_plays_on_when_the_stream_never_starts():
    """pipewire-pulse without its session manager accepts the stream and
    never links it to a sink: the server takes nothing, for good."""
    seconds = 8
    d = PulseDaemon(ensure_user(*PW_USER), "pipewire",
                    session_manager=False).start()
    try:
        with playing_guest(d, seconds) as g:
            check_guest(g, seconds, "pipewire-pulse without wireplumber")
    finally:
        d.stop()


def suspend_while_playing(flavor, user, seconds, card, away=1.0):
    """Play for @seconds on @card; 2 s in, the server suspends its sink
    for @away s under the playing stream."""
    what = f"{flavor} ({card}), sink suspended for {away} s"
    d = PulseDaemon(ensure_user(*user), flavor).start()
    try:
        with playing_guest(d, seconds, card) as g:
            time.sleep(2)
            d.pactl("suspend-sink", "null", "1")
            time.sleep(away)
            d.pactl("suspend-sink", "null", "0")
            resumed = time.monotonic()
            assert d.hears_sound(SOUND_BACK_WITHIN), \
                f"{what}: no sound at the sink within {SOUND_BACK_WITHIN} s " \
                f"of the resume\n{g.qemu.stderr()}"
            back = [("suspend", away, time.monotonic() - resumed)]
            assert g.console.wait_line("BENCH-STOPPED", 0) is None, \
                f"{what}: the playback ended before the sound came back"
            return check_guest(g, seconds, what, back)
    finally:
        d.stop()


def test_guest_plays_on_while_the_sink_is_suspended():
    suspend_while_playing("pulseaudio", USER, 10, "hda")
    suspend_while_playing("pipewire", PW_USER, 10, "ac97")
