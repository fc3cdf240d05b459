// `nightshift run PLAN`: loops that propose, claim, compile, evaluate, record
// and learn until the budget is spent, the stop rule holds everywhere, or
// Ctrl-C. Every number lands in the store as it is made, so a killed run
// loses at most the experiments in flight, and --resume picks up the rest.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nightshift::research {

struct RunOptions {
    std::filesystem::path plan_path;
    std::filesystem::path db_path = "results.db";
    int loops = 1;
    std::vector<int> gpus = {0};
    // Budget overrides; without any, the plan's [budget] holds.
    std::optional<double> hours, minutes;
    std::optional<std::int64_t> experiments;
    std::optional<std::int64_t> resume_run; // continue this run id
    std::string evaluator = "gpu";          // "gpu" or "replay:FILE"
    std::filesystem::path record_path;      // gpu only: append every measurement here, for replay
    std::chrono::milliseconds candidate_limit{60'000}; // the watchdog's limit per evaluation
    unsigned long long seed = 0;            // inputs seed; 0: fresh, recorded in every row
    bool progress = true;                   // live status line on a terminal
    // The agent: overrides of the plan's `agent` and of its [agent] options
    // (harness/agents/agent_config.h lists them).
    std::optional<std::string> agent;
    std::map<std::string, std::string, std::less<>> agent_options;
};

struct RunSummary {
    std::int64_t run_id = 0;
    std::int64_t experiments = 0; // recorded by this invocation
    std::int64_t failures = 0;
    std::string status;           // finished, interrupted
    double seconds = 0;
};

// Throws InputError for a bad plan or flag; a bad candidate never throws.
RunSummary run_plan(const RunOptions& options);

// Set by SIGINT/SIGTERM; loops finish the experiment in hand and stop.
void request_stop();

} // namespace nightshift::research
