// One candidate on one problem, the way every number in nightshift is made:
// build, verify against the float64 reference (poisoned output, two runs that
// must agree bitwise), then time with the fixed protocol and set the result
// beside the two floors.
#pragma once

#include "harness/evaluate/candidate.h"
#include "harness/timing/timer.h"
#include "verifier/compare.h"

#include <cmath>
#include <map>
#include <string>

namespace nightshift::evaluate {

struct EvaluateOptions {
    timing::TimingOptions timing;
    bool time_speed_of_light = true; // also time a plain read of the same bytes
    // Before timing, verify on every case the op spec lists (fresh inputs,
    // several distributions, held-out shapes). Off only where a test checks
    // the timed problem alone.
    bool verification_rounds = true;
    unsigned long long verification_seed = 0; // 0: fresh; recorded either way
    // A candidate's relative L2 error may be at most this multiple of the
    // honest seed's on the same inputs.
    double max_error_vs_seed = 2.5;
    // The plan's baseline, timed interleaved with the candidate (A B A B) on
    // the same problem; null: the candidate is timed alone.
    const kernels::KernelFile* baseline = nullptr;
    kernels::Symbols baseline_knobs{};
    const cuda::CompileResult* baseline_compiled = nullptr;
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

    verifier::Comparison comparison; // on the timed problem
    unsigned long long verification_seed = 0;
    int rounds_passed = 0;
    double worst_rel_l2 = 0;         // over every round
    double seed_rel_l2 = 0;          // the honest seed's on round 0's inputs (0 when not run)
    // The timed output against the model's own output: for a quantized
    // format, the op on the original bf16 weights (what quantization costs);
    // for bf16 the same as comparison.rel_l2.
    double model_rel_l2 = 0;
    timing::Measurement timing;          // method "cupti" or "events", event samples kept beside
    timing::Measurement speed_of_light;  // the plain one-pass read of `bytes`
    // Side by side with the baseline (when one was given): its timing from
    // the same interleaved run, the speedup of medians, and the noise floor
    // (2 sigma of the baseline's samples, relative): a speedup within it is
    // no change.
    timing::Measurement baseline_timing;
    double speedup = 0, speedup_noise = 0;
    std::string baseline_message; // why the baseline could not be timed, if it could not
    bool speedup_significant() const { return speedup > 0 && std::abs(speedup - 1.0) > speedup_noise; }
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
                        verifier::Problem& problem, verifier::OpSpec& spec, const EvaluateOptions& options,
                        const cuda::CompileResult* precompiled = nullptr);

private:
    // Runs `candidate` once on `problem` (output poisoned first), returns the output.
    std::vector<double> run_once(const Candidate& candidate, verifier::Problem& problem);
    // The honest seed built for this problem's shape, bound to it; null when
    // the spec names none or it is the candidate itself.
    Candidate* accuracy_seed(verifier::Problem& problem, const verifier::OpSpec& spec, const std::string& source);

    const cuda::Device& m_device;
    const cuda::Compiler& m_compiler;
    timing::Timer& m_timer;
    double m_copy_gb_per_s;
    // The speed-of-light read depends only on the byte count: measured once
    // per count and process, with the same repetitions as the first asker.
    std::map<std::size_t, timing::Measurement> m_speed_of_light;
    std::map<std::string, std::unique_ptr<Candidate>> m_seeds; // by shape defines
};

} // namespace nightshift::evaluate
