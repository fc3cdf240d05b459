#!/usr/bin/env bash
# The tensor-core warp-decode run replayed from its H100 recording with no GPU:
# all 451 search experiments served (none failed, none not measured), and the
# fastest int4_g128 kernel at B=1 is warp_decode_tc_v1 at 18.77 us.
#   scripts/test_replay_quantized_tc.sh BIN_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
NS_BIN=$1 scripts/replay_quantized_tc.sh "$work/run.db" "$work/run.html" | tee "$work/log"
grep -q "451 experiments, 0 failed" "$work/log" || { echo "missing: 451 experiments, 0 failed"; exit 1; }
best=$("$1"/nightshift query sql "SELECT k.path || ' ' || printf('%.2f', min(e.median_us)) FROM experiments e
    JOIN problems p ON p.id = e.problem_id JOIN kernels k ON k.id = e.kernel_id
    WHERE e.status = 0 AND p.format = 'int4_g128' AND p.batch = 1" --db "$work/run.db" --format csv | tail -n 1 | tr -d "\r")
[ "$best" = "moe_decode/warp_decode_tc_v1.cu 18.77" ] || { echo "fastest int4 at B=1: '$best'"; exit 1; }
echo "quantized-tc replayed: 451 experiments, 0 failed; int4 B=1 best $best"
