#!/usr/bin/env bash
# Installs the Debian packages nightshift builds with, then configures and
# builds it in build/. The CUDA toolkit (NVRTC, headers) must already be
# installed, by default under /usr/local/cuda.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake g++ make libsqlite3-dev nlohmann-json3-dev libcurl4-openssl-dev libfmt-dev libcli11-dev
          libtomlplusplus-dev libgtest-dev)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# Optional: Chromium renders the HTML report headless in the report check
# (about 20 s to install on Debian 12). Never fatal: without it that check skips.
if ! command -v chromium >/dev/null 2>&1 && [ "${NS_NO_CHROMIUM:-0}" != 1 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive timeout 600 $SUDO apt-get install -y -qq --no-install-recommends chromium ||
        echo "setup: chromium did not install; the report check (report.chromium_render) will skip"
fi

if [ -z "${CUDAToolkit_ROOT:-}" ] && ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH=/usr/local/cuda/bin:$PATH
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
