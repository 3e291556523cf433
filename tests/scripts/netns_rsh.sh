#!/usr/bin/env bash
# Open MPI rsh agent for simulated nodes (tests/scripts/two_nodes.sh): runs the command in the
# network namespace mapped to the host name, as ssh would run it on that host.
#   mpirun --mca plm_rsh_agent tests/scripts/netns_rsh.sh --host nodeA:2,nodeB:2 ...
# Open MPI calls it as `AGENT [ssh-style options] HOST COMMAND...`. The map comes from the
# environment (mpirun passes its own to the agent): PFGM_NETNS_MAP="nodeA=ns-a,nodeB=ns-b".
# Each command also gets its own UTS namespace with the host name set, so the daemons and
# ranks of a "node" report that name (pfgm's logs, MPI_Get_processor_name).
set -u
# ssh-style options: flags, and the ones that take a value (skipped, none applies here)
while [ $# -gt 0 ]; do
  case "$1" in
    -[bcDEeFIiJLlmOoPpQRSWw]) shift 2 ;;
    -[bcDEeFIiJLlmOoPpQRSWw]*|-[46AaCfGgKkMNnqsTtVvXxYy]*) shift ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "netns_rsh.sh: usage: netns_rsh.sh [options] HOST COMMAND..." >&2; exit 255; }
host=${1#*@}  # user@host as ssh accepts it
shift
ns=""
IFS=, read -r -a pairs <<< "${PFGM_NETNS_MAP:-}"
for p in "${pairs[@]}"; do
  [ "${p%%=*}" = "$host" ] && ns=${p#*=}
done
[ -n "$ns" ] || { echo "netns_rsh.sh: host '$host' not in PFGM_NETNS_MAP='${PFGM_NETNS_MAP:-}'" >&2; exit 255; }
# ssh joins the words with spaces and hands them to the remote shell: the same here.
if command -v unshare >/dev/null 2>&1; then
  exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$1" && exec sh -c "$2"' sh "$host" "$*"
fi
exec ip netns exec "$ns" sh -c "$*"
