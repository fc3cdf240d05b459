#include "harness/research/progress.h"

#include <fmt/format.h>

#include <unistd.h>

namespace nightshift::research {

Progress::Progress(bool enabled, std::optional<std::chrono::steady_clock::time_point> deadline,
                   std::optional<std::int64_t> experiment_budget)
    : m_enabled(enabled), m_terminal(::isatty(1) != 0), m_deadline(deadline), m_budget(experiment_budget) {}

void Progress::start(std::int64_t run_id, const Plan& plan, const DeviceDescription& device,
                     const std::string& evaluator, int loops) {
    fmt::print("run {}: {} ({}), {} loop(s), evaluator {}, device {} ({}), copy {:.0f} GB/s\n", run_id, plan.title,
               plan.path, loops, evaluator, device.device, device.arch, device.copy_gb_per_s);
    std::fflush(stdout);
}

std::string Progress::status_line() const {
    std::string line = fmt::format("{} experiments, {} failed", m_count, m_failures);
    int shown = 0;
    for (const auto& [problem, best] : m_best) {
        if (shown++ == 4) {
            line += " | ...";
            break;
        }
        line += fmt::format(" | {} {:.1f}us {:.2f}", problem, best.first, best.second);
    }
    if (m_deadline) {
        auto left = std::chrono::duration_cast<std::chrono::seconds>(*m_deadline - std::chrono::steady_clock::now());
        line += fmt::format(" | {}m{:02}s left", std::max<long long>(0, left.count()) / 60,
                            std::max<long long>(0, left.count()) % 60);
    }
    if (m_budget) line += fmt::format(" | {} of {} experiments", m_count, *m_budget);
    return line;
}

void Progress::experiment(const store::ProblemKey& problem, const store::ExperimentRecord& record,
                          const std::string& kernel) {
    std::lock_guard<std::mutex> guard(m_mutex);
    ++m_count;
    if (record.status != evaluate::Status::ok) ++m_failures;
    std::string label = fmt::format("{} T={}", problem.model, problem.batch);
    if (record.status == evaluate::Status::ok && record.median_us) {
        auto& best = m_best[label];
        if (best.first == 0 || *record.median_us < best.first) best = {*record.median_us, record.fraction_of_floor.value_or(0)};
    }
    if (!m_enabled) return;
    if (m_terminal) {
        fmt::print("\r\033[K{}", status_line());
    } else {
        std::string result = record.status == evaluate::Status::ok && record.median_us
                                 ? fmt::format("{:.1f} us, {:.3f} of floor", *record.median_us,
                                               record.fraction_of_floor.value_or(0))
                                 : fmt::format("{}: {}", evaluate::to_string(record.status),
                                               record.message.substr(0, 160));
        fmt::print("[{}] {} {} {} -> {}\n", m_count, kernel, record.knobs_json, label, result);
    }
    std::fflush(stdout);
}

void Progress::note(const std::string& line) {
    std::lock_guard<std::mutex> guard(m_mutex);
    if (!m_enabled) return;
    if (m_terminal) fmt::print("\r\033[K{}\n{}", line, status_line());
    else fmt::print("{}\n", line);
    std::fflush(stdout);
}

void Progress::finish(std::int64_t experiments, std::int64_t failures, double seconds) {
    std::lock_guard<std::mutex> guard(m_mutex);
    if (m_enabled && m_terminal) fmt::print("\n");
    fmt::print("{} experiments ({} failed) in {:.0f} s: {:.0f} per hour\n", experiments, failures, seconds,
               seconds > 0 ? experiments * 3600.0 / seconds : 0.0);
    std::fflush(stdout);
}

} // namespace nightshift::research
