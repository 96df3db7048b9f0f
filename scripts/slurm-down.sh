#!/usr/bin/env bash
# Stop the daemons started by scripts/slurm-up.sh, by the process ids it recorded (newest first).
set -uo pipefail

STATE=${RPLIB_SLURM_STATE:-/tmp/rplib-slurm}
[[ -f $STATE/pids ]] || { echo "slurm-down: no $STATE/pids, nothing to stop" >&2; exit 0; }

mapfile -t PIDS < <(tac "$STATE/pids")
for pid in "${PIDS[@]}"; do
  kill "$pid" 2>/dev/null || continue
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null
  fi
done
rm -f "$STATE/pids"
echo "slurm-down: stopped ${#PIDS[@]} daemons" >&2
