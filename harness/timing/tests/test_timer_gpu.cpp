#include "harness/timing/timer.h"

#include "harness/cuda/tests/gpu_test_support.h"

namespace nightshift::timing {
namespace {
using testing::gpu_device;
using testing::test_compiler;

// The timer cannot report a read faster than the memory can deliver it, and a
// read of twice the bytes takes longer. These catch events recorded on the
// wrong stream or a flush that does not run; they are not performance targets.
TEST(TimerGpu, ReadTimesArePhysical) {
    NS_REQUIRE_GPU();
    Timer timer(*gpu_device(), test_compiler());
    CopyBandwidth copy = timer.copy_bandwidth(/*remeasure=*/true);
    EXPECT_GT(copy.gb_per_s, 100.0);
    EXPECT_LT(copy.gb_per_s, 20000.0);

    TimingOptions options{.warmup = 2, .repetitions = 10};
    std::size_t bytes = std::size_t{256} << 20;
    Stats one = timer.time_read(bytes, options);
    Stats two = timer.time_read(2 * bytes, options);
    EXPECT_EQ(one.samples_us.size(), 10u);
    double one_gbps = static_cast<double>(bytes) / (one.median_us * 1e3);
    EXPECT_LT(one_gbps, 1.3 * copy.gb_per_s) << "a cold read faster than the copy bandwidth allows";
    EXPECT_GT(two.median_us, 1.5 * one.median_us);
    EXPECT_LE(one.min_us, one.median_us);
}

} // namespace
} // namespace nightshift::timing
