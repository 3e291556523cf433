#!/usr/bin/env bash
# kill -9 while a checkpoint is being written: the previous checkpoint stays valid and is the
# one `--resume auto` selects; the dead writer's temporary is never selected and is removed
# by the next checkpoint's retention pass.
source "$(dirname "$0")/train_common.sh"
RUN="$WORK/run"
# a checkpoint every step, and a wider network so that each write takes a while
ARGS=("${TRAIN_ARGS[@]}" --set training.snapshot_freq=1 --set model.nf=64 --set checkpoint.keep_last=2)
caught=0
for attempt in 1 2 3 4 5; do
  "$PFGM_TRAIN" "${ARGS[@]}" --run-dir "$RUN" > "$WORK/log" 2>&1 &
  JOB=$!
  # wait for a complete checkpoint, then for the next write to be in flight
  wait_steps "$RUN/metrics.jsonl" 2 120 || { echo "FAIL: training did not start"; cat "$WORK/log"; kill -9 $JOB; exit 1; }
  deadline=$(( $(date +%s) + 60 ))
  while ! compgen -G "$RUN/checkpoints/ckpt_*.h5.tmp.*" > /dev/null; do
    [ "$(date +%s)" -ge "$deadline" ] && break
  done
  kill -9 $JOB
  wait $JOB 2>/dev/null
  if compgen -G "$RUN/checkpoints/ckpt_*.h5.tmp.*" > /dev/null; then caught=1; break; fi
  echo "attempt $attempt: the kill missed the write window, retrying"
done
[ $caught -eq 1 ] || { echo "FAIL: could not kill the trainer during a checkpoint write in 5 attempts"; exit 1; }
tmp=$(compgen -G "$RUN/checkpoints/ckpt_*.h5.tmp.*" | head -n 1)
newest=$(ls "$RUN"/checkpoints/ckpt_*.h5 | sort | tail -n 1)
echo "killed during the write of $(basename "$tmp"); newest complete checkpoint: $(basename "$newest")"
step=$(basename "$newest" .h5 | sed -E 's/ckpt_0*([0-9]+)/\1/')
target=$((step + 2))
"$PFGM_TRAIN" "${ARGS[@]}" --set training.n_iters=$target --run-dir "$RUN" > "$WORK/log2" 2>&1
rc=$?
[ $rc -eq 0 ] || { echo "FAIL: resume exited $rc"; cat "$WORK/log2"; exit 1; }
grep -q "resumed from .*$(basename "$newest") at step $step" "$WORK/log2" || { echo "FAIL: auto did not select $(basename "$newest")"; cat "$WORK/log2"; exit 1; }
[ ! -e "$tmp" ] || { echo "FAIL: the dead writer's temporary $tmp is still there"; exit 1; }
echo "ok: resumed from step $step and finished at $target; temporary removed"
