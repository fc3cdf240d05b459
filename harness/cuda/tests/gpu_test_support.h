// Shared by the GPU tests: one device for the whole test binary, and a skip
// (not a failure) where this machine has no GPU driver.
#pragma once

#include "harness/core/paths.h"
#include "harness/cuda/compiler.h"
#include "harness/cuda/device.h"
#include "harness/cuda/driver_api.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <unistd.h>

namespace nightshift::testing {

// Null when no driver or GPU is usable; `why` says what is missing.
inline cuda::Device* gpu_device(std::string* why = nullptr) {
    static std::string reason;
    static cuda::Device* device = []() -> cuda::Device* {
        if (!cuda::driver_available(&reason)) return nullptr;
        if (cuda::device_count() == 0) {
            reason = "the driver sees no GPU";
            return nullptr;
        }
        return new cuda::Device(0); // lives for the process, like the context
    }();
    if (why) *why = reason;
    if (device) device->make_current();
    return device;
}

inline const cuda::Compiler& test_compiler() {
    // A cache private to this process: each test binary compiles for real
    // once, and verification rounds reuse what it compiled.
    static const cuda::Compiler compiler(std::filesystem::temp_directory_path() /
                                         ("nightshift-test-cache-" + std::to_string(::getpid())));
    return compiler;
}

// A seed no earlier run used: every check draws fresh inputs.
inline unsigned long long fresh_seed() {
    std::random_device entropy;
    return (static_cast<unsigned long long>(entropy()) << 32) | entropy();
}

} // namespace nightshift::testing

#define NS_REQUIRE_GPU()                                                  \
    do {                                                                  \
        std::string ns_why_;                                              \
        if (!::nightshift::testing::gpu_device(&ns_why_)) GTEST_SKIP() << "no GPU: " << ns_why_; \
    } while (0)
