#!/usr/bin/env bash
# On a GPU machine: the verifier and timing checks.
#  1. The GPU test suite: planted corpus (each rejected for its reason), the
#     honest seeds over 1,000 verification rounds, CUPTI timing tests.
#  2. bench of both seeds at Gemma 4, B = 1 and 64, printing CUPTI and event medians.
#  3. plans/survive-faults.md through the loop with the hardened verifier (experiments per hour).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-device-out}
bin=${NS_BIN:-build}
mkdir -p "$out"
export NIGHTSHIFT_CACHE=${NIGHTSHIFT_CACHE:-/tmp/nightshift-cache}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/extras/CUPTI/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

"$bin"/nightshift_gpu_tests 2>&1 >"$out/gpu_tests.log"
grep -E "^\[  (PASSED|FAILED) |^\[==========\]|FAILED|rounds in|planted|^\|" "$out/gpu_tests.log" | grep -v "^\[       OK" | tail -n 45

for seed in warp_decode_v1 expert_centric_v1; do
    "$bin"/nightshift bench "kernels_seed/moe_decode/$seed.cu" --model gemma4-26b-a4b --batch 1,64 --json \
        >"$out/bench_$seed.json" 2>"$out/bench_$seed.err"
    python3 - "$out/bench_$seed.json" <<'PY'
import json, statistics, sys
run = json.load(open(sys.argv[1]))
for r in run["results"]:
    t = r.get("timing", {})
    ev = t.get("event_samples_us") or []
    print(f"{r['kernel']} B={r['batch']} {r['status']} method={t.get('method','?')} median={t.get('median_us',0):.1f} us "
          f"events median={statistics.median(ev) if ev else float('nan'):.1f} us floor={r.get('fraction_of_copy_floor',0):.3f} "
          f"rounds={r.get('rounds_passed')} worst_rel_l2={r.get('worst_rel_l2',0):.2e} seed_rel_l2={r.get('seed_rel_l2',0):.2e} {r['message'][:100]}")
PY
done

db="$out/results.db"; rm -f "$db"*
"$bin"/nightshift run plans/survive-faults.md --db "$db" --candidate-timeout 20 --no-progress 2>&1 | tail -n 2
python3 scripts/run_summary.py "$db" | head -n 16
