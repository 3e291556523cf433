#!/usr/bin/env bash
# A rank killed with SIGKILL mid-training ends the whole job within 60 s (mpirun tears
# the other rank down; nothing waits forever in a collective).
source "$(dirname "$0")/train_common.sh"
RUN="$WORK/run"
"$MPIEXEC" -np 2 --oversubscribe "$PFGM_TRAIN" "${TRAIN_ARGS[@]}" --run-dir "$RUN" > "$WORK/log" 2>&1 &
JOB=$!
if ! wait_steps "$RUN/metrics.jsonl" 3 120; then
  echo "FAIL: training did not start"; cat "$WORK/log"; kill -9 $JOB; exit 1
fi
victim=$(rank_pids "$RUN" | tail -n 1)
[ -n "$victim" ] || { echo "FAIL: no rank process found"; kill -9 $JOB; exit 1; }
echo "killing rank process $victim with SIGKILL"
t0=$(date +%s)
kill -9 "$victim"
( sleep 60; kill -9 $JOB ) >/dev/null 2>&1 & watchdog=$!
wait $JOB; rc=$?
t1=$(date +%s)
pkill -P $watchdog 2>/dev/null; kill $watchdog 2>/dev/null
echo "job ended with exit code $rc after $((t1 - t0)) s"
[ $rc -ne 0 ] || { echo "FAIL: the job reported success"; exit 1; }
[ $((t1 - t0)) -le 60 ] || { echo "FAIL: the job took longer than 60 s to end"; exit 1; }
left=$(rank_pids "$RUN")
[ -z "$left" ] || { echo "FAIL: rank processes still running: $left"; kill -9 $left; exit 1; }
echo "ok"
