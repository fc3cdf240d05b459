#include "harness/cuda/buffer.h"
#include "harness/cuda/cupti.h"
#include "harness/cuda/module.h"
#include "harness/cuda/stream.h"
#include "harness/cuda/tests/gpu_test_support.h"
#include "harness/timing/timer.h"

#include <dlfcn.h>

#include <memory>

namespace nightshift::cuda {
namespace {

using testing::gpu_device;
using testing::test_compiler;

// wait_long and wait_short differ only in name, so records tell them apart.
const char* k_source = R"(
__device__ __forceinline__ unsigned long long now_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
__device__ __forceinline__ void wait_for(unsigned long long ns) {
    unsigned long long start = now_ns();
    while (now_ns() - start < ns) {
    }
}
extern "C" __global__ void wait_long(unsigned long long ns) { wait_for(ns); }
extern "C" __global__ void wait_short(unsigned long long ns) { wait_for(ns); }
extern "C" __global__ void scale(const float* __restrict__ in, float* __restrict__ out, unsigned long long n,
                                 float factor) {
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)gridDim.x * blockDim.x)
        out[i] = in[i] * factor;
}
)";

struct Kernels {
    std::unique_ptr<Module> module;
    std::unique_ptr<Function> wait_long, wait_short, scale;
};

const Kernels& kernels() {
    static const Kernels k = [] {
        auto compiled = test_compiler().compile({.name = "cupti_test_kernels.cu",
                                                 .source = k_source,
                                                 .arch = gpu_device()->info().arch(),
                                                 .options = {},
                                                 .include_dirs = {}});
        if (!compiled.ok) throw Error("test kernels do not compile:\n" + compiled.log);
        Kernels result;
        result.module = std::make_unique<Module>(compiled.cubin);
        result.wait_long = std::make_unique<Function>(result.module->function("wait_long"));
        result.wait_short = std::make_unique<Function>(result.module->function("wait_short"));
        result.scale = std::make_unique<Function>(result.module->function("scale"));
        return result;
    }();
    return k;
}

void launch_wait(const Function& function, unsigned long long ns, CUstream stream) {
    void* args[] = {&ns};
    launch(function, {1, 1, 1}, {32, 1, 1}, 0, stream, args);
}

// The harness's driver table has no cuStreamWaitEvent; the fork/join below
// resolves it the way driver_api does, for this test only.
decltype(&::cuStreamWaitEvent) stream_wait_event() {
    static auto function = [] {
        void* library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
        using GetProcAddress = CUresult (*)(const char*, void**, int, cuuint64_t, CUdriverProcAddressQueryResult*);
        auto get_proc = library ? reinterpret_cast<GetProcAddress>(dlsym(library, "cuGetProcAddress_v2")) : nullptr;
        void* pointer = nullptr;
        CUdriverProcAddressQueryResult status{};
        if (get_proc) get_proc("cuStreamWaitEvent", &pointer, CUDA_VERSION, CU_GET_PROC_ADDRESS_DEFAULT, &status);
        return reinterpret_cast<decltype(&::cuStreamWaitEvent)>(pointer);
    }();
    return function;
}

#define NS_REQUIRE_CUPTI()                                                     \
    do {                                                                       \
        NS_REQUIRE_GPU();                                                      \
        std::string ns_cupti_why_;                                             \
        ASSERT_TRUE(cupti_available(&ns_cupti_why_)) << ns_cupti_why_;         \
    } while (0)

TEST(CuptiGpu, OneCollectorAtATime) {
    NS_REQUIRE_CUPTI();
    KernelActivity activity;
    EXPECT_THROW(KernelActivity(), CuptiError) << "two collectors at once";
}

// DISABLED: on an H100 (driver 580.159.04, CUPTI 13.0) this test dies: at
// first its cuCtxSynchronize returned CUDA_ERROR_CONTEXT_IS_DESTROYED, and
// run alone the process exits silently inside it. The same collector works
// through Timer (CuptiGpu.Timer* pass, including kernels on a second stream),
// so the difference is in this test's direct use of KernelActivity; not yet
// understood. Run with --gtest_also_run_disabled_tests to reproduce.
TEST(CuptiGpu, DISABLED_KernelActivitySeesKernelsOnEveryStream) {
    NS_REQUIRE_CUPTI();
    const Kernels& k = kernels();
    Stream first, second;
    KernelActivity activity;
    activity.start();
    launch_wait(*k.wait_long, 20'000, first.get());
    launch_wait(*k.wait_short, 5'000, second.get());
    NS_CU(cuCtxSynchronize);
    std::vector<KernelRecord> records = activity.stop();
    ASSERT_EQ(records.size(), 2u);
    EXPECT_LE(records[0].start_ns, records[1].start_ns) << "sorted by start";
    const KernelRecord* long_one = records[0].name == "wait_long" ? &records[0] : &records[1];
    const KernelRecord* short_one = records[0].name == "wait_long" ? &records[1] : &records[0];
    EXPECT_EQ(long_one->name, "wait_long");
    EXPECT_EQ(short_one->name, "wait_short");
    EXPECT_NE(long_one->stream_id, short_one->stream_id);
    EXPECT_NE(long_one->correlation_id, short_one->correlation_id);
    EXPECT_GE(long_one->end_ns - long_one->start_ns, 19'000u);
    EXPECT_GE(short_one->end_ns - short_one->start_ns, 4'000u);
    EXPECT_LT(long_one->end_ns - long_one->start_ns, 20'000'000u);

    // A second collection starts empty.
    activity.start();
    launch_wait(*k.wait_short, 1'000, first.get());
    NS_CU(cuCtxSynchronize);
    records = activity.stop();
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].name, "wait_short");
}

TEST(CuptiGpu, TimerMeasuresWithCuptiAndAgreesWithEvents) {
    NS_REQUIRE_CUPTI();
    const Kernels& k = kernels();
    timing::Timer timer(*gpu_device(), test_compiler());
    const unsigned long long n = 8ull << 20; // 32 MB in, 32 MB out: tens of µs on an H100
    DeviceBuffer in(n * sizeof(float)), out(n * sizeof(float));
    in.fill_bytes(0x3f, timer.stream().get());
    CUdeviceptr in_ptr = in.ptr(), out_ptr = out.ptr();
    unsigned long long count = n;
    float factor = 0.5f;
    void* args[] = {&in_ptr, &out_ptr, &count, &factor};
    auto blocks = static_cast<unsigned>(gpu_device()->info().sm_count) * 4;

    timing::TimingOptions options{.warmup = 3, .repetitions = 30};
    timing::Measurement m =
        timer.time([&](CUstream s) { launch(*k.scale, {blocks, 1, 1}, {256, 1, 1}, 0, s, args); }, options);
    ASSERT_EQ(m.method, "cupti") << m.cupti_note;
    ASSERT_EQ(m.samples_us.size(), 30u);
    ASSERT_EQ(m.event_samples_us.size(), 30u);
    double events_median = timing::summarize(m.event_samples_us).median_us;
    // Events include the launch overhead at both ends; kernel records do not.
    EXPECT_LE(m.median_us, events_median * 1.05 + 2.0) << "cupti " << m.median_us << " events " << events_median;
    EXPECT_GE(m.median_us, 0.5 * events_median) << "cupti " << m.median_us << " events " << events_median;
    EXPECT_GT(m.min_us, 0.0);
}

TEST(CuptiGpu, TimerCountsKernelsOnASecondStream) {
    NS_REQUIRE_CUPTI();
    const Kernels& k = kernels();
    auto wait_event = stream_wait_event();
    ASSERT_NE(wait_event, nullptr) << "cuStreamWaitEvent not resolved";
    timing::Timer timer(*gpu_device(), test_compiler());
    Stream side;
    Event fork, join;
    // Fork onto `side` (30 µs there), 2 µs on the main stream, join back.
    auto work = [&](CUstream s) {
        NS_CU(cuEventRecord, fork.get(), s);
        NS_CU_CHECK(wait_event(side.get(), fork.get(), 0));
        launch_wait(*k.wait_long, 30'000, side.get());
        launch_wait(*k.wait_short, 2'000, s);
        NS_CU(cuEventRecord, join.get(), side.get());
        NS_CU_CHECK(wait_event(s, join.get(), 0));
    };
    timing::Measurement m = timer.time(work, {.warmup = 2, .repetitions = 20});
    ASSERT_EQ(m.method, "cupti") << m.cupti_note;
    double events_median = timing::summarize(m.event_samples_us).median_us;
    EXPECT_GE(m.min_us, 28.0) << "the second stream's kernel is not counted";
    EXPECT_LE(m.median_us, events_median * 1.05 + 2.0) << "cupti " << m.median_us << " events " << events_median;
}

TEST(CuptiGpu, SpeedOfLightReadIsTimedAndFlushesAreNot) {
    NS_REQUIRE_CUPTI();
    timing::Timer timer(*gpu_device(), test_compiler());
    std::size_t bytes = std::size_t{64} << 20;
    timing::Measurement m = timer.time_read(bytes, {.warmup = 2, .repetitions = 10});
    ASSERT_EQ(m.method, "cupti") << m.cupti_note;
    double events_median = timing::summarize(m.event_samples_us).median_us;
    EXPECT_LE(m.median_us, events_median * 1.05 + 2.0) << "cupti " << m.median_us << " events " << events_median;
    // Faster than 10 TB/s would be no read of 64 MB at all.
    EXPECT_GE(m.min_us, static_cast<double>(bytes) / 10e12 * 1e6);
}

} // namespace
} // namespace nightshift::cuda
