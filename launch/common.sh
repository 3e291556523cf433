# shellcheck shell=bash disable=SC2034  # sets globals read by the scripts that source it
# Helpers shared by the launch/ and cluster/slurm/ scripts (sourced, never run):
#   pfgm_mpi_root_env         let Open MPI's mpirun run as root (containers, fresh VMs)
#   pfgm_physical_cores       physical cores of this node (hyper-threads not counted)
#   pfgm_run_forwarding CMD   run CMD, turning USR1/TERM/INT/HUP received by this shell into
#                             a graceful stop of CMD (see below); sets PFGM_CHILD_RC
#   pfgm_resume_auto ARGS     ARGS with any `--resume X` replaced by `--resume auto`; sets
#                             the array PFGM_ARGS (for restarts after exit code 75)
#   pfgm_newest_checkpoint DIR  path of the newest checkpoints/ckpt_*.h5 under DIR (or empty)
#   pfgm_note_mpirun_stop WHO   after mpirun exited 75: one line saying that Open MPI's
#                             "non-zero exit code" banner above is the planned stop
#
# Exit code 75 is pfgm-train's "stopped on request after writing a checkpoint: requeue me"
# (docs/user-guide.md, "Exit codes").
PFGM_EXIT_REQUEUE=75

pfgm_mpi_root_env() {
  if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
}

pfgm_physical_cores() {
  local n
  n=$(lscpu -b -p=Core,Socket 2>/dev/null | grep -v '^#' | sort -u | wc -l)
  [ "${n:-0}" -ge 1 ] || n=$(nproc)
  echo "$n"
}

# pfgm_run_forwarding CMD [ARGS...]
# Runs CMD in its own process group and waits for it. pfgm-train stops gracefully on SIGUSR1
# or SIGTERM: it finishes the current step, writes a checkpoint and exits 75. Launchers do
# not all pass SIGTERM on that way (Open MPI's mpirun treats SIGTERM as an abort of the job
# and exits 1, not 75), but mpirun and srun both forward SIGUSR1 to every rank. So the first
# USR1/TERM/INT/HUP this shell receives is passed to CMD as SIGUSR1 (a graceful stop), the
# second as SIGTERM, any later one as SIGKILL. CMD runs in its own process group, so a
# Ctrl-C on the terminal reaches only this shell, which turns it into that graceful stop.
# CMD's standard input is /dev/null (a background process group must not read the terminal).
# Sets PFGM_CHILD_RC to CMD's exit code, PFGM_SIGNALS_SEEN to the number of signals and
# PFGM_STOP_SIGNAL to the name of the first one (USR1, TERM, INT, HUP; empty when none came):
# the SLURM scripts tell a stop asked for by the scheduler's warning (USR1) from a job being
# ended (TERM) by it.
pfgm_run_forwarding() {
  PFGM_SIGNALS_SEEN=0
  PFGM_STOP_SIGNAL=
  PFGM_CHILD_RC=0
  local had_m=0
  _pfgm_child=
  # traps first, so that no signal between the start of CMD and here is lost
  trap '_pfgm_forward USR1' USR1
  trap '_pfgm_forward TERM' TERM
  trap '_pfgm_forward INT' INT
  trap '_pfgm_forward HUP' HUP
  case $- in *m*) had_m=1 ;; esac
  set -m
  "$@" < /dev/null &
  _pfgm_child=$!
  [ "$had_m" -eq 1 ] || set +m
  if [ "$PFGM_SIGNALS_SEEN" -gt 0 ]; then
    kill -s USR1 "$_pfgm_child" 2>/dev/null || true
  fi
  local rc
  while :; do
    # wait returns early (status > 128) when a trapped signal arrives; go on waiting
    # while the child lives, then take its real status (bash keeps it for a second wait).
    # (`|| rc=$?` keeps errexit shells alive through a non-zero wait.)
    rc=0
    wait "$_pfgm_child" || rc=$?
    if kill -0 "$_pfgm_child" 2>/dev/null; then continue; fi
    rc=0
    wait "$_pfgm_child" || rc=$?
    break
  done
  trap - USR1 TERM INT HUP
  PFGM_CHILD_RC=$rc
  return 0
}

_pfgm_forward() {
  PFGM_SIGNALS_SEEN=$((PFGM_SIGNALS_SEEN + 1))
  [ -n "$PFGM_STOP_SIGNAL" ] || PFGM_STOP_SIGNAL=$1
  local to=USR1
  [ "$PFGM_SIGNALS_SEEN" -eq 2 ] && to=TERM
  [ "$PFGM_SIGNALS_SEEN" -ge 3 ] && to=KILL
  [ -n "$_pfgm_child" ] || return 0 # not started yet: pfgm_run_forwarding sends SIGUSR1 when it is
  echo "launch: got SIG$1, sending SIG$to to $_pfgm_child$([ "$to" = USR1 ] && echo ' (stop after a checkpoint)')" >&2
  kill -s "$to" "$_pfgm_child" 2>/dev/null || true
}

# Open MPI's mpirun prints "Primary job terminated normally, but 1 process returned a non-zero
# exit code. Per user-direction, the job has been aborted." and "mpirun detected that one or
# more processes exited with non-zero status" whenever a rank exits non-zero, also for the
# graceful exit 75; there is no option to leave it out, so the launcher's last word says what
# happened.
pfgm_note_mpirun_stop() {
  echo "$1: exit 75: the ranks stopped on request after writing a checkpoint; mpirun's" \
       "'non-zero exit code' message above reports this planned stop, not a crash" >&2
}

pfgm_resume_auto() {
  PFGM_ARGS=()
  local next_is_resume=0 a
  for a in "$@"; do
    if [ "$next_is_resume" -eq 1 ]; then
      PFGM_ARGS+=(auto)
      next_is_resume=0
    elif [ "$a" = --resume ]; then
      PFGM_ARGS+=("$a")
      next_is_resume=1
    else
      PFGM_ARGS+=("$a")
    fi
  done
}

pfgm_newest_checkpoint() {
  local f newest=
  for f in "$1"/checkpoints/ckpt_*.h5; do
    [ -f "$f" ] && newest=$f # names carry the step in 8 digits: glob order is step order
  done
  echo "$newest"
}
