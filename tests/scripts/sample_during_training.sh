#!/usr/bin/env bash
# pfgm-sample against a trainer that saves every step and keeps one checkpoint
# (checkpoint.keep_last: 1): the file the sampler picks is usually unlinked while it reads it.
# Usage: sample_during_training.sh N   (N sampler invocations; every one must succeed: the
# sampler reads through one open handle and passes over a file that vanished before it was
# opened, and never calls a good file corrupt).
source "$(dirname "$0")/train_common.sh"
N=${1:-20}
RUN="$WORK/run"
"$PFGM_TRAIN" "${TRAIN_ARGS[@]}" --set training.snapshot_freq=1 --set checkpoint.keep_last=1 \
  --set checkpoint.keep_every=0 --run-dir "$RUN" > "$WORK/train.log" 2>&1 &
JOB=$!
trap 'kill -9 $JOB 2>/dev/null; rm -rf "$WORK"' EXIT
if ! wait_steps "$RUN/metrics.jsonl" 2 120; then
  echo "FAIL: training did not start"; cat "$WORK/train.log"; exit 1
fi
fails=0 corrupt=0 steps=""
for i in $(seq 1 "$N"); do
  if ! timeout 120 "$PFGM_SAMPLE" --checkpoint "$RUN" --num 1 --solver euler --steps 2 \
       --out "$WORK/s.png" > "$WORK/sample.log" 2>&1; then
    fails=$((fails + 1))
    grep -qi "corrupt" "$WORK/sample.log" && corrupt=$((corrupt + 1))
    echo "invocation $i failed:"; sed 's/^/    /' "$WORK/sample.log"
  fi
  steps="$steps $(grep -o 'step [0-9]*' "$WORK/sample.log" | head -1 | cut -d' ' -f2)"
done
kill -0 $JOB 2>/dev/null || { echo "FAIL: the trainer stopped"; tail "$WORK/train.log"; exit 1; }
distinct=$(echo $steps | tr ' ' '\n' | sort -u | wc -l)
echo "$N sampler invocations against a trainer saving every step with keep_last 1: $fails failed ($corrupt called a file corrupt); $distinct distinct checkpoints sampled"
[ "$distinct" -ge 2 ] || { echo "FAIL: the trainer did not move on while sampling (steps:$steps)"; exit 1; }
[ "$fails" -eq 0 ] || exit 1
echo "ok"
