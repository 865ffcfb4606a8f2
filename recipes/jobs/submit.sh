#!/usr/bin/env bash
# Submit the generate array, then the filter job that waits for all of it (afterok on the array's
# job id = every task succeeded; if one fails, the filter job is cancelled, not left pending).
# Run from the folder that relative paths and logs/ are resolved against, passing settings in the
# environment (sbatch exports it to the jobs), e.g.:
#   DISTILL_SIF=$PWD/distill-gpu.sif INPUT=$PWD/problems.jsonl OUT=$PWD/runs/r1/traces \
#     bash recipes/jobs/submit.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p logs # Slurm does not create the folder of --output

# --parsable prints "jobid" or "jobid;cluster".
gen=$(sbatch --parsable "$here/generate_array.sbatch")
gen=${gen%%;*}
filt=$(sbatch --parsable --dependency="afterok:${gen}" --kill-on-invalid-dep=yes "$here/filter.sbatch")
filt=${filt%%;*}

echo "generate: job array $gen (squeue -j $gen)"
echo "filter:   job $filt, starts after all of $gen succeed"
