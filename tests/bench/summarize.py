#!/usr/bin/env python3
"""Table of the pfgm vs PyTorch benchmark (tests/bench/run.sh) from the BENCH lines of its log.

Input lines: "BENCH <workload> <side> <metric> <value>", side "ours" (pfgm) or "torch". Every
timed repetition of every round prints one line per metric, so a median is over all
repetitions of all rounds. Throughput is images per second: images / median seconds per
training step or per sampler batch; the field targets compare seconds per call. The speedup
is pfgm's throughput over PyTorch's (higher is better); a workload family's speedup line is
the smallest of its workloads' speedups. "ROUND r workload" lines (run.sh) mark the rounds:
the speedup of each round alone (its two medians) is listed too, to show the spread that a
shared machine's load puts on the figures.

  summarize.py LOG
"""
import collections
import statistics
import sys

FAMILIES = [('train_step_speedup', 'train', 'step_s'), ('sampler_speedup', 'sample', 'batch_s'),
            ('field_targets_speedup', 'field', 'call_s')]
PARTS = ['perturb_s', 'field_s', 'forward_s', 'backward_s', 'optim_s']


def main():
    if len(sys.argv) != 2:
        raise SystemExit('usage: summarize.py LOG')
    vals = collections.defaultdict(list)
    per_round = collections.defaultdict(list)  # (workload, side, metric, round) -> values
    order = []
    rnd = 0
    with open(sys.argv[1]) as f:
        for line in f:
            w = line.split()
            if len(w) == 3 and w[0] == 'ROUND':
                rnd = int(w[1])
                continue
            if len(w) != 5 or w[0] != 'BENCH':
                continue
            _, workload, side, metric, value = w
            if workload not in order:
                order.append(workload)
            vals[(workload, side, metric)].append(float(value))
            per_round[(workload, side, metric, rnd)].append(float(value))

    def med(w, s, m):
        v = vals.get((w, s, m))
        return statistics.median(v) if v else None

    def n(w, s, m):
        return len(vals.get((w, s, m), []))

    print('%-14s %-10s %5s %14s %14s %8s %16s' % ('workload', 'time', 'reps', 'pfgm', 'PyTorch', 'speedup',
                                                  'images/s pfgm|pt'))
    speedups = {}
    for fam, prefix, metric in FAMILIES:
        for w in order:
            if not w.startswith(prefix):
                continue
            a, b = med(w, 'ours', metric), med(w, 'torch', metric)
            if a is None or b is None:
                print('%-14s %-10s missing measurements (pfgm %d, PyTorch %d)' % (w, metric, n(w, 'ours', metric),
                                                                                 n(w, 'torch', metric)))
                continue
            imgs = med(w, 'ours', 'images') or 1.0
            s = b / a
            speedups.setdefault(fam, []).append(s)
            print('%-14s %-10s %2d|%-2d %12.4f s %12.4f s %7.2fx %8.1f|%-8.1f' % (
                w, metric, n(w, 'ours', metric), n(w, 'torch', metric), a, b, s, imgs / a, imgs / b))
            rounds = sorted({k[3] for k in per_round if k[0] == w and k[2] == metric and k[3] > 0})
            rs = []
            for r in rounds:
                ra, rb = per_round.get((w, 'ours', metric, r)), per_round.get((w, 'torch', metric, r))
                if ra and rb:
                    rs.append('%.2f' % (statistics.median(rb) / statistics.median(ra)))
            if len(rs) > 1:
                print('%-14s   each round: %s' % ('', ' '.join(rs)))
    print()
    print('training step, median seconds by part (pfgm | PyTorch):')
    for w in order:
        if not w.startswith('train'):
            continue
        cells = []
        for p in PARTS:
            a, b = med(w, 'ours', p), med(w, 'torch', p)
            if a is not None and b is not None:
                cells.append('%s %.4f|%.4f' % (p[:-2], a, b))
        print('  %-14s %s' % (w, '  '.join(cells)))
    print()
    print('peak RSS (MiB, whole process; pfgm | PyTorch):')
    for w in order:
        a, b = med(w, 'ours', 'peak_rss_mib'), med(w, 'torch', 'peak_rss_mib')
        if a is not None and b is not None:
            print('  %-14s %8.0f | %-8.0f' % (w, a, b))
    for w in order:
        if w.startswith('sgemm'):
            for m in ('gflops_1thread', 'gflops_2threads'):
                if med(w, 'ours', m) is not None:
                    print('sgemm 2048^3 (OpenBLAS, %s): %.1f GFLOP/s (median of %d)' % (
                        m.split('_')[1], med(w, 'ours', m), n(w, 'ours', m)))
    print()
    for fam, _, _ in FAMILIES:  # n/a: that family was not run (PFGM_BENCH_ONLY)
        print('%s: %.2f' % (fam, min(speedups[fam])) if fam in speedups else '%s: n/a' % fam)


if __name__ == '__main__':
    main()
