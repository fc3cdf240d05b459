// Summary statistics of timing samples. The raw samples are kept: a median
// alone hides bimodal timings (clock changes, a second kernel on the GPU).
#pragma once

#include <vector>

namespace nightshift::timing {

struct Stats {
    std::vector<double> samples_us;
    double median_us = 0, min_us = 0, max_us = 0, mean_us = 0;
    double q1_us = 0, q3_us = 0;
    double iqr_us() const { return q3_us - q1_us; }
    double cv = 0; // standard deviation over mean
};

// Quantiles by linear interpolation between order statistics. Throws Error
// on an empty sample.
Stats summarize(std::vector<double> samples_us);

} // namespace nightshift::timing
