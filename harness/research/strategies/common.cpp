#include "harness/research/strategies/common.h"

#include "harness/core/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace nightshift::research::detail {

namespace {

const StrategyOption* find_option(const StrategyInfo& info, std::string_view key) {
    for (const StrategyOption& option : info.options) {
        if (option.name == key) return &option;
    }
    return nullptr;
}

std::string option_names(const StrategyInfo& info) {
    std::string names;
    for (const StrategyOption& option : info.options) {
        if (!names.empty()) names += ", ";
        names += option.name;
    }
    return names.empty() ? "(none)" : names;
}

} // namespace

OptionReader::OptionReader(const StrategyInfo& info, const StrategyOptions& given) : m_info(info), m_given(given) {
    for (const auto& [key, value] : given) {
        if (find_option(info, key) == nullptr) {
            throw InputError(
                fmt::format("strategy '{}' has no option '{}'; valid options: {}", info.name, key, option_names(info)));
        }
    }
}

std::string_view OptionReader::text(std::string_view key) const {
    if (auto it = m_given.find(key); it != m_given.end()) return it->second;
    const StrategyOption* option = find_option(m_info, key);
    if (option == nullptr)
        throw std::logic_error(fmt::format("strategy '{}' reads undeclared option '{}'", m_info.name, key));
    return option->default_value;
}

void OptionReader::fail(std::string_view key, std::string_view requirement) const {
    throw InputError(
        fmt::format("strategy '{}': option '{}' must be {}, got '{}'", m_info.name, key, requirement, text(key)));
}

int OptionReader::integer(std::string_view key, int min, int max) const {
    const std::string_view value = text(key);
    int64_t parsed = 0;
    const char* end = value.data() + value.size();
    const auto [ptr, ec] = std::from_chars(value.data(), end, parsed);
    const std::string requirement = max == std::numeric_limits<int>::max()
                                        ? fmt::format("an integer >= {}", min)
                                        : fmt::format("an integer in [{}, {}]", min, max);
    if (value.empty() || ec != std::errc{} || ptr != end || parsed < min || parsed > max) fail(key, requirement);
    return static_cast<int>(parsed);
}

double OptionReader::real(std::string_view key, double min, double max) const {
    const std::string_view value = text(key);
    double parsed = 0;
    const char* end = value.data() + value.size();
    const auto [ptr, ec] = std::from_chars(value.data(), end, parsed);
    if (value.empty() || ec != std::errc{} || ptr != end || !std::isfinite(parsed) || parsed < min || parsed > max) {
        fail(key, fmt::format("a number in [{}, {}]", min, max));
    }
    return parsed;
}

Observations::Observations(const std::vector<kernels::Symbols>& space, const std::vector<Trial>& history)
    : m_points(space.size()) {
    for (std::size_t i = 0; i < space.size(); ++i) m_index.emplace(space[i], i); // a duplicate keeps its first place
    std::vector<int> median_repetitions(space.size(), -1);
    for (std::size_t t = 0; t < history.size(); ++t) {
        const Trial& trial = history[t];
        const auto found = find(trial.knobs);
        if (!found) continue;
        PointState& point = m_points[*found];
        point.trials.push_back(t);
        point.max_repetitions = std::max(point.max_repetitions, trial.repetitions);
        if (!trial.median_us) {
            point.failed = true;
        } else if (trial.repetitions >= median_repetitions[*found]) {
            // The most repetitions give the most trustworthy median; among equals, the latest.
            median_repetitions[*found] = trial.repetitions;
            point.median_us = trial.median_us;
        }
    }
}

std::optional<std::size_t> Observations::find(const kernels::Symbols& knobs) const {
    if (auto it = m_index.find(knobs); it != m_index.end()) return it->second;
    return std::nullopt;
}

bool Observations::proposable(std::size_t point, int repetitions) const {
    return !m_points[point].failed && m_points[point].max_repetitions < repetitions;
}

std::vector<std::size_t> Observations::proposable_points(int repetitions) const {
    std::vector<std::size_t> points;
    for (std::size_t i = 0; i < m_points.size(); ++i) {
        if (proposable(i, repetitions)) points.push_back(i);
    }
    return points;
}

std::size_t Observations::evaluated_count() const {
    return static_cast<std::size_t>(
        std::count_if(m_points.begin(), m_points.end(), [](const PointState& p) { return p.evaluated(); }));
}

std::vector<std::size_t> Observations::ranked() const {
    std::vector<std::size_t> points;
    for (std::size_t i = 0; i < m_points.size(); ++i) {
        if (m_points[i].successful()) points.push_back(i);
    }
    std::stable_sort(points.begin(), points.end(),
                     [&](std::size_t a, std::size_t b) { return *m_points[a].median_us < *m_points[b].median_us; });
    return points;
}

KnobAxes::KnobAxes(const std::vector<kernels::Symbols>& space) {
    std::map<std::string, std::vector<int64_t>, std::less<>> values;
    for (const kernels::Symbols& point : space) {
        for (const auto& [name, value] : point) values[name].push_back(value);
    }
    for (auto& [name, list] : values) {
        std::sort(list.begin(), list.end());
        list.erase(std::unique(list.begin(), list.end()), list.end());
        m_names.push_back(name);
        m_values.push_back(std::move(list));
    }
}

std::size_t KnobAxes::position(std::size_t knob, int64_t value) const {
    const std::vector<int64_t>& list = m_values.at(knob);
    const auto it = std::lower_bound(list.begin(), list.end(), value);
    if (it == list.end() || *it != value)
        throw std::out_of_range(fmt::format("knob {} has no value {}", m_names[knob], value));
    return static_cast<std::size_t>(it - list.begin());
}

std::size_t uniform_index(std::size_t count, std::mt19937_64& rng) {
    // Multiply-shift rather than std::uniform_int_distribution, whose output
    // differs between standard libraries: a seed replays the same search anywhere.
    return static_cast<std::size_t>((static_cast<unsigned __int128>(rng()) * count) >> 64);
}

std::size_t pick(const std::vector<std::size_t>& items, std::mt19937_64& rng) {
    return items[uniform_index(items.size(), rng)];
}

double uniform_real(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

} // namespace nightshift::research::detail
