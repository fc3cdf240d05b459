#include "verifier/compare.h"

#include "harness/core/error.h"

#include <gtest/gtest.h>

#include <cmath>

namespace nightshift::verifier {
namespace {

TEST(Compare, ExactOutputPasses) {
    std::vector<double> ref = {1, -2, 3, -4};
    Comparison c = compare(ref, ref, {});
    EXPECT_TRUE(c.passed) << c.reason;
    EXPECT_EQ(c.rel_l2, 0);
}

TEST(Compare, ErrorIsRelativeToTheReferenceScale) {
    std::vector<double> ref = {3, 4, 0, 0};  // norm 5, rms 2.5
    std::vector<double> out = {3, 4, 0.05, 0};
    Comparison c = compare(out, ref, {.max_rel_l2 = 1e-2, .max_abs_over_rms = 5e-2});
    EXPECT_NEAR(c.rel_l2, 0.01, 1e-12);
    EXPECT_NEAR(c.max_abs_over_rms, 0.02, 1e-12);
    EXPECT_EQ(c.worst_index, 2u);
    EXPECT_TRUE(c.passed) << c.reason; // a near-zero reference element does not fail on its own
    out[2] = 0.2;
    c = compare(out, ref, {.max_rel_l2 = 1e-2, .max_abs_over_rms = 5e-2});
    EXPECT_FALSE(c.passed);
    EXPECT_NE(c.reason.find("relative L2"), std::string::npos) << c.reason;
}

TEST(Compare, OneBadElementFailsOnMaxAbsEvenWhenL2IsSmall) {
    std::vector<double> ref(10000, 1.0);
    std::vector<double> out = ref;
    out[1234] = 1.5; // rel L2 0.005, max abs / rms 0.5
    Comparison c = compare(out, ref, {.max_rel_l2 = 1e-2, .max_abs_over_rms = 5e-2});
    EXPECT_FALSE(c.passed);
    EXPECT_NE(c.reason.find("[1234]"), std::string::npos) << c.reason;
    EXPECT_NE(c.first_mismatches.find("[1234]"), std::string::npos) << c.first_mismatches;
}

TEST(Compare, UnwrittenOrNonFiniteOutputFails) {
    std::vector<double> ref = {1, 2, 3};
    std::vector<double> out = {1, 2, std::nan("")};
    Comparison c = compare(out, ref, {});
    EXPECT_FALSE(c.passed);
    EXPECT_EQ(c.non_finite, 1u);
    EXPECT_NE(c.first_mismatches.find("[2]"), std::string::npos);
    out[2] = INFINITY;
    EXPECT_FALSE(compare(out, ref, {}).passed);
}

TEST(Compare, AnAllZeroReferenceCannotJudge) {
    std::vector<double> zeros(8, 0.0);
    Comparison c = compare(zeros, zeros, {});
    EXPECT_FALSE(c.passed);
    EXPECT_NE(c.reason.find("zeros"), std::string::npos);
}

TEST(Compare, SizesMustMatch) { EXPECT_THROW(compare({1, 2}, {1}, {}), Error); }

} // namespace
} // namespace nightshift::verifier
