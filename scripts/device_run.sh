#!/usr/bin/env bash
# Runs on a GPU machine over a build made elsewhere (that machine lacks the
# sqlite3 and curl headers, so the build travels with the tree). Runs the GPU
# test suite, then benchmarks both seeds at the Gemma 4 preset, and writes
# logs and JSON to $OUT (default: ./device-out).
#   scripts/device_run.sh [suite|bench|all]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-device-out}
mkdir -p "$out"
what=${1:-all}
export NIGHTSHIFT_CACHE=${NIGHTSHIFT_CACHE:-/tmp/nightshift-cache}
status=0
bin=${NS_BIN:-build}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/extras/CUPTI/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv \
    >"$out/gpu.txt" 2>&1 || true
"$bin"/nightshift doctor 2>&1 | tee "$out/doctor.log" || status=1

if [ "$what" = suite ] || [ "$what" = all ]; then
    # The test binaries directly: ctest's files name the build machine's paths.
    "$bin"/nightshift_tests --gtest_brief=1 2>&1 | tail -n 5 | tee "$out/cpu_tests.log" || status=1
    "$bin"/nightshift_gpu_tests --gtest_output=json:"$out/gpu_tests.json" 2>&1 | tee "$out/gpu_tests.log" \
        | grep -E "^\[  (PASSED|FAILED|SKIPPED)|^\[==========\]|FAILED|rel_l2" | tail -n 60 || true
    grep -q "^\[  PASSED  \]" "$out/gpu_tests.log" && ! grep -q "^\[  FAILED  \]" "$out/gpu_tests.log" || status=1
fi

if [ "$what" = bench ] || [ "$what" = all ]; then
    for seed in warp_decode_v1 expert_centric_v1; do
        "$bin"/nightshift bench "kernels_seed/moe_decode/$seed.cu" --model gemma4-26b-a4b \
            --batch 1,2,4,8,16,32,64,128 --json >"$out/bench_$seed.json" 2>"$out/bench_$seed.err" || status=1
        python3 scripts/bench_table.py "$out/bench_$seed.json" | tee -a "$out/bench.md"
    done
fi
exit $status
