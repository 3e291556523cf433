#!/usr/bin/env bash
# launch/ recipes without a cluster: the mpirun command lines of mpirun_single_node.sh and
# mpirun_multi_node.sh (PFGM_LAUNCH_ECHO=1: hostfile, world size, binding, interface
# variables), and train_until_done.sh against a stand-in trainer: restarts while it exits
# 75 (with --resume auto), stops on 0, fails with any other code, and a signal to the loop
# stops the trainer gracefully (SIGUSR1) without a restart.
set -u
cd "${PFGM_SOURCE_DIR:-$(dirname "$0")/../..}" || exit 1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pfgm-launch-local-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
contains() { case $1 in *"$2"*) return 0 ;; esac; return 1; }

# ---- mpirun_single_node.sh --------------------------------------------------------------
out=$(PFGM_LAUNCH_ECHO=1 OMP_NUM_THREADS=1 PFGM_BIND=core bash launch/mpirun_single_node.sh 2 prog --a b)
contains "$out" "OMP_NUM_THREADS=1 mpirun -np 2 --map-by ppr:2:node:PE=1 --bind-to core -x OMP_NUM_THREADS prog --a b" ||
  fail "single node, bound: $out"
out=$(PFGM_LAUNCH_ECHO=1 OMP_NUM_THREADS=3 PFGM_BIND=none PFGM_MPIRUN_ARGS="--report-bindings --tag-output" \
      bash launch/mpirun_single_node.sh 4 prog)
contains "$out" "OMP_NUM_THREADS=3 mpirun -np 4 --oversubscribe --bind-to none -x OMP_NUM_THREADS --report-bindings --tag-output prog" ||
  fail "single node, unbound: $out"
out=$(PFGM_LAUNCH_ECHO=1 OMP_NUM_THREADS=1 bash launch/mpirun_single_node.sh 100000 prog)
contains "$out" "--oversubscribe --bind-to none" || fail "more ranks than cores must not bind: $out"
out=$(PFGM_LAUNCH_ECHO=1 OMP_NUM_THREADS=2 bash launch/mpirun_single_node.sh 1 prog --x)
[ "$out" = "OMP_NUM_THREADS=2 prog --x" ] || fail "one rank runs the program directly: $out"
bash launch/mpirun_single_node.sh two prog 2> /dev/null
[ $? -eq 2 ] || fail "a bad NP is a usage error"

# ---- mpirun_multi_node.sh ---------------------------------------------------------------
printf '# two machines\nnode01 slots=4\n\nnode02 slots=4  # second\n' > "$WORK/hosts"
out=$(PFGM_LAUNCH_ECHO=1 OMP_NUM_THREADS=8 PFGM_NET_IF=ib0 NCCL_IB_HCA=mlx5_0 UCX_NET_DEVICES=mlx5_0:1 \
      bash launch/mpirun_multi_node.sh "$WORK/hosts" 4 prog --c d)
contains "$out" "mpirun --hostfile $WORK/hosts -np 8 --map-by ppr:4:node:PE=8 --bind-to core" || fail "multi node world/binding: $out"
contains "$out" "--mca btl_tcp_if_include ib0 --mca oob_tcp_if_include ib0" || fail "multi node Open MPI interfaces: $out"
for v in OMP_NUM_THREADS NCCL_SOCKET_IFNAME NCCL_IB_HCA UCX_NET_DEVICES NCCL_DEBUG PATH; do
  contains "$out" "-x $v " || fail "multi node does not pass $v: $out"
done
contains "$out" " prog --c d" || fail "multi node program: $out"
out=$(PFGM_LAUNCH_ECHO=1 PFGM_NET_IF=10.1.0.0/16 bash launch/mpirun_multi_node.sh "$WORK/hosts" 2 prog 2> "$WORK/err")
contains "$out" "btl_tcp_if_include 10.1.0.0/16" || fail "subnet for Open MPI: $out"
contains "$out" "NCCL_SOCKET_IFNAME" && fail "a subnet must not become NCCL_SOCKET_IFNAME: $out"
grep -q "NCCL needs an interface name" "$WORK/err" || fail "no hint about NCCL_SOCKET_IFNAME for a subnet"
printf '# nothing\n' > "$WORK/empty"
bash launch/mpirun_multi_node.sh "$WORK/empty" 2 prog 2> /dev/null
[ $? -eq 2 ] || fail "an empty hostfile is a usage error"
bash launch/mpirun_multi_node.sh "$WORK/missing" 2 prog 2> /dev/null
[ $? -eq 2 ] || fail "a missing hostfile is a usage error"

# ---- train_until_done.sh ------------------------------------------------------------------
# Stand-in trainer: run k takes line k of $WORK/codes: an exit code, or "wait" (exit 75 on
# SIGUSR1, 1 on SIGTERM, 0 after 20 s). Each run's arguments go to $WORK/runs.
cat > "$WORK/trainer" <<EOF
#!/usr/bin/env bash
printf '%s\n' "\$*" >> "$WORK/runs"
code=\$(sed -n "\$(wc -l < "$WORK/runs")p" "$WORK/codes")
if [ "\$code" = wait ]; then
  trap 'echo USR1 >> "$WORK/signals"; exit 75' USR1
  trap 'echo TERM >> "$WORK/signals"; exit 1' TERM
  echo \$\$ > "$WORK/started"
  for _ in \$(seq 200); do sleep 0.1; done
  exit 0
fi
exit "\$code"
EOF
chmod +x "$WORK/trainer"
until_done() { rm -f "$WORK/runs" "$WORK/signals" "$WORK/started"; printf '%s\n' "$@" > "$WORK/codes"; }
export PFGM_RESTART_DELAY=0

until_done 75 75 0
bash launch/train_until_done.sh "$WORK/trainer" --config c --resume never --run-dir r > "$WORK/log" 2>&1
rc=$?
[ $rc -eq 0 ] || fail "until_done 75,75,0: exit code $rc"
[ "$(wc -l < "$WORK/runs")" -eq 3 ] || fail "until_done 75,75,0: $(wc -l < "$WORK/runs") runs, expected 3"
[ "$(sed -n 1p "$WORK/runs")" = "--config c --resume never --run-dir r" ] || fail "first run's arguments: $(sed -n 1p "$WORK/runs")"
[ "$(sed -n 3p "$WORK/runs")" = "--config c --resume auto --run-dir r" ] || fail "restart arguments: $(sed -n 3p "$WORK/runs")"

until_done 75 3
bash launch/train_until_done.sh "$WORK/trainer" > "$WORK/log" 2>&1
rc=$?
[ $rc -eq 3 ] || fail "until_done 75,3: exit code $rc, expected 3"

until_done 75 75 75 75
PFGM_MAX_RESTARTS=2 bash launch/train_until_done.sh "$WORK/trainer" > "$WORK/log" 2>&1
rc=$?
{ [ $rc -eq 75 ] && [ "$(wc -l < "$WORK/runs")" -eq 3 ]; } || fail "restart cap: exit $rc after $(wc -l < "$WORK/runs") runs"

for sig in TERM INT USR1; do
  until_done wait 0
  # job control on: a background job of a non-interactive shell would start with SIGINT
  # ignored, which no trap can undo (a terminal's Ctrl-C reaches a foreground job)
  set -m
  bash launch/train_until_done.sh "$WORK/trainer" > "$WORK/log" 2>&1 &
  loop=$!
  set +m
  for _ in $(seq 100); do [ -f "$WORK/started" ] && break; sleep 0.1; done
  kill -s $sig $loop
  wait $loop
  rc=$?
  [ $rc -eq 75 ] || fail "SIG$sig to the loop: exit code $rc, expected 75"
  [ "$(cat "$WORK/signals" 2>/dev/null)" = USR1 ] || fail "SIG$sig to the loop: the trainer got '$(cat "$WORK/signals" 2>/dev/null)', expected USR1"
  [ "$(wc -l < "$WORK/runs")" -eq 1 ] || fail "SIG$sig to the loop: restarted after a requested stop"
done

# the trainer itself signalled (not the loop): restart
until_done wait 0
bash launch/train_until_done.sh "$WORK/trainer" > "$WORK/log" 2>&1 &
loop=$!
for _ in $(seq 100); do [ -f "$WORK/started" ] && break; sleep 0.1; done
kill -USR1 "$(cat "$WORK/started")"
wait $loop
rc=$?
{ [ $rc -eq 0 ] && [ "$(wc -l < "$WORK/runs")" -eq 2 ]; } || fail "trainer stopped by a signal of its own: exit $rc after $(wc -l < "$WORK/runs") runs, expected 0 after 2"

if [ $failures -gt 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "ok: mpirun command lines (one and several machines), train_until_done restarts, failures and requested stops"
