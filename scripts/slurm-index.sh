#!/usr/bin/env bash
# Index a corpus as a Slurm job array of N independent shards, then merge them.
#
#   sbatch --array=0-$((N-1)) scripts/slurm-index.sh            # one task per shard
#   sbatch --dependency=afterok:<array job id> --export=ALL,MERGE=1 scripts/slurm-index.sh
#
# Every shard runs the same command with --shard I/N and writes its own directory; shards never
# talk to each other. `scopedex merge` combines them (associative, any order) into one index
# identical to a single-pass run. Configure with environment variables:
#   SCOPEDEX (binary), MODEL, SAES (space-separated --sae specs), CORPUS, OUT, N (shard count),
#   CTX_LEN (default 128), GPU=1 to pass --device cuda (a build with the `cuda` feature).
#SBATCH --job-name=scopedex-index
#SBATCH --cpus-per-task=16
#SBATCH --mem=64G
#SBATCH --time=24:00:00
set -euo pipefail
: "${SCOPEDEX:=scopedex}" "${MODEL:?}" "${SAES:?}" "${CORPUS:?}" "${OUT:?}" "${N:?}"
CTX_LEN="${CTX_LEN:-128}"
shards="$OUT.shards"
if [ "${MERGE:-0}" = 1 ]; then
  exec "$SCOPEDEX" merge "$OUT" "$shards"/shard-*
fi
i="${SLURM_ARRAY_TASK_ID:?run as a job array (sbatch --array=0-$((N-1)))}"
sae_args=()
for s in $SAES; do sae_args+=(--sae "$s"); done
mkdir -p "$shards"
# --resume continues from the shard's last checkpoint when Slurm requeues a preempted task.
exec "$SCOPEDEX" index --model "$MODEL" "${sae_args[@]}" --corpus "$CORPUS" \
  --ctx-len "$CTX_LEN" --shard "$i/$N" --resume --out "$shards/shard-$i" \
  --threads "${SLURM_CPUS_PER_TASK:-0}"
