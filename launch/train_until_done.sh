#!/usr/bin/env bash
# Resume-until-done loop: runs a pfgm-train command and runs it again each time it exits 75
# ("stopped on request after writing a checkpoint": SIGTERM or SIGUSR1 reached the ranks,
# e.g. from a node-local job killer, `timeout -s USR1`, or a system shutdown), so training
# continues from that checkpoint. It stops with 0 when the command exits 0 (n_iters reached)
# and fails with the command's exit code on anything else (2 config, 3 data, ...; see
# docs/user-guide.md, "Exit codes").
#
#   launch/train_until_done.sh COMMAND [ARGS...]
#   e.g. launch/train_until_done.sh launch/mpirun_single_node.sh 2 build/pfgm-train \
#            --config configs/fashion_mnist.yaml --run-dir runs/fashion_mnist
#        launch/train_until_done.sh build/pfgm-train --config configs/tiny.yaml --run-dir runs/t
#
# The restarts use `--resume auto` (pfgm-train's default: the newest complete checkpoint in
# the run directory); a `--resume never` or `--resume PATH` in ARGS applies to the first run
# only and is replaced by `--resume auto` on the restarts.
#
# A stop asked of this script (SIGUSR1, SIGTERM, SIGHUP or Ctrl-C) is passed on as SIGUSR1
# (the command stops after a checkpoint) and is NOT followed by a restart: the script exits
# 75 so that whoever stopped it can resume later by running it again. A second signal stops
# the command hard (SIGTERM), a third kills it.
#
# Environment:
#   PFGM_MAX_RESTARTS    restarts after exit 75 before giving up (default 100)
#   PFGM_RESTART_DELAY   seconds between a stop and the restart (default 5)
set -uo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/common.sh"

if [ $# -lt 1 ]; then
  echo "usage: $0 COMMAND [ARGS...]   (re-runs COMMAND while it exits $PFGM_EXIT_REQUEUE)" >&2
  exit 2
fi
max=${PFGM_MAX_RESTARTS:-100}
delay=${PFGM_RESTART_DELAY:-5}
args=("$@")
restarts=0
while :; do
  pfgm_run_forwarding "${args[@]}"
  rc=$PFGM_CHILD_RC
  if [ "$rc" -eq 0 ]; then
    echo "train_until_done: finished (exit 0) after $restarts restart(s)"
    exit 0
  fi
  if [ "$rc" -ne "$PFGM_EXIT_REQUEUE" ]; then
    echo "train_until_done: the command failed with exit code $rc; not restarting" >&2
    exit "$rc"
  fi
  if [ "$PFGM_SIGNALS_SEEN" -gt 0 ]; then
    echo "train_until_done: stopped on request after a checkpoint (exit $rc); run the same command again to resume" >&2
    exit "$rc"
  fi
  if [ "$restarts" -ge "$max" ]; then
    echo "train_until_done: still stopping (exit $rc) after $restarts restarts (PFGM_MAX_RESTARTS=$max); giving up" >&2
    exit "$rc"
  fi
  restarts=$((restarts + 1))
  echo "train_until_done: stopped after a checkpoint (exit $rc); restart $restarts of at most $max in ${delay}s" >&2
  pfgm_run_forwarding sleep "$delay"
  if [ "$PFGM_SIGNALS_SEEN" -gt 0 ]; then
    echo "train_until_done: stopped on request before the restart" >&2
    exit "$PFGM_EXIT_REQUEUE"
  fi
  pfgm_resume_auto "${args[@]}"
  args=("${PFGM_ARGS[@]}")
done
