#!/usr/bin/env bash
# A stand-in for `sbatch`/`qsub` on one machine, for the cluster-generic executor: start the
# job script Snakemake hands over (the last argument) as a detached process of its own and
# print a job id. Every job is then a separate `snakemake` process that shares nothing in
# memory with the scheduler or the other jobs, exactly as on a cluster node.
set -euo pipefail
jobscript="${!#}"
logdir=".snakemake/cluster-logs"
mkdir -p "$logdir"
setsid bash "$jobscript" >"$logdir/$(basename "$jobscript").log" 2>&1 </dev/null &
echo "$!"
