"""The bench guest (bench/guest) booted on the built binary, watched from
outside: its serial console read line by line, and its sound card's
playback DMA position (AC97's PCM OUT, or Intel HDA's running output
stream) read through the monitor while it plays.

A qtest-driven AC97 refills its buffers however the test likes; a real
snd-intel8x0 driver gives up when the DMA position stops moving (aplay:
"write error: Input/output error" after about a second).  Promises about
what a guest experiences are checked with this guest, not with qtest.
"""

import os
import re
import subprocess
import threading
import time

from harness import (AC97_ID, AC97_PO_CIV, AC97_PO_PICB, HDA_IDS, HDA_SD_LPIB,
                     QMP, TOP, LineSocket, MonitorReads, Qemu, connect_unix,
                     hda_running_output, pci_bar)

# QVA_GUEST_DIR: another release's chroot (buildsys/check-deb-chroot)
# builds the guest from its own archive, not into this host's tree.
GUEST_DIR = os.environ.get("QVA_GUEST_DIR",
                           os.path.join(TOP, "build", "guest"))

# -device arguments of each card, as the bench has them
# (bench/guest/run-guest.sh); HDA as libvirt's <sound model='ich9'/>.
CARDS = {
    "ac97": ["-device", "AC97,audiodev=snd0"],
    "hda": ["-device", "ich9-intel-hda",
            "-device", "hda-duplex,audiodev=snd0"],
}


def build_bench_guest():
    """vmlinuz and initrd.img of the bench guest, built once per tree
    from Debian packages (a rebuild takes a few seconds)."""
    subprocess.run([os.path.join(TOP, "bench", "guest", "build-guest.sh"),
                    GUEST_DIR], check=True, capture_output=True)
    return GUEST_DIR


class Console(LineSocket):
    """The guest's serial console: every line kept, waited for by
    prefix as it arrives."""

    def __init__(self, path):
        super().__init__(connect_unix(path))
        self.lines = []

    def wait_line(self, prefix, timeout):
        """The first line starting with @prefix (times of arrival
        included), or None when @timeout passes or the console closes."""
        for t, line in self.lines:
            if line.startswith(prefix):
                return t, line
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.readline(deadline)
            except (ValueError, OSError):
                return None
            if line is None:
                return None
            line = line.strip("\r\n\x1b")
            self.lines.append((time.monotonic(), line))
            if line.startswith(prefix):
                return time.monotonic(), line

    def text(self):
        return "\n".join(line for _, line in self.lines)


class DmaWatch:
    """Samples (time, position) of the card's playback DMA every
    @interval s, @position reading it through @reads (MonitorReads), which
    has no side effect on the card."""

    def __init__(self, reads, position, interval=0.005):
        self.reads = reads
        self.qmp = reads.qmp
        self.position = position
        self.interval = interval
        self.samples = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_event.wait(self.interval):
            try:
                pos = self.position(self.reads)
            except (OSError, ValueError):
                return
            self.samples.append((time.monotonic(), pos))

    def stop(self):
        self.stop_event.set()
        self.thread.join()
        self.qmp.close()

    def stalls(self, start, end):
        """Every span within [@start, @end] during which the DMA position
        did not move although it moved before and after it, longest
        first, as (seconds, from).  The card stopping for good at the end
        of playback is not a stall."""
        moves = []
        last = None
        for t, pos in self.samples:
            if not start <= t <= end:
                continue
            if last is not None and pos != last:
                moves.append(t)
            last = pos
        spans = [(b - a, a) for a, b in zip(moves, moves[1:])]
        return sorted(spans, reverse=True), len(moves)


class BenchGuest:
    """The bench guest on q35 under TCG with @card ("ac97" or "hda") on
    audiodev snd0, playing the bench signal for @seconds
    (bench/guest/init)."""

    def __init__(self, audiodev, seconds, period=4096, buffer=16384,
                 extra=("-trace", "pa_conn_*", "-trace", "pa_stream_*"),
                 card="ac97"):
        guest = build_bench_guest()
        self.seconds = seconds
        self.qemu = Qemu(
            ["-accel", "tcg", "-M", "q35", "-m", "256", "-no-reboot",
             "-kernel", os.path.join(guest, "vmlinuz"),
             "-initrd", os.path.join(guest, "initrd.img"),
             "-append", f"console=ttyS0 quiet panic=-1 bench.period={period}"
                        f" bench.buffer={buffer} bench.seconds={seconds}",
             "-audiodev", audiodev] + CARDS[card]
            + list(extra), qtest=False, console=True)
        self.card = card
        self.console = Console(self.qemu.console_path)
        self.dma = None

    def dma_position(self):
        """How to read the playback DMA's position, as the guest's
        firmware and driver set the card up."""
        pci = self.qemu.cmd_qmp("query-pci")
        if self.card == "ac97":
            nabm = pci_bar(pci, (AC97_ID,), 1)
            assert nabm, "no AC97 with an I/O BAR1 in query-pci"
            return lambda r: (r.port("b", nabm + AC97_PO_CIV),
                              r.port("h", nabm + AC97_PO_PICB))
        bar = pci_bar(pci, HDA_IDS, 0)
        assert bar, "no Intel HDA with a BAR0 in query-pci"
        # BENCH-START comes just before aplay opens the card.
        reads = MonitorReads(self.qemu.connect_qmp())
        deadline = time.monotonic() + 20
        while not (sd := hda_running_output(reads, bar)):
            assert time.monotonic() < deadline, \
                "the guest plays, but no HDA output stream runs"
            time.sleep(0.01)
        return lambda r: r.mem(sd + HDA_SD_LPIB)[0]

    def wait_playing(self, timeout=120):
        """Boot until the guest starts aplay; then watch the DMA."""
        started = self.console.wait_line("BENCH-START", timeout)
        assert started, "the guest never started playing:\n" + \
            self.console.text()
        self.dma = DmaWatch(MonitorReads(QMP(self.qemu.watch_path)),
                            self.dma_position())
        self.start_time = started[0]
        return started[0]

    def wait_done(self, timeout=None):
        """Until aplay returned; its exit status and the guest's own
        count of the playback's length (seconds)."""
        timeout = timeout or self.seconds + 60
        stopped = self.console.wait_line("BENCH-STOPPED", timeout)
        self.stop_time = stopped[0] if stopped else time.monotonic()
        if self.dma:
            self.dma.stop()
        done = self.console.wait_line("BENCH-END", 60)
        assert stopped and done, "the guest never finished:\n" + \
            self.console.text()
        status = re.search(r"^BENCH-APLAY-EXIT (\d+)$", self.console.text(),
                           re.M)
        elapsed = re.search(r"^BENCH-ELAPSED ([\d.]+)s$",
                            self.console.text(), re.M)
        return int(status.group(1)), float(elapsed.group(1))

    def stalls(self):
        return self.dma.stalls(self.start_time, self.stop_time)

    def resources(self):
        """QEMU's open file descriptors and resident memory (KiB)."""
        pid = self.qemu.proc.pid
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/status") as f:
            rss = int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))
        return fds, rss

    def quit(self):
        if self.dma:
            self.dma.stop()
        self.console.close()
        return self.qemu.quit()
