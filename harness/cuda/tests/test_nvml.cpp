#include "harness/cuda/nvml.h"

#include <gtest/gtest.h>

namespace nightshift::cuda {
namespace {

TEST(Nvml, ThrottledMeansTheGpuSlowedItself) {
    EXPECT_FALSE(throttled(0));
    EXPECT_FALSE(throttled(clock_reason::gpu_idle | clock_reason::applications_clocks_setting));
    EXPECT_TRUE(throttled(clock_reason::sw_power_cap));
    EXPECT_TRUE(throttled(clock_reason::hw_thermal_slowdown | clock_reason::gpu_idle));
}

TEST(Nvml, ReasonsAreNamed) {
    EXPECT_EQ(describe_clock_reasons(0), "");
    EXPECT_EQ(describe_clock_reasons(clock_reason::sw_power_cap | clock_reason::hw_slowdown), "sw_power_cap, hw_slowdown");
    EXPECT_EQ(describe_clock_reasons(0x1000), "other 0x1000");
}

// Without NVML (or without that GPU) a reader says why and samples nothing.
TEST(Nvml, AMissingGpuIsAReasonNotAnError) {
    ClockReader reader("0000:FF:1F.7");
    EXPECT_FALSE(reader.sample().has_value());
    EXPECT_FALSE(reader.why_unavailable().empty());
}

} // namespace
} // namespace nightshift::cuda
