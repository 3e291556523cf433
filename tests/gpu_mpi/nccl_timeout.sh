#!/bin/bash
# An NCCL collective that a peer never joins must end the job, not hang: rank 0 all-reduces,
# rank 1 sleeps (test_nccl --hang; then --hang-nonblocking: an iallreduce ordered on the
# backend's stream, then waited for); with PFGM_NCCL_TIMEOUT_S=3 rank 0 must print the timeout
# message and abort the job with a non-zero status (a job still running after 80 s is a hang).
# The message is "no completion after 3 s" when the all-reduce was enqueued and never finished,
# or "not started after 3 s" when the enqueue itself never settled: NCCL >= 2.22 connects its
# peers lazily, at the first collective, so the missing peer can stall either stage.
# SKIPPED (77) where test_nccl skips (no NCCL, fewer than two GPUs) and where no MPI launcher
# is found (a device machine without MPI; MPIEXEC names the launcher CMake found).
set -u
: "${PFGM_TEST_NCCL:?path of test_nccl}" "${MPIEXEC:=mpirun}"
if ! command -v "$MPIEXEC" >/dev/null 2>&1; then
    echo "SKIPPED: no MPI launcher ('$MPIEXEC' is not an executable); configure with -DMPIEXEC_EXECUTABLE=..."
    exit 77
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# run MODE WHAT: test_nccl MODE must end the job with the timeout message naming WHAT
run() {
    local mode=$1 what=$2 start rc elapsed
    start=$(date +%s)
    PFGM_NCCL_TIMEOUT_S=3 timeout 80 "$MPIEXEC" -np 2 --oversubscribe "$PFGM_TEST_NCCL" "$mode" >"$log" 2>&1
    rc=$?
    elapsed=$(( $(date +%s) - start ))
    cat "$log"
    if [ "$rc" -eq 77 ]; then
        exit 77
    fi
    if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then
        echo "FAIL ($mode): exit status $rc after ${elapsed} s: the unmatched $what did not abort the job"
        exit 1
    fi
    if ! grep -q -E "NCCL $what: (no completion|not started) after 3 s" "$log"; then
        echo "FAIL ($mode): exit status $rc but no timeout message from rank 0"
        exit 1
    fi
    echo "ok ($mode): the job was aborted after ${elapsed} s with status $rc"
}
run --hang all-reduce
run --hang-nonblocking "non-blocking all-reduce"
