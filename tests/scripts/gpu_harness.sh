#!/bin/bash
# The harness around the gpu tests, checked without a GPU (label unit):
#   - tests/scripts/mpi_launch_or_skip.sh: SKIPPED (77) with the reason when the MPI launcher
#     is missing, else runs the launcher with the arguments;
#   - tests/gpu_mpi/nccl_timeout.sh against stand-in launchers: it passes on either timeout
#     message ("no completion after 3 s", "not started after 3 s"), fails on a job that returns
#     or aborts silently, skips without a launcher or when test_nccl skips;
#   - tests/gpu/run_device_checks.sh --plan: phase caps inside the budget (and a refusal when
#     they are not), libraries counted by header + development link (a runtime libX.so.N alone
#     is not a library to build against), the unpacked launcher found by its real name
#     (mpiexec.openmpi), and the prefix's LD_LIBRARY_PATH set for the tests only.
set -u
SRC=${PFGM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
check() { # check DESCRIPTION WANT_RC GOT_RC [LOG PATTERN]
    local what=$1 want=$2 got=$3 log=${4:-} pat=${5:-}
    if [ "$got" -ne "$want" ]; then
        echo "FAIL: $what: exit $got, wanted $want"; [ -n "$log" ] && sed 's/^/    /' "$log"; fails=$((fails + 1)); return
    fi
    if [ -n "$pat" ] && ! grep -q -E -- "$pat" "$log"; then
        echo "FAIL: $what: no line matching '$pat' in:"; sed 's/^/    /' "$log"; fails=$((fails + 1)); return
    fi
    echo "ok: $what"
}

# ---- mpi_launch_or_skip.sh ----
bash "$SRC/tests/scripts/mpi_launch_or_skip.sh" "MPIEXEC_EXECUTABLE-NOTFOUND" -np 2 x > "$T/l1" 2>&1
check "no launcher: SKIPPED with the reason" 77 $? "$T/l1" "^SKIPPED: no MPI launcher .*MPIEXEC_EXECUTABLE"
bash "$SRC/tests/scripts/mpi_launch_or_skip.sh" "" > "$T/l2" 2>&1
check "empty launcher: SKIPPED" 77 $? "$T/l2" "^SKIPPED: no MPI launcher"
bash "$SRC/tests/scripts/mpi_launch_or_skip.sh" echo -np 2 prog > "$T/l3" 2>&1
check "a launcher runs with the arguments" 0 $? "$T/l3" "^-np 2 prog$"
printf '#!/bin/sh\nexit 3\n' > "$T/fail3" && chmod +x "$T/fail3"
bash "$SRC/tests/scripts/mpi_launch_or_skip.sh" "$T/fail3" > "$T/l4" 2>&1
check "the launcher's exit status is the test's" 3 $?

# ---- nccl_timeout.sh with stand-in launchers ----
launcher() { # launcher NAME EXIT_STATUS [MESSAGE]; with --hang-nonblocking among its arguments
    # the stand-in names the non-blocking all-reduce, as comm_nccl.c does
    printf '#!/bin/sh\nmsg="%s"\ncase "$*" in *--hang-nonblocking*) msg=$(echo "$msg" | sed "s/NCCL all-reduce/NCCL non-blocking all-reduce/");; esac\n[ -n "$msg" ] && echo "$msg" >&2\nexit %s\n' "${3:-}" "$2" > "$T/$1"
    chmod +x "$T/$1"
}
launcher not_started 1 "pfgm: rank 0 on h: NCCL all-reduce: not started after 3 s (PFGM_NCCL_TIMEOUT_S); aborting the job"
launcher no_completion 134 "pfgm: rank 0 on h: NCCL all-reduce: no completion after 3 s (PFGM_NCCL_TIMEOUT_S): a peer is missing or hung; aborting the job"
launcher silent 1
launcher returned 0
launcher skipped 77
launcher other_timeout 1 "pfgm: rank 0 on h: NCCL all-reduce: not started after 30 s (PFGM_NCCL_TIMEOUT_S); aborting the job"
nt() { PFGM_TEST_NCCL=/bin/true MPIEXEC=$1 bash "$SRC/tests/gpu_mpi/nccl_timeout.sh" > "$T/n_$(basename "$1")" 2>&1; }
nt "$T/not_started"; check "timeout while the all-reduce is enqueued (lazy connection): pass" 0 $? "$T/n_not_started" "^ok \(--hang-nonblocking\)"
nt "$T/no_completion"; check "timeout after the all-reduce was enqueued: pass" 0 $? "$T/n_no_completion" "^ok \(--hang-nonblocking\)"
nt "$T/silent"; check "an abort without the timeout message: fail" 1 $? "$T/n_silent" "no timeout message"
nt "$T/returned"; check "a job that returns: fail" 1 $? "$T/n_returned" "did not abort"
nt "$T/other_timeout"; check "a timeout other than the 3 s asked for: fail" 1 $?
nt "$T/skipped"; check "test_nccl skipped: SKIPPED" 77 $?
nt "MPIEXEC_EXECUTABLE-NOTFOUND"; check "no launcher: SKIPPED with the reason" 77 $? "$T/n_MPIEXEC_EXECUTABLE-NOTFOUND" "^SKIPPED: no MPI launcher"

# ---- run_device_checks.sh --plan ----
DC="$SRC/tests/gpu/run_device_checks.sh"
env -u LD_LIBRARY_PATH bash "$DC" --plan > "$T/p1" 2>&1
check "plan: the phase caps fit the default budget" 0 $? "$T/p1" "^plan: budget [0-9]+ s; phase caps .*\(sum [0-9]+ s\)$"
sum=$(sed -n 's/.*(sum \([0-9]*\) s).*/\1/p' "$T/p1"); budget=$(sed -n 's/^plan: budget \([0-9]*\) s.*/\1/p' "$T/p1")
if [ -n "$sum" ] && [ -n "$budget" ] && [ "$sum" -le "$budget" ] && [ "$budget" -le 450 ]; then
    echo "ok: plan: caps $sum s <= budget $budget s <= 450 s"
else
    echo "FAIL: plan: caps '$sum' s, budget '$budget' s"; fails=$((fails + 1))
fi
PFGM_CHECK_BUDGET_S=200 bash "$DC" --plan > "$T/p2" 2>&1
check "plan: caps beyond a smaller budget are refused" 1 $? "$T/p2" "RESULT: FAILED: the phase caps .* exceed the budget \(200 s\)"

# a prefix with only a runtime library: not a library to build against
M=x86_64-linux-gnu
mkdir -p "$T/rt/usr/lib/$M/openmpi/lib" && touch "$T/rt/usr/lib/$M/openmpi/lib/libmpi.so.40" "$T/rt/usr/lib/$M/libhdf5_serial.so.103"
PFGM_DEPS_PREFIX="$T/rt" PFGM_DEPS_ONLY=1 env -u LD_LIBRARY_PATH bash "$DC" --plan > "$T/p3" 2>&1
check "plan: exit 0 with a runtime-only prefix" 0 $?
if grep -q -E "^  (mpi|hdf5) +prefix" "$T/p3"; then
    echo "FAIL: plan: a runtime-only libmpi.so.40 / libhdf5_serial.so.103 counted as a library:"; sed 's/^/    /' "$T/p3"; fails=$((fails + 1))
else
    echo "ok: plan: runtime-only libraries in the prefix are not counted"
fi

# a prefix laid out as unpacked Debian packages of MPI: header, development link, launcher
mkdir -p "$T/dev/usr/lib/$M/openmpi/include" "$T/dev/usr/lib/$M/openmpi/lib" "$T/dev/usr/bin"
touch "$T/dev/usr/lib/$M/openmpi/include/mpi.h" "$T/dev/usr/lib/$M/openmpi/lib/libmpi.so.40.30.4"
ln -s libmpi.so.40.30.4 "$T/dev/usr/lib/$M/openmpi/lib/libmpi.so"
printf '#!/bin/sh\nexit 0\n' > "$T/dev/usr/bin/mpiexec.openmpi" && chmod +x "$T/dev/usr/bin/mpiexec.openmpi"
PFGM_DEPS_PREFIX="$T/dev" PFGM_DEPS_ONLY=1 env -u LD_LIBRARY_PATH bash "$DC" --plan > "$T/p4" 2>&1
check "plan: MPI from the prefix" 0 $? "$T/p4" "^  mpi +prefix"
check "plan: the unpacked launcher by its real name" 0 0 "$T/p4" "^mpi launcher: $T/dev/usr/bin/mpiexec.openmpi$"
check "plan: cmake is told the launcher" 0 0 "$T/p4" "-DMPIEXEC_EXECUTABLE=$T/dev/usr/bin/mpiexec.openmpi"
check "plan: the tests get the prefix's library path and OPAL_PREFIX" 0 0 "$T/p4" \
    "^run environment of the tests and the benchmark: LD_LIBRARY_PATH=$T/dev/usr/lib/$M.* OPAL_PREFIX=$T/dev/usr$"
check "plan: cmake and the other tools keep the system's libraries" 0 0 "$T/p4" \
    "^LD_LIBRARY_PATH of cmake, the build and the other tools: \(unset\)$"

echo "$fails failure(s)"
[ "$fails" -eq 0 ]
