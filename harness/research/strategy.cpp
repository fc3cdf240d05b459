#include "harness/research/strategy.h"

#include "harness/core/error.h"
#include "harness/research/strategies/common.h"

#include <fmt/format.h>

#include <algorithm>

namespace nightshift::research {

namespace {

struct Entry {
    StrategyInfo info;
    std::unique_ptr<Strategy> (*make)(const detail::OptionReader& options);
};

const std::vector<Entry>& registry() {
    static const std::vector<Entry> entries = {
        {detail::exhaustive_info(), &detail::make_exhaustive},
        {detail::random_info(), &detail::make_random},
        {detail::successive_halving_info(), &detail::make_successive_halving},
        {detail::evolutionary_info(), &detail::make_evolutionary},
        {detail::surrogate_info(), &detail::make_surrogate},
    };
    return entries;
}

} // namespace

const std::vector<StrategyInfo>& strategies() {
    static const std::vector<StrategyInfo> infos = [] {
        std::vector<StrategyInfo> list;
        for (const Entry& entry : registry()) list.push_back(entry.info);
        return list;
    }();
    return infos;
}

std::unique_ptr<Strategy> make_strategy(std::string_view name, const StrategyOptions& options) {
    for (const Entry& entry : registry()) {
        if (entry.info.name == name) return entry.make(detail::OptionReader(entry.info, options));
    }
    std::string known;
    for (const Entry& entry : registry()) known += (known.empty() ? "" : ", ") + entry.info.name;
    throw InputError(fmt::format("unknown strategy '{}'; known strategies: {}", name, known));
}

std::string strategies_help() {
    std::size_t option_width = 0;
    for (const StrategyInfo& info : strategies()) {
        for (const StrategyOption& option : info.options) {
            option_width = std::max(option_width, option.name.size() + 1 + option.default_value.size());
        }
    }
    std::string text = "Search strategies and their options (KEY=VALUE, default after the =):\n";
    for (const StrategyInfo& info : strategies()) {
        text += fmt::format("\n  {}\n      {}\n", info.name, info.description);
        for (const StrategyOption& option : info.options) {
            text += fmt::format("      {:<{}}  {}\n", option.name + "=" + option.default_value, option_width,
                                option.description);
        }
    }
    return text;
}

} // namespace nightshift::research
