#!/usr/bin/env bash
# One trainer per run directory: while pfgm-train trains in RUN, a second pfgm-train on RUN is
# refused at once (exit 3) with a message naming the first one's host and pid, and touches
# nothing (the first one's checkpoints and temporaries stay); once the first has stopped, the
# lock is free again (a kill -9 frees it too: the kernel drops a dead process's flock).
source "$(dirname "$0")/train_common.sh"
RUN="$WORK/run"
"$PFGM_TRAIN" "${TRAIN_ARGS[@]}" --set training.snapshot_freq=2 --run-dir "$RUN" > "$WORK/log" 2>&1 &
JOB=$!
if ! wait_steps "$RUN/metrics.jsonl" 3 120; then
  echo "FAIL: training did not start"; cat "$WORK/log"; kill -9 $JOB; exit 1
fi
first=$(rank_pids "$RUN" | head -n 1)
timeout 60 "$PFGM_TRAIN" "${TRAIN_ARGS[@]}" --run-dir "$RUN" > "$WORK/log2" 2>&1
rc=$?
echo "second trainer: exit $rc: $(grep -m1 'another pfgm-train' "$WORK/log2")"
[ $rc -eq 3 ] || { echo "FAIL: expected exit 3"; cat "$WORK/log2"; kill -9 $JOB; exit 1; }
grep -q "another pfgm-train is training in this run directory (host $(hostname), pid $first since" "$WORK/log2" ||
  { echo "FAIL: the refusal does not name host $(hostname) and pid $first"; cat "$WORK/log2"; kill -9 $JOB; exit 1; }
kill -0 $JOB 2>/dev/null || { echo "FAIL: the first trainer died"; cat "$WORK/log"; exit 1; }
grep -q "cannot open for fsync\|No such file" "$WORK/log" && { echo "FAIL: the first trainer lost a file"; cat "$WORK/log"; kill -9 $JOB; exit 1; }
# kill -9 the holder: the lock goes with it
kill -9 "$first"
wait $JOB 2>/dev/null
timeout 120 "$PFGM_TRAIN" "${TRAIN_ARGS[@]}" --set training.n_iters=1 --run-dir "$RUN" > "$WORK/log3" 2>&1
rc=$?
[ $rc -eq 0 ] || { echo "FAIL: after the holder's kill -9 the run directory stayed locked (exit $rc)"; cat "$WORK/log3"; exit 1; }
echo "ok: the second trainer was refused naming pid $first; after kill -9 the lock was free"
