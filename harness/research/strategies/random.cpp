// random: uniformly chosen points not yet evaluated at the requested
// repetitions. The control any smarter strategy has to beat.
#include "harness/research/strategies/common.h"

#include <limits>

namespace nightshift::research::detail {

namespace {

class RandomSearch final : public Strategy {
public:
    RandomSearch(int repetitions, int samples) : m_repetitions(repetitions), m_samples(samples) {}

    std::string name() const override { return "random"; }

    std::optional<Proposal> next(const std::vector<kernels::Symbols>& space, const std::vector<Trial>& history,
                                 std::mt19937_64& rng) override {
        // The budget counts this strategy's own proposals: trials other loops
        // contributed to the history are free information, not spent samples.
        if (m_proposed >= m_samples) return std::nullopt;
        const std::vector<std::size_t> candidates = Observations(space, history).proposable_points(m_repetitions);
        if (candidates.empty()) return std::nullopt;
        ++m_proposed;
        return Proposal{space[pick(candidates, rng)], m_repetitions};
    }

private:
    int m_repetitions;
    int m_samples;
    int m_proposed = 0;
};

} // namespace

StrategyInfo random_info() {
    return {"random",
            "uniformly random points not yet evaluated; the control for the smarter strategies",
            {{"repetitions", "timing repetitions per point", "30"},
             {"samples", "most points this strategy proposes", "64"}}};
}

std::unique_ptr<Strategy> make_random(const OptionReader& options) {
    return std::make_unique<RandomSearch>(options.integer("repetitions", 1, k_max_repetitions),
                                          options.integer("samples", 1, std::numeric_limits<int>::max()));
}

} // namespace nightshift::research::detail
