// One candidate on one problem, the way every number in nightshift is made:
// build, verify against the float64 reference (poisoned output, two runs that
// must agree bitwise), then time with the fixed protocol and set the result
// beside the two floors.
#pragma once

#include "harness/evaluate/candidate.h"
#include "harness/timing/timer.h"
#include "verifier/compare.h"

#include <map>
#include <string>

namespace nightshift::evaluate {

struct EvaluateOptions {
    timing::TimingOptions timing;
    bool time_speed_of_light = true; // also time a plain read of the same bytes
};

struct Evaluation {
    Status status = Status::ok;
    std::string message; // why it failed; empty when ok
    std::string log;     // compile log for compile errors
    std::string problem;
    kernels::Symbols knobs;
    std::vector<cuda::EntryResources> resources;
    bool compile_cached = false;
    double compile_seconds = 0;

    verifier::Comparison comparison;
    timing::Stats timing;
    timing::Stats speed_of_light; // the plain one-pass read of `bytes`
    double bytes = 0, flops = 0;
    double copy_gb_per_s = 0;

    double median_us() const { return timing.median_us; }
    double copy_floor_us() const { return copy_gb_per_s > 0 ? bytes / (copy_gb_per_s * 1e3) : 0; }
    double fraction_of_copy_floor() const { return median_us() > 0 ? copy_floor_us() / median_us() : 0; }
    double fraction_of_speed_of_light() const {
        return median_us() > 0 ? speed_of_light.median_us / median_us() : 0;
    }
    double achieved_gb_per_s() const { return median_us() > 0 ? bytes / (median_us() * 1e3) : 0; }
    int registers() const;    // the most any entry uses
    int spill_bytes() const;  // stores plus loads, all entries
};

class Evaluator {
public:
    Evaluator(const cuda::Device& device, const cuda::Compiler& compiler, timing::Timer& timer,
              double copy_gb_per_s);

    // Never throws for a bad candidate: failures come back as a Status.
    // Throws InputError for a file or knob the user got wrong, and lets a
    // lost CUDA context (a faulting kernel) escape as cuda::DriverError after
    // recording nothing: the process must be replaced.
    Evaluation evaluate(const kernels::KernelFile& file, const kernels::Symbols& knob_overrides,
                        verifier::Problem& problem, const verifier::OpSpec& spec, const EvaluateOptions& options,
                        const cuda::CompileResult* precompiled = nullptr);

private:
    const cuda::Device& m_device;
    const cuda::Compiler& m_compiler;
    timing::Timer& m_timer;
    double m_copy_gb_per_s;
    // The speed-of-light read depends only on the byte count: measured once
    // per count and process, with the same repetitions as the first asker.
    std::map<std::size_t, timing::Stats> m_speed_of_light;
};

} // namespace nightshift::evaluate
