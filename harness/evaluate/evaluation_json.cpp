#include "harness/evaluate/evaluation_json.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace nightshift::evaluate {
using nlohmann::json;

Status parse_status(std::string_view name) {
    for (int value = 0; value <= static_cast<int>(Status::not_measured); ++value) {
        if (to_string(static_cast<Status>(value)) == name) return static_cast<Status>(value);
    }
    throw InputError(fmt::format("unknown status '{}'", name));
}

json to_json(const timing::Measurement& s) {
    json j = {{"median_us", s.median_us}, {"min_us", s.min_us}, {"max_us", s.max_us}, {"mean_us", s.mean_us},
              {"q1_us", s.q1_us},         {"q3_us", s.q3_us},   {"cv", s.cv},         {"samples_us", s.samples_us},
              {"method", s.method},       {"event_samples_us", s.event_samples_us}};
    if (!s.cupti_note.empty()) j["cupti_note"] = s.cupti_note;
    j["clocks"] = {{"sm_mhz_min", s.clock_sm_mhz_min},
                   {"memory_mhz_min", s.clock_memory_mhz_min},
                   {"reasons", s.clock_reasons},
                   {"samples", s.clock_samples}};
    if (!s.clock_note.empty()) j["clocks"]["note"] = s.clock_note;
    return j;
}

timing::Measurement measurement_from_json(const json& j) {
    timing::Measurement s;
    // Records made before CUPTI timing carry events only.
    s.method = j.value("method", std::string("events"));
    s.event_samples_us = j.value("event_samples_us", std::vector<double>{});
    s.cupti_note = j.value("cupti_note", std::string());
    if (j.contains("clocks")) { // absent in records made before clocks were sampled
        const json& c = j.at("clocks");
        s.clock_sm_mhz_min = c.value("sm_mhz_min", 0);
        s.clock_memory_mhz_min = c.value("memory_mhz_min", 0);
        s.clock_reasons = c.value("reasons", 0ull);
        s.clock_samples = c.value("samples", 0);
        s.clock_note = c.value("note", std::string());
    }
    s.samples_us = j.at("samples_us").get<std::vector<double>>();
    s.median_us = j.at("median_us").get<double>();
    s.min_us = j.at("min_us").get<double>();
    s.max_us = j.at("max_us").get<double>();
    s.mean_us = j.value("mean_us", 0.0);
    s.q1_us = j.at("q1_us").get<double>();
    s.q3_us = j.at("q3_us").get<double>();
    s.cv = j.at("cv").get<double>();
    return s;
}

json to_json(const Evaluation& e) {
    json resources = json::array();
    for (const auto& r : e.resources) {
        resources.push_back({{"entry", r.name}, {"registers", r.registers}, {"stack_bytes", r.stack_bytes},
                             {"spill_store_bytes", r.spill_store_bytes}, {"spill_load_bytes", r.spill_load_bytes},
                             {"shared_bytes", r.shared_bytes}, {"barriers", r.barriers}});
    }
    json row = {{"problem", e.problem},
                {"knobs", e.knobs},
                {"status", to_string(e.status)},
                {"message", e.message},
                {"bytes", e.bytes},
                {"flops", e.flops},
                {"resources", resources},
                {"compile_cached", e.compile_cached},
                {"compile_seconds", e.compile_seconds},
                {"rel_l2_vs_fp64", e.comparison.rel_l2},
                {"max_abs_over_rms", e.comparison.max_abs_over_rms},
                {"copy_gb_per_s", e.copy_gb_per_s},
                {"verification_seed", e.verification_seed},
                {"rounds_passed", e.rounds_passed},
                {"worst_rel_l2", e.worst_rel_l2},
                {"seed_rel_l2", e.seed_rel_l2},
                {"model_rel_l2", e.model_rel_l2},
                {"speedup", e.speedup},
                {"speedup_noise", e.speedup_noise}};
    if (e.speedup > 0) row["baseline_timing"] = to_json(e.baseline_timing);
    if (!e.baseline_message.empty()) row["baseline_message"] = e.baseline_message;
    if (e.status == Status::ok) {
        row["timing"] = to_json(e.timing);
        if (!e.speed_of_light.samples_us.empty()) row["speed_of_light"] = to_json(e.speed_of_light);
        row["copy_floor_us"] = e.copy_floor_us();
        row["fraction_of_copy_floor"] = e.fraction_of_copy_floor();
        row["fraction_of_speed_of_light"] = e.fraction_of_speed_of_light();
        row["achieved_gb_per_s"] = e.achieved_gb_per_s();
    }
    if (!e.log.empty()) row["log"] = e.log;
    return row;
}

Evaluation evaluation_from_json(const json& j) {
    try {
        Evaluation e;
        e.problem = j.at("problem").get<std::string>();
        e.knobs = j.at("knobs").get<kernels::Symbols>();
        e.status = parse_status(j.at("status").get<std::string>());
        e.message = j.at("message").get<std::string>();
        e.bytes = j.at("bytes").get<double>();
        e.flops = j.at("flops").get<double>();
        e.compile_cached = j.value("compile_cached", false);
        e.compile_seconds = j.value("compile_seconds", 0.0);
        e.comparison.rel_l2 = j.at("rel_l2_vs_fp64").get<double>();
        e.comparison.max_abs_over_rms = j.at("max_abs_over_rms").get<double>();
        e.comparison.passed = e.status == Status::ok;
        e.copy_gb_per_s = j.at("copy_gb_per_s").get<double>();
        // Absent in records made before verification rounds existed.
        e.verification_seed = j.value("verification_seed", 0ull);
        e.rounds_passed = j.value("rounds_passed", 0);
        e.worst_rel_l2 = j.value("worst_rel_l2", 0.0);
        e.seed_rel_l2 = j.value("seed_rel_l2", 0.0);
        e.model_rel_l2 = j.value("model_rel_l2", e.comparison.rel_l2);
        e.speedup = j.value("speedup", 0.0);
        e.speedup_noise = j.value("speedup_noise", 0.0);
        if (j.contains("baseline_timing")) e.baseline_timing = measurement_from_json(j.at("baseline_timing"));
        e.baseline_message = j.value("baseline_message", std::string());
        for (const auto& r : j.at("resources")) {
            e.resources.push_back({.name = r.at("entry").get<std::string>(),
                                   .registers = r.at("registers").get<int>(),
                                   .stack_bytes = r.at("stack_bytes").get<int>(),
                                   .spill_store_bytes = r.at("spill_store_bytes").get<int>(),
                                   .spill_load_bytes = r.at("spill_load_bytes").get<int>(),
                                   .shared_bytes = r.at("shared_bytes").get<int>(),
                                   .barriers = r.value("barriers", 0)});
        }
        if (j.contains("timing")) e.timing = measurement_from_json(j.at("timing"));
        if (j.contains("speed_of_light")) e.speed_of_light = measurement_from_json(j.at("speed_of_light"));
        e.log = j.value("log", std::string());
        return e;
    } catch (const json::exception& error) {
        throw InputError(fmt::format("malformed evaluation record: {}", error.what()));
    }
}

} // namespace nightshift::evaluate
