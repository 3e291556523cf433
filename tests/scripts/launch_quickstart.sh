#!/usr/bin/env bash
# launch/quickstart.sh end to end at a tiny size with the built binaries: prepares 512
# Fashion-MNIST images, trains configs/fashion_mnist.yaml for 4 steps under mpirun -np 2,
# samples a grid from the final checkpoint and draws the loss curve (or says why not); then the re-run keeps everything (no training
# step, no new samples), and a larger n_iters resumes from the last checkpoint.
# Needs PFGM_TRAIN (for the build folder) from tests/launch.cmake; SKIPPED without
# Debian's dataset-fashion-mnist.
set -u
cd "${PFGM_SOURCE_DIR:-$(dirname "$0")/../..}" || exit 1
FMNIST=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -r "$FMNIST" ]; then
  echo "SKIPPED: $FMNIST not installed (Debian package dataset-fashion-mnist)"
  exit 77
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pfgm-quickstart-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Small and fast: 512 images, 64 charges and 8 perturbed points per rank, nf 16.
quickstart() {
  env OMP_NUM_THREADS=1 PFGM_SKIP_DEPS=1 PFGM_SKIP_BUILD=1 PFGM_BUILD_DIR="$(dirname "$PFGM_TRAIN")" \
      PFGM_DATA="$WORK/data/fmnist.h5" PFGM_PREP_LIMIT=512 PFGM_RUN_DIR="$WORK/run" \
      PFGM_QUICKSTART_SETS="--set training.batch_size=64 --set training.small_batch_size=8 --set model.nf=16 --set training.log_freq=1 --set training.snapshot_freq=2 $1" \
      PFGM_SAMPLE_ARGS="--num 4 --solver euler --steps 3" \
      bash launch/quickstart.sh > "$WORK/log$2" 2>&1
}

quickstart "--set training.n_iters=4" 1
rc=$?
[ $rc -eq 0 ] || { fail "first run exited $rc"; cat "$WORK/log1"; exit 1; }
[ -f "$WORK/data/fmnist.h5" ] || fail "no dataset file"
grep -q "pfgm-train: done, 4 steps (4 this run)" "$WORK/log1" || fail "did not train 4 steps"
[ -f "$WORK/run/checkpoints/ckpt_00000004.h5" ] || fail "no final checkpoint: $(ls "$WORK/run/checkpoints")"
[ "$(grep -c '"step"' "$WORK/run/metrics.jsonl")" -eq 4 ] || fail "metrics.jsonl does not hold 4 steps"
grep -q "ckpt_00000004.h5 (step 4, EMA weights), 4 samples" "$WORK/log1" || fail "did not sample the final checkpoint's EMA weights"
[ "$(head -c 8 "$WORK/run/samples.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "samples.png is not a PNG"
[ -f "$WORK/run/samples.h5" ] || fail "no samples.h5"
grep -q "^quickstart: done in" "$WORK/log1" || fail "no closing summary"
grep -q "^  samples      $WORK/run/samples.png" "$WORK/log1" || fail "summary does not name samples.png"
# the loss curve: drawn where matplotlib is installed, else the summary says how to get it
if python3 -c 'import matplotlib' 2>/dev/null || /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  [ "$(head -c 8 "$WORK/run/loss.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "loss.png is not a PNG"
  grep -q "^  loss curve   $WORK/run/loss.png" "$WORK/log1" || fail "summary does not name loss.png"
else
  grep -q "loss.png not drawn: python3-matplotlib is missing; bash launch/install_deps.sh plot" "$WORK/log1" ||
    fail "summary does not say why loss.png is missing"
fi

png_before=$(stat -c %Y.%s "$WORK/run/samples.png")
sleep 1
quickstart "--set training.n_iters=4" 2
rc=$?
[ $rc -eq 0 ] || { fail "re-run exited $rc"; cat "$WORK/log2"; }
grep -q "present and valid, keeping it" "$WORK/log2" || fail "re-run prepared the data again"
grep -q "resumed from .*ckpt_00000004.h5 at step 4" "$WORK/log2" || fail "re-run did not resume the finished run"
grep -q "pfgm-train: nothing to do, the run already has 4 of 4 steps" "$WORK/log2" || fail "re-run trained again"
grep -q "samples.png is newer than" "$WORK/log2" || fail "re-run sampled again"
[ "$(stat -c %Y.%s "$WORK/run/samples.png")" = "$png_before" ] || fail "re-run rewrote samples.png"

quickstart "--set training.n_iters=6" 3
rc=$?
[ $rc -eq 0 ] || { fail "longer run exited $rc"; cat "$WORK/log3"; }
grep -q "pfgm-train: done, 6 steps (2 this run)" "$WORK/log3" || fail "longer run did not continue from step 4"
grep -q "ckpt_00000006.h5 (step 6, EMA weights)" "$WORK/log3" || fail "longer run did not sample its new final checkpoint"

if [ $failures -gt 0 ]; then
  echo "$failures check(s) failed; first log:"
  cat "$WORK/log1"
  exit 1
fi
echo "ok: quickstart prepares, trains, samples; the re-run keeps everything; a longer run resumes"
