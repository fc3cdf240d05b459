// What every strategy shares: reading option values against the options
// table, summarising the history per point of the space, each knob's ordered
// values, and uniform picks. Internal to harness/research; the namespace is
// `detail`, not `strategies`, which names the registry function.
#pragma once

#include "harness/research/strategy.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace nightshift::research::detail {

// Option values checked against a strategy's options table. Construction
// rejects keys the table does not declare; each getter parses the value given
// (or the default) and throws InputError "strategy 'S': option 'K' must be
// REQUIREMENT, got 'V'".
class OptionReader {
public:
    OptionReader(const StrategyInfo& info, const StrategyOptions& given);

    int integer(std::string_view key, int min, int max) const;
    double real(std::string_view key, double min, double max) const;
    std::string_view text(std::string_view key) const;

    [[noreturn]] void fail(std::string_view key, std::string_view requirement) const;

private:
    const StrategyInfo& m_info;
    const StrategyOptions& m_given;
};

// The largest repetition count an option accepts: far above any sensible
// timing run, far below int overflow when rungs multiply it.
inline constexpr int k_max_repetitions = 1'000'000;

// What the history says about one point of the space.
struct PointState {
    int max_repetitions = 0;         // most repetitions of any trial on it, failed or not
    bool failed = false;             // some trial failed: ranked last, never proposed again
    std::optional<double> median_us; // from the successful trial with the most repetitions
    std::vector<std::size_t> trials; // indices into the history, in history order

    bool evaluated() const { return !trials.empty(); }
    bool successful() const { return !failed && median_us.has_value(); }
};

// The history folded onto the space. Trials on points outside the space (a
// space narrowed since) are ignored.
class Observations {
public:
    Observations(const std::vector<kernels::Symbols>& space, const std::vector<Trial>& history);

    std::size_t size() const { return m_points.size(); }
    const PointState& operator[](std::size_t point) const { return m_points[point]; }
    std::optional<std::size_t> find(const kernels::Symbols& knobs) const;

    // The rule every strategy obeys: never a point that failed, never one
    // already evaluated at `repetitions` or more.
    bool proposable(std::size_t point, int repetitions) const;
    std::vector<std::size_t> proposable_points(int repetitions) const; // in space order

    std::size_t evaluated_count() const;
    // Successful points, fastest first; ties in space order.
    std::vector<std::size_t> ranked() const;

private:
    std::vector<PointState> m_points;
    std::map<kernels::Symbols, std::size_t, std::less<>> m_index;
};

// Each knob's distinct values in ascending order, so "neighbouring value"
// means the next smaller or larger setting whatever order the kernel file
// declared them in (files put the default first: `@tune WARPS 4 8 2`).
class KnobAxes {
public:
    explicit KnobAxes(const std::vector<kernels::Symbols>& space);

    std::size_t knob_count() const { return m_names.size(); }
    const std::string& name(std::size_t knob) const { return m_names[knob]; }
    const std::vector<int64_t>& values(std::size_t knob) const { return m_values[knob]; }
    // Position of `value` in values(knob); throws std::out_of_range when absent.
    std::size_t position(std::size_t knob, int64_t value) const;

private:
    std::vector<std::string> m_names; // sorted, as in Symbols
    std::vector<std::vector<int64_t>> m_values;
};

// A uniformly chosen element; `items` must not be empty.
std::size_t pick(const std::vector<std::size_t>& items, std::mt19937_64& rng);
std::size_t uniform_index(std::size_t count, std::mt19937_64& rng);
double uniform_real(std::mt19937_64& rng); // in [0, 1)

// The registered strategies: each one's options table and its factory.
StrategyInfo exhaustive_info();
std::unique_ptr<Strategy> make_exhaustive(const OptionReader& options);
StrategyInfo random_info();
std::unique_ptr<Strategy> make_random(const OptionReader& options);
StrategyInfo successive_halving_info();
std::unique_ptr<Strategy> make_successive_halving(const OptionReader& options);
StrategyInfo evolutionary_info();
std::unique_ptr<Strategy> make_evolutionary(const OptionReader& options);
StrategyInfo surrogate_info();
std::unique_ptr<Strategy> make_surrogate(const OptionReader& options);

} // namespace nightshift::research::detail
