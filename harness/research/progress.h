// What a long run shows while it works: on a terminal one status line,
// rewritten in place (experiments, failures, the best µs and fraction of the
// floor per problem, time or experiments left); otherwise one plain log line
// per experiment.
#pragma once

#include "harness/research/evaluator.h"
#include "harness/research/plan.h"
#include "harness/store/store.h"

#include <chrono>
#include <map>
#include <mutex>
#include <optional>

namespace nightshift::research {

class Progress {
public:
    Progress(bool enabled, std::optional<std::chrono::steady_clock::time_point> deadline,
             std::optional<std::int64_t> experiment_budget);
    void start(std::int64_t run_id, const Plan& plan, const DeviceDescription& device, const std::string& evaluator,
               int loops);
    void experiment(const store::ProblemKey& problem, const store::ExperimentRecord& record, const std::string& kernel);
    // One line about something other than an experiment (an agent call).
    void note(const std::string& line);
    void finish(std::int64_t experiments, std::int64_t failures, double seconds);

private:
    std::string status_line() const;

    bool m_enabled;
    bool m_terminal;
    std::optional<std::chrono::steady_clock::time_point> m_deadline;
    std::optional<std::int64_t> m_budget;
    std::mutex m_mutex;
    std::int64_t m_count = 0, m_failures = 0;
    std::map<std::string, std::pair<double, double>> m_best; // problem -> (µs, fraction of floor)
};

} // namespace nightshift::research
