#!/usr/bin/env bash
# pfgm against the authors' method in PyTorch on the CPU, side by side (docs/benchmarks.md).
#
# Builds the benchmark programs (Release), makes a Python virtual environment with PyTorch,
# h5py and numpy from PyPI (or reuses one), checks the PyTorch reference network against the
# authors' own outputs, then runs every workload on both sides alternately, R rounds, with the
# same thread count (2): OpenMP 2 threads for pfgm (OpenBLAS single-threaded inside them),
# torch.set_num_threads(2) for PyTorch. Before timing, each PyTorch run recomputes the first
# step / first batch / first call from the inputs pfgm wrote and must agree (first training
# loss within 1e-4 relative); a disagreement stops the run. Prints the table of medians and
# ratios; the last three lines are
#   train_step_speedup: X.XX      sampler_speedup: X.XX      field_targets_speedup: X.XX
# (pfgm's images/s over PyTorch's; each the smallest over its workloads).
#
# Workloads: training step of configs/fashion_mnist.yaml and of tests/bench/cifar_small.yaml
# (batch sizes from the configs, the same on both sides); the sampler with forward Euler,
# 20 steps (NFE 20), 32 samples per batch, on the same weights, for both models; the field
# targets at B = 128, L = 4096, N = 3072 (PyTorch: the authors' [B, L, N+1] broadcast in
# chunks of B that fit in memory).
#
# Environment:
#   PFGM_BENCH_BUILD   build directory (default <repo>/build-bench; configured when missing)
#   PFGM_BENCH_VENV    Python virtual environment to use or create (default <build>/bench-venv)
#   PFGM_BENCH_ROUNDS  rounds (default 5: on a shared machine a burst of other work can slow a
#                      whole round; medians over more, shorter rounds keep it from deciding)
#   PFGM_BENCH_ONLY    space-separated subset of: train_fmnist train_cifar sample_fmnist
#                      sample_cifar field
#   PFGM_BENCH_LOG     log file (default <build>/bench-work/bench.log)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${PFGM_BENCH_BUILD:-$root/build-bench}
venv=${PFGM_BENCH_VENV:-$build/bench-venv}
rounds=${PFGM_BENCH_ROUNDS:-5}
only=${PFGM_BENCH_ONLY:-"train_fmnist train_cifar sample_fmnist sample_cifar field"}
threads=2
work=$build/bench-work
log=${PFGM_BENCH_LOG:-$work/bench.log}

say() { printf '%s\n' "$*" | tee -a "$log" >&2; }

mkdir -p "$build" "$work"
: > "$log"

# ---- 1. the C programs ----------------------------------------------------------------
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DPFGM_CUDA=OFF >&2 # the comparison is CPU-only
fi
cmake --build "$build" -j2 --target bench_cmp_train bench_cmp_sample bench_cmp_field bench_sgemm_peak >&2
bin=$build/tests

# ---- 2. PyTorch, h5py, numpy from PyPI ------------------------------------------------
if ! "$venv/bin/python" -c 'import torch, h5py, numpy' 2>/dev/null; then
    say "creating the virtual environment $venv (torch, h5py, numpy from PyPI)"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    "$venv/bin/python" -m pip install --quiet torch h5py numpy >&2
fi
py=$venv/bin/python
ref=$here/torch_reference.py

# ---- 3. what runs where ----------------------------------------------------------------
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=$threads
{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "compiler: $(${CC:-cc} --version | head -1)"
    echo "OpenBLAS: $(pkg-config --modversion openblas 2>/dev/null || echo unknown); threads: pfgm OMP_NUM_THREADS=$threads (OpenBLAS 1 inside), PyTorch set_num_threads($threads)"
    "$py" -c 'import torch, h5py, numpy, sys; print("python %s, torch %s (%s), numpy %s, h5py %s" % (sys.version.split()[0], torch.__version__, torch.backends.cpu.get_cpu_capability(), numpy.__version__, h5py.__version__))'
    echo "rounds: $rounds"
} | tee -a "$log" >&2

fixture=$root/../shared/testvectors/ddpmpp_tiny_reference.h5
if [ -f "$fixture" ]; then
    say "PyTorch reference network against the authors' outputs ($fixture):"
    "$py" "$ref" selfcheck --fixture "$fixture" 2>&1 | tee -a "$log" >&2
fi

# sgemm peak: OpenBLAS with its own threads (1, then 2), outside the comparison
OPENBLAS_NUM_THREADS=$threads "$bin/bench_sgemm_peak" | tee -a "$log" >&2

euler=(--set sampling.ode_solver=forward_euler --set sampling.N=20 --set sampling.batch_size=32)
ours() { # workload
    case $1 in
    train_fmnist) "$bin/bench_cmp_train" --config "$root/configs/fashion_mnist.yaml" --workload "$1" \
                      --out "$work/$1.h5" --steps 3 --warmup 1 ;;
    train_cifar) "$bin/bench_cmp_train" --config "$here/cifar_small.yaml" --workload "$1" \
                     --out "$work/$1.h5" --steps 3 --warmup 1 ;;
    sample_fmnist) "$bin/bench_cmp_sample" --config "$root/configs/fashion_mnist.yaml" "${euler[@]}" \
                       --workload "$1" --out "$work/$1.h5" --steps 1 --warmup 0 ;;
    sample_cifar) "$bin/bench_cmp_sample" --config "$here/cifar_small.yaml" "${euler[@]}" \
                      --workload "$1" --out "$work/$1.h5" --steps 1 --warmup 0 ;;
    field) "$bin/bench_cmp_field" --workload "$1" --out "$work/$1.h5" --size 128,4096,3072 --steps 3 --warmup 1 ;;
    esac
}
torch_side() { # workload
    case $1 in
    train_*) "$py" "$ref" train --exchange "$work/$1.h5" --workload "$1" --steps 3 --warmup 1 --threads $threads ;;
    sample_*) "$py" "$ref" sample --exchange "$work/$1.h5" --workload "$1" --steps 1 --warmup 0 --threads $threads ;;
    field) "$py" "$ref" field --exchange "$work/$1.h5" --workload "$1" --steps 1 --warmup 0 --threads $threads ;;
    esac
}

# ---- 4. alternate: pfgm writes the inputs (the same bits every run), PyTorch checks them
#         and runs; the order flips every round so that drifts in the machine's load cancel.
#         The log keeps every line; the terminal shows the checks and the progress. ---------
run() {
    if ! "$@" 2>&1 | tee -a "$log" | { grep -v '^BENCH' >&2 || true; }; then
        say "failed: ${*:2} (a check that disagrees, or an error: see $log); nothing more is timed"
        exit 3
    fi
}
for ((r = 1; r <= rounds; ++r)); do
    for w in $only; do
        say "round $r/$rounds: $w"
        echo "ROUND $r $w" >> "$log"
        if ((r % 2 == 1)); then
            run ours "$w"
            run torch_side "$w"
        else
            run torch_side "$w"
            run ours "$w"
        fi
    done
done

say "log: $log"
"$py" "$here/summarize.py" "$log"
