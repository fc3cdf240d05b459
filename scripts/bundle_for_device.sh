#!/usr/bin/env bash
# Bundles what a GPU machine without the development packages (no sqlite3.h,
# no curl headers, no network) needs to run nightshift and its tests: the
# stripped binaries, in .device/bin (git-ignored). The source tree travels
# beside it; the binaries find it from their own location.
#   scripts/bundle_for_device.sh && (on the GPU machine) NS_BIN=.device/bin scripts/device_run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build -j"$(nproc)"
rm -rf .device/bin
mkdir -p .device/bin
for binary in nightshift nightshift_tests nightshift_gpu_tests nightshift_test_llm_server; do
    strip -o ".device/bin/$binary" "build/$binary"
done
du -sh .device/bin
