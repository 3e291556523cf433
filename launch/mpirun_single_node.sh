#!/usr/bin/env bash
# Runs a pfgm program with NP ranks on this machine through Open MPI's mpirun, with one
# OpenMP thread team per rank pinned to its own cores.
#
#   launch/mpirun_single_node.sh NP PROGRAM [ARGS...]
#   e.g. launch/mpirun_single_node.sh 2 build/pfgm-train --config configs/fashion_mnist.yaml \
#            --run-dir runs/fashion_mnist
#        launch/mpirun_single_node.sh 4 build/pfgm-train --config configs/cifar10_ddpmpp.yaml \
#            --run-dir runs/cifar10            (a 4-GPU machine: one rank per GPU)
#
# What it does:
#   - NP = 1 runs PROGRAM directly (no MPI launcher: pfgm uses its single-process comm).
#   - OMP_NUM_THREADS per rank defaults to physical cores / NP (at least 1). The CPU backend
#     runs OpenMP inside each rank and keeps OpenBLAS single-threaded inside it.
#   - Binding: when NP x threads fits in the physical cores, `--map-by ppr:NP:node:PE=T
#     --bind-to core` gives each rank T cores of its own (ppr = processes per resource, PE =
#     cores per process), so the threads of two ranks never share a core. When it does not
#     fit, `--oversubscribe --bind-to none` lets the OS schedule.
#   - As root, Open MPI refuses to start unless OMPI_ALLOW_RUN_AS_ROOT=1 and
#     OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 are set; this script sets them when run as root.
#   - GPUs: one rank per GPU. Each rank takes the GPU whose index is its node-local rank, so
#     every rank must see all of the node's GPUs; restrict the set with CUDA_VISIBLE_DEVICES
#     (e.g. CUDA_VISIBLE_DEVICES=2,3 with NP=2). NCCL_DEBUG=INFO prints NCCL's set-up.
#   - Signals: SIGUSR1, SIGTERM or Ctrl-C to this script become SIGUSR1 to mpirun, which
#     forwards it to every rank: pfgm-train writes a checkpoint and exits 75 (a second signal
#     stops it hard). Its exit code is PROGRAM's (mpirun passes a rank's non-zero code on).
#
# Environment:
#   OMP_NUM_THREADS     threads per rank (default: physical cores / NP)
#   PFGM_BIND           core | none (default: core when the ranks' threads fit, else none)
#   PFGM_MPIRUN         the launcher (default mpirun)
#   PFGM_MPIRUN_ARGS    extra mpirun options, split on spaces (e.g. "--report-bindings")
#   PFGM_LAUNCH_ECHO=1  print the command line instead of running it
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/common.sh"

if [ $# -lt 2 ] || ! [[ $1 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 NP PROGRAM [ARGS...]" >&2
  exit 2
fi
np=$1
shift
cores=$(pfgm_physical_cores)
threads=${OMP_NUM_THREADS:-$(( cores / np > 0 ? cores / np : 1 ))}
export OMP_NUM_THREADS=$threads
bind=${PFGM_BIND:-$( [ $(( np * threads )) -le "$cores" ] && echo core || echo none )}
read -r -a extra <<< "${PFGM_MPIRUN_ARGS:-}"

if [ "$np" -eq 1 ]; then
  cmd=("$@")
else
  pfgm_mpi_root_env
  cmd=("${PFGM_MPIRUN:-mpirun}" -np "$np")
  if [ "$bind" = core ]; then
    cmd+=(--map-by "ppr:$np:node:PE=$threads" --bind-to core)
  else
    cmd+=(--oversubscribe --bind-to none)
  fi
  cmd+=(-x OMP_NUM_THREADS "${extra[@]}" "$@")
fi

if [ "${PFGM_LAUNCH_ECHO:-0}" = 1 ]; then
  echo "OMP_NUM_THREADS=$OMP_NUM_THREADS ${cmd[*]}"
  exit 0
fi
echo "launch: $np rank(s) x $OMP_NUM_THREADS thread(s), binding $bind: ${cmd[*]}" >&2
pfgm_run_forwarding "${cmd[@]}"
[ "$PFGM_CHILD_RC" -ne "$PFGM_EXIT_REQUEUE" ] || [ "$np" -eq 1 ] || pfgm_note_mpirun_stop launch
exit "$PFGM_CHILD_RC"
