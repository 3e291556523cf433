#!/usr/bin/env python3
"""Plots a pfgm run's training loss from its metrics.jsonl (one JSON object per line, written
by pfgm-train) into a PNG: the loss of each logging interval (light) and a moving average
(dark), log scale.

usage: python3 launch/plot_metrics.py RUN_DIR/metrics.jsonl OUT.png [--window 10] [--title T]
Needs matplotlib to draw: Debian's python3-matplotlib (`bash launch/install_deps.sh plot`, which
launch/quickstart.sh runs before it draws runs/fashion_mnist/loss.png) or `pip install
matplotlib` in a virtual environment; without it the script says so and exits 1. Reading the
file (read_records) needs only the standard library.

A run that was killed and resumed from the checkpoint of step S logs steps S+1.. again.
pfgm-train trims the file to step S when it resumes and appends {"event": "resumed",
"resumed_from": S, ...}; files written by an older pfgm have neither the trim nor the event
(the steps just go back). The reader handles both: at a "resumed" event it cuts the records
with step > S, and when a step goes back it keeps the later record of each step, so the
curve has strictly increasing steps. Records without a "step" (events) are not plotted, and
lines that are not JSON (a line cut by a crash) are skipped with a warning."""
import argparse
import json
import sys


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_records(lines, name="metrics"):
    """The step records of a metrics.jsonl, as the run that finished would have logged them.

    lines: an iterable of text lines (an open file). Returns (records, warnings): the records
    (dicts) that have an integer "step", in strictly increasing step order, and one warning
    string per skipped line, "NAME:LINE: ...".
    """
    kept = []  # strictly increasing "step"
    warnings = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:  # json.JSONDecodeError, and UnicodeDecodeError from bytes
            warnings.append(f"{name}:{n}: skipped, not a JSON object (a line cut by a crash?): {e}")
            continue
        if not isinstance(rec, dict):
            warnings.append(f"{name}:{n}: skipped, not a JSON object")
            continue
        if rec.get("event") == "resumed" and _is_int(rec.get("resumed_from")):
            # what the killed run logged past its checkpoint is not part of the final run
            while kept and kept[-1]["step"] > rec["resumed_from"]:
                kept.pop()
            continue
        step = rec.get("step")
        if not _is_int(step):
            continue  # events and other records without a step
        # a step at or before the last one: a resume this file did not mark (an older pfgm);
        # the later record of each step wins
        while kept and kept[-1]["step"] >= step:
            kept.pop()
        kept.append(rec)
    return kept, warnings


def loss_points(records):
    """(steps, losses) of the records with a finite loss: "loss_window" (the mean over the
    steps since the previous line) or else "loss" (that step's); skipped (non-finite) steps
    are logged as null and left out."""
    steps, losses = [], []
    for rec in records:
        value = rec.get("loss_window", rec.get("loss"))
        if value is None:
            continue
        steps.append(rec["step"])
        losses.append(value)
    return steps, losses


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("metrics")
    ap.add_argument("out")
    ap.add_argument("--window", type=int, default=10, help="moving-average window in logged steps")
    ap.add_argument("--title", default=None)
    a = ap.parse_args()
    try:
        # errors="replace": a crash can leave a zero-filled or torn tail; it fails as JSON
        with open(a.metrics, encoding="utf-8", errors="replace") as f:
            records, warnings = read_records(f, a.metrics)
    except OSError as e:
        print(f"{a.metrics}: cannot read: {e.strerror}", file=sys.stderr)
        return 3
    for w in warnings[:5]:
        print(f"warning: {w}", file=sys.stderr)
    if len(warnings) > 5:
        print(f"warning: {a.metrics}: {len(warnings) - 5} more lines skipped", file=sys.stderr)
    steps, losses = loss_points(records)
    if not steps:
        print(f"{a.metrics}: no finite loss values", file=sys.stderr)
        return 3
    try:
        import matplotlib
    except ImportError:
        print("plot_metrics.py needs matplotlib to draw: bash launch/install_deps.sh plot (Debian's "
              "python3-matplotlib) or pip install matplotlib", file=sys.stderr)
        return 1

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = max(1, min(a.window, len(losses)))
    avg = [sum(losses[max(0, i - w + 1) : i + 1]) / (i - max(0, i - w + 1) + 1) for i in range(len(losses))]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ax.plot(steps, losses, color="#9ecae1", linewidth=0.8, label="loss (mean over ranks and the logging interval)")
    ax.plot(steps, avg, color="#08519c", linewidth=1.8, label=f"moving average ({w} logged steps)")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss: 0.5 * sum over N+1 of (pred - target)^2")
    ax.set_title(a.title or a.metrics)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(a.out)
    print(f"wrote {a.out} ({len(steps)} points, last moving average {avg[-1]:.4g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
