// exhaustive: every point once, in space order. The baseline for small spaces,
// and the only strategy whose answer is the true optimum by construction.
#include "harness/research/strategies/common.h"

namespace nightshift::research::detail {

namespace {

class Exhaustive final : public Strategy {
public:
    explicit Exhaustive(int repetitions) : m_repetitions(repetitions) {}

    std::string name() const override { return "exhaustive"; }

    std::optional<Proposal> next(const std::vector<kernels::Symbols>& space, const std::vector<Trial>& history,
                                 std::mt19937_64&) override {
        const Observations observations(space, history);
        for (std::size_t i = 0; i < space.size(); ++i) {
            if (observations.proposable(i, m_repetitions)) return Proposal{space[i], m_repetitions};
        }
        return std::nullopt;
    }

private:
    int m_repetitions;
};

} // namespace

StrategyInfo exhaustive_info() {
    return {"exhaustive",
            "every point once, in space order; for small spaces",
            {{"repetitions", "timing repetitions per point", "30"}}};
}

std::unique_ptr<Strategy> make_exhaustive(const OptionReader& options) {
    return std::make_unique<Exhaustive>(options.integer("repetitions", 1, k_max_repetitions));
}

} // namespace nightshift::research::detail
