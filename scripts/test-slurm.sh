#!/usr/bin/env bash
# scripts/slurm-index.sh on a real (one-node) Slurm cluster: a 3-task job array indexes a small
# corpus with --shard, a dependent job merges, and the merged index must equal a single pass in
# every row of every table. Then the same with one task requeued mid-run (`scontrol requeue`):
# it resumes from its checkpoint and the result is still identical. Also the script's refusals.
# Called by scripts/test.sh; needs root (scripts/slurm-local.sh starts the daemons).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
bash scripts/slurm-local.sh start
python3 -m pip install --quiet --disable-pip-version-check "pyarrow>=14"
cargo build -p scopedex-cli --locked
bin="$CARGO_TARGET_DIR/debug/scopedex"
work=$(mktemp -d /tmp/scopedex-slurm.XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT

model="$root/assets/models/SmolLM2-135M-Instruct.Q4_1.gguf"
"$bin" fabricate-sae --out "$work/L2R" --hook-in blocks.2.hook_resid_post --d-sae 96 --d-model 576 --k 8 >/dev/null
"$bin" fabricate-sae --out "$work/L3M" --hook-in blocks.3.hook_mlp_out --d-sae 64 --d-model 576 --k 6 --seed 11 >/dev/null
python3 - "$root/assets/corpora/nlp-corpus/doc-0.json" "$work/corpus.json" <<'PY'
import json, sys
json.dump(json.load(open(sys.argv[1]))[:400], open(sys.argv[2], "w"))
PY
# Exact top-token counters at this size, so shards merge bit-identically (see scopedex index --help).
extra="--batch-size 4 --top-k 5 --intervals 4 --samples-per-interval 3 --token-counters 4096 --checkpoint-every 1"
export SCOPEDEX="$bin" MODEL="$model" SAES="$work/L2R $work/L3M" CORPUS="$work/corpus.json" N=3 CTX_LEN=24 EXTRA_ARGS="$extra"

# shellcheck disable=SC2086
"$bin" index --model "$MODEL" --sae "$work/L2R" --sae "$work/L3M" --corpus "$CORPUS" \
  --ctx-len "$CTX_LEN" $extra --out "$work/single" 2>/dev/null

same_tables() { # index_a index_b: every row of every Parquet table equal
  python3 - "$1" "$2" <<'PY'
import glob, os, sys
import pyarrow.parquet as pq
a, b = sys.argv[1:]
files = sorted(os.path.relpath(p, a) for p in glob.glob(f"{a}/**/*.parquet", recursive=True)
               if "/state/" not in p and "/activations/" not in p)
other = sorted(os.path.relpath(p, b) for p in glob.glob(f"{b}/**/*.parquet", recursive=True)
               if "/state/" not in p and "/activations/" not in p)
assert files == other, f"tables differ: {files} vs {other}"
rows = 0
for f in files:
    ta, tb = pq.read_table(f"{a}/{f}"), pq.read_table(f"{b}/{f}")
    assert ta.schema == tb.schema, f"{f}: schemas differ"
    la, lb = ta.to_pylist(), tb.to_pylist()
    if la != lb:
        bad = next(i for i, (x, y) in enumerate(zip(la + [None], lb + [None])) if x != y)
        sys.exit(f"{f}: row {bad} differs ({len(la)} vs {len(lb)} rows):\n  {la[bad] if bad < len(la) else None}\n  {lb[bad] if bad < len(lb) else None}")
    rows += len(la)
print(f"test-slurm: {len(files)} tables, {rows} rows identical")
PY
}

run_array() { # out [requeue]: submit the array and the dependent merge, wait for both
  export OUT="$1"
  local array merge
  array=$(sbatch --parsable --array=0-$((N - 1)) --cpus-per-task=1 --mem=2G \
    -o "$work/%x-%A_%a.log" scripts/slurm-index.sh)
  if [ "${2:-}" = requeue ]; then
    # Once task 1 has written a checkpoint, kill it and put it back in the queue.
    for _ in $(seq 1 600); do
      [ -d "$OUT.shards/shard-1.checkpoint" ] && break
      sleep 0.1
    done
    [ -d "$OUT.shards/shard-1.checkpoint" ] || { echo "test-slurm: task 1 wrote no checkpoint" >&2; exit 1; }
    scontrol requeue "${array}_1"
    # Slurm holds a requeued job for about 2 minutes (reason BeginTime) before it runs again.
    echo "test-slurm: requeued task ${array}_1 mid-run"
  fi
  merge=$(sbatch --parsable --dependency=afterok:"$array" --export=ALL,MERGE=1 --cpus-per-task=1 \
    --mem=2G -o "$work/%x-merge-%j.log" scripts/slurm-index.sh)
  for _ in $(seq 1 1200); do
    state=$(sacct -n -X -j "$merge" -o State 2>/dev/null | head -1 | tr -d ' ' || true)
    [ -z "$state" ] && state=$(scontrol show job "$merge" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2 || true)
    case "$state" in COMPLETED) return 0;; FAILED|CANCELLED*|TIMEOUT|OUT_OF_ME*|NODE_FAIL|DEPENDENCY_NEVER_SATISFIED)
      echo "test-slurm: merge job $merge $state" >&2; tail -n 20 "$work"/*.log >&2; exit 1;; esac
    sleep 0.5
  done
  echo "test-slurm: merge job did not finish" >&2; exit 1
}

run_array "$work/merged"
same_tables "$work/single" "$work/merged"
if [ "$(grep -c . <(grep -l "resuming" "$work"/*.log 2>/dev/null))" -ne 0 ]; then :; fi

run_array "$work/requeued" requeue
grep -q "resuming from checkpoint" "$work"/scopedex-index-*_1.log || {
  echo "test-slurm: the requeued task did not resume from its checkpoint" >&2; tail -n 30 "$work"/scopedex-index-*_1.log >&2; exit 1; }
same_tables "$work/single" "$work/requeued"

# Refusals, before any work.
out=$(env -u SLURM_ARRAY_TASK_ID OUT="$work/x" bash scripts/slurm-index.sh 2>&1 || true)
grep -q "not a job array task" <<<"$out" || { echo "test-slurm: outside an array: $out" >&2; exit 1; }
out=$(env -u MODEL OUT="$work/x" bash scripts/slurm-index.sh 2>&1 || true)
grep -q "set MODEL" <<<"$out" || { echo "test-slurm: missing variable: $out" >&2; exit 1; }
mkdir -p "$work/mixed.shards"
cp -r "$work/merged.shards/shard-0" "$work/mixed.shards/shard-0"
cp -r "$work/merged.shards/shard-1" "$work/mixed.shards/shard-1"
# shellcheck disable=SC2086
"$bin" index --model "$MODEL" --sae "$work/L2R" --sae "$work/L3M" --corpus "$CORPUS" --ctx-len 16 \
  $extra --shard 2/3 --out "$work/mixed.shards/shard-2" 2>/dev/null
out=$(OUT="$work/mixed" MERGE=1 bash scripts/slurm-index.sh 2>&1 || true)
grep -q "another model, SAEs, corpus or settings" <<<"$out" || { echo "test-slurm: mixed shards: $out" >&2; exit 1; }
[ ! -e "$work/mixed" ] || { echo "test-slurm: a refused merge published $work/mixed" >&2; exit 1; }
echo "test-slurm: ok (array + merge, requeue + resume, refusals)"
