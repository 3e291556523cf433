#!/usr/bin/env bash
# cluster/slurm/*.sbatch outside SLURM, with stand-ins for srun, mpirun, scontrol and the pfgm
# binaries on PATH that record their arguments: the launch command lines, requeue on exit 75
# after SIGUSR1 (and only then; after SIGTERM only at the time limit, never for a cancelled job
# or one SLURM requeued itself), --resume auto on a requeued start, the requeue cap, SIGUSR1
# or SIGTERM to the batch shell reaching the launcher as SIGUSR1, sample.sbatch's
# --fill-ranks, the note after mpirun's banner, site.env.example's defaults. The same files
# under a real SLURM: slurm_real.sh.
set -u
cd "${PFGM_SOURCE_DIR:-$(dirname "$0")/../..}" || exit 1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pfgm-launch-slurm-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# Stand-ins. A launcher's behaviour comes from $WORK/mode: "exit N", or "wait" (exit 75 on
# SIGUSR1, 1 after 20 s).
mkdir -p "$WORK/bin"
for tool in srun mpirun; do
  cat > "$WORK/bin/$tool" <<EOF
#!/usr/bin/env bash
printf '%s\n' "\$*" > "$WORK/$tool.args"
read -r what code < "$WORK/mode"
if [ "\$what" = wait ]; then
  trap 'echo USR1 > "$WORK/$tool.signal"; exit 75' USR1
  echo started > "$WORK/$tool.started"
  for _ in \$(seq 200); do sleep 0.1; done
  exit 1
fi
exit "\$code"
EOF
done
# scontrol: records its arguments; `show job` answers with $WORK/jobinfo (one line, as -o)
cat > "$WORK/bin/scontrol" <<EOF
#!/usr/bin/env bash
printf '%s\n' "\$*" >> "$WORK/scontrol.args"
[ "\$1" = show ] && cat "$WORK/jobinfo" 2>/dev/null
exit 0
EOF
printf '#!/usr/bin/env bash\nprintf "%%s\\n" "$*" > "%s/prep.args"\n' "$WORK" > "$WORK/bin/pfgm-prep"
chmod +x "$WORK/bin/"*

# run_sbatch SCRIPT [ARGS...]: runs it as SLURM would (job 4242, 2 nodes x 4 tasks, 8 CPUs
# each); extra environment from the caller. Sets RC.
run_sbatch() {
  rm -f "$WORK"/*.args "$WORK"/*.signal "$WORK"/*.started "$WORK/jobinfo"
  env PATH="$WORK/bin:$PATH" PFGM_ROOT="$PWD" PFGM_SITE_ENV="$WORK/none.env" PFGM_BIN_DIR=/opt/pfgm/bin \
      SLURM_JOB_ID=4242 SLURM_NTASKS=8 SLURM_NTASKS_PER_NODE=4 SLURM_CPUS_PER_TASK=8 \
      SLURM_JOB_NODELIST="n[1-2]" "$@" > "$WORK/log" 2>&1
  RC=$?
}
has() { grep -qF -- "$2" "$WORK/$1" 2>/dev/null; }
requeue_asked() { grep -q '^requeue' "$WORK/scontrol.args" 2>/dev/null; }

# 1. finished: exit 0, no requeue; the srun line
echo "exit 0" > "$WORK/mode"
run_sbatch bash cluster/slurm/train.sbatch --config configs/cifar10_ddpmpp.yaml --run-dir runs/c
[ $RC -eq 0 ] || fail "train.sbatch, launcher exit 0: exit code $RC"
has srun.args "--mpi=pmix --kill-on-bad-exit=1 --gpu-bind=none --cpus-per-task=8 /opt/pfgm/bin/pfgm-train --config configs/cifar10_ddpmpp.yaml --run-dir runs/c" ||
  fail "srun line: $(cat "$WORK/srun.args" 2>/dev/null)"
requeue_asked && fail "requeued a finished run"

# 2. stopped with a checkpoint: requeue this job, exit 0
echo "exit 75" > "$WORK/mode"
run_sbatch bash cluster/slurm/train.sbatch --config c.yaml --run-dir r
[ $RC -eq 0 ] || fail "train.sbatch, launcher exit 75: exit code $RC (expected 0 after requeue)"
has scontrol.args "requeue 4242" || fail "exit 75 did not requeue job 4242: $(cat "$WORK/log")"

# 3. a failure: its code, no requeue
echo "exit 3" > "$WORK/mode"
run_sbatch bash cluster/slurm/train.sbatch --config c.yaml --run-dir r
[ $RC -eq 3 ] || fail "train.sbatch, launcher exit 3: exit code $RC"
requeue_asked && fail "requeued after a failure"

# 4. a requeued start resumes automatically, even if the first start named a checkpoint
echo "exit 0" > "$WORK/mode"
run_sbatch env SLURM_RESTART_COUNT=2 bash cluster/slurm/train.sbatch --config c.yaml --resume runs/old/ckpt.h5 --run-dir r
has srun.args "--config c.yaml --resume auto --run-dir r" || fail "restart did not use --resume auto: $(cat "$WORK/srun.args")"
run_sbatch bash cluster/slurm/train.sbatch --config c.yaml --resume runs/old/ckpt.h5 --run-dir r
has srun.args "--resume runs/old/ckpt.h5" || fail "first start lost its --resume PATH"

# 5. the requeue cap
echo "exit 75" > "$WORK/mode"
run_sbatch env SLURM_RESTART_COUNT=3 PFGM_MAX_REQUEUES=3 bash cluster/slurm/train.sbatch
[ $RC -eq 75 ] || fail "requeue cap: exit code $RC (expected 75)"
requeue_asked && fail "requeued past PFGM_MAX_REQUEUES"
has srun.args "--config configs/cifar10_ddpmpp.yaml --run-dir runs/cifar10" || fail "default arguments: $(cat "$WORK/srun.args")"

# 6. --signal=B:USR1: SIGUSR1 to the batch shell reaches the launcher, then requeue
echo "wait" > "$WORK/mode"
rm -f "$WORK"/*.args "$WORK"/*.signal "$WORK"/*.started
env PATH="$WORK/bin:$PATH" PFGM_ROOT="$PWD" PFGM_SITE_ENV="$WORK/none.env" SLURM_JOB_ID=4242 \
    bash cluster/slurm/train.sbatch > "$WORK/log" 2>&1 &
job=$!
for _ in $(seq 100); do [ -f "$WORK/srun.started" ] && break; sleep 0.1; done
kill -USR1 $job
wait $job
RC=$?
[ -f "$WORK/srun.signal" ] || fail "SIGUSR1 to the batch shell did not reach srun: $(cat "$WORK/log")"
{ [ $RC -eq 0 ] && has scontrol.args "requeue 4242"; } || fail "after SIGUSR1: exit code $RC, requeue $(cat "$WORK/scontrol.args" 2>/dev/null)"

# 6b. SIGTERM to the batch shell (scancel, preemption, an external requeue): the launcher
# gets SIGUSR1 all the same (a checkpoint), but the script requeues only a job at its time
# limit; it says when SLURM requeued the job itself.
sigterm_run() { # sigterm_run JOBINFO: the batch shell gets SIGTERM while the launcher waits
  echo "wait" > "$WORK/mode"
  rm -f "$WORK"/*.args "$WORK"/*.signal "$WORK"/*.started
  echo "$1" > "$WORK/jobinfo"
  env PATH="$WORK/bin:$PATH" PFGM_ROOT="$PWD" PFGM_SITE_ENV="$WORK/none.env" SLURM_JOB_ID=4242 \
      bash cluster/slurm/train.sbatch > "$WORK/log" 2>&1 &
  local job=$!
  for _ in $(seq 100); do [ -f "$WORK/srun.started" ] && break; sleep 0.1; done
  kill -TERM $job
  wait $job
  RC=$?
}
sigterm_run "JobId=4242 JobState=COMPLETING Restarts=0"
[ -f "$WORK/srun.signal" ] || fail "SIGTERM to the batch shell did not reach srun as SIGUSR1"
requeue_asked && fail "a cancelled job (SIGTERM) was requeued by the script"
{ [ $RC -eq 75 ] && grep -q "not requeueing" "$WORK/log"; } || fail "after SIGTERM: exit $RC, log: $(cat "$WORK/log")"
sigterm_run "JobId=4242 JobState=PENDING Restarts=1"
requeue_asked && fail "a job SLURM requeued itself was requeued again"
grep -q "SLURM has requeued job 4242 itself" "$WORK/log" || fail "external requeue: $(cat "$WORK/log")"
grep -q "requeue failed" "$WORK/log" && fail "external requeue: the script says 'requeue failed'"
sigterm_run "JobId=4242 JobState=TIMEOUT Restarts=0"
has scontrol.args "requeue 4242" || fail "a job at its time limit (SIGTERM without the USR1 warning) was not requeued"

# 6c. a stop on the last step: pfgm-train exits 0, the job ends (nothing to requeue): case 1

# 7. mpirun instead of srun
echo "exit 0" > "$WORK/mode"
run_sbatch env PFGM_LAUNCHER=mpirun bash cluster/slurm/train.sbatch --config c.yaml --run-dir r
has mpirun.args "-np 8 --map-by ppr:4:node:PE=8 --bind-to core" || fail "mpirun line: $(cat "$WORK/mpirun.args" 2>/dev/null)"
has mpirun.args "/opt/pfgm/bin/pfgm-train --config c.yaml --run-dir r" || fail "mpirun program: $(cat "$WORK/mpirun.args")"
echo "exit 75" > "$WORK/mode"
run_sbatch env PFGM_LAUNCHER=mpirun bash cluster/slurm/train.sbatch --config c.yaml --run-dir r
grep -q "mpirun's 'non-zero exit code' message above reports this planned stop" "$WORK/log" ||
  fail "mpirun exit 75: no line about Open MPI's banner: $(cat "$WORK/log")"
echo "exit 0" > "$WORK/mode"
# site.env keeps a launcher given at submission (PFGM_LAUNCHER=mpirun sbatch ...)
run_sbatch env PFGM_LAUNCHER=mpirun PFGM_SITE_ENV=cluster/slurm/site.env.example bash cluster/slurm/train.sbatch
[ -f "$WORK/mpirun.args" ] || fail "site.env.example overrode PFGM_LAUNCHER=mpirun"
run_sbatch env PFGM_SITE_ENV=cluster/slurm/site.env.example bash cluster/slurm/train.sbatch
[ -f "$WORK/srun.args" ] || fail "site.env.example: srun is not the default launcher"
run_sbatch env PFGM_LAUNCHER=aprun bash cluster/slurm/train.sbatch
[ $RC -eq 2 ] || fail "unknown launcher: exit code $RC (expected 2)"

# 8. sample.sbatch and prep.sbatch
run_sbatch bash cluster/slurm/sample.sbatch --checkpoint runs/c --num 16 --out s.png
[ $RC -eq 0 ] || fail "sample.sbatch: exit code $RC"
has srun.args "/opt/pfgm/bin/pfgm-sample --checkpoint runs/c --num 16 --out s.png --fill-ranks" || fail "sample srun line: $(cat "$WORK/srun.args")"
run_sbatch bash cluster/slurm/sample.sbatch --checkpoint runs/c --set sampling.batch_size=2 --out s.png
has srun.args "--fill-ranks" && fail "sample.sbatch: --fill-ranks although the arguments set sampling.batch_size"
echo "exit 5" > "$WORK/mode"
run_sbatch bash cluster/slurm/sample.sbatch
[ $RC -eq 5 ] || fail "sample.sbatch did not pass exit code 5 on: $RC"
has srun.args "--checkpoint runs/cifar10 --num 64 --out runs/cifar10/samples.png --h5 runs/cifar10/samples.h5" || fail "sample defaults: $(cat "$WORK/srun.args")"
echo "exit 0" > "$WORK/mode"
run_sbatch env PFGM_BIN_DIR="$WORK/bin" SLURM_NTASKS=1 bash cluster/slurm/prep.sbatch cifar10 --input /d --out data/c.h5
{ [ $RC -eq 0 ] && has prep.args "cifar10 --input /d --out data/c.h5 --quiet" && [ ! -f "$WORK/srun.args" ]; } ||
  fail "prep.sbatch, 1 task: exit code $RC, $(cat "$WORK/prep.args" 2>/dev/null)"
run_sbatch bash cluster/slurm/prep.sbatch folder --input /lsun --size 256 --pipeline lsun --out b.h5
{ [ $RC -eq 0 ] && has srun.args "--mpi=pmix --kill-on-bad-exit=1 /opt/pfgm/bin/pfgm-prep folder --input /lsun --size 256 --pipeline lsun --out b.h5 --quiet"; } ||
  fail "prep.sbatch, 8 tasks: exit code $RC, srun $(cat "$WORK/srun.args" 2>/dev/null)"
run_sbatch env PFGM_LAUNCHER=mpirun bash cluster/slurm/prep.sbatch idx --images i --out m.h5
{ [ $RC -eq 0 ] && has mpirun.args "-np 8 /opt/pfgm/bin/pfgm-prep idx --images i --out m.h5 --quiet"; } ||
  fail "prep.sbatch, mpirun: exit code $RC, mpirun $(cat "$WORK/mpirun.args" 2>/dev/null)"
run_sbatch bash cluster/slurm/prep.sbatch
[ $RC -eq 2 ] || fail "prep.sbatch without arguments: exit code $RC (expected 2)"

if [ $failures -gt 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "ok: train/sample/prep.sbatch command lines (prep: 1 task direct, N tasks through srun/mpirun; sample --fill-ranks), requeue on 75 after USR1 only (SIGTERM: cancelled or requeued by SLURM, not requeued; at the time limit, requeued), resume auto on restart, USR1 forwarding, mpirun banner note, site.env defaults"
