#!/usr/bin/env bash
# The claims runs replayed from their H100 recording with no GPU: every one of
# the 270 experiments must be served (none failed, none not measured), and the
# report must draw the crossover the runs found on Gemma 4.
#   scripts/test_replay_claims.sh BIN_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
NS_BIN=$1 scripts/replay_claims.sh "$work/claims.db" "$work/claims.html" | tee "$work/log"
for expected in "140 experiments, 0 failed" "48 experiments, 0 failed" "64 experiments, 0 failed" \
                "18 experiments, 0 failed"; do
    grep -q "$expected" "$work/log" || { echo "missing: $expected"; exit 1; }
done
grep -q "gemma4-26b-a4b: fastest bf16 family per batch: B=1 warp_decode" "$work/claims.html" ||
    { echo "the report lacks Gemma 4's crossover summary"; exit 1; }
grep -q "Crossover: expert_centric_tc takes over from warp_decode at B=16" "$work/claims.html" ||
    { echo "the report does not show the crossover at B=16"; exit 1; }
echo "claims replayed: 270 experiments, 0 failed; crossover at B=16 on Gemma 4"
