#include "harness/timing/stats.h"

#include "harness/core/error.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace nightshift::timing {
namespace {

double quantile(const std::vector<double>& sorted, double q) {
    double position = q * static_cast<double>(sorted.size() - 1);
    auto below = static_cast<std::size_t>(std::floor(position));
    auto above = std::min(below + 1, sorted.size() - 1);
    double fraction = position - static_cast<double>(below);
    return sorted[below] + fraction * (sorted[above] - sorted[below]);
}

} // namespace

Stats summarize(std::vector<double> samples_us) {
    if (samples_us.empty()) throw Error("no timing samples to summarize");
    Stats s;
    std::vector<double> sorted = samples_us;
    std::sort(sorted.begin(), sorted.end());
    s.samples_us = std::move(samples_us);
    s.min_us = sorted.front();
    s.max_us = sorted.back();
    s.median_us = quantile(sorted, 0.5);
    s.q1_us = quantile(sorted, 0.25);
    s.q3_us = quantile(sorted, 0.75);
    s.mean_us = std::accumulate(sorted.begin(), sorted.end(), 0.0) / static_cast<double>(sorted.size());
    double variance = 0;
    for (double x : sorted) variance += (x - s.mean_us) * (x - s.mean_us);
    variance /= static_cast<double>(sorted.size() > 1 ? sorted.size() - 1 : 1);
    s.cv = s.mean_us > 0 ? std::sqrt(variance) / s.mean_us : 0;
    return s;
}

} // namespace nightshift::timing
