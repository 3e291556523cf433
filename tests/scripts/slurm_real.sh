#!/usr/bin/env bash
# The cluster/slurm/*.sbatch files under a real SLURM: a one-node cluster on this machine
# (Debian's slurm-wlm and munge, installed by launch/install_deps.sh; nothing is installed
# here), started as root under a temporary state directory with a minimal slurm.conf. The
# sbatch files are submitted unchanged; the test's own settings go through the documented
# ones only (a site.env named by PFGM_SITE_ENV, PFGM_ROOT, sbatch command-line options).
# Checks, each with a bounded wait:
#   1. prep.sbatch converts 256 Fashion-MNIST images (one task, one CPU);
#   2. train.sbatch (2 ranks through srun --mpi=pmix) stopped with `scancel --batch
#      --signal=USR1` writes a checkpoint, exits 75, requeues itself (Restarts=1), and after
#      SLURM's requeue hold (cred_expire, shortened to 10 s here) resumes from that checkpoint and
#      finishes (COMPLETED, exit 0, the last step's checkpoint);
#   3. a second training job requeued from outside (`scontrol requeue`) comes back once
#      without the script's "requeue failed" advice, then a plain `scancel` ends it for good:
#      CANCELLED, no further restart, and the log says why it was not requeued;
#   4. sample.sbatch on 2 ranks, 4 samples (configs/tiny.yaml's sampling.batch_size: one
#      batch, rank 1 idle without --fill-ranks): both ranks draw a batch, the PNG is written.
# SKIPPED (77) without root, slurm-wlm, munge or the Fashion-MNIST package, or when the
# daemons do not come up. The daemons are stopped by their pids and the state directory is
# removed on any exit. Needs PFGM_BIN_DIR (the folder of pfgm-prep/-train/-sample).
set -u
cd "${PFGM_SOURCE_DIR:-$(dirname "$0")/../..}" || exit 1
REPO=$PWD
BIN=${PFGM_BIN_DIR:-$REPO/build}
FMNIST=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root to run slurmctld, slurmd and munged (SlurmUser=root)"
for t in munged munge slurmctld slurmd sbatch scontrol scancel squeue srun; do
  command -v "$t" > /dev/null 2>&1 || skip "$t not found (Debian packages slurm-wlm and munge: launch/install_deps.sh)"
done
[ -r "$FMNIST" ] || skip "$FMNIST not installed (Debian package dataset-fashion-mnist)"
for b in pfgm-prep pfgm-train pfgm-sample; do
  [ -x "$BIN/$b" ] || { echo "FAIL: $BIN/$b not built"; exit 1; }
done

T0=$SECONDS
# A test run inside a SLURM job, or from a shell that sourced a site.env, must not hand that
# job's or site's settings to the test cluster's commands.
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(SLURM_|SBATCH_|SRUN_|SALLOC_)')
# The state directory must be searchable by all: munged refuses a socket in a directory
# without execute permission for others.
ST=$(mktemp -d "${TMPDIR:-/tmp}/pfgm-slurm-real-XXXXXX") || exit 1
chmod 755 "$ST"
export SLURM_CONF=$ST/slurm.conf
JOBS=()
cleanup() {
  local p f
  if [ -f "$ST/slurmctld.pid" ] && [ ${#JOBS[@]} -gt 0 ]; then
    timeout 10 scancel "${JOBS[@]}" > /dev/null 2>&1
    for _ in $(seq 40); do # KillWait is 5 s: the job steps end before slurmd does
      [ -z "$(timeout 5 squeue -h -t R,CG -j "$(IFS=,; echo "${JOBS[*]}")" 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  for f in slurmd slurmctld munged; do
    p=$(cat "$ST/$f.pid" 2>/dev/null) || continue
    if [ -z "$p" ] || ! kill "$p" 2> /dev/null; then continue; fi
    for _ in $(seq 50); do # gone, or a zombie (exited, not yet reaped by its parent)
      kill -0 "$p" 2> /dev/null || break
      [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ] || break
      sleep 0.1
    done
    kill -KILL "$p" 2> /dev/null
  done
  rm -rf "$ST"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# wait_for SECONDS COMMAND...: runs COMMAND every 0.5 s until it succeeds; 1 on timeout.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.5
  done
}
# job_field JOB NAME: NAME=value of the job as scontrol shows it.
job_field() { timeout 10 scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
state_is() { [ "$(job_field "$1" JobState)" = "$2" ]; }
state_in() { # state_in JOB STATE...: the job's state is one of them
  local s j=$1
  s=$(job_field "$j" JobState)
  shift
  for x in "$@"; do [ "$s" = "$x" ] && return 0; done
  return 1
}
show_logs() {
  local f
  for f in "$@"; do echo "---- $f"; grep -v '^step ' "$f" 2>/dev/null | tail -n 30; done
}

# ---- the cluster: munged, slurmctld, slurmd ---------------------------------------------
dd if=/dev/urandom of="$ST/munge.key" bs=1024 count=1 2> /dev/null
chmod 600 "$ST/munge.key"
timeout 20 munged --socket="$ST/munge.sock" --key-file="$ST/munge.key" --pid-file="$ST/munged.pid" \
  --log-file="$ST/munged.log" --seed-file="$ST/munged.seed" ||
  skip "munged did not start: $(tail -n 2 "$ST/munged.log" 2>/dev/null)"
HOLD=10
# ports from this process's id, so that two runs on one machine do not collide
port=$((20000 + ($$ % 20000) * 2))
node_hw=$(slurmd -C 2>/dev/null | head -n 1 | sed 's/^NodeName=[^ ]* //; s/RealMemory=[0-9]*/RealMemory=1000/')
[ -n "$node_hw" ] || skip "slurmd -C did not describe this machine"
mkdir -p "$ST/ctld" "$ST/spool" "$ST/work"
cat > "$ST/slurm.conf" <<EOF
ClusterName=pfgmtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: the lifetime of a job's credentials, which is also how long SLURM holds a
# requeued job (BeginTime; 120 s by default). Lifting that hold early instead (scontrol
# update StartTime=now) let the restart's srun fail to launch its step now and then: the
# credentials of the ended start are revoked until they expire.
AuthInfo=socket=$ST/munge.sock,cred_expire=$HOLD
StateSaveLocation=$ST/ctld
SlurmdSpoolDir=$ST/spool
SlurmctldPidFile=$ST/slurmctld.pid
SlurmdPidFile=$ST/slurmd.pid
SlurmctldLogFile=$ST/slurmctld.log
SlurmdLogFile=$ST/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
# a held job that becomes eligible waits for the next periodic pass (60 s by default)
SchedulerParameters=sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
KillWait=5
MinJobAge=600
NodeName=pfgmnode NodeHostname=$(hostname) NodeAddr=127.0.0.1 $node_hw
PartitionName=pfgm Nodes=pfgmnode Default=YES MaxTime=INFINITE State=UP
EOF
timeout 30 slurmctld -i || skip "slurmctld did not start: $(tail -n 3 "$ST/slurmctld.log" 2>/dev/null)"
timeout 30 slurmd -N pfgmnode || skip "slurmd did not start: $(tail -n 3 "$ST/slurmd.log" 2>/dev/null)"
node_idle() { timeout 5 sinfo -h -N -n pfgmnode -o %t 2>/dev/null | grep -qx idle; }
wait_for 30 node_idle || skip "the node did not become idle: $(tail -n 3 "$ST/slurmd.log" "$ST/slurmctld.log" 2>/dev/null)"
echo "cluster up in $((SECONDS - T0)) s (slurmctld on port $port)"

# ---- the site settings and a submission helper -------------------------------------------
# The test's site.env: the documented PFGM_* settings only (cluster/slurm/site.env.example).
W=$ST/work
cat > "$W/site.env" <<EOF
export PFGM_BIN_DIR=\${PFGM_BIN_DIR:-$BIN}
export PFGM_LAUNCHER=\${PFGM_LAUNCHER:-srun}
export PFGM_SRUN_MPI=\${PFGM_SRUN_MPI:-pmix}
EOF
# submit SCRIPT [SBATCH OPTIONS...] -- [ARGS...]: sbatch from $W (the logs land there), the
# job runs in the repository (PFGM_ROOT); prints the job id.
submit() {
  local script=$1 opts=()
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  (cd "$W" && env PFGM_ROOT="$REPO" PFGM_SITE_ENV="$W/site.env" PFGM_BIN_DIR="$BIN" \
     timeout 20 sbatch --parsable "${opts[@]}" "$REPO/cluster/slurm/$script" "$@")
}
# metrics_at_least FILE N: FILE has N lines
metrics_at_least() { [ "$(wc -l < "$1" 2>/dev/null || echo 0)" -ge "$2" ]; }
job_gone() { state_in "$1" COMPLETED CANCELLED FAILED TIMEOUT NODE_FAIL OUT_OF_MEMORY PREEMPTED; }

# ---- 1. prep.sbatch ------------------------------------------------------------------------
j=$(submit prep.sbatch --output="$W/prep-%j.out" -- idx --images "$FMNIST" --limit 256 --out "$W/data.h5") ||
  { fail "sbatch prep.sbatch"; exit 1; }
JOBS+=("$j")
wait_for 60 job_gone "$j" || fail "prep job $j still $(job_field "$j" JobState) after 60 s"
{ state_is "$j" COMPLETED && [ -s "$W/data.h5" ]; } ||
  { fail "prep.sbatch: $(job_field "$j" JobState), $(job_field "$j" ExitCode)"; show_logs "$W/prep-$j.out"; exit 1; }
echo "prep.sbatch: COMPLETED ($((SECONDS - T0)) s)"

# ---- 2. train.sbatch: preempted with USR1, requeued, resumed, finished ------------------------
TRAIN=(--config configs/tiny.yaml --set "data.path=$W/data.h5" --set data.image_size=28
       --set "model.attn_resolutions=[14]" --set training.batch_size=16 --set training.small_batch_size=8
       --set training.snapshot_freq=100000 --set training.snapshot_freq_for_preemption=100000
       --set training.log_freq=1)
SHAPE=(--nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --time=10)
n_iters=120
j=$(submit train.sbatch "${SHAPE[@]}" --output="$W/train-%j.out" -- "${TRAIN[@]}" \
      --set training.n_iters=$n_iters --run-dir "$W/run_a") || { fail "sbatch train.sbatch"; exit 1; }
JOBS+=("$j")
log=$W/train-$j.out
wait_for 60 metrics_at_least "$W/run_a/metrics.jsonl" 5 ||
  { fail "train job $j: no 5 steps in 60 s ($(job_field "$j" JobState))"; show_logs "$log"; exit 1; }
timeout 10 scancel --batch --signal=USR1 "$j" || fail "scancel --batch --signal=USR1 $j"
requeued() { [ "$(job_field "$1" Restarts)" = 1 ] && state_is "$1" PENDING; }
wait_for 60 requeued "$j" ||
  { fail "train job $j not requeued after USR1: $(job_field "$j" JobState), Restarts=$(job_field "$j" Restarts)"; show_logs "$log"; exit 1; }
ckpt1=$(sed -n 's/^stop requested: checkpoint of step \([0-9]*\) written.*/\1/p' "$log" | head -n 1)
[ -n "$ckpt1" ] || fail "no 'stop requested: checkpoint ... written' in $log"
[ "${ckpt1:-$n_iters}" -lt $n_iters ] || fail "the stop came too late (step ${ckpt1:-?} of $n_iters)"
grep -q "srun: error: .*Exited with exit code 75" "$log" || fail "the ranks did not exit 75 (no srun line saying so)"
grep -q "train.sbatch: stopped after a checkpoint (exit 75): requeueing job $j" "$log" || fail "no requeue line in $log"
echo "train: USR1 -> checkpoint of step $ckpt1, exit 75, requeued; reason $(job_field "$j" Reason) ($((SECONDS - T0)) s)"
# SLURM holds the requeued job for cred_expire ($HOLD s here) and then starts it again
wait_for $((HOLD + 90)) job_gone "$j" || fail "train job $j: still $(job_field "$j" JobState) $((HOLD + 90)) s after the requeue"
{ state_is "$j" COMPLETED && [ "$(job_field "$j" ExitCode)" = 0:0 ]; } ||
  fail "train job $j after the restart: $(job_field "$j" JobState), exit $(job_field "$j" ExitCode)"
grep -q "train.sbatch: job $j start 2 " "$log" || fail "no second start in $log"
grep -q "launch failed" "$log" && fail "a start's srun could not launch its step"
grep -qE "resum.*ckpt_0*$ckpt1\.h5" "$log" || fail "the second start did not resume from step $ckpt1's checkpoint"
[ -f "$W/run_a/checkpoints/ckpt_$(printf %08d $n_iters).h5" ] || fail "no final checkpoint of step $n_iters"
grep -q "train.sbatch: training finished (exit 0)" "$log" || fail "no 'training finished' in $log"
[ "$failures" -eq 0 ] || show_logs "$log"
[ "$failures" -eq 0 ] && echo "train: restart resumed from step $ckpt1 and finished $n_iters steps ($((SECONDS - T0)) s)"

# ---- 3. external requeue, then a plain scancel: cancelled for good ---------------------------
j=$(submit train.sbatch "${SHAPE[@]}" --output="$W/train-%j.out" -- "${TRAIN[@]}" \
      --set training.n_iters=100000 --run-dir "$W/run_b") || { fail "sbatch train.sbatch"; exit 1; }
JOBS+=("$j")
log=$W/train-$j.out
wait_for 60 metrics_at_least "$W/run_b/metrics.jsonl" 3 || { fail "train job $j: no steps in 60 s"; show_logs "$log"; exit 1; }
timeout 10 scontrol requeue "$j" || fail "scontrol requeue $j"
wait_for 60 requeued "$j" || fail "job $j not pending with Restarts=1 after scontrol requeue"
said_requeued() { grep -q "SLURM has requeued job $j itself" "$log"; }
wait_for 30 said_requeued || fail "after an external requeue the log does not say SLURM requeued the job"
grep -q "requeue failed" "$log" && fail "after an external requeue the script says 'requeue failed'"
started_twice() { grep -q "train.sbatch: job $j start 2 " "$log" && state_is "$j" RUNNING; }
wait_for $((HOLD + 60)) started_twice || fail "job $j did not start again after the requeue"
steps_now=$(wc -l < "$W/run_b/metrics.jsonl")
wait_for 60 metrics_at_least "$W/run_b/metrics.jsonl" $((steps_now + 3)) || fail "job $j: no steps after the restart"
timeout 10 scancel "$j" || fail "scancel $j"
wait_for 60 job_gone "$j" || fail "job $j still $(job_field "$j" JobState) 60 s after scancel"
sleep 3 # a requeue by the script would have happened before the job ended; look once more
{ state_is "$j" CANCELLED && [ "$(job_field "$j" Restarts)" = 1 ]; } ||
  fail "after scancel: $(job_field "$j" JobState), Restarts=$(job_field "$j" Restarts) (expected CANCELLED, 1)"
grep -q "not requeueing" "$log" || fail "the log does not say why the cancelled job was not requeued"
[ "$failures" -eq 0 ] || show_logs "$log"
[ "$failures" -eq 0 ] && echo "train: external requeue came back once; scancel -> $(job_field "$j" JobState), Restarts=$(job_field "$j" Restarts) ($((SECONDS - T0)) s)"

# ---- 4. sample.sbatch on 2 ranks ---------------------------------------------------------------
j=$(submit sample.sbatch --ntasks-per-node=2 --cpus-per-task=1 --time=5 --output="$W/sample-%j.out" -- \
      --checkpoint "$W/run_a" --num 4 --out "$W/samples.png") || { fail "sbatch sample.sbatch"; exit 1; }
JOBS+=("$j")
log=$W/sample-$j.out
wait_for 60 job_gone "$j" || fail "sample job $j still $(job_field "$j" JobState) after 60 s"
state_is "$j" COMPLETED || fail "sample.sbatch: $(job_field "$j" JobState), exit $(job_field "$j" ExitCode)"
grep -q "on 2 ranks" "$log" || fail "sample.sbatch did not run 2 ranks"
{ grep -q "(rank 0)" "$log" && grep -q "(rank 1)" "$log"; } || fail "sample.sbatch: not every rank drew a batch"
[ -s "$W/samples.png" ] || fail "no samples.png"
[ "$failures" -eq 0 ] || show_logs "$log"
[ "$failures" -eq 0 ] && echo "sample: $(grep -c '^batch ' "$log") batches on ranks $(sed -n 's/^batch .*(rank \([0-9]*\)).*/\1/p' "$log" | sort -u | tr '\n' ' ')($((SECONDS - T0)) s)"

if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "ok: real SLURM (slurmctld + slurmd on localhost): prep; train USR1 -> checkpoint, exit 75, requeue, resume, done; external requeue once, scancel cancels for good; sample on every rank ($((SECONDS - T0)) s)"
