#include "harness/timing/stats.h"

#include "harness/core/error.h"

#include <gtest/gtest.h>

namespace nightshift::timing {
namespace {

TEST(Stats, QuantilesInterpolateAndSamplesKeepTheirOrder) {
    Stats s = summarize({5, 1, 4, 2, 3});
    EXPECT_DOUBLE_EQ(s.median_us, 3);
    EXPECT_DOUBLE_EQ(s.min_us, 1);
    EXPECT_DOUBLE_EQ(s.max_us, 5);
    EXPECT_DOUBLE_EQ(s.q1_us, 2);
    EXPECT_DOUBLE_EQ(s.q3_us, 4);
    EXPECT_DOUBLE_EQ(s.iqr_us(), 2);
    EXPECT_DOUBLE_EQ(s.mean_us, 3);
    EXPECT_NEAR(s.cv, 1.5811388300841898 / 3, 1e-12); // sample standard deviation
    EXPECT_EQ(s.samples_us, (std::vector<double>{5, 1, 4, 2, 3}));

    Stats even = summarize({10, 20, 30, 40});
    EXPECT_DOUBLE_EQ(even.median_us, 25);
    EXPECT_DOUBLE_EQ(even.q1_us, 17.5);
}

TEST(Stats, OneSampleAndNone) {
    Stats one = summarize({7});
    EXPECT_DOUBLE_EQ(one.median_us, 7);
    EXPECT_DOUBLE_EQ(one.cv, 0);
    EXPECT_THROW(summarize({}), Error);
}

} // namespace
} // namespace nightshift::timing
