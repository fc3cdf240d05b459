// `nightshift replay ID|FILE`: check a recorded number by making it again.
// The recorded source is recompiled (no cache) with the recorded NVRTC
// options, verified on the recorded seeds and on fresh ones, and timed
// interleaved with the recorded baseline; then recorded and new numbers sit
// side by side with the drift and a verdict. A different GPU, driver or NVRTC
// is said before any number. Replay records nothing: the store is opened
// read-only, so the original row and its run stay exactly as they were.
#pragma once

#include "harness/cuda/compiler.h"
#include "harness/evaluate/evaluate.h"
#include "harness/exports/experiment_file.h"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace nightshift::replay {

struct Environment {
    std::string device, driver, nvrtc;
};

// "GPU: recorded 'A', now 'B'" for each of GPU, driver and NVRTC that differs.
std::vector<std::string> environment_changes(const exports::RecordedExperiment& recorded, const Environment& now);

// The NVRTC request rebuilt from the recorded options (which are exactly what
// NVRTC was given). The options the compiler adds itself (architecture,
// --std, -Xptxas=-v) are taken out; the architecture becomes `device_arch`
// when it differs; an include folder that does not exist here is replaced by
// `params_dir` (the op's params.h). Each change is a note.
struct RebuiltRequest {
    cuda::CompileRequest request;
    std::vector<std::string> notes;
};
RebuiltRequest rebuild_request(const exports::RecordedExperiment& recorded, const std::string& device_arch,
                               const std::filesystem::path& params_dir);

enum class Verdict { reproduced, drifted, fails_now };

// Recorded against now, for the row judged (the recorded seeds' timing).
struct Drift {
    std::optional<double> change;    // now / recorded - 1 of the median
    std::optional<double> speedup_change; // of the speedup against the interleaved baseline
    double tolerance = 0.05;         // |change| within this is no drift
    bool judged_by_speedup = false;  // another GPU/driver/NVRTC: the ratio, not the microseconds
};

struct Judgement {
    Drift drift;
    Verdict verdict = Verdict::reproduced;
    std::string text;
};

// Pure: the drift and verdict from the recorded row and the two new
// evaluations (recorded seeds, fresh seeds).
Judgement judge(const exports::RecordedExperiment& recorded, const evaluate::Evaluation& recorded_seeds,
                const evaluate::Evaluation& fresh_seeds, bool environment_changed);

struct ReplayOptions {
    int gpu = 0;
    std::optional<int> repetitions; // default: the recorded count
};

struct ReplayOutcome {
    Environment now;
    std::vector<std::string> environment_changes;
    std::vector<std::string> notes;
    unsigned long long input_seed = 0, fresh_input_seed = 0;
    evaluate::Evaluation recorded_seeds, fresh_seeds;
    Judgement judgement;
    Verdict verdict = Verdict::reproduced;
};

// Needs a GPU (cuda::NoDriverError without one).
ReplayOutcome replay(const exports::RecordedExperiment& recorded, const ReplayOptions& options);

// The printed comparison: environment first, then recorded against now.
std::string describe(const exports::RecordedExperiment& recorded, const ReplayOutcome& outcome,
                     const std::string& source);

std::string_view to_string(Verdict verdict);

} // namespace nightshift::replay
