#!/usr/bin/env bash
# Quick start, the main job on one machine (Debian 12, CPUs only):
#   1. install what is missing (launch/install_deps.sh; apt-get, as root),
#   2. configure and build a Release build in build/,
#   3. prepare the Fashion-MNIST training set into data/fashion_mnist_train.h5,
#   4. train configs/fashion_mnist.yaml with `mpirun -np 2` (one OpenMP thread per rank on a
#      2-core machine) into runs/fashion_mnist,
#   5. sample an 8x8 grid (64 samples, EMA weights, RK45) from the final checkpoint into
#      runs/fashion_mnist/samples.png (and the float samples into samples.h5),
#   6. draw the loss curve into runs/fashion_mnist/loss.png (launch/plot_metrics.py; Debian's
#      python3-matplotlib, installed by `launch/install_deps.sh plot` when missing).
#
#   bash launch/quickstart.sh
#
# Idempotent: packages already present, an up-to-date build, a valid dataset file and
# finished steps are kept. Run it again after an interruption and training resumes from the
# newest checkpoint (pfgm-train --resume auto); a finished run is not trained again and a
# samples.png newer than the newest checkpoint is kept. Ctrl-C (or SIGTERM/SIGUSR1) stops
# training after the current step with a checkpoint (exit 75); a second Ctrl-C stops at once.
#
# Environment (defaults in brackets):
#   PFGM_BUILD_DIR        build folder [build]
#   PFGM_FASHION_DIR      folder with the Fashion-MNIST IDX files
#                         [/usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist]
#   PFGM_DATA             dataset file [data/fashion_mnist_train.h5]
#   PFGM_PREP_LIMIT       prepare only this many images (0: all 60000) [0]
#   PFGM_CONFIG           training config [configs/fashion_mnist.yaml]
#   PFGM_RUN_DIR          run directory (checkpoints, metrics.jsonl, samples) [runs/fashion_mnist]
#   PFGM_NP               ranks [2]
#   PFGM_QUICKSTART_SETS  extra pfgm-train options, split on spaces, e.g.
#                         "--set training.n_iters=4 --set training.log_freq=1"
#   PFGM_SAMPLE_ARGS      extra pfgm-sample options (after the defaults, so they override
#                         them), e.g. "--num 16 --solver euler --steps 8"
#   PFGM_SKIP_DEPS=1      do not run launch/install_deps.sh
#   PFGM_SKIP_BUILD=1     use the binaries already in PFGM_BUILD_DIR (no cmake)
# Exit code: 0 done; 75 training was stopped on request (run again to resume); otherwise the
# failing step's code (docs/user-guide.md, "Exit codes").
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=launch/common.sh
source launch/common.sh

build=${PFGM_BUILD_DIR:-build}
fashion=${PFGM_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
data=${PFGM_DATA:-data/fashion_mnist_train.h5}
limit=${PFGM_PREP_LIMIT:-0}
config=${PFGM_CONFIG:-configs/fashion_mnist.yaml}
run=${PFGM_RUN_DIR:-runs/fashion_mnist}
np=${PFGM_NP:-2}
read -r -a sets <<< "${PFGM_QUICKSTART_SETS:-}"
read -r -a sample_args <<< "${PFGM_SAMPLE_ARGS:-}"
t_start=$SECONDS

say() { echo "quickstart: $*"; }
elapsed() { local s=$((SECONDS - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

# ---- 1, 2: packages and build ----------------------------------------------------------
[ "${PFGM_SKIP_DEPS:-0}" = 1 ] || bash launch/install_deps.sh
if [ "${PFGM_SKIP_BUILD:-0}" != 1 ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release
  cmake --build "$build" -j "$(nproc)"
fi
for b in pfgm-prep pfgm-train pfgm-sample; do
  if [ ! -x "$build/$b" ]; then
    say "$build/$b is missing (build failed, or PFGM_SKIP_BUILD=1 with an unbuilt PFGM_BUILD_DIR)" >&2
    exit 1
  fi
done

# ---- 3: data: Fashion-MNIST training set -> one shuffled HDF5 dataset file ---------------
expect=60000
[ "$limit" -gt 0 ] && [ "$limit" -lt 60000 ] && expect=$limit
mkdir -p "$(dirname "$data")"
if "$build/pfgm-prep" info --input "$data" 2>/dev/null | grep -qF "$data: $expect images [1, 28, 28] uint8, labels int32"; then
  say "$data present and valid, keeping it"
else
  rm -f "$data"
  "$build/pfgm-prep" idx \
    --images "$fashion/train-images-idx3-ubyte.gz" \
    --labels "$fashion/train-labels-idx1-ubyte.gz" \
    --out "$data" --seed 42 --limit "$limit"
fi
"$build/pfgm-prep" info --input "$data"

# ---- 4: training (resumes from the newest checkpoint in the run directory) ---------------
t_train=$SECONDS
say "training $config with $np rank(s) into $run (resumes automatically when re-run)"
rc=0
bash launch/mpirun_single_node.sh "$np" "$build/pfgm-train" --config "$config" --run-dir "$run" \
  --set "data.path=$data" "${sets[@]}" || rc=$?
if [ "$rc" -eq "$PFGM_EXIT_REQUEUE" ]; then
  say "training stopped on request after writing a checkpoint; run the same command again to resume:"
  say "  bash launch/quickstart.sh"
  exit "$rc"
elif [ "$rc" -ne 0 ]; then
  say "training failed (exit code $rc; see docs/user-guide.md, \"Exit codes\")" >&2
  exit "$rc"
fi
say "training finished in $(elapsed "$t_train")"

# ---- 5: samples from the final checkpoint -----------------------------------------------
ckpt=$(pfgm_newest_checkpoint "$run")
if [ -z "$ckpt" ]; then
  say "no checkpoint in $run/checkpoints after training" >&2
  exit 1
fi
png=$run/samples.png
if [ -f "$png" ] && [ "$png" -nt "$ckpt" ]; then
  say "$png is newer than $ckpt, keeping it"
else
  t_sample=$SECONDS
  rc=0
  # ranks take whole batches of sampling.batch_size: one batch per rank keeps all busy
  bash launch/mpirun_single_node.sh "$np" "$build/pfgm-sample" --checkpoint "$ckpt" --num 64 \
    --set "sampling.batch_size=$(( (64 + np - 1) / np ))" \
    --out "$png" --h5 "$run/samples.h5" "${sample_args[@]}" || rc=$?
  if [ "$rc" -ne 0 ]; then
    say "sampling failed (exit code $rc)" >&2
    exit "$rc"
  fi
  say "sampled in $(elapsed "$t_sample")"
fi

# ---- 6: the loss curve -----------------------------------------------------------------------
# launch/plot_metrics.py draws with matplotlib: Debian's python3-matplotlib, installed like
# every other dependency (launch/install_deps.sh plot) unless PFGM_SKIP_DEPS=1.
# The first python3 that imports matplotlib: the one on PATH, else Debian's own (a pyenv or
# venv python3 on PATH does not see Debian's packages).
plot_python() {
  local py
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import matplotlib' 2>/dev/null; then
      echo "$py"
      return 0
    fi
  done
  return 1
}
curve=$run/loss.png
curve_note="($curve not drawn: python3-matplotlib is missing; bash launch/install_deps.sh plot)"
if ! plot_python >/dev/null && [ "${PFGM_SKIP_DEPS:-0}" != 1 ]; then
  bash launch/install_deps.sh plot >/dev/null || true
fi
if py=$(plot_python); then
  if "$py" launch/plot_metrics.py "$run/metrics.jsonl" "$curve" --title "$(basename "$run")"; then
    curve_note="$curve (loss per logged step and its moving average)"
  else
    curve_note="($curve not drawn: launch/plot_metrics.py failed, see above)"
  fi
fi

grid="8x8 grid of 64 samples"
[ ${#sample_args[@]} -eq 0 ] || grid="grid of the samples"
cat <<EOF
quickstart: done in $(elapsed "$t_start").
  samples      $png  ($grid; float values in $run/samples.h5)
  loss curve   $curve_note
  checkpoint   $ckpt
  metrics      $run/metrics.jsonl  (one JSON line per logged step: loss, grad_norm, lr, images_per_s)
  config       $run/config.yaml
More samples: $build/pfgm-sample --checkpoint $run --num 64 --out more.png --seed 1
EOF
