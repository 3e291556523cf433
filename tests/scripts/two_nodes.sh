#!/usr/bin/env bash
# Two simulated nodes on one machine (issue 13 §2): two network namespaces joined by a veth
# pair (10.213.7.1/24 and .2, addresses that exist only inside those namespaces), the link
# optionally shaped with tc tbf on both ends; Open MPI starts its daemons in the namespace of
# each host name through tests/scripts/netns_rsh.sh and the ranks talk TCP over the veth.
#
#   two_nodes.sh [LINK]              the test: a 2x2-rank training (ranks 0-1 on nodeA, 2-3 on
#                                    nodeB, field.reference global, fixed seed) and the same
#                                    training with 4 ranks on nodeA alone; the two final
#                                    checkpoints must be equal bitwise (h5diff). LINK: a tc rate
#                                    (10gbit, 1gbit, 100mbit) or none; default 1gbit.
#   two_nodes.sh --bench [STEPS] [LINK...]
#                                    the 2x2 training for STEPS steps (default 30) at each LINK
#                                    (default: none 10gbit 1gbit 100mbit), and 4 ranks on one
#                                    node; median step time (first 3 steps left out) per link,
#                                    each link with buckets off (serial), on (overlap, bucket
#                                    BENCH_BUCKET_MB MiB, default 0.1) and on with ZeRO-1, and
#                                    the hidden fraction of the all-reduce (from grad_wait_ms).
#
# Needs root (or CAP_NET_ADMIN), `ip` with netns, Open MPI's mpirun; exit 77 (SKIPPED) where
# namespaces cannot be created. Everything it creates is removed on exit.
# Environment: PFGM_TRAIN, PFGM_PREP, MPIEXEC (tests/train.cmake; tests/nodes.cmake).
set -u
SCRIPTS=$(cd "$(dirname "$0")" && pwd)
skip() { echo "SKIPPED: $*"; exit 77; }

MODE="test"
BENCH_BUCKET_MB=${BENCH_BUCKET_MB:-0.1}
LINKS=(1gbit)
STEPS=6
if [ "${1:-}" = "--bench" ]; then
  MODE=bench
  shift
  STEPS=30
  if [[ "${1:-}" =~ ^[0-9]+$ ]]; then STEPS=$1; shift; fi
  LINKS=(none 10gbit 1gbit 100mbit)
  [ $# -gt 0 ] && LINKS=("$@")
elif [ $# -gt 0 ]; then
  LINKS=("$1")
fi

[ "$(id -u)" -eq 0 ] || skip "two network namespaces need root (or CAP_NET_ADMIN); running as $(id -un)"
command -v ip >/dev/null 2>&1 || skip "iproute2's ip is not installed (network namespaces)"
MPIRUN=${MPIEXEC:-mpirun}
"$MPIRUN" --version 2>/dev/null | grep -Eq "Open MPI|OpenRTE" || skip "$MPIRUN is not Open MPI's mpirun (the rsh agent is Open MPI's plm_rsh_agent)"

command -v h5diff >/dev/null 2>&1 || skip "h5diff is not installed (Debian package hdf5-tools)"
source "$SCRIPTS/train_common.sh"   # WORK, TRAIN_ARGS (skips without Fashion-MNIST)

NSA=pfgm-a-$$
NSB=pfgm-b-$$
VA=pfa$$           # interface names: at most 15 characters
VB=pfb$$
NET=10.213.7
created=()
cleanup() {
  local ns p
  for ns in "${created[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  done
  [ ${#created[@]} -gt 0 ] && ip -n "$NSA" link del "$VA" 2>/dev/null
  for ns in "${created[@]}"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

err=$(ip netns add "$NSA" 2>&1) || skip "cannot create a network namespace: $err"
created+=("$NSA")
err=$(ip netns add "$NSB" 2>&1) || skip "cannot create a network namespace: $err"
created+=("$NSB")
err=$( { ip -n "$NSA" link add "$VA" type veth peer name "$VB" netns "$NSB" &&
         ip -n "$NSA" addr add "$NET.1/24" dev "$VA" && ip -n "$NSB" addr add "$NET.2/24" dev "$VB" &&
         ip -n "$NSA" link set lo up && ip -n "$NSB" link set lo up &&
         ip -n "$NSA" link set "$VA" up && ip -n "$NSB" link set "$VB" up; } 2>&1) ||
  skip "cannot set up the veth pair between the namespaces: $err"
echo "namespaces $NSA ($VA $NET.1) and $NSB ($VB $NET.2)"

# shape LINK: tbf on both ends of the veth (egress each way); none removes it. The bucket holds
# about 1 ms at the rate (at least 16 KiB), so a step's messages cannot pass in one burst.
shape() {
  local link=$1 bits burst
  ip netns exec "$NSA" tc qdisc del dev "$VA" root 2>/dev/null
  ip netns exec "$NSB" tc qdisc del dev "$VB" root 2>/dev/null
  [ "$link" = none ] && return 0
  command -v tc >/dev/null 2>&1 || { echo "tc is not installed"; return 1; }
  case "$link" in
    *gbit) bits=$(( ${link%gbit} * 1000000000 )) ;;
    *mbit) bits=$(( ${link%mbit} * 1000000 )) ;;
    *kbit) bits=$(( ${link%kbit} * 1000 )) ;;
    *) echo "link speed '$link': expected Ngbit, Nmbit, Nkbit or none"; return 1 ;;
  esac
  burst=$(( bits / 8 / 1000 ))
  [ $burst -lt 16384 ] && burst=16384
  ip netns exec "$NSA" tc qdisc add dev "$VA" root tbf rate "$link" burst "$burst" latency 100ms &&
    ip netns exec "$NSB" tc qdisc add dev "$VB" root tbf rate "$link" burst "$burst" latency 100ms
}
tx_bytes() { ip netns exec "$NSA" cat "/sys/class/net/$VA/statistics/tx_bytes"; }

export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1   # 4 ranks on the machine's cores
export PFGM_NETNS_MAP="nodeA=$NSA,nodeB=$NSB"
# Each "node" has the machine's cores as slots, so Open MPI does not see that 4 ranks share
# them: no binding, and waiting ranks yield instead of spinning (no effect on the results).
MPI_ARGS=(--oversubscribe --bind-to none --mca mpi_yield_when_idle 1 --mca plm_rsh_agent "$SCRIPTS/netns_rsh.sh" --mca plm_rsh_no_tree_spawn 1
          --mca btl "tcp,self" --mca btl_tcp_if_include "$NET.0/24" --mca oob_tcp_if_include "$NET.0/24")

# train HOSTS STEPS RUN_DIR: mpirun (itself on nodeA) with 4 ranks on HOSTS; bounded in time.
EXTRA_SETS=()
train() {
  local hosts=$1 steps=$2 run=$3 rc
  timeout -k 5 $(( 60 + steps * 5 )) ip netns exec "$NSA" "$MPIRUN" -np 4 --host "$hosts" "${MPI_ARGS[@]}" \
    "$PFGM_TRAIN" "${TRAIN_ARGS[@]}" "${EXTRA_SETS[@]}" --set seed=7 --set field.reference=global \
    --set training.n_iters="$steps" --run-dir "$run" > "$run.log" 2>&1 &
  wait $!   # in the background, so that a signal to this script runs the cleanup at once
  rc=$?
  [ $rc -eq 0 ] || { echo "FAIL: training on $hosts exited $rc"; tail -n 40 "$run.log"; }
  return $rc
}

# step_times RUN_DIR SKIP: each step's seconds after the first SKIP (world_size x 8 images per
# images_per_s, log_freq 1), sorted; median of them on stdout by median_ms.
step_times() {
  awk -v skip="$2" 'match($0, /"images_per_s":[-+0-9.eE]+/) {
      ips = substr($0, RSTART + 15, RLENGTH - 15) + 0
      match($0, /"world_size":[0-9]+/); w = substr($0, RSTART + 13, RLENGTH - 13) + 0
      if (++n > skip && ips > 0) printf "%.6f\n", 8 * w / ips }' "$1/metrics.jsonl" | sort -g
}
# field_times RUN_DIR SKIP KEY: each step's KEY (grad_wait_ms: rank 0 starting the remaining
# gradient buckets after backward and waiting for all; param_gather_ms: the ZeRO parameter
# all-gather) after the first SKIP, sorted, in seconds.
field_times() {
  awk -v skip="$2" -v key="\"$3\":" 'i = index($0, key) {
      v = substr($0, i + length(key)) + 0
      if (++n > skip) printf "%.6f\n", v / 1000 }' "$1/metrics.jsonl" | sort -g
}
median_ms() { awk '{ v[NR] = $1 } END { if (NR == 0) { print "n/a"; exit }
  m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.1f\n", m * 1000 }'; }

ckpt_of() { printf "%s/checkpoints/ckpt_%08d.h5" "$1" "$2"; }

if [ "$MODE" = test ]; then
  link=${LINKS[0]}
  if ! msg=$(shape "$link" 2>&1); then
    echo "NOTE: could not shape the link to $link ($msg); the link is unshaped"
    link="none (tbf refused)"
  fi
  before=$(tx_bytes)
  t0=$(date +%s.%N)
  train nodeA:2,nodeB:2 "$STEPS" "$WORK/two" || exit 1
  t1=$(date +%s.%N)
  crossed=$(( $(tx_bytes) - before ))
  train nodeA:4 "$STEPS" "$WORK/one" || exit 1
  t2=$(date +%s.%N)
  for r in two one; do
    grep -q "world size *4" "$WORK/$r.log" || { echo "FAIL: $r: not a 4-rank run"; cat "$WORK/$r.log"; exit 1; }
  done
  # the 2x2 run's traffic went over the veth: at least one gradient all-reduce per step
  [ "$crossed" -gt $(( STEPS * 500000 )) ] ||
    { echo "FAIL: only $crossed bytes left nodeA over $VA in $STEPS steps (ranks not on two nodes?)"; exit 1; }
  a=$(ckpt_of "$WORK/two" "$STEPS")
  b=$(ckpt_of "$WORK/one" "$STEPS")
  [ -f "$a" ] && [ -f "$b" ] || { echo "FAIL: missing final checkpoint"; ls -R "$WORK/two" "$WORK/one"; exit 1; }
  echo "link $link; nodeA -> nodeB: $crossed bytes in $STEPS steps"
  printf "2x2 ranks (nodeA:2, nodeB:2): median step %s ms, run %.1f s\n" \
    "$(step_times "$WORK/two" 1 | median_ms)" "$(awk "BEGIN { print $t1 - $t0 }")"
  printf "4 ranks on nodeA:            median step %s ms, run %.1f s\n" \
    "$(step_times "$WORK/one" 1 | median_ms)" "$(awk "BEGIN { print $t2 - $t1 }")"
  if ! h5diff -r "$a" "$b" > "$WORK/h5diff.out" 2>&1; then
    echo "FAIL: the final checkpoints differ (h5diff -r $a $b):"
    awk '/^(dataset|attribute):/ { what = $0 } /^[1-9][0-9]* differences? found/ { print what ": " $0; n++ }
         END { if (!n) print "(no differing object listed)" }' "$WORK/h5diff.out" | head -n 20
    exit 1
  fi
  n=$(h5ls -r "$a" 2>/dev/null | grep -c Dataset)
  echo "ok: final checkpoints (step $STEPS, $n datasets) bitwise equal: 2x2 over the veth == 4 ranks on one node"
  exit 0
fi

# --bench
echo "machine: $(getconf _NPROCESSORS_ONLN) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "2x2 ranks, $STEPS steps each, medians over steps 4..$STEPS; wait = the gradient average's time after backward"
echo "modes: serial = distributed.bucket_mb 0 (one all-reduce after backward), overlap = bucket_mb $BENCH_BUCKET_MB"
echo "(buckets started during backward), zero = overlap with distributed.zero 1; hidden = 1 - wait(overlap) / wait(serial)"
printf "%-12s %-8s %10s %10s %10s %14s\n" link mode "step ms" "wait ms" "gather ms" "MB/step A->B"
for link in "${LINKS[@]}"; do
  if ! msg=$(shape "$link" 2>&1); then printf "%-12s %10s   (%s)\n" "$link" n/a "$msg"; continue; fi
  declare -A wait_of=()
  for mode in serial overlap zero; do
    case $mode in
      serial) EXTRA_SETS=(--set distributed.bucket_mb=0 --set distributed.zero=0) ;;
      overlap) EXTRA_SETS=(--set distributed.bucket_mb="$BENCH_BUCKET_MB" --set distributed.zero=0) ;;
      zero) EXTRA_SETS=(--set distributed.bucket_mb="$BENCH_BUCKET_MB" --set distributed.zero=1) ;;
    esac
    run="$WORK/bench-$link-$mode"
    before=$(tx_bytes)
    train nodeA:2,nodeB:2 "$STEPS" "$run" || exit 1
    mb=$(awk "BEGIN { printf \"%.2f\", ($(tx_bytes) - $before) / $STEPS / 1e6 }")
    wait_of[$mode]=$(field_times "$run" 3 grad_wait_ms | median_ms)
    printf "%-12s %-8s %10s %10s %10s %14s\n" "$link" "$mode" "$(step_times "$run" 3 | median_ms)" "${wait_of[$mode]}" \
      "$(field_times "$run" 3 param_gather_ms | median_ms)" "$mb"
  done
  awk -v s="${wait_of[serial]}" -v o="${wait_of[overlap]}" 'BEGIN { if (s > 0) printf "%-12s hidden fraction of the all-reduce: %.2f\n", "", 1 - o / s }'
  unset wait_of
done
EXTRA_SETS=()
shape none
run="$WORK/bench-onenode"
train nodeA:4 "$STEPS" "$run" || exit 1
printf "%-12s %-8s %10s %10s %10s %14s\n" "one node" default "$(step_times "$run" 3 | median_ms)" \
  "$(field_times "$run" 3 grad_wait_ms | median_ms)" "$(field_times "$run" 3 param_gather_ms | median_ms)" "-"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
