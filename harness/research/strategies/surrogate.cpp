// surrogate: model-based search. After `warmup` random points, each proposal
// fits a model of log(median_us) over the knobs to every point evaluated so
// far (its own and other loops') and proposes the point the model predicts
// fastest; with probability `explore` it proposes a random point instead, so
// a wrong model cannot trap the search.
//
// The model is ridge regression, chosen over k-nearest-neighbours because
// kernel timings are smooth in tile sizes, thread counts and stages: a
// quadratic can point at an untried optimum between or beyond the points
// seen, where nearest neighbours only echo the best point so far. Features per
// knob: x, its value's rank in ascending order mapped onto [-1, 1] (so powers
// of two are evenly spaced, as their effect usually is), and x² for the bowl;
// x_i·x_j for each pair of knobs; and a one-hot per value when a knob has more
// than two, for effects no quadratic captures (a bank-conflicting width). The
// smooth terms carry a small ridge penalty, the one-hot terms a large one, so
// with few points the model is a bowl and per-value quirks must be earned.
// The target is log(median_us): knob effects multiply, and errors become
// relative, which is how speedups are judged. Failed points enter as bad, at
// the slowest success plus ln 2, so the model learns to avoid regions that
// fail (too much shared memory, too many registers); they are never proposed.
// The ridge keeps the fit defined with fewer points than features, which is
// always so early on.
#include "harness/research/strategies/common.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace nightshift::research::detail {

namespace {

// Ridge penalties, in units of the features below (all within [-1, 1]): the
// smooth terms are nearly free; the per-value terms must earn their weight,
// so with few points the model stays a bowl and falls back on it.
constexpr double k_ridge_smooth = 0.01;
constexpr double k_ridge_per_value = 1.0;
constexpr double k_failure_penalty = 0.6931471805599453; // ln 2: twice the slowest success

// Maps a point to its feature vector; fixed for one space.
class Features {
public:
    explicit Features(const std::vector<kernels::Symbols>& space) : m_axes(space) {
        for (std::size_t k = 0; k < m_axes.knob_count(); ++k) {
            const std::size_t count = m_axes.values(k).size();
            if (count >= 2) m_knobs.push_back(k); // a fixed knob explains nothing
        }
        m_penalty.push_back(0.0); // the intercept
        for (std::size_t k : m_knobs) {
            m_penalty.insert(m_penalty.end(), 2, k_ridge_smooth);
            if (m_axes.values(k).size() > 2)
                m_penalty.insert(m_penalty.end(), m_axes.values(k).size(), k_ridge_per_value);
        }
        if (m_knobs.size() >= 2)
            m_penalty.insert(m_penalty.end(), m_knobs.size() * (m_knobs.size() - 1) / 2, k_ridge_smooth);
    }

    std::size_t size() const { return m_penalty.size(); }
    double penalty(std::size_t feature) const { return m_penalty[feature]; }

    std::vector<double> operator()(const kernels::Symbols& point) const {
        std::vector<double> f;
        f.reserve(m_penalty.size());
        f.push_back(1.0);
        std::vector<double> xs;
        for (std::size_t k : m_knobs) {
            const std::size_t count = m_axes.values(k).size();
            const std::size_t p = m_axes.position(k, point.at(m_axes.name(k)));
            const double x = 2.0 * static_cast<double>(p) / static_cast<double>(count - 1) - 1.0;
            xs.push_back(x);
            f.push_back(x);
            f.push_back(x * x);
            if (count > 2) {
                for (std::size_t v = 0; v < count; ++v) f.push_back(v == p ? 1.0 : 0.0);
            }
        }
        for (std::size_t i = 0; i < xs.size(); ++i) {
            for (std::size_t j = i + 1; j < xs.size(); ++j) f.push_back(xs[i] * xs[j]);
        }
        return f;
    }

private:
    KnobAxes m_axes;
    std::vector<std::size_t> m_knobs; // knobs with a choice
    std::vector<double> m_penalty;    // per feature
};

// Solves A w = b for symmetric positive definite A (n x n, row-major) by Cholesky.
std::vector<double> solve_spd(std::vector<double> a, std::vector<double> b, std::size_t n) {
    for (std::size_t j = 0; j < n; ++j) {
        double d = a[j * n + j];
        for (std::size_t k = 0; k < j; ++k) d -= a[j * n + k] * a[j * n + k];
        d = std::sqrt(std::max(d, 1e-12));
        a[j * n + j] = d;
        for (std::size_t i = j + 1; i < n; ++i) {
            double s = a[i * n + j];
            for (std::size_t k = 0; k < j; ++k) s -= a[i * n + k] * a[j * n + k];
            a[i * n + j] = s / d;
        }
    }
    for (std::size_t i = 0; i < n; ++i) { // L y = b
        for (std::size_t k = 0; k < i; ++k) b[i] -= a[i * n + k] * b[k];
        b[i] /= a[i * n + i];
    }
    for (std::size_t i = n; i-- > 0;) { // Lᵀ w = y
        for (std::size_t k = i + 1; k < n; ++k) b[i] -= a[k * n + i] * b[k];
        b[i] /= a[i * n + i];
    }
    return b;
}

class Surrogate final : public Strategy {
public:
    Surrogate(int repetitions, int samples, int warmup, double explore)
        : m_repetitions(repetitions), m_samples(samples), m_warmup(warmup), m_explore(explore) {}

    std::string name() const override { return "surrogate"; }

    std::optional<Proposal> next(const std::vector<kernels::Symbols>& space, const std::vector<Trial>& history,
                                 std::mt19937_64& rng) override {
        if (m_proposed >= m_samples) return std::nullopt;
        const Observations observations(space, history);
        const std::vector<std::size_t> candidates = observations.proposable_points(m_repetitions);
        if (candidates.empty()) return std::nullopt;
        ++m_proposed;

        const bool warming_up =
            observations.evaluated_count() < static_cast<std::size_t>(m_warmup) || observations.ranked().empty();
        if (warming_up || uniform_real(rng) < m_explore) return Proposal{space[pick(candidates, rng)], m_repetitions};

        const Features features(space);
        const std::vector<double> weights = fit(space, observations, features);
        std::size_t best = candidates.front();
        double best_prediction = std::numeric_limits<double>::infinity();
        for (std::size_t point : candidates) { // strict < keeps the first in space order on ties
            const std::vector<double> f = features(space[point]);
            double prediction = 0;
            for (std::size_t i = 0; i < f.size(); ++i) prediction += weights[i] * f[i];
            if (prediction < best_prediction) {
                best_prediction = prediction;
                best = point;
            }
        }
        return Proposal{space[best], m_repetitions};
    }

private:
    static std::vector<double> fit(const std::vector<kernels::Symbols>& space, const Observations& observations,
                                   const Features& features) {
        double slowest = -std::numeric_limits<double>::infinity();
        for (std::size_t point : observations.ranked())
            slowest = std::max(slowest, std::log(*observations[point].median_us));

        const std::size_t n = features.size();
        std::vector<double> gram(n * n, 0.0), rhs(n, 0.0);
        for (std::size_t point = 0; point < observations.size(); ++point) {
            const PointState& state = observations[point];
            if (!state.evaluated()) continue;
            const double target = state.successful() ? std::log(*state.median_us) : slowest + k_failure_penalty;
            const std::vector<double> f = features(space[point]);
            for (std::size_t i = 0; i < n; ++i) {
                rhs[i] += f[i] * target;
                for (std::size_t j = 0; j < n; ++j) gram[i * n + j] += f[i] * f[j];
            }
        }
        for (std::size_t i = 0; i < n; ++i) gram[i * n + i] += features.penalty(i);
        return solve_spd(std::move(gram), std::move(rhs), n);
    }

    int m_repetitions;
    int m_samples;
    int m_warmup;
    double m_explore;
    int64_t m_proposed = 0; // own proposals: other loops' trials are free information
};

} // namespace

StrategyInfo surrogate_info() {
    return {"surrogate",
            "ridge regression of log(time) on the knobs; proposes the predicted-fastest untried point",
            {{"warmup", "random points before the model is trusted", "4"},
             {"explore", "probability of a random point instead of the model's pick, in [0, 1]", "0.2"},
             {"samples", "most points this strategy proposes", "64"},
             {"repetitions", "timing repetitions per point", "30"}}};
}

std::unique_ptr<Strategy> make_surrogate(const OptionReader& options) {
    return std::make_unique<Surrogate>(options.integer("repetitions", 1, k_max_repetitions),
                                       options.integer("samples", 1, std::numeric_limits<int>::max()),
                                       options.integer("warmup", 0, std::numeric_limits<int>::max()),
                                       options.real("explore", 0.0, 1.0));
}

} // namespace nightshift::research::detail
