#!/usr/bin/env bash
# Stop the test SLURM started by scripts/slurm/start.sh, by the PIDs in its daemons' pid files (newest first).
# Safe to run when nothing runs. Jobs still in the queue are kept in slurmctld's state and resume on the next start.
set -euo pipefail
stopped=()
for entry in slurmd:/run/slurm/slurmd.pid slurmctld:/run/slurm/slurmctld.pid slurmdbd:/run/slurm/slurmdbd.pid \
             mariadbd:/run/mysqld/mysqld.pid munged:/run/munge/munged.pid; do
    name=${entry%%:*} file=${entry#*:}
    [ -s "$file" ] || continue
    pid=$(cat "$file")
    kill -0 "$pid" 2>/dev/null || continue
    kill "$pid"
    for ((i = 0; i < 300 && $(kill -0 "$pid" 2>/dev/null && echo 1 || echo 0); i++)); do sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { echo "slurm: $name (pid $pid) did not stop within 30 s" >&2; exit 1; }
    stopped+=("$name")
done
echo "slurm: stopped ${stopped[*]:-nothing (no daemon was running)}"
