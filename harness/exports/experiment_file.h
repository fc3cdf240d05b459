// One experiment as a self-contained JSON record (experiments/<date>_<slug>.json):
// everything `nightshift replay FILE` needs on another machine (kernel and
// baseline sources, knobs, compile options, problem, seeds, timing protocol,
// environment) and every number the row holds. The format is versioned;
// fields are only ever added.
#pragma once

#include "harness/store/store.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace nightshift::exports {

inline constexpr int k_experiment_file_version = 1;

// The recorded experiment, as replay reads it (from the store or a file).
struct RecordedExperiment {
    std::int64_t id = 0;
    std::string created_at, status, message, evaluator;
    store::ProblemKey problem;
    std::string kernel_path, kernel_source, kernel_hash;
    nlohmann::json knobs = nlohmann::json::object();
    std::vector<std::string> compile_options; // exactly what NVRTC was given
    std::optional<std::string> baseline_path, baseline_source;
    nlohmann::json baseline_knobs = nlohmann::json::object();
    std::optional<std::uint64_t> input_seed, verification_seed;
    int warmup = 5, repetitions = 50;
    double max_error_vs_seed = 2.5;
    std::optional<double> median_us, min_us, q1_us, q3_us, cv, rel_l2, baseline_median_us, speedup, speedup_noise;
    std::optional<double> fraction_of_floor, copy_floor_us;
    std::string device, driver, nvrtc, host, git_commit;
    std::string note; // why the baseline is missing, if it is
};

// The whole record of experiment `id`. InputError when there is no such
// experiment.
nlohmann::json experiment_json(store::Store& store, std::int64_t id);

// Reads a record back; InputError naming a missing or mistyped field, or a
// file of a newer version.
RecordedExperiment recorded_from_json(const nlohmann::json& json);
RecordedExperiment load_recorded(store::Store& store, std::int64_t id);
RecordedExperiment load_recorded(const std::filesystem::path& file); // IoError, InputError

// "<date>_<gpu>_<model>_b<batch>_<format>_<kernel>_e<id>.json", lower case,
// one word per part: e.g. 2026-11-26_h100_gemma4-26b-a4b_b8_bf16_warp_decode_v1_e42.json.
std::string file_name(const nlohmann::json& record);

// Writes the record under `dir`, creating it; refuses to overwrite a file
// (IoError). Returns the path written.
std::filesystem::path write_record(const nlohmann::json& record, const std::filesystem::path& dir);

} // namespace nightshift::exports
