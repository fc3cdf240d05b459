// One timer, moe_decode spec and evaluator for the whole GPU test binary,
// with the floor from the measured copy bandwidth, as `bench` and `run` use.
#pragma once

#include "harness/cuda/tests/gpu_test_support.h"
#include "harness/evaluate/evaluate.h"
#include "verifier/moe_decode/spec.h"

namespace nightshift::testing {

struct GpuHarness {
    timing::Timer timer{*gpu_device(), test_compiler()};
    verifier::moe_decode::Spec spec{*gpu_device(), test_compiler()};
    evaluate::Evaluator evaluator{*gpu_device(), test_compiler(), timer, timer.copy_bandwidth().gb_per_s};
    evaluate::EvaluateOptions quick{.timing = {.warmup = 1, .repetitions = 5}, .time_speed_of_light = false};
};

inline GpuHarness& gpu_harness() {
    static GpuHarness instance;
    return instance;
}

} // namespace nightshift::testing
