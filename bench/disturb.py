"""The disturbance case (--loads disturb): both host cores loaded for the
middle quarter of the run (15 s of 60), and how each player's latency
goes up and comes back down.

run-bench.py starts and stops the load against the playback's start
mark (Disturbance.poll), samples the fork's latency in force (QMP) and
PulseAudio's view of the stream (pactl) as usual, and hands the run here
for the timeline, the recovery figures and the plot.
"""

import json
import os
import statistics
import subprocess
import sys

# The load runs from this share of the run's seconds, for this share.
ON_AT, LASTS = 0.375, 0.25
# Back at the level before the disturbance: within this much, ms.
WITHIN_MS = 1.0
# The level before: the latency over this many seconds before the load.
BEFORE_S = 10.0
# PulseAudio's view moves with every request: judged on a running median.
SMOOTH_S = 1.0
# Gaps "during recovery": in this many seconds after the load ends.
RECOVERY_S = 10.0


class Disturbance:
    """Starts the load ON_AT into the playback and stops it LASTS later;
    poll() is called from the sampling loop."""

    def __init__(self, seconds, start_load, stop_load):
        self.on_s, self.off_s = seconds * ON_AT, seconds * (ON_AT + LASTS)
        self.start_load, self.stop_load = start_load, stop_load
        self.proc = None
        self.on = self.off = None       # monotonic times it did

    def poll(self, start, now):
        """@start: the playback's start mark (monotonic), or None."""
        if start is None:
            return
        if self.on is None and now >= start + self.on_s:
            self.proc = self.start_load(settle=False)
            self.on = now
        elif self.off is None and self.on and now >= start + self.off_s:
            self.stop_load(self.proc)
            self.proc, self.off = None, now

    def close(self):
        self.stop_load(self.proc)
        self.proc = None


def timeline(start, pa_samples, qmp_samples, sink, gaps):
    """The run against seconds since the playback's start (@start, its
    monotonic time): PulseAudio's view (buffer + sink latency), the fork's
    latency in force, the latency from a read to the sink (@sink: (time,
    ms), bench/latency.py), in ms; and the gaps (seconds into the signal,
    ms of silence)."""
    pa = [(s["t"] - start, (s["buffer_us"] + s["sink_us"]) / 1000)
          for s in pa_samples if not s["corked"]]
    force = [(s["t"] - start, s["latency"] / 1000) for s in qmp_samples]
    return {"pa": pa, "in_force": force,
            "sink": [(t - start, v) for t, v in sink], "gaps": gaps}


def _median_in(points, a, b):
    vals = [v for t, v in points if a <= t < b]
    return statistics.median(vals) if vals else None


def _smoothed(points):
    return [(t, _median_in(points, t - SMOOTH_S, t + 1e-9))
            for t, _ in points]


def recovery(points, on, off, smooth=False):
    """(level before, peak during, seconds after the load ended until the
    latency is first back within WITHIN_MS of the level before) of
    @points, (t, ms) pairs; None where there is no data or it never came
    back.  Whether it then stays is for the gaps after, and the plot, to
    say: a host that cannot sustain the level before brings the latency
    up again, disturbance or not."""
    if smooth:
        points = _smoothed(points)
    before = _median_in(points, on - BEFORE_S, on)
    during = [v for t, v in points if on <= t < off]
    peak = max(during) if during else None
    if before is None:
        return before, peak, None
    back = next((t - off for t, v in points
                 if t >= off and v <= before + WITHIN_MS), None)
    return before, peak, None if back is None else max(0.0, back)


def summary(tl, on, off):
    """The figures of one disturbed run."""
    out = {"on": on, "off": off}
    for key, smooth in (("in_force", False), ("pa", True), ("sink", True)):
        before, peak, back = recovery(tl[key], on, off, smooth)
        out[key] = {"before": before, "peak": peak, "back_s": back}
    gaps = [t for t, _ in tl["gaps"]]
    out["gaps_before"] = sum(1 for t in gaps if t < on)
    out["gaps_during"] = sum(1 for t in gaps if on <= t < off)
    out["gaps_recovery"] = sum(1 for t in gaps
                               if off <= t < off + RECOVERY_S)
    out["gaps_after"] = sum(1 for t in gaps if t >= off + RECOVERY_S)
    return out


def _fmt(v, digits=1):
    return "–" if v is None else f"{v:.{digits}f}"


def table(rows):
    """Markdown: one row per disturbed run, @rows as (config, summary)."""
    out = ["| config | load from–to s | in force before ms | peak | back "
           "within 1 ms after s | PA view before ms | peak | back after s "
           "| read → sink before ms | peak | back after s "
           "| gaps before | during | 10 s after | later |",
           "|---|---|" + "---:|" * 13]
    for config, s in rows:
        cells = []
        for key in ("in_force", "pa", "sink"):
            k = s.get(key, {})
            cells += [_fmt(k.get("before")), _fmt(k.get("peak")),
                      _fmt(k.get("back_s"))]
        out.append(
            f"| {config} | {s['on']:.1f}–{s['off']:.1f} | "
            + " | ".join(cells) + " | "
            f"{s['gaps_before']} | {s['gaps_during']} | "
            f"{s['gaps_recovery']} | {s['gaps_after']} |")
    return "\n".join(out)


# Debian's python3-matplotlib is for Debian's python3, which need not be
# the one running the bench.
PLOT_PYTHON = "/usr/bin/python3"


def plot(runs, path, title):
    """plot_here() in the Python that has matplotlib (the apt package)."""
    python = PLOT_PYTHON if os.path.exists(PLOT_PYTHON) else sys.executable
    subprocess.run([python, os.path.abspath(__file__), path, title],
                   input=json.dumps(runs), text=True, check=True)


def plot_here(runs, path, title):
    """A PNG: per run, the latency in force and PulseAudio's view against
    time, the disturbance (the title says which) shaded and every gap
    marked.  @runs: (config, timeline, summary)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 1, sharex=True,
                             figsize=(10, 2.6 * len(runs)), squeeze=False)
    for ax, (config, tl, s) in zip(axes[:, 0], runs):
        ax.axvspan(s["on"], s["off"], color="0.88", label="disturbed")
        if tl["pa"]:
            t, v = zip(*tl["pa"])
            ax.plot(t, v, lw=0.7, color="tab:blue",
                    label="PulseAudio's view (buffer + sink)")
        if tl.get("sink"):
            t, v = zip(*tl["sink"])
            ax.plot(t, v, lw=0.9, color="tab:green",
                    label="read → sink (frame counter)")
        if tl["in_force"]:
            t, v = zip(*tl["in_force"])
            ax.step(t, v, where="post", lw=1.5, color="tab:orange",
                    label="latency in force (fork)")
        for g, _ in tl["gaps"]:
            ax.axvline(g, color="tab:red", lw=0.6, alpha=0.7)
        ax.plot([], [], color="tab:red", lw=0.6, label="gap at the sink")
        ax.set_ylabel("ms")
        ax.set_title(config, loc="left", fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("seconds since the guest started playing")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    plot_here(json.load(sys.stdin), sys.argv[1], sys.argv[2])
