// Search strategies for the tuner: which point of a kernel's knob space to
// evaluate next, and with how many timing repetitions (cheap screens versus
// confirmations). A strategy reads everything it knows from the history it is
// given, so trials from other loops (warm starts) and from a resumed run count
// exactly like its own, and it never proposes a point already evaluated at the
// repetitions it asks for, nor one that ever failed.
//
// Plug-in shape (STYLE.md 11): the Strategy interface, a registry of
// StrategyInfo (name, description, options with defaults) that produces
// --help, and make_strategy, which rejects unknown names, keys and values.
#pragma once

#include "harness/kernels/expression.h"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace nightshift::research {

// One finished evaluation.
struct Trial {
    kernels::Symbols knobs;
    std::optional<double> median_us; // nullopt: failed (compile error, wrong answer, ...)
    int repetitions = 0;
};

struct Proposal {
    kernels::Symbols knobs;
    int repetitions = 0; // timing repetitions to use
};

struct StrategyOption {
    std::string name, description, default_value;
};

struct StrategyInfo {
    std::string name, description;
    std::vector<StrategyOption> options;
};

// Option values as the user wrote them (--strategy-option KEY=VALUE), by key.
using StrategyOptions = std::map<std::string, std::string, std::less<>>;

class Strategy {
public:
    virtual ~Strategy() = default;
    virtual std::string name() const = 0;
    // space: every valid point (constraints already applied), in a stable order.
    // history: all trials on this problem so far, this strategy's and others'.
    // Returns nullopt when the strategy has nothing more to propose (search finished).
    virtual std::optional<Proposal> next(const std::vector<kernels::Symbols>& space, const std::vector<Trial>& history,
                                         std::mt19937_64& rng) = 0;
};

// The registry, in a fixed order, for --help and for tests that cover every strategy.
const std::vector<StrategyInfo>& strategies();

// Throws InputError for an unknown name (listing the known ones), an unknown
// option key (listing the valid keys), or a bad value (naming the requirement).
// Options not given take their defaults.
std::unique_ptr<Strategy> make_strategy(std::string_view name, const StrategyOptions& options);

// A table of every strategy: name, description, and each option with its default.
std::string strategies_help();

} // namespace nightshift::research
