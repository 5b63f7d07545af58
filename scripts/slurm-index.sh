#!/usr/bin/env bash
# Index a corpus as a Slurm job array of N independent shards, then merge them.
#
#   sbatch --array=0-$((N-1)) scripts/slurm-index.sh            # one task per shard
#   sbatch --dependency=afterok:<array job id> --export=ALL,MERGE=1 scripts/slurm-index.sh
#
# Every shard runs the same command with --shard I/N and writes its own directory
# ($OUT.shards/shard-I); shards never talk to each other. A requeued task (preemption,
# `scontrol requeue`) continues from its last checkpoint (--resume, --checkpoint-every). The merge
# job combines the shards (associative, any order) into $OUT, equal to a single-pass run; it
# refuses shards indexed with different arguments before publishing anything. Configure with
# environment variables (checked before any work):
#   SCOPEDEX (binary, default `scopedex`), MODEL, SAES (space-separated --sae specs), CORPUS, OUT,
#   N (shard count), CTX_LEN (default 128), EXTRA_ARGS (more `scopedex index` arguments, the same
#   for every task, e.g. "--batch-size 8 --token-counters 4096").
# The #SBATCH lines below are defaults for a real node; override them on the sbatch command line.
#SBATCH --job-name=scopedex-index
#SBATCH --cpus-per-task=16
#SBATCH --mem=64G
#SBATCH --time=24:00:00
#SBATCH --requeue
set -euo pipefail
missing=()
for v in MODEL SAES CORPUS OUT N; do
  [ -n "${!v:-}" ] || missing+=("$v")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "slurm-index: set ${missing[*]} (see the header of this script); nothing was run" >&2
  exit 2
fi
case "$N" in ''|*[!0-9]*|0) echo "slurm-index: N=$N is not a positive shard count" >&2; exit 2;; esac
SCOPEDEX="${SCOPEDEX:-scopedex}"
CTX_LEN="${CTX_LEN:-128}"
shards="$OUT.shards"
if [ "${MERGE:-0}" = 1 ]; then
  parts=()
  for i in $(seq 0 $((N - 1))); do
    [ -f "$shards/shard-$i/manifest.json" ] || { echo "slurm-index: shard $i of $N is missing ($shards/shard-$i); nothing was merged" >&2; exit 2; }
    parts+=("$shards/shard-$i")
  done
  exec "$SCOPEDEX" merge "$OUT" "${parts[@]}"
fi
if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then
  echo "slurm-index: not a job array task: submit with sbatch --array=0-$((N - 1)) (or MERGE=1 for the merge)" >&2
  exit 2
fi
i="$SLURM_ARRAY_TASK_ID"
[ "$i" -lt "$N" ] || { echo "slurm-index: task $i is outside 0..$((N - 1)) (N=$N)" >&2; exit 2; }
sae_args=()
for s in $SAES; do sae_args+=(--sae "$s"); done
mkdir -p "$shards"
# shellcheck disable=SC2086 # EXTRA_ARGS is a list of arguments
exec "$SCOPEDEX" index --model "$MODEL" "${sae_args[@]}" --corpus "$CORPUS" \
  --ctx-len "$CTX_LEN" --shard "$i/$N" --resume --out "$shards/shard-$i" \
  --threads "${SLURM_CPUS_PER_TASK:-0}" ${EXTRA_ARGS:-}
