#!/usr/bin/env python3
"""Plots a pfgm run's training loss from its metrics.jsonl (one JSON object per line, written
by pfgm-train) into a PNG: the loss of each logging interval (light) and a moving average
(dark), log scale.

usage: python3 launch/plot_metrics.py RUN_DIR/metrics.jsonl OUT.png [--window 10] [--title T]
Needs matplotlib (pip install matplotlib); launch/quickstart.sh installs it into a virtual
environment under build/ when it draws the curve."""
import argparse
import json
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("metrics")
    ap.add_argument("out")
    ap.add_argument("--window", type=int, default=10, help="moving-average window in logged steps")
    ap.add_argument("--title", default=None)
    a = ap.parse_args()
    steps, losses = [], []
    with open(a.metrics, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                print(f"{a.metrics}:{n}: not a JSON object: {e}", file=sys.stderr)
                return 3
            # loss_window: mean loss over the steps since the previous line; loss: that step's
            value = rec.get("loss_window", rec.get("loss"))
            if value is None:  # skipped (non-finite) steps are logged as null
                continue
            steps.append(rec["step"])
            losses.append(value)
    if not steps:
        print(f"{a.metrics}: no finite loss values", file=sys.stderr)
        return 3
    import matplotlib

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
