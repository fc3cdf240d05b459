// successive_halving: screen many points cheaply, then spend repetitions only
// on the ones that stay fast. Rung 0 times every point (or `initial` random
// ones) at screen_repetitions; each later rung keeps the best 1/eta of the
// previous rung's successful points and re-times them at eta times the
// repetitions, capped at max_repetitions. A single survivor goes straight to
// max_repetitions. The search ends once a rung at max_repetitions is complete:
// its fastest point is the confirmed winner.
//
// The rungs are recomputed from the history on every call, never remembered:
// a resumed run, or trials another loop recorded, land in the same rungs as
// this strategy's own. A point's result at a rung is its trial with the fewest
// repetitions >= the rung's, so re-timing a survivor at a later rung does not
// reshuffle the earlier rung that chose it.
#include "harness/research/strategies/common.h"

#include "harness/core/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

namespace nightshift::research::detail {

namespace {

struct RungResult {
    enum class Kind { pending, failed, ok } kind = Kind::pending;
    double median_us = 0;
};

class SuccessiveHalving final : public Strategy {
public:
    SuccessiveHalving(int screen_repetitions, int eta, int max_repetitions, std::optional<int> initial)
        : m_screen(screen_repetitions), m_eta(eta), m_max(max_repetitions), m_initial(initial) {}

    std::string name() const override { return "successive_halving"; }

    std::optional<Proposal> next(const std::vector<kernels::Symbols>& space, const std::vector<Trial>& history,
                                 std::mt19937_64& rng) override {
        const Observations observations(space, history);
        auto result = [&](std::size_t point, int repetitions) {
            return rung_result(observations[point], history, repetitions);
        };

        // Rung 0: every point already screened belongs, whoever screened it.
        std::vector<std::size_t> rung;
        std::vector<std::size_t> unscreened;
        for (std::size_t i = 0; i < space.size(); ++i) {
            (result(i, m_screen).kind == RungResult::Kind::pending ? unscreened : rung).push_back(i);
        }
        if (!unscreened.empty()) {
            if (!m_initial) return Proposal{space[unscreened.front()], m_screen};
            if (rung.size() < static_cast<std::size_t>(*m_initial))
                return Proposal{space[pick(unscreened, rng)], m_screen};
        }

        int repetitions = m_screen;
        while (repetitions < m_max) {
            std::vector<std::pair<double, std::size_t>> timed; // (median, point) of the rung's successes
            for (std::size_t point : rung) {
                const RungResult r = result(point, repetitions);
                if (r.kind == RungResult::Kind::ok) timed.emplace_back(r.median_us, point);
            }
            if (timed.empty()) return std::nullopt; // everything failed: nothing to confirm
            std::sort(timed.begin(), timed.end());  // ties in space order
            const std::size_t keep = std::max<std::size_t>(1, timed.size() / static_cast<std::size_t>(m_eta));
            std::vector<std::size_t> survivors;
            for (std::size_t i = 0; i < keep; ++i) survivors.push_back(timed[i].second);
            const int64_t scaled = static_cast<int64_t>(repetitions) * m_eta;
            repetitions = keep == 1 ? m_max : static_cast<int>(std::min<int64_t>(scaled, m_max));
            rung = std::move(survivors);
            for (std::size_t point : rung) { // best first: the likeliest winner is confirmed soonest
                if (result(point, repetitions).kind == RungResult::Kind::pending)
                    return Proposal{space[point], repetitions};
            }
        }
        return std::nullopt;
    }

private:
    // A failure at or below the rung's repetitions fails the point there (a
    // point that failed a cheap screen never earns a costlier one); otherwise
    // the trial with the fewest repetitions at or above the rung's decides.
    static RungResult rung_result(const PointState& point, const std::vector<Trial>& history, int repetitions) {
        const Trial* decisive = nullptr;
        for (std::size_t t : point.trials) {
            const Trial& trial = history[t];
            if (!trial.median_us && trial.repetitions <= repetitions) return {RungResult::Kind::failed};
            if (trial.repetitions >= repetitions &&
                (decisive == nullptr || trial.repetitions < decisive->repetitions)) {
                decisive = &trial;
            }
        }
        if (decisive == nullptr) return {};
        if (!decisive->median_us) return {RungResult::Kind::failed};
        return {RungResult::Kind::ok, *decisive->median_us};
    }

    int m_screen;
    int m_eta;
    int m_max;
    std::optional<int> m_initial; // nullopt: every point
};

} // namespace

StrategyInfo successive_halving_info() {
    return {"successive_halving",
            "screen points cheaply, re-time the best 1/eta at eta times the repetitions, until one is confirmed",
            {{"screen_repetitions", "timing repetitions of the first screen (rung 0)", "5"},
             {"eta", "keep the best 1/eta of each rung; repetitions grow eta-fold (>= 2)", "3"},
             {"max_repetitions", "repetitions of the final confirmation", "45"},
             {"initial", "points screened at rung 0: 'all' or a count of random points", "all"}}};
}

std::unique_ptr<Strategy> make_successive_halving(const OptionReader& options) {
    const int screen = options.integer("screen_repetitions", 1, k_max_repetitions);
    const int eta = options.integer("eta", 2, std::numeric_limits<int>::max());
    const int max = options.integer("max_repetitions", 1, k_max_repetitions);
    if (max < screen) options.fail("max_repetitions", fmt::format("at least screen_repetitions ({})", screen));
    std::optional<int> initial;
    if (options.text("initial") != "all") {
        try {
            initial = options.integer("initial", 1, std::numeric_limits<int>::max());
        } catch (const InputError&) {
            options.fail("initial", "'all' or an integer >= 1");
        }
    }
    return std::make_unique<SuccessiveHalving>(screen, eta, max, initial);
}

} // namespace nightshift::research::detail
