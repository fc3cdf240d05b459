#include "verifier/moe_decode/spec.h"

#include "harness/cuda/tests/gpu_test_support.h"
#include "verifier/moe_decode/reference_cpu.h"
#include "verifier/rng.h"

#include <random>

namespace nightshift::verifier::moe_decode {
namespace {
using testing::gpu_device;
using testing::test_compiler;

using testing::fresh_seed;

// The device generator and the host reproduce each other bit for bit, so the
// CPU reference sees exactly the weights the kernels read.
TEST(SpecGpu, DeviceGenerationMatchesTheHostBitForBit) {
    NS_REQUIRE_GPU();
    DeviceKernels kernels(*gpu_device(), test_compiler());
    cuda::Stream stream;
    for (const char* model : {"tiny", "gemma4-26b-a4b"}) {
        Shape shape = make_shape(find_preset(model), 5);
        unsigned long long seed = fresh_seed();
        DeviceWeights weights(shape, seed, kernels, stream);
        auto gate = weights.gate.download<std::uint16_t>();
        auto down = weights.down.download<std::uint16_t>();
        std::size_t per_expert = static_cast<std::size_t>(shape.I) * shape.H;
        for (int expert : {0, shape.E / 2, shape.E - 1}) {
            ExpertWeights host = make_expert_weights(shape, seed, expert);
            ASSERT_TRUE(std::equal(host.gate.begin(), host.gate.end(), gate.begin() + expert * per_expert))
                << model << " gate of expert " << expert;
            ASSERT_TRUE(std::equal(host.down.begin(), host.down.end(), down.begin() + expert * per_expert))
                << model << " down of expert " << expert;
        }
        cuda::DeviceBuffer x(static_cast<std::size_t>(shape.T) * shape.H * 2);
        kernels.fill_bf16(x, static_cast<unsigned long long>(shape.T) * shape.H, seed, NS_STREAM_X, x_scale_log2(), stream);
        stream.synchronize();
        EXPECT_EQ(x.download<std::uint16_t>(), make_x(shape, seed, x_scale_log2())) << model;
    }
}

// The float64 GPU reference (used for large shapes) agrees with the CPU one.
TEST(SpecGpu, GpuReferenceMatchesTheCpuReference) {
    NS_REQUIRE_GPU();
    Spec spec(*gpu_device(), test_compiler());
    struct Case { const char* model; int batch; const char* distribution; };
    for (Case c : {Case{"tiny", 7, "uniform"}, Case{"tiny-gelu", 5, "zipf"}, Case{"gemma4-26b-a4b", 2, "uniform"},
                   Case{"phi3.5-moe", 1, "uniform"}}) {
        unsigned long long seed = fresh_seed();
        auto problem = spec.make_problem({.model = c.model, .batch = c.batch, .seed = seed, .distribution = c.distribution});
        auto& gpu = dynamic_cast<GpuProblem&>(*problem);
        const auto& device_ref = gpu.reference();
        auto host_ref = reference_cpu(gpu.shape(), seed, make_x(gpu.shape(), seed, x_scale_log2()), gpu.routing());
        ASSERT_EQ(device_ref.size(), host_ref.size());
        double err2 = 0, ref2 = 0;
        for (std::size_t i = 0; i < host_ref.size(); ++i) {
            err2 += (device_ref[i] - host_ref[i]) * (device_ref[i] - host_ref[i]);
            ref2 += host_ref[i] * host_ref[i];
        }
        EXPECT_GT(ref2, 0) << c.model;
        EXPECT_LT(std::sqrt(err2 / ref2), 1e-12) << c.model << ": float64 references disagree";
    }
}

TEST(SpecGpu, BytesCountTheDistinctRoutedExperts) {
    NS_REQUIRE_GPU();
    Spec spec(*gpu_device(), test_compiler());
    auto problem = spec.make_problem({.model = "gemma4-26b-a4b", .batch = 1, .seed = fresh_seed()});
    auto& gpu = dynamic_cast<GpuProblem&>(*problem);
    EXPECT_EQ(gpu.distinct_experts(), 8);
    // 8 experts x 3 matrices x 2816 x 704 bf16 = 95.2 MB, plus x, y and routing.
    EXPECT_NEAR(problem->bytes(), 8.0 * 3 * 2816 * 704 * 2 + 2 * 2816 * 2 + 8 * 8, 1.0);
    auto identical = spec.make_problem(
        {.model = "gemma4-26b-a4b", .batch = 64, .seed = fresh_seed(), .distribution = "identical"});
    EXPECT_EQ(dynamic_cast<GpuProblem&>(*identical).distinct_experts(), 8);
}

} // namespace
} // namespace nightshift::verifier::moe_decode

namespace nightshift::verifier::moe_decode {
namespace {

// Set 1 holds other inputs of the same shape and distribution, with its own
// output buffer and reference; selecting set 0 again gives the problem back.
TEST(SpecGpu, InputSetsHoldOtherInputsAndOutputs) {
    NS_REQUIRE_GPU();
    Spec spec(*testing::gpu_device(), testing::test_compiler());
    auto problem = spec.make_problem({.model = "tiny", .batch = 3, .seed = testing::fresh_seed()});
    ASSERT_EQ(problem->input_sets(), 2);
    auto params0 = problem->params({});
    auto reference0 = problem->reference();
    problem->select_input_set(1);
    auto params1 = problem->params({});
    EXPECT_NE(params0, params1) << "set 1 must point at other buffers";
    EXPECT_NE(problem->reference(), reference0) << "set 1 must hold other inputs";
    problem->select_input_set(0);
    EXPECT_EQ(problem->params({}), params0);
    EXPECT_EQ(problem->reference(), reference0);
    EXPECT_THROW(problem->select_input_set(2), Error);
}

} // namespace
} // namespace nightshift::verifier::moe_decode
