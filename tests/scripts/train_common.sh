# Shared by the trainer's process-level tests (sourced): a small Fashion-MNIST dataset
# prepared with pfgm-prep and a fast configuration (configs/tiny.yaml at 28x28).
# Needs: PFGM_TRAIN, PFGM_PREP, MPIEXEC in the environment (set by tests/train.cmake).
set -u
FMNIST=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -r "$FMNIST" ]; then
  echo "SKIPPED: $FMNIST not installed (Debian package dataset-fashion-mnist)"
  exit 77
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pfgm-train-test-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
"$PFGM_PREP" idx --images "$FMNIST" --out "$WORK/data.h5" --limit 1024 --quiet || { echo "FAIL: pfgm-prep"; exit 1; }
TRAIN_ARGS=(--config configs/tiny.yaml --set "data.path=$WORK/data.h5" --set data.image_size=28
            --set "model.attn_resolutions=[14]" --set training.batch_size=64 --set training.small_batch_size=8
            --set training.n_iters=100000 --set training.snapshot_freq=100000
            --set training.snapshot_freq_for_preemption=100000 --set training.log_freq=1)

# wait_steps FILE N TIMEOUT: waits until FILE has at least N lines; 1 on timeout.
wait_steps() {
  local deadline=$(( $(date +%s) + $3 ))
  while [ "$(wc -l < "$1" 2>/dev/null || echo 0)" -lt "$2" ]; do
    [ "$(date +%s)" -ge "$deadline" ] && return 1
    sleep 0.2
  done
  return 0
}

# rank_pids RUN_DIR: PIDs of the pfgm-train processes of that run (not mpirun).
rank_pids() {
  pgrep -f -- "--run-dir $1( |$)" | while read -r p; do
    [ "$(cat /proc/"$p"/comm 2>/dev/null)" = "pfgm-train" ] && echo "$p"
  done
}
