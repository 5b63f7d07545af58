#!/usr/bin/env bash
# Load test of the query server on loopback (issues 7 and 12):
#   scripts/bench-server.sh [INDEX]        (default out/demo-index)
# Starts `scopedex serve INDEX --no-model` on 127.0.0.1:$PORT, then runs wrk at $CONNS
# connections for $DURATION against (1) the feature dashboard with uniformly random features of
# the first SAE, (2) search with random common words, (3) feature queries over random live
# features of the first SAE (`feat:S/F`, `feat:S/F>0.5`, `feat:S/F AND word`, `feat:S/F -word`)
# and (4) "more like this" for random contexts (`/api/contexts/{id}/similar`). $ONLY (e.g.
# "features similar") runs a subset. ONLY=overload runs the overload mix instead: $CONNS
# connections of distinct expensive searches (OR over 12 random words, never cached) while a
# second wrk at 4 connections measures the cheap requests beside them (health, cached
# dashboards): the cheap p99 is the figure that must stay low, and the expensive side's
# non-2xx are the 503s of admission control. Prints p50/p99 latency, requests/s and the server's RSS
# before and after each run. Everything is bounded in time and the server is
# stopped on exit.
# Environment: SCOPEDEX_BIN (default: the release binary if built, else the dev one), PORT
# (18080), CONNS (64), THREADS (2), DURATION (20s).
# Needs wrk (`bash scripts/install-system-deps.sh wrk`), curl and python3.
set -euo pipefail

INDEX=${1:-out/demo-index}
PORT=${PORT:-18080}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
DURATION=${DURATION:-20s}
ADDR=127.0.0.1:$PORT
TARGET=${CARGO_TARGET_DIR:-target}
if [ -z "${SCOPEDEX_BIN:-}" ]; then
  if [ -x "$TARGET/release/scopedex" ]; then SCOPEDEX_BIN=$TARGET/release/scopedex
  else SCOPEDEX_BIN=$TARGET/debug/scopedex; fi
fi
command -v wrk >/dev/null || { echo "bench-server: wrk is missing: bash scripts/install-system-deps.sh wrk" >&2; exit 1; }
[ -x "$SCOPEDEX_BIN" ] || { echo "bench-server: no binary at $SCOPEDEX_BIN (cargo build -p scopedex-cli)" >&2; exit 1; }
[ -f "$INDEX/manifest.json" ] || { echo "bench-server: no index at $INDEX" >&2; exit 1; }

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ -n "${KEEP_WRK:-}" ]; then cp "$work"/*.txt "$KEEP_WRK"/ 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$SCOPEDEX_BIN" serve "$INDEX" --addr "$ADDR" --no-model >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
  curl -sf "http://$ADDR/api/health" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
curl -sf "http://$ADDR/api/health" >/dev/null || { echo "bench-server: server did not start in 30 s" >&2; exit 1; }

read -r SAE D_SAE < <(curl -sf "http://$ADDR/api/saes" | python3 -c '
import json, sys
s = json.load(sys.stdin)["saes"][0]
print(s["sae_id"], s["d_sae"])')

N_CONTEXTS=$(curl -sf "http://$ADDR/api/index" | python3 -c 'import json, sys; print(json.load(sys.stdin)["n_contexts"])')
# Live features (densest first) of the first SAE, as a Lua table.
LIVE=$(curl -sf "http://$ADDR/api/saes/$SAE/features?live=true&sort=density&limit=1000" | python3 -c '
import json, sys
print(",".join(str(f["feature"]) for f in json.load(sys.stdin)["features"]) or "0")')

rss() { awk '/^VmRSS/ {print $2 " kB"}' "/proc/$server_pid/status"; }

cat >"$work/dashboard.lua" <<EOF
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/api/saes/$SAE/features/" .. math.random(0, $D_SAE - 1))
end
EOF
cat >"$work/search.lua" <<'EOF'
math.randomseed(os.time() + 1)
local words = {"the", "time", "people", "world", "water", "city", "year", "music", "war",
  "school", "game", "river", "family", "church", "film", "team", "island", "language"}
request = function()
  return wrk.format("GET", "/api/search?limit=20&q=" .. words[math.random(#words)])
end
EOF

cat >"$work/features.lua" <<EOF
math.randomseed(os.time() + 2)
local live = {$LIVE}
local words = {"the", "time", "people", "world", "water", "city", "year", "of", "and"}
request = function()
  local f = "feat:$SAE/" .. live[math.random(#live)]
  local k = math.random(4)
  local q
  if k == 1 then q = f
  elseif k == 2 then q = f .. ">0.5"
  elseif k == 3 then q = f .. " AND " .. words[math.random(#words)]
  else q = f .. " -" .. words[math.random(#words)] end
  q = q:gsub("([^%w%-%.%_])", function(c) return string.format("%%%02X", string.byte(c)) end)
  return wrk.format("GET", "/api/search?limit=20&q=" .. q)
end
EOF
cat >"$work/similar.lua" <<EOF
math.randomseed(os.time() + 3)
request = function()
  return wrk.format("GET", "/api/contexts/" .. math.random(0, $N_CONTEXTS - 1) .. "/similar?limit=20")
end
EOF

run() { # name script
  local name=$1 script=$2 secs=${DURATION%s}
  echo "== $name: wrk -t$THREADS -c$CONNS -d$DURATION (RSS before: $(rss))"
  timeout $((secs + 30)) wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency --timeout 10s \
    -s "$script" "http://$ADDR" >"$work/$name.txt"
  awk -v name="$name" '
    $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
    /^Requests\/sec/ { rps = $2 } /Non-2xx/ { non2xx = $NF } /Socket errors/ { errs = $0 }
    END { printf "%s: p50 %s  p99 %s  %s req/s  non-2xx %s %s\n", name, p50, p99, rps, (non2xx == "" ? 0 : non2xx), errs }
  ' "$work/$name.txt"
  echo "   RSS after: $(rss)"
}

echo "bench-server: $SCOPEDEX_BIN on $INDEX (SAE $SAE, d_sae $D_SAE, $N_CONTEXTS contexts), $(nproc) CPUs"
curl -sf "http://$ADDR/api/saes/$SAE/features/0" >/dev/null || true  # warm the tokenizer/caches
curl -sf "http://$ADDR/api/contexts/0/similar" >/dev/null || true   # load the feature maxes
cat >"$work/expensive.lua" <<'EOF'
math.randomseed(os.time() + 4)
local words = {"the", "time", "people", "world", "water", "city", "year", "music", "war",
  "school", "game", "river", "family", "church", "film", "team", "island", "language", "state",
  "house", "king", "army", "road", "north", "south", "light", "party", "ship", "art", "law"}
request = function()
  local q = {}
  for i = 1, 12 do q[i] = words[math.random(#words)] end
  return wrk.format("GET", "/api/search?limit=50&q=" .. table.concat(q, "%20OR%20"))
end
EOF
cat >"$work/cheap.lua" <<EOF
math.randomseed(os.time() + 5)
request = function()
  if math.random(2) == 1 then return wrk.format("GET", "/api/health") end
  return wrk.format("GET", "/api/saes/$SAE/features/" .. math.random(0, 31))
end
EOF

overload() {
  local secs=${DURATION%s}
  for f in $(seq 0 31); do curl -sf "http://$ADDR/api/saes/$SAE/features/$f" >/dev/null || true; done
  echo "== overload: wrk -c$CONNS expensive searches + wrk -c4 health/cached dashboards, $DURATION (RSS before: $(rss))"
  timeout $((secs + 30)) wrk -t1 -c"$CONNS" -d"$DURATION" --latency --timeout 10s \
    -s "$work/expensive.lua" "http://$ADDR" >"$work/expensive.txt" &
  local exp_pid=$!
  timeout $((secs + 30)) wrk -t1 -c4 -d"$DURATION" --latency --timeout 10s \
    -s "$work/cheap.lua" "http://$ADDR" >"$work/cheap.txt"
  wait "$exp_pid"
  for name in expensive cheap; do
    awk -v name="$name" '
      $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
      /^Requests\/sec/ { rps = $2 } /Non-2xx/ { non2xx = $NF } /Socket errors/ { errs = $0 }
      END { printf "%s: p50 %s  p99 %s  %s req/s  non-2xx %s %s\n", name, p50, p99, rps, (non2xx == "" ? 0 : non2xx), errs }
    ' "$work/$name.txt"
  done
  echo "   RSS after: $(rss)"
}

ONLY=${ONLY:-dashboard search features similar}
for name in $ONLY; do
  if [ "$name" = overload ]; then overload; else run "$name" "$work/$name.lua"; fi
done
