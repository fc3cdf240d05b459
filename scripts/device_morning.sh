#!/usr/bin/env bash
# On a GPU machine: the morning after a real run.
#  1. plans/warp-decode-gemma4.md with 2 loops for MINUTES on the GPU.
#  2. query (runs, best, leaderboard, failures), report.html (with PEERS.json if given).
#  3. export the best B=1 experiment, then replay it from the file and from the store.
#  4. export --best for Gemma 4 (the standalone .cu, header, PyTorch example).
#  5. the replay GPU tests.
# Everything lands in $OUT (default device-out/morning).
#   NS_BIN=.device/bin scripts/device_morning.sh [MINUTES] [PEERS.json]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-device-out/morning}
bin=${NS_BIN:-build}
minutes=${1:-8}
peers=${2:-}
mkdir -p "$out"
export NIGHTSHIFT_CACHE=${NIGHTSHIFT_CACHE:-/tmp/nightshift-cache}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/extras/CUPTI/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
db="$out/results.db"
rm -f "$db" "$db-wal" "$db-shm"

echo "== run ($minutes min, 2 loops)"
"$bin"/nightshift run plans/warp-decode-gemma4.md --db "$db" --loops 2 --minutes "$minutes" --no-progress \
    > "$out/run.log" 2>&1
tail -n 3 "$out/run.log"

for q in runs best leaderboard failures; do
    echo "== query $q"
    "$bin"/nightshift query "$q" --db "$db" | tee "$out/query_$q.txt"
done
"$bin"/nightshift query best --db "$db" --format json > "$out/best.json"

echo "== report"
"$bin"/nightshift report --db "$db" --out "$out/report.html" ${peers:+--peers "$peers"}

echo "== export and replay the fastest B=1 bf16 experiment"
id=$(python3 -c 'import json,sys; rows=json.load(open(sys.argv[1])); print(next(r["experiment"] for r in rows if r["batch"]==1 and r["format"]=="bf16"))' "$out/best.json")
"$bin"/nightshift query experiment "$id" --db "$db" > "$out/experiment_$id.txt"
file=$("$bin"/nightshift export "$id" --db "$db" --out "$out/experiments" | sed -n 's/^wrote //p')
echo "exported $file"
"$bin"/nightshift replay "$file" 2>&1 | tee "$out/replay_file.txt"
"$bin"/nightshift replay "$id" --db "$db" 2>&1 | tee "$out/replay_db.txt"

echo "== export --best"
"$bin"/nightshift export --best --model gemma4-26b-a4b --db "$db" --out "$out/serve" | tee "$out/export_best.txt"

echo "== replay GPU tests"
"$bin"/nightshift_gpu_tests --gtest_filter='ReplayGpu*' 2>&1 | tail -n 5 | tee "$out/replay_gpu_tests.txt"
echo "done: $out (report.html, replay_*.txt, serve/)"
