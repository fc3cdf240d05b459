#include "harness/cuda/buffer.h"
#include "harness/cuda/compiler.h"
#include "harness/cuda/module.h"
#include "harness/cuda/stream.h"
#include "harness/cuda/tests/gpu_test_support.h"

#include <numeric>

namespace nightshift::cuda {
namespace {

using testing::gpu_device;
using testing::test_compiler;

const char* k_scale_source = R"(
extern "C" __global__ void scale(const float* in, float* out, int n, float factor) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = in[i] * factor;
}
)";

TEST(DeviceGpu, ReportsAPlausibleDevice) {
    NS_REQUIRE_GPU();
    const DeviceInfo& info = gpu_device()->info();
    EXPECT_FALSE(info.name.empty());
    EXPECT_GE(info.compute_major, 7);
    EXPECT_GT(info.sm_count, 0);
    EXPECT_GT(info.l2_bytes, std::size_t{1} << 20);
    EXPECT_GT(info.total_memory_bytes, std::size_t{1} << 30);
    EXPECT_GE(info.driver_version, 12000);
}

TEST(DeviceGpu, CompilesLoadsAndLaunchesThroughTheDriver) {
    NS_REQUIRE_GPU();
    auto compiled = test_compiler().compile({.name = "scale.cu",
                                             .source = k_scale_source,
                                             .arch = gpu_device()->info().arch(),
                                             .options = {},
                                             .include_dirs = {}});
    ASSERT_TRUE(compiled.ok) << compiled.log;
    Module module(compiled.cubin);
    Function scale = module.function("scale");
    EXPECT_GT(scale.attributes().registers, 0);

    const int n = 1000; // not a multiple of the block: the bound check matters
    std::vector<float> host(n);
    std::iota(host.begin(), host.end(), 1.0f);
    DeviceBuffer in(n * sizeof(float)), out(n * sizeof(float));
    in.upload(host);
    Stream stream;
    out.fill_bytes(0xff, stream.get()); // NaN poison
    CUdeviceptr in_ptr = in.ptr(), out_ptr = out.ptr();
    int count = n;
    float factor = -2.5f;
    void* args[] = {&in_ptr, &out_ptr, &count, &factor};
    launch(scale, {(n + 127) / 128, 1, 1}, {128, 1, 1}, 0, stream.get(), args);
    stream.synchronize();
    auto result = out.download<float>();
    for (int i = 0; i < n; ++i) ASSERT_EQ(result[static_cast<std::size_t>(i)], host[static_cast<std::size_t>(i)] * factor) << i;
}

// With the driver up, NVRTC's compute cache would serve the second of two
// programs with the same PTX (a define the code does not use) without
// running ptxas: no registers, and module-scope variables unseen. Every
// compile must still carry ptxas's report.
TEST(DeviceGpu, CompilesAfterTheDriverInitializesStillReportResources) {
    NS_REQUIRE_GPU();
    const Compiler compiler; // no disk cache: NVRTC runs every time
    const char* source = R"(
__device__ int calls[4];
extern "C" __global__ void count(int* out) { out[threadIdx.x] = atomicAdd(&calls[0], 1); }
)";
    for (int unused = 1; unused <= 3; ++unused) {
        auto compiled = compiler.compile({.name = "count.cu",
                                          .source = source,
                                          .arch = gpu_device()->info().arch(),
                                          .options = {"-DUNUSED=" + std::to_string(unused)},
                                          .include_dirs = {}});
        ASSERT_TRUE(compiled.ok) << compiled.log;
        ASSERT_EQ(compiled.entries.size(), 1u) << "compile " << unused << ": no ptxas report\n" << compiled.log;
        EXPECT_GT(compiled.entries[0].registers, 0) << "compile " << unused;
        EXPECT_EQ(compiled.global_bytes, 16) << "compile " << unused;
    }
}

TEST(DeviceGpu, ARefusedLaunchIsATypedErrorNamingTheCall) {
    NS_REQUIRE_GPU();
    auto compiled = test_compiler().compile(
        {.name = "scale.cu", .source = k_scale_source, .arch = gpu_device()->info().arch(), .options = {}, .include_dirs = {}});
    ASSERT_TRUE(compiled.ok);
    Module module(compiled.cubin);
    Function scale = module.function("scale");
    DeviceBuffer buffer(64);
    CUdeviceptr ptr = buffer.ptr();
    int count = 0;
    float factor = 1;
    void* args[] = {&ptr, &ptr, &count, &factor};
    Stream stream;
    try {
        launch(scale, {1, 1, 1}, {4096, 1, 1}, 0, stream.get(), args); // more threads than any block may have
        FAIL() << "a 4096-thread block launched";
    } catch (const DriverError& e) {
        EXPECT_NE(std::string(e.what()).find("cuLaunchKernel"), std::string::npos) << e.what();
    }
}

TEST(DeviceGpu, AMissingEntryIsADriverError) {
    NS_REQUIRE_GPU();
    auto compiled = test_compiler().compile(
        {.name = "scale.cu", .source = k_scale_source, .arch = gpu_device()->info().arch(), .options = {}, .include_dirs = {}});
    ASSERT_TRUE(compiled.ok);
    Module module(compiled.cubin);
    EXPECT_THROW(module.function("no_such_entry"), DriverError);
}

} // namespace
} // namespace nightshift::cuda
