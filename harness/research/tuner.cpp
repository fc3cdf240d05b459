#include "harness/research/tuner.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <map>

namespace nightshift::research {
using nlohmann::json;

std::unique_ptr<Strategy> make_tuner_strategy(const Plan& plan, const kernels::KernelFile&) {
    StrategyOptions options = plan.strategy_options;
    for (const auto& info : strategies()) {
        if (info.name != plan.strategy) continue;
        for (const auto& option : info.options) {
            if (option.name == "repetitions" && !options.count("repetitions")) {
                options["repetitions"] = std::to_string(plan.repetitions);
            }
        }
    }
    return make_strategy(plan.strategy, options);
}

int write_findings(store::Store& store, std::int64_t run_id, std::int64_t loop_id, std::int64_t problem_id,
                   const store::ProblemKey& key, std::int64_t kernel_id, const std::string& kernel_path,
                   const std::string& evaluator) {
    std::vector<store::ExperimentRecord> ok;
    for (auto& e : store.experiments_for_problem(problem_id)) {
        if (e.kernel_id == kernel_id && e.evaluator == evaluator && e.status == evaluate::Status::ok && e.median_us) {
            ok.push_back(std::move(e));
        }
    }
    if (ok.empty()) return 0;
    auto best = std::min_element(ok.begin(), ok.end(), [](auto& a, auto& b) { return *a.median_us < *b.median_us; });
    std::string problem = fmt::format("{} T={} {}", key.model, key.batch, key.format);
    int written = 0;
    double fraction = best->fraction_of_floor.value_or(0);
    std::string versus;
    if (best->speedup && best->speedup_noise) {
        bool no_change = std::abs(*best->speedup - 1.0) <= *best->speedup_noise;
        versus = fmt::format("; {:.2f}x the baseline timed beside it (noise +-{:.3f}){}", *best->speedup,
                             *best->speedup_noise, no_change ? ": no change" : "");
    }
    store.add_finding(run_id, loop_id, problem_id, "best_knobs",
                      fmt::format("{} on {}: best {} at {:.1f} us, {:.3f} of the copy-rate floor ({} points "
                                  "measured){}",
                                  kernel_path, problem, best->knobs_json, *best->median_us, fraction, ok.size(), versus),
                      {best->id});
    ++written;
    if (fraction >= 0.9) {
        store.add_finding(run_id, loop_id, problem_id, "bandwidth_bound",
                          fmt::format("{} on {} runs at {:.2f} of the copy-rate floor: bandwidth-bound; further "
                                      "gains need fewer bytes (quantized weights), not better scheduling",
                                      kernel_path, problem, fraction),
                          {best->id});
        ++written;
    }
    // Main effect of each knob: the best time reached at each of its values.
    std::map<std::string, std::map<std::int64_t, const store::ExperimentRecord*>> effects;
    for (const auto& e : ok) {
        json knobs = json::parse(e.knobs_json); // named: a temporary would die before the loop body
        for (auto& [name, value] : knobs.items()) {
            auto& slot = effects[name][value.get<std::int64_t>()];
            if (!slot || *e.median_us < *slot->median_us) slot = &e;
        }
    }
    for (const auto& [name, by_value] : effects) {
        if (by_value.size() < 2) continue;
        std::string text = fmt::format("{} on {}: best time by {}:", kernel_path, problem, name);
        std::vector<std::int64_t> evidence;
        double fastest = 1e300, slowest = 0;
        for (const auto& [value, e] : by_value) {
            text += fmt::format(" {}={} -> {:.1f} us;", name, value, *e->median_us);
            evidence.push_back(e->id);
            fastest = std::min(fastest, *e->median_us);
            slowest = std::max(slowest, *e->median_us);
        }
        text += fmt::format(" spread {:.1f}%", 100.0 * (slowest / fastest - 1));
        store.add_finding(run_id, loop_id, problem_id, "knob_effect", text, evidence);
        ++written;
    }
    return written;
}

} // namespace nightshift::research
