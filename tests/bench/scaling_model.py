#!/usr/bin/env python3
"""Step-time model of cifar10_ddpmpp at 8, 64 and 512 GPUs (docs/scaling.md, issue 13 §5).

Standard library only. Every input is a named constant below, either read off
`build/pfgm-train --dry-run --config configs/cifar10_ddpmpp.yaml` (DRY_RUN_*, B, L, N),
taken from docs/benchmarks.md (the two-namespace runs), or an assumption (ASSUMED_*), which the
doc states as such. Run:  python3 tests/bench/scaling_model.py
"""
import math

# ---- from the dry run (configs/cifar10_ddpmpp.yaml) ------------------------------------------
DRY_RUN_PARAMS = 61_805_572          # "61,805,572 parameters"
DRY_RUN_FWD_FLOP_PER_IMAGE = 21.7e9  # "21.7 GFLOP forward per image"
DRY_RUN_ACT_MIB = 7608.8             # "activations 7608.8 MiB" (B = 128)
B = 128                              # training.small_batch_size: perturbed points per rank
L = 4096                             # training.batch_size: charges per rank
N = 3 * 32 * 32                      # image size
DATASET = 50_000                     # CIFAR-10 training images
BYTES_F32 = 4

S = DRY_RUN_PARAMS * BYTES_F32       # gradient bytes all-reduced per step (fp32)
STEP_FLOP = 3.0 * DRY_RUN_FWD_FLOP_PER_IMAGE * B   # forward + backward ~ 3x forward
FIELD_FLOP_PER_CHARGE = 4.0 * B * N  # two GEMMs of B x Lref x N per step: 4*B*Lref*N

# ---- assumptions (no GPU figure has been measured: docs/benchmarks.md) -----------------------
GPUS_PER_NODE = 8
ASSUMED_PEAK = {"fp32": 67e12, "tf32": 495e12}    # H100 SXM / H200 dense: FP32 (CUDA cores), TF32 tensor
ASSUMED_MFU = {"fp32": 0.40, "tf32": 0.25}        # network (convs, GroupNorm, attention) share of peak
ASSUMED_FIELD_EFF = 0.70                          # the field targets' two large GEMMs, share of peak
ASSUMED_NVLINK_BW = 450e9 * 0.80                  # NVLink 4: 450 GB/s per direction per GPU, 80 % achieved
ASSUMED_NVLINK_LAT = 2e-6                         # per ring step
ASSUMED_IB_NIC_BW = 400e9 / 8 * 0.90              # one NDR 400 Gb/s NIC, 90 % achieved (45 GB/s)
ASSUMED_NICS_PER_NODE = 8                         # 8 x 400 Gb/s per node (one rail per GPU); 4 also shown
ASSUMED_IB_LAT = 5e-6                             # per ring step across nodes
ASSUMED_HBM_BW = 3.35e12 * 0.80                   # H100 SXM HBM3 (H200: 4.8 TB/s), 80 % achieved
OPT_BYTES_PER_PARAM = 4 * 8                       # Adam+EMA: read p, g, m, v, ema; write p, m, v, ema (fp32)
BUCKET = 25 * 2**20                               # distributed.bucket_mb default ~25 MB (issue 13 §1)

WORLDS = (8, 64, 512)


def ib_bw_per_gpu(nics_per_node):
    return ASSUMED_IB_NIC_BW * nics_per_node / GPUS_PER_NODE


def allreduce_flat(nbytes, W, nics=ASSUMED_NICS_PER_NODE, rails=True):
    """Rings through all W GPUs: 2(W-1)/W * bytes / bw + 2(W-1) * latency (across nodes every ring
    step waits on an IB hop, so the latency is the IB one). rails=True: one ring per NIC (NCCL's
    channels), each GPU's share crossing nodes on its own rail, bw = min(NVLink, NICs x NIC / 8 per
    GPU); rails=False: a single ring, whose node-to-node hop is one NIC."""
    if W == 1:
        return 0.0
    if W <= GPUS_PER_NODE:
        bw, lat = ASSUMED_NVLINK_BW, ASSUMED_NVLINK_LAT
    else:
        bw = min(ASSUMED_NVLINK_BW, nics * ASSUMED_IB_NIC_BW) if rails else ASSUMED_IB_NIC_BW
        lat = ASSUMED_IB_LAT
    return 2 * (W - 1) / W * nbytes / bw + 2 * (W - 1) * lat


def allreduce_flat1(nbytes, W, nics=ASSUMED_NICS_PER_NODE):
    return allreduce_flat(nbytes, W, nics, rails=False)


def allreduce_hier(nbytes, W, nics=ASSUMED_NICS_PER_NODE):
    """NVLink reduce-scatter inside the node, ring all-reduce of each GPU's 1/8 over IB across the
    W/8 nodes (GPU i with GPU i of every node: its rail), NVLink all-gather inside the node."""
    G = min(W, GPUS_PER_NODE)
    nodes = W // G
    t = 2 * (G - 1) / G * nbytes / ASSUMED_NVLINK_BW + 2 * (G - 1) * ASSUMED_NVLINK_LAT
    if nodes > 1:
        t += 2 * (nodes - 1) / nodes * (nbytes / G) / ib_bw_per_gpu(nics) + 2 * (nodes - 1) * ASSUMED_IB_LAT
    return t


def allgather_hier(block, W, nics=ASSUMED_NICS_PER_NODE):
    """All-gather of one block per rank: across nodes on each GPU's rail ((nodes-1) blocks in),
    then inside the node ((G-1) * nodes blocks in over NVLink)."""
    G = min(W, GPUS_PER_NODE)
    nodes = W // G
    t = (G - 1) * nodes * block / ASSUMED_NVLINK_BW + (G - 1) * ASSUMED_NVLINK_LAT
    if nodes > 1:
        t += (nodes - 1) * block / ib_bw_per_gpu(nics) + (nodes - 1) * ASSUMED_IB_LAT
    return t


def bucketed(W, fn, nics=ASSUMED_NICS_PER_NODE):
    """Sum over buckets of BUCKET bytes (the last one the remainder): same bandwidth term,
    one latency term per bucket. Returns (total, time of the last bucket to finish)."""
    n = math.ceil(S / BUCKET)
    sizes = [BUCKET] * (n - 1) + [S - BUCKET * (n - 1)]
    total = sum(fn(s, W, nics) for s in sizes)
    return total, fn(BUCKET, W, nics), n


def compute_times(mode):
    t_net = STEP_FLOP / (ASSUMED_PEAK[mode] * ASSUMED_MFU[mode])
    return t_net, 2.0 / 3.0 * t_net


def field_time(mode, n_charges):
    return FIELD_FLOP_PER_CHARGE * n_charges / (ASSUMED_PEAK[mode] * ASSUMED_FIELD_EFF)


def opt_time(W=1, zero=0):
    return DRY_RUN_PARAMS * OPT_BYTES_PER_PARAM / (W if zero else 1) / ASSUMED_HBM_BW


def ms(t):
    return f"{t * 1e3:8.2f}"


def row(cells, widths):
    return "| " + " | ".join(str(c).rjust(w) for c, w in zip(cells, widths)) + " |"


def main():
    print("# inputs")
    print(f"S = {DRY_RUN_PARAMS} params x 4 B = {S} B = {S / 1e6:.1f} MB ({S / 2**20:.1f} MiB)")
    print(f"step FLOP per GPU = 3 x {DRY_RUN_FWD_FLOP_PER_IMAGE / 1e9:.1f} GFLOP x B={B} = {STEP_FLOP / 1e12:.3f} TFLOP")
    for m in ("fp32", "tf32"):
        t_net, t_bwd = compute_times(m)
        print(f"{m}: {ASSUMED_PEAK[m] / 1e12:.0f} TFLOP/s peak x MFU {ASSUMED_MFU[m]:.2f} = "
              f"{ASSUMED_PEAK[m] * ASSUMED_MFU[m] / 1e12:.1f} TFLOP/s -> network {t_net * 1e3:.1f} ms/step, "
              f"backward (2/3) {t_bwd * 1e3:.1f} ms")
    print(f"NVLink {ASSUMED_NVLINK_BW / 1e9:.0f} GB/s, {ASSUMED_NVLINK_LAT * 1e6:.0f} us/step; IB per GPU "
          f"{ib_bw_per_gpu(8) / 1e9:.1f} GB/s (8 NICs/node) or {ib_bw_per_gpu(4) / 1e9:.1f} GB/s (4 NICs/node), "
          f"{ASSUMED_IB_LAT * 1e6:.0f} us/step")
    nb = math.ceil(S / BUCKET)
    print(f"buckets: {nb} of {BUCKET / 2**20:.0f} MiB (last {(S - BUCKET * (nb - 1)) / 2**20:.1f} MiB)")
    print(f"optimizer (Adam+EMA, {OPT_BYTES_PER_PARAM} B/param over HBM {ASSUMED_HBM_BW / 1e12:.2f} TB/s): "
          f"{opt_time() * 1e3:.2f} ms")
    print(f"field targets, local reference (L={L}): {4 * B * L * N / 1e9:.2f} GFLOP/step")

    print("\n# 1. gradient all-reduce of S (ms): one call / the sum over the buckets")
    w = (6, 6, 16, 16, 16)
    print(row(("W", "NICs", "flat, 1 ring", "flat, rails", "hierarchical"), w))
    print(row(["---"] * 5, w))
    for W in WORLDS:
        for nics in (8, 4):
            cells = [W, nics]
            for fn in (allreduce_flat1, allreduce_flat, allreduce_hier):
                cells.append(f"{fn(S, W, nics) * 1e3:.2f} / {bucketed(W, fn, nics)[0] * 1e3:.2f}")
            print(row(cells, w))
    for W in WORLDS:
        print(f"W={W}: latency terms per call: flat 2(W-1)*{ASSUMED_IB_LAT * 1e6:.0f} us = "
              f"{2 * (W - 1) * (ASSUMED_IB_LAT if W > GPUS_PER_NODE else ASSUMED_NVLINK_LAT) * 1e3:.2f} ms; "
              f"hierarchical 2*7*{ASSUMED_NVLINK_LAT * 1e6:.0f} us + 2(W/8-1)*{ASSUMED_IB_LAT * 1e6:.0f} us = "
              f"{(14 * ASSUMED_NVLINK_LAT + 2 * (W // 8 - 1) * ASSUMED_IB_LAT) * 1e3:.2f} ms")

    for fn, nics in ((allreduce_hier, 8), (allreduce_hier, 4), (allreduce_flat, 8)):
        name = "hierarchical" if fn is allreduce_hier else "flat ring over the rails"
        print(f"\n# 2. step time, {name} all-reduce, {nics} x 400 Gb/s per node, local reference (ms)")
        w = (6, 5, 9, 9, 9, 7, 8, 9, 9, 8, 8, 10)
        print(row(("W", "mode", "compute", "AR once", "AR bucket", "hidden", "exposed",
                   "step now", "step ovl", "eff now", "eff ovl", "kpts/s ovl"), w))
        print(row(["---"] * 12, w))
        for m in ("fp32", "tf32"):
            t_net, t_bwd = compute_times(m)
            t_comp = t_net + field_time(m, L) + opt_time()
            for W in WORLDS:
                t_once = fn(S, W, nics)
                t_b, t_last, _ = bucketed(W, fn, nics)
                hidden = max(0.0, min(1.0, t_bwd / t_b) - t_last / t_b)
                exposed = t_b * (1 - hidden)
                now, ovl = t_comp + t_once, t_comp + exposed
                print(row((W, m, ms(t_comp), ms(t_once), ms(t_b), f"{hidden:.2f}", ms(exposed), ms(now), ms(ovl),
                           f"{t_comp / now:.3f}", f"{t_comp / ovl:.3f}", f"{W * B / ovl / 1e3:.1f}"), w))

    print("\n# 2b. strong scaling instead: the global batch fixed at 128 perturbed points (B = 128/W per GPU),"
          " same MFU (optimistic at small B), hierarchical, 8 NICs, no overlap (ms)")
    for m in ("fp32", "tf32"):
        t_net, _ = compute_times(m)
        for W in (8, 64):
            t_c = t_net * (128 / W) / B
            print(f"{m} W={W}: B={128 // W}, network {t_c * 1e3:.2f} ms, all-reduce {allreduce_hier(S, W) * 1e3:.2f} ms,"
                  f" communication share {allreduce_hier(S, W) / (t_c + allreduce_hier(S, W)):.2f}")

    print("\n# 3. field.reference global: charges all-gather (hierarchical, 8 NICs) and field GEMMs per step")
    blk = L * N * BYTES_F32
    print(f"block per rank L*N*4 = {blk} B = {blk / 1e6:.1f} MB; gathered W*L*N*4")
    w = (6, 10, 12, 11, 11, 11, 11, 9, 9)
    print(row(("W", "charges", "gathered MB", "AG ms", "field fp32", "field tf32",
               "ws MB", "AG/fp32", "AG/tf32"), w))
    print(row(["---"] * 9, w))
    for W in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512):
        ag = allgather_hier(blk, W) if W > 1 else 0.0
        f32, t32 = field_time("fp32", W * L), field_time("tf32", W * L)
        base32 = compute_times("fp32")[0] + field_time("fp32", L)
        base_t = compute_times("tf32")[0] + field_time("tf32", L)
        extra32 = ag + f32 - field_time("fp32", L)
        extrat = ag + t32 - field_time("tf32", L)
        print(row((W, W * L, f"{W * blk / 1e6:.0f}", ms(ag), ms(f32), ms(t32), f"{B * W * L * 4 / 1e6:.0f}",
                   f"{extra32 / base32:.3f}", f"{extrat / base_t:.3f}"), w))
    print("(AG/fp32, AG/tf32: extra time of the global reference (all-gather + extra field GEMMs) over the "
          "local step's compute)")
    print(f"\n# 3b. the same with CIFAR-10's {DATASET} images: the reader needs floor({DATASET}/W) >= L >= B")
    w = (6, 10, 10, 12, 11, 11, 12)
    print(row(("W", "per rank", "L max", "W*L", "gathered MB", "AG ms", "field fp32"), w))
    print(row(["---"] * 7, w))
    for W in (8, 12, 13, 64, 390, 512):
        per_rank = DATASET // W
        Lc = min(L, per_rank)
        note = "" if Lc >= B else " (< B)"
        print(row((W, per_rank, f"{Lc}{note}", W * Lc, f"{W * Lc * N * 4 / 1e6:.0f}",
                   ms(allgather_hier(Lc * N * 4, W)), ms(field_time("fp32", W * Lc))), w))
    capped = DATASET // 512
    print(f"whole dataset as reference: {DATASET} x {N} x 4 = {DATASET * N * 4 / 1e6:.0f} MB (fp32), "
          f"{DATASET * N / 1e6:.0f} MB (uint8); field GEMMs {FIELD_FLOP_PER_CHARGE * DATASET / 1e9:.0f} GFLOP "
          f"= {field_time('fp32', DATASET) * 1e3:.2f} ms fp32; at W=512 the reader allows L <= {capped}")

    print("\n# 4. memory per rank (MiB), ZeRO-1: Adam m, v and EMA sharded by W")
    mib = S / 2**20
    w = (6, 9, 9, 12, 13, 12, 12, 12, 14)
    print(row(("W", "params", "grads", "m+v+EMA", "m+v+EMA Z1", "activ.", "total Z0", "total Z1", "+ global ref"), w))
    print(row(["---"] * 9, w))
    for W in (1, 8, 64, 512):
        z0 = 3 * mib
        z1 = 3 * mib / W
        fld = (B * L * 4) / 2**20
        base = 2 * mib + DRY_RUN_ACT_MIB + fld + L * N * 4 / 2**20
        glob = (W * L * N * 4 + B * W * L * 4) / 2**20 if W > 1 else 0.0
        print(row((W, f"{mib:.1f}", f"{mib:.1f}", f"{z0:.1f}", f"{z1:.1f}", f"{DRY_RUN_ACT_MIB:.1f}",
                   f"{base + z0:.0f}", f"{base + z1:.0f}", f"{glob:.0f}"), w))
    print("(total: params + grads + optimizer state + activations + local charges L*N*4 + field workspace B*L*4;"
          " + global ref: all ranks' charges W*L*N*4 + workspace B*W*L*4)")

    print("\n# 5. check against the two-namespace runs (docs/benchmarks.md, issue 13 §2)")
    P2, L2, N2, W2 = 188_914, 64, 784, 4
    S2 = P2 * 4
    blk2 = L2 * N2 * 4
    ring = 2 * (W2 - 1) / W2 * S2 + (W2 - 1) * blk2
    halving = 2 * (S2 / 4 + S2 / 4) + 2 * 2 * blk2
    print(f"tiny@28x28: S = {S2} B, charges block {blk2} B; bytes A->B per step: ring all-reduce + ring all-gather "
          f"{ring / 1e6:.3f} MB; halving/doubling all-reduce + recursive-doubling all-gather {halving / 1e6:.3f} MB;"
          f" measured 1.56 MB")
    # step-time increments over `none`, the three runs of docs/benchmarks.md ("Two simulated nodes")
    meas = {"10gbit": (96.5 - 97.8, 95.8 - 93.2, 99.2 - 101.2),
            "1gbit": (101.6 - 97.8, 107.2 - 93.2, 109.5 - 101.2),
            "100mbit": (293.3 - 97.8, 293.0 - 93.2, 284.9 - 101.2)}
    mbytes = {"10gbit": 1.56e6, "1gbit": 1.56e6, "100mbit": 1.66e6}
    rate = {"10gbit": 10e9, "1gbit": 1e9, "100mbit": 100e6}
    phases, lat = 3, 50e-6    # cross-link phases per step (1 all-gather + 2 all-reduce); assumed veth+TCP latency
    w = (8, 11, 12, 13, 16, 24)
    print(row(("link", "wire ms", "tbf burst", "model ms", "model 1.66 MB", "measured increments ms"), w))
    print(row(["---"] * 6, w))
    for k in ("10gbit", "1gbit", "100mbit"):
        r = rate[k] / 8
        burst = max(16384, rate[k] / 8 / 1000)
        wire = 1.56e6 / r
        model = max(0.0, 1.56e6 - phases * burst) / r + 2 * phases * lat
        model2 = max(0.0, mbytes[k] - phases * burst) / r + 2 * phases * lat
        print(row((k, f"{wire * 1e3:.2f}", f"{burst / 1e3:.0f} kB", f"{model * 1e3:.1f}", f"{model2 * 1e3:.1f}",
                   " ".join(f"{m:.1f}" for m in meas[k])), w))


if __name__ == "__main__":
    main()
