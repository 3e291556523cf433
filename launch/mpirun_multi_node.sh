#!/usr/bin/env bash
# Runs a pfgm program on several machines through Open MPI's mpirun and a hostfile, without
# a batch system (with SLURM use cluster/slurm/ instead).
#
#   launch/mpirun_multi_node.sh HOSTFILE RANKS_PER_NODE PROGRAM [ARGS...]
#   e.g. PFGM_NET_IF=ib0 launch/mpirun_multi_node.sh hosts.txt 4 build/pfgm-train \
#            --config configs/cifar10_ddpmpp.yaml --run-dir /shared/runs/cifar10
#
# HOSTFILE lists one machine per line with its slots (ranks it may hold); '#' starts a comment:
#     node01 slots=4
#     node02 slots=4
# The world size is (machines in HOSTFILE) x RANKS_PER_NODE; on GPU machines RANKS_PER_NODE
# is the number of GPUs per machine (one rank per GPU; a rank takes the GPU whose index is its
# node-local rank, so every rank must see all of its machine's GPUs).
#
# Requirements: password-less ssh from this machine to every host (mpirun starts its daemons
# through ssh), the same paths everywhere (the repository, the binaries, the dataset file and
# the run directory on a shared filesystem, or copied to identical paths), and the same Open
# MPI version on every host. Only rank 0 writes checkpoints, but the rank that is rank 0 can
# change between runs, so the run directory must be shared.
#
# Network interfaces. Machines often have several (a management Ethernet, a fast Ethernet,
# InfiniBand); the wrong choice shows up as a hang at start-up or a slow all-reduce.
#   Open MPI, TCP between ranks:   --mca btl_tcp_if_include IF   (= OMPI_MCA_btl_tcp_if_include)
#     IF is a list of interface names or CIDR subnets, e.g. eth1 or 10.10.0.0/16.
#   Open MPI, its own daemons' wire-up: --mca oob_tcp_if_include IF (= OMPI_MCA_oob_tcp_if_include)
#     (normally the same interface; a firewalled or unroutable interface here hangs mpirun).
#   Open MPI over InfiniBand/RoCE goes through UCX (pml ucx) when Open MPI was built with it;
#     UCX_NET_DEVICES=mlx5_0:1 picks the HCA port. To force plain TCP instead add
#     PFGM_MPIRUN_ARGS="--mca pml ob1 --mca btl tcp,self,vader".
#   NCCL (the GPU all-reduce) bootstraps over sockets and then uses InfiniBand when present:
#     NCCL_SOCKET_IFNAME=IF   interface names or prefixes for its sockets (no CIDR: ib0, eth1, ^docker)
#     NCCL_IB_HCA=mlx5_0,mlx5_1   which InfiniBand adapters to use (NCCL_IB_DISABLE=1: none)
#     NCCL_DEBUG=INFO         prints the transports and interfaces NCCL chose (WARN: only problems)
# PFGM_NET_IF=IF sets the three interface choices above at once. The NCCL_* and UCX_*
# variables set in this shell are passed to every rank (mpirun -x); mpirun reads the
# OMPI_MCA_* ones itself and passes them on.
#
# Binding: `--map-by ppr:R:node:PE=T --bind-to core` places R ranks on each machine (ppr =
# processes per resource) with T cores each (PE), T = OMP_NUM_THREADS, by default this
# machine's physical cores / R (the machines are assumed alike). `--report-bindings` in
# PFGM_MPIRUN_ARGS shows the result.
#
# Signals: SIGUSR1, SIGTERM or Ctrl-C to this script become SIGUSR1 to mpirun, which
# forwards it to every rank: pfgm-train writes a checkpoint and exits 75.
#
# Environment:
#   PFGM_NET_IF         interface (or, for Open MPI only, a CIDR subnet) between the machines
#   OMP_NUM_THREADS     threads per rank
#   PFGM_BIND           core | none (default core)
#   PFGM_MPIRUN         the launcher (default mpirun)
#   PFGM_MPIRUN_ARGS    extra mpirun options, split on spaces
#   PFGM_LAUNCH_ECHO=1  print the command line instead of running it
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "$0")/common.sh"

if [ $# -lt 3 ] || ! [[ $2 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 HOSTFILE RANKS_PER_NODE PROGRAM [ARGS...]" >&2
  exit 2
fi
hostfile=$1
per_node=$2
shift 2
if [ ! -r "$hostfile" ]; then
  echo "$0: cannot read the hostfile '$hostfile'" >&2
  exit 2
fi
nodes=$(sed -e 's/#.*//' "$hostfile" | awk 'NF > 0' | wc -l)
if [ "$nodes" -lt 1 ]; then
  echo "$0: $hostfile lists no machine (one per line: 'node01 slots=$per_node')" >&2
  exit 2
fi
np=$((nodes * per_node))
cores=$(pfgm_physical_cores)
threads=${OMP_NUM_THREADS:-$(( cores / per_node > 0 ? cores / per_node : 1 ))}
export OMP_NUM_THREADS=$threads
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
read -r -a extra <<< "${PFGM_MPIRUN_ARGS:-}"
pfgm_mpi_root_env

cmd=("${PFGM_MPIRUN:-mpirun}" --hostfile "$hostfile" -np "$np")
if [ "${PFGM_BIND:-core}" = core ]; then
  cmd+=(--map-by "ppr:$per_node:node:PE=$threads" --bind-to core)
else
  cmd+=(--map-by "ppr:$per_node:node" --bind-to none)
fi
if [ -n "${PFGM_NET_IF:-}" ]; then
  cmd+=(--mca btl_tcp_if_include "$PFGM_NET_IF" --mca oob_tcp_if_include "$PFGM_NET_IF")
  case $PFGM_NET_IF in
    */*) echo "launch: PFGM_NET_IF=$PFGM_NET_IF is a subnet; NCCL needs an interface name (set NCCL_SOCKET_IFNAME)" >&2 ;;
    *) export NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME:-$PFGM_NET_IF} ;;
  esac
fi
# Variables every rank needs; mpirun starts remote ranks with the remote login environment.
for v in PATH LD_LIBRARY_PATH OMP_NUM_THREADS HDF5_USE_FILE_LOCKING CUDA_VISIBLE_DEVICES; do
  [ -n "${!v:-}" ] && cmd+=(-x "$v")
done
while IFS= read -r v; do
  cmd+=(-x "$v")
done < <(compgen -e | grep -E '^(NCCL_|UCX_)' || true)
cmd+=("${extra[@]}" "$@")

if [ "${PFGM_LAUNCH_ECHO:-0}" = 1 ]; then
  echo "${cmd[*]}"
  exit 0
fi
echo "launch: $nodes machine(s) x $per_node rank(s) x $OMP_NUM_THREADS thread(s): ${cmd[*]}" >&2
pfgm_run_forwarding "${cmd[@]}"
[ "$PFGM_CHILD_RC" -ne "$PFGM_EXIT_REQUEUE" ] || pfgm_note_mpirun_stop launch
exit "$PFGM_CHILD_RC"
