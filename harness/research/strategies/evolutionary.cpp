// evolutionary: a steady-state genetic search over the knob space. The
// population is the `population` fastest points in the history, whoever
// evaluated them (a warm start seeds it; random points fill it when the
// history is short). Each proposal is a child of tournament-selected parents:
// usually one or two knobs moved to a neighbouring value (values in ascending
// order), sometimes a uniform crossover of two parents. Children outside the
// space (constraints) or already evaluated are redrawn; when the neighbourhood
// is used up, a random point keeps the search moving. Because the population
// is recomputed from the history on every call, a child enters it as soon as
// its trial is fed back: generations overlap, and `generations` only sets the
// budget of population * generations proposals.
#include "harness/research/strategies/common.h"

#include <limits>

namespace nightshift::research::detail {

namespace {

constexpr double k_crossover_rate = 0.25;
constexpr int k_attempts = 64; // redraws before falling back to a random point

class Evolutionary final : public Strategy {
public:
    Evolutionary(int population, int generations, int repetitions)
        : m_population(population), m_budget(static_cast<int64_t>(population) * generations),
          m_repetitions(repetitions) {}

    std::string name() const override { return "evolutionary"; }

    std::optional<Proposal> next(const std::vector<kernels::Symbols>& space, const std::vector<Trial>& history,
                                 std::mt19937_64& rng) override {
        if (m_proposed >= m_budget) return std::nullopt;
        const Observations observations(space, history);
        const std::vector<std::size_t> candidates = observations.proposable_points(m_repetitions);
        if (candidates.empty()) return std::nullopt;
        ++m_proposed;

        std::vector<std::size_t> parents = observations.ranked();
        if (observations.evaluated_count() < static_cast<std::size_t>(m_population) || parents.empty()) {
            return Proposal{space[pick(candidates, rng)], m_repetitions};
        }
        if (parents.size() > static_cast<std::size_t>(m_population)) parents.resize(m_population);

        const KnobAxes axes(space);
        for (int attempt = 0; attempt < k_attempts; ++attempt) {
            const kernels::Symbols child = breed(space, parents, axes, rng);
            if (auto point = observations.find(child); point && observations.proposable(*point, m_repetitions)) {
                return Proposal{space[*point], m_repetitions};
            }
        }
        return Proposal{space[pick(candidates, rng)], m_repetitions};
    }

private:
    // Binary tournament over parents ranked fastest first: the better of two draws.
    static std::size_t tournament(const std::vector<std::size_t>& parents, std::mt19937_64& rng) {
        return parents[std::min(uniform_index(parents.size(), rng), uniform_index(parents.size(), rng))];
    }

    static kernels::Symbols breed(const std::vector<kernels::Symbols>& space, const std::vector<std::size_t>& parents,
                                  const KnobAxes& axes, std::mt19937_64& rng) {
        const std::size_t first = tournament(parents, rng);
        kernels::Symbols child = space[first];
        if (parents.size() >= 2 && uniform_real(rng) < k_crossover_rate) {
            std::size_t second = tournament(parents, rng);
            for (int retry = 0; retry < 4 && second == first; ++retry) second = tournament(parents, rng);
            for (auto& [knob, value] : child) {
                if (uniform_real(rng) < 0.5) value = space[second].at(knob);
            }
            if (child != space[first] && child != space[second]) return child;
        }
        mutate(child, axes, 1 + static_cast<int>(uniform_index(2, rng)), rng);
        return child;
    }

    // Moves `count` distinct knobs (those with a choice) one step up or down.
    static void mutate(kernels::Symbols& child, const KnobAxes& axes, int count, std::mt19937_64& rng) {
        std::vector<std::size_t> knobs;
        for (std::size_t k = 0; k < axes.knob_count(); ++k) {
            if (axes.values(k).size() >= 2 && child.contains(axes.name(k))) knobs.push_back(k);
        }
        for (int i = 0; i < count && !knobs.empty(); ++i) {
            const std::size_t slot = uniform_index(knobs.size(), rng);
            const std::size_t knob = knobs[slot];
            knobs.erase(knobs.begin() + static_cast<std::ptrdiff_t>(slot));
            const std::vector<int64_t>& values = axes.values(knob);
            int64_t& value = child.find(axes.name(knob))->second;
            const std::size_t position = axes.position(knob, value);
            const bool up = position == 0 || (position + 1 < values.size() && uniform_index(2, rng) == 1);
            value = values[up ? position + 1 : position - 1];
        }
    }

    int m_population;
    int64_t m_budget;
    int m_repetitions;
    int64_t m_proposed = 0; // own proposals: other loops' trials are free information
};

} // namespace

StrategyInfo evolutionary_info() {
    return {"evolutionary",
            "mutate (neighbouring knob values) and cross over the fastest points so far; warm-starts from the history",
            {{"population", "points kept as parents: the fastest in the history", "8"},
             {"generations", "budget: at most population * generations proposals", "10"},
             {"repetitions", "timing repetitions per point", "30"}}};
}

std::unique_ptr<Strategy> make_evolutionary(const OptionReader& options) {
    return std::make_unique<Evolutionary>(options.integer("population", 1, 1'000'000),
                                          options.integer("generations", 1, 1'000'000),
                                          options.integer("repetitions", 1, k_max_repetitions));
}

} // namespace nightshift::research::detail
