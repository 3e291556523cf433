#!/usr/bin/env bash
# SIGTERM to ONE rank (as SLURM's signal to a task) stops every rank at the same step with a
# checkpoint and exit code 75; the run then resumes from it and finishes. Usage: NP (1 or 2).
source "$(dirname "$0")/train_common.sh"
NP=${1:-1}
RUN="$WORK/run"
if [ "$NP" -gt 1 ]; then
  "$MPIEXEC" -np "$NP" --oversubscribe "$PFGM_TRAIN" "${TRAIN_ARGS[@]}" --run-dir "$RUN" > "$WORK/log" 2>&1 &
else
  "$PFGM_TRAIN" "${TRAIN_ARGS[@]}" --run-dir "$RUN" > "$WORK/log" 2>&1 &
fi
JOB=$!
if ! wait_steps "$RUN/metrics.jsonl" 3 120; then
  echo "FAIL: training did not start"; cat "$WORK/log"; kill -9 $JOB; exit 1
fi
victim=$(rank_pids "$RUN" | tail -n 1)
echo "sending SIGTERM to rank process $victim"
kill -TERM "$victim"
( sleep 120; kill -9 $JOB ) >/dev/null 2>&1 & watchdog=$!
wait $JOB; rc=$?
pkill -P $watchdog 2>/dev/null; kill $watchdog 2>/dev/null
echo "exit code $rc"
[ $rc -eq 75 ] || { echo "FAIL: expected exit code 75"; cat "$WORK/log"; exit 1; }
last=$(tail -n 1 "$RUN/metrics.jsonl" | sed -E 's/.*"step":([0-9]+).*/\1/')
ckpt=$(printf "%s/checkpoints/ckpt_%08d.h5" "$RUN" "$last")
[ -f "$ckpt" ] || { echo "FAIL: no checkpoint of the stop step $last"; ls "$RUN/checkpoints"; exit 1; }
grep -q "stop requested" "$WORK/log" || { echo "FAIL: no stop message"; cat "$WORK/log"; exit 1; }
echo "stopped at step $last with $ckpt"
# resume and finish two more steps
target=$((last + 2))
if [ "$NP" -gt 1 ]; then
  "$MPIEXEC" -np "$NP" --oversubscribe "$PFGM_TRAIN" "${TRAIN_ARGS[@]}" --set training.n_iters=$target --run-dir "$RUN" > "$WORK/log2" 2>&1
else
  "$PFGM_TRAIN" "${TRAIN_ARGS[@]}" --set training.n_iters=$target --run-dir "$RUN" > "$WORK/log2" 2>&1
fi
rc=$?
[ $rc -eq 0 ] || { echo "FAIL: resume exited $rc"; cat "$WORK/log2"; exit 1; }
grep -q "resumed from .*ckpt_$(printf %08d "$last").h5 at step $last" "$WORK/log2" || { echo "FAIL: did not resume from the stop checkpoint"; cat "$WORK/log2"; exit 1; }
steps=$(grep -c '"step"' "$RUN/metrics.jsonl")
[ "$steps" -eq "$target" ] || { echo "FAIL: metrics has $steps lines, expected $target (monotonic, appended)"; exit 1; }
echo "ok: resumed at $last and finished at $target"
