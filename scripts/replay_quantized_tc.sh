#!/usr/bin/env bash
# Re-drives the H100 run of plans/quantized-tensor-cores.md from its recording
# with no GPU: the same input seed and the run's 451 search experiments (the
# GPU run ended on its time budget; its 15 fresh-worker re-times are not
# recorded for replay), into one results.db, then the report.
#   NS_BIN=build scripts/replay_quantized_tc.sh [DB] [REPORT.html]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${NS_BIN:-build}
db=${1:-/tmp/quantized-tc-replay.db}
report=${2:-${db%.db}.html}
rm -f "$db" "$db-wal" "$db-shm"
# A recording replays only against the kernel files it measured (its keys hold
# their sha256). warp_decode_tc_v1.cu has changed since (the INTERLEAVE knob),
# so the run reads a tree whose kernels_seed/ holds the recorded version, kept
# in experiments/; everything else is this tree's.
recorded=experiments/2026-11-26_h100_quantized-tc-kernels
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/kernels_seed"
cp -r kernels_seed/moe_decode "$root/kernels_seed/"
cp "$recorded"/*.cu "$root/kernels_seed/moe_decode/"
ln -s "$PWD/verifier" "$root/verifier"
ln -s "$PWD/harness" "$root/harness"
NIGHTSHIFT_ROOT="$root" "$bin"/nightshift run plans/quantized-tensor-cores.md --db "$db" \
    --evaluator replay:experiments/2026-11-26_h100_quantized-tc-measurements.jsonl \
    --seed 5671410558110826545 --experiments 451 --no-progress 2>&1 | tail -n 1
"$bin"/nightshift report --db "$db" --out "$report"
