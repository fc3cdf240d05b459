#!/usr/bin/env bash
# Re-drives the four claims runs (plans/claims-crossover.md,
# quantized-weights.md, claims-fusion.md, claims-accuracy.md) from their H100
# measurements with no GPU, in the order and with the input seeds they ran
# with, into one results.db (the tuner's history carries from run to run, as
# it did on the GPU), then writes the report. Every experiment is served from
# the recording: a proposal that was never measured would be `not_measured`.
#   NS_BIN=build scripts/replay_claims.sh [DB] [REPORT.html]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${NS_BIN:-build}
db=${1:-/tmp/claims-replay.db}
report=${2:-${db%.db}.html}
recording=experiments/2026-11-26_h100_claims-measurements.jsonl
rm -f "$db" "$db-wal" "$db-shm"
while read -r plan seed; do
    "$bin"/nightshift run "plans/$plan.md" --db "$db" --evaluator "replay:$recording" --seed "$seed" --no-progress \
        2>&1 | tail -n 1
done <<'RUNS'
claims-crossover 728716949346193662
quantized-weights 8570233533456970469
claims-fusion 571187519034449809
claims-accuracy 13384284967571932926
RUNS
"$bin"/nightshift report --db "$db" --peers experiments/2026-11-26_h100_peers.json --out "$report"
