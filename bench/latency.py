"""Where each frame of the bench's signal was, and when: the guest's DMA
read it (DmaProbe), the sink played it (the recorder's timeline), so the
absolute latency per frame and how much of the signal arrived.

The signal (bench/guest/signal.awk, bench/native/pa-floor.c) carries a
frame counter in its right channel: -16384 + (frame mod 32768).  Polled
through HMP, the probe reads the card's DMA position and, from guest
memory, the frame at it, so it knows which frame was read when: the same
for stock QEMU and the fork, whatever their code does.  At the sink, the
null sink's monitor plays every frame on one clock, silence included, so
frame N of the recording played at T0 + N / rate; T0 comes from when the
recorder's chunks arrived (never before their last frame played).
"""

import bisect
import threading
import time
from array import array

import harness

RATE = 48000
RAMP = 32768                    # the counter's period, frames
# A resampled counter rings for about 12 frames around its wrap (stock's
# 48 -> 44.1 -> 48 kHz), and fades in after silence: frames this close
# to either say nothing.
WRAP_RING = 40
# A read's frame is searched from this many frames before the one that
# played then, so that a clock slightly off shows as a latency slightly
# below zero, not as one a counter period long.
BEHIND = 2400
# Intel HDA, within a stream descriptor.
SD_CBL, SD_BDPL = 8, 0x18       # CBL, then LVI; BDPL, then BDPU
# The probe reads the frame this far ahead of the DMA (4 ms at 48 kHz):
# far enough that the DMA has not read it, and the guest not overwritten
# it, by the time the probe's read arrives.
AHEAD = 192


def floor_reads(lines):
    """pa-floor's "PA-FLOOR-T NS FRAME" lines among @lines as reads
    (time, frame mod RAMP), like the probe's."""
    return [(int(ns) / 1e9, int(frame)) for ns, frame in
            (line.split()[1:3] for line in lines
             if line.startswith("PA-FLOOR-T "))]


def counter(right):
    """The frame (mod RAMP) a right-channel sample says it is."""
    return (right + 16384) % RAMP


class DmaProbe:
    """Every @interval s, the frame the card's playback DMA read last and
    when (the middle of the position register's read).  HMP's memory and
    port reads have no side effect on the card; each poll costs QEMU a
    few of them on its main loop, stock and fork alike."""

    def __init__(self, qmp_path, card, interval=0.05):
        self.qmp_path, self.card, self.interval = qmp_path, card, interval
        self.samples = []               # (time, frame mod RAMP)
        self.errors = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _timed(self, fn, *args):
        t0 = time.monotonic()
        v = fn(*args)
        return (t0 + time.monotonic()) / 2, v

    def _last_read(self, ring, pos, frame=4):
        """The frame the DMA read last, from the one AHEAD frames past it
        in @ring (a list of (address, bytes)) from byte @pos on.  The
        guest keeps its buffer full: what the DMA has read is overwritten
        with new data as soon as the guest learns it was read, often
        before the probe's next command, but what lies ahead stays until
        the DMA gets there, and the guest wrote it in one run."""
        pos += AHEAD * frame
        total = sum(length for _, length in ring)
        pos %= total
        for addr, length in ring:
            if pos < length:
                right = array("h", self.reads.mem(addr + pos)[0]
                              .to_bytes(4, "little"))[1]
                return (counter(right) - AHEAD - 1) % RAMP
            pos -= length
        return None

    # --- AC97: CIV and PICB, the frame ahead ------------------------------

    def _poll_ac97(self, nabm, cache):
        if not cache or len(self.samples) % 20 == 0:
            # The descriptors, read once in a while: the driver writes
            # them when it prepares the stream, not while it runs.
            bdbar = self.reads.port("w", nabm + harness.AC97_PO_BDBAR)
            words = self.reads.mem(bdbar, 64)
            cache[:] = [(words[i], 2 * (words[i + 1] & 0xffff))
                        for i in range(0, 64, 2)]
        civ = self.reads.port("b", nabm + harness.AC97_PO_CIV) & 31
        t, picb = self._timed(self.reads.port, "h",
                              nabm + harness.AC97_PO_PICB)
        length = cache[civ][1]
        if not picb or 2 * picb > length:
            return None                 # between two buffers
        if self.reads.port("b", nabm + harness.AC97_PO_CIV) & 31 != civ:
            return None                 # a buffer ended meanwhile
        v = self._last_read(cache[civ:] + cache[:civ], length - 2 * picb)
        return None if v is None else (t, v)

    # --- HDA: LPIB, the BDL, the frame -----------------------------------

    def _poll_hda(self, sd, bdl_cache):
        if not bdl_cache or len(self.samples) % 20 == 0:
            cbl, lvi = self.reads.mem(sd + SD_CBL, 2)
            bdpl, bdpu = self.reads.mem(sd + SD_BDPL, 2)
            words = self.reads.mem(bdpl | bdpu << 32,
                                   4 * ((lvi & 0xff) + 1))
            bdl_cache.clear()
            bdl_cache["cbl"] = cbl
            bdl_cache["ring"] = [(words[i] | words[i + 1] << 32, words[i + 2])
                                 for i in range(0, len(words), 4)]
        t, (lpib,) = self._timed(self.reads.mem, sd + harness.HDA_SD_LPIB)
        cbl = bdl_cache["cbl"]
        if lpib >= cbl:
            return None
        v = self._last_read(bdl_cache["ring"], lpib)
        return None if v is None else (t, v)

    def _run(self):
        try:
            self.qmp = harness.QMP(self.qmp_path)
            self.reads = harness.MonitorReads(self.qmp)
        except (OSError, ValueError):
            self.errors += 1
            return
        base = sd = None
        bdl_cache, bd_cache = {}, []
        while not self.stop_event.wait(self.interval):
            try:
                if self.card == "ac97":
                    base = base or harness.pci_bar(
                        self.qmp.command("query-pci"), (harness.AC97_ID,), 1)
                    s = base and self._poll_ac97(base, bd_cache)
                else:
                    base = base or harness.pci_bar(
                        self.qmp.command("query-pci"), harness.HDA_IDS, 0)
                    sd = sd or (base and
                                harness.hda_running_output(self.reads, base))
                    s = sd and self._poll_hda(sd, bdl_cache)
            except (IndexError, ValueError):
                self.errors += 1
                continue
            except OSError:
                return                  # QEMU went away
            if s:
                self.samples.append(s)

    def stop(self):
        self.stop_event.set()
        self.thread.join()
        if hasattr(self, "qmp"):
            self.qmp.close()


# --- the recording ----------------------------------------------------------

def unwrap(pcm, frames_played, slack):
    """The recording's frames as frame numbers of the signal.

    Returns (offsets, numbers, stats): the offset in the recording and the
    unwrapped frame number of every non-silent frame, and what was lost:
    frames skipped (a jump forward by more than 1 + @slack), repeated
    (a jump back), missing at the head and the tail of the
    @frames_played the source played.  @slack is 0 for a bit-exact
    stream; a resampled one's counter wobbles by a few frames.
    """
    samples = array("h")
    samples.frombytes(pcm[:len(pcm) - len(pcm) % 4])
    offsets, numbers = array("l"), array("l")
    prev = None
    lost = repeated = 0
    pos = prev_pos = 0                  # non-silent frames so far
    since_gap = 0
    for o in range(len(samples) // 2):
        left, right = samples[2 * o], samples[2 * o + 1]
        if not left and not right:
            since_gap = 0
            continue
        pos += 1
        since_gap += 1
        c = counter(right)
        if slack and (since_gap <= WRAP_RING or prev is not None and
                      not WRAP_RING <= (prev + pos - prev_pos) % RAMP <
                      RAMP - WRAP_RING):
            # A resampler rings at the counter's wrap, and fades in
            # after silence.
            continue
        if prev is None:
            n = c
            first_pos = pos
        else:
            n = prev + (c - prev + RAMP // 2) % RAMP - RAMP // 2
            excess = n - prev - (pos - prev_pos)
            if excess > slack:
                lost += excess
            elif excess < -slack:
                repeated += 1
        offsets.append(o)
        numbers.append(n)
        prev, prev_pos = n, pos
    if not numbers:
        return offsets, numbers, {"kept": 0.0}
    # Frames before the first read were there, only not readable.
    head = max(0, numbers[0] - (first_pos - 1))
    tail = max(0, frames_played - 1 - max(numbers))
    stats = {"lost": lost, "repeated": repeated, "head": head,
             "tail": tail,
             "kept": max(0.0, 1 - (lost + head + tail) / frames_played)}
    return offsets, numbers, stats


class SinkClock:
    """When the sink played frame N of the recording: T0 + N / RATE.

    A chunk of the recorder arrives after its last frame played, so each
    says T0 <= arrival - frames / RATE, equal when nothing delayed it.
    T0 is not one constant.  It steps down when a stream starts or changes
    its latency: PulseAudio rewinds what the sink had rendered ahead, and
    the monitor had already sent part of it.  It steps up when the sink
    stops for a while: PipeWire's graph pauses some 40-60 ms as a stream
    joins it.  So T0 at a moment is the least of the chunks' bounds
    within WINDOW s before it, or of those within WINDOW s after it,
    whichever is later: each side's least is the least delayed chunk's
    bound, and a step on one side is only on that side.  (The least of
    both sides together took T0 from before a step up for a second after
    it: at the native path's starts, its reads then came out 60 ms early,
    and past the counter's period, 680 ms late.)"""

    WINDOW = 1.0

    def __init__(self, stamps, frame_bytes=4):
        self.times = array("d", (t for t, _ in stamps))
        self.bounds = array("d", (t - n / frame_bytes / RATE
                                  for t, n in stamps))

    def t0(self, t):
        lo = bisect.bisect_left(self.times, t - self.WINDOW)
        mid = bisect.bisect_right(self.times, t)
        hi = bisect.bisect_right(self.times, t + self.WINDOW)
        sides = [min(b) for b in (self.bounds[lo:mid], self.bounds[mid:hi])
                 if b]
        return max(sides, default=None)

    def noise(self, start, end):
        """Median lateness of the chunks arriving within [@start, @end]
        behind the least late of their window: the timeline's noise."""
        late = sorted(b - self.t0(t) for t, b in zip(self.times,
                                                      self.bounds)
                      if start <= t <= end)
        return late[len(late) // 2] if late else None


def latencies(reads, offsets, numbers, clock):
    """Per read (time, frame mod RAMP) of the source: seconds from then
    until the sink played that frame (or, if it was lost, the next one
    that arrived)."""
    return [v for _, v in timed_latencies(reads, offsets, numbers, clock)]


def timed_latencies(reads, offsets, numbers, clock):
    """latencies(), each with the time of its read: (time, seconds)."""
    # Frame numbers as they rise in the recording, for bisect: the running
    # maximum, so a repeated stretch does not break the search.
    rising, top = array("l"), None
    for n in numbers:
        top = n if top is None else max(top, n)
        rising.append(top)
    out = []
    for t, c in reads:
        t0 = clock.t0(t)
        if t0 is None:
            continue
        # The frame that played at @t; the one read then is at most a
        # counter period later (latencies are far below 0.68 s).
        i = bisect.bisect_left(offsets, (t - t0) * RATE)
        if i >= len(rising):
            continue
        base = rising[i] - BEHIND
        n = base + (c - base) % RAMP
        j = bisect.bisect_left(rising, n)
        if j >= len(rising) or rising[j] - n >= RAMP // 2:
            continue
        played = clock.t0(t0 + offsets[j] / RATE) + offsets[j] / RATE
        out.append((t, played - t))
    return out
