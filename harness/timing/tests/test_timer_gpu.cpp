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

// Interleaved timing keeps the two series apart: kernels that wait 20 and
// 40 µs come back as about 20 and 40, whichever runs first.
TEST(TimerGpu, InterleavedPairsKeepTheirOwnSamples) {
    NS_REQUIRE_GPU();
    const char* source = R"(
extern "C" __global__ void wait_ns(unsigned long long ns) {
    unsigned long long start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do { asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now)); } while (now - start < ns);
}
)";
    auto compiled = test_compiler().compile(
        {.name = "wait.cu", .source = source, .arch = gpu_device()->info().arch(), .options = {}, .include_dirs = {}});
    ASSERT_TRUE(compiled.ok) << compiled.log;
    cuda::Module module(compiled.cubin);
    cuda::Function wait = module.function("wait_ns");
    auto waiting = [&](unsigned long long ns) {
        return [&wait, ns](CUstream stream) mutable {
            void* args[] = {&ns};
            cuda::launch(wait, {1, 1, 1}, {32, 1, 1}, 0, stream, args);
        };
    };
    Timer timer(*gpu_device(), test_compiler());
    auto [a, b] = timer.time_pair(waiting(20'000), waiting(40'000), {.warmup = 2, .repetitions = 15});
    EXPECT_EQ(a.samples_us.size(), 15u);
    EXPECT_EQ(b.samples_us.size(), 15u);
    EXPECT_NEAR(a.median_us, 20.0, 6.0);
    EXPECT_NEAR(b.median_us, 40.0, 6.0);
    auto [c, d] = timer.time_pair(waiting(40'000), waiting(20'000), {.warmup = 2, .repetitions = 15});
    EXPECT_NEAR(c.median_us, 40.0, 6.0);
    EXPECT_NEAR(d.median_us, 20.0, 6.0);
}

} // namespace
} // namespace nightshift::timing

namespace nightshift::timing {
namespace {

// Every timing carries the clocks NVML saw while it ran: a sample at least
// before the wait, SM and memory clocks that a running GPU reports (> 0).
TEST(TimerGpu, TimingsCarryTheClocksTheyRanAt) {
    NS_REQUIRE_GPU();
    Timer timer(*testing::gpu_device(), testing::test_compiler());
    cuda::ClockReader reader(testing::gpu_device()->info().pci_bus_id);
    if (!reader.sample()) GTEST_SKIP() << "NVML unavailable: " << reader.why_unavailable();
    Measurement m = timer.time_read(std::size_t{512} << 20, {.warmup = 2, .repetitions = 20});
    EXPECT_GE(m.clock_samples, 1);
    EXPECT_GT(m.clock_sm_mhz_min, 100);
    EXPECT_GT(m.clock_memory_mhz_min, 100);
    EXPECT_TRUE(m.clock_note.empty()) << m.clock_note;
    std::printf("read of 512 MiB: %d clock samples, SM >= %d MHz, memory >= %d MHz, reasons '%s'\n", m.clock_samples,
                m.clock_sm_mhz_min, m.clock_memory_mhz_min, cuda::describe_clock_reasons(m.clock_reasons).c_str());
}

} // namespace
} // namespace nightshift::timing
