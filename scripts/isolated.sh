#!/usr/bin/env bash
# Run a command in a network namespace of its own whose only interface is loopback.
#
#   scripts/isolated.sh bash -c 'scripts/slurm-up.sh && make test'
#
# Servers started inside can be reached from inside only. This matters for Slurm 22.05: slurmctld,
# slurmd and slurmdbd listen on every interface and have no setting to listen on 127.0.0.1 alone.
# Inside, there is no network at all, so install what the command needs first. Slurm also
# needs an address outside 127.0.0.0/8 to open its listening sockets; one is added to loopback,
# where, like everything in the namespace, it is reachable from inside only. The Slurm daemons
# outlive the command: scripts/slurm-down.sh stops them by process id from anywhere. Needs root.
set -euo pipefail
[[ $# -gt 0 ]] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
exec unshare --net -- bash -c '
  set -e
  ip link set lo up
  ip addr add 10.254.0.1/32 dev lo
  exec "$@"' isolated "$@"
