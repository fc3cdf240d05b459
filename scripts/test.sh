#!/usr/bin/env bash
# Runs the whole test suite. Tests labelled `gpu` skip (and pass) on a machine
# without a GPU driver; on a GPU machine they run for real.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
