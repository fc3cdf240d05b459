// Packed weights end to end: a kernel file whose timed launches read only its
// own copies of the weights (@packed), made by its @prepack launches, must
// verify and time like any other; the planted corpus holds the prepacks that
// must not pass (prepack_partial_write.cu, prepack_reads_inputs.cu).
//
// The test kernel (data/prepack_interleaved.cu) writes nothing when its
// prepack sees anything but weights, so a passing evaluation also proves that
// x, the routing, y and plain @scratch were null there; and since every
// verification round draws new weights, that every rebind prepacked again.
#include "harness/evaluate/evaluate.h"

#include "harness/core/paths.h"
#include "harness/cuda/tests/gpu_test_support.h"
#include "harness/evaluate/tests/gpu_harness.h"
#include "verifier/moe_decode/presets.h"
#include "verifier/moe_decode/spec.h"

#include <fmt/format.h>

namespace nightshift::evaluate {
namespace {
namespace md = verifier::moe_decode;
using testing::fresh_seed;
using testing::test_compiler;

kernels::KernelFile interleaved() {
    return kernels::load_kernel_file(project_root() / "harness" / "evaluate" / "tests" / "data" /
                                     "prepack_interleaved.cu");
}

// No GPU needed: the file parses with its packed slots where the kernel
// expects them, and compiles at the shapes the evaluation uses.
TEST(PrepackGpuFiles, TestKernelParsesAndCompiles) {
    const kernels::KernelFile file = interleaved();
    file.check_symbols(md::shape_symbol_names());
    ASSERT_EQ(file.scratch.size(), 3u);
    EXPECT_TRUE(file.scratch[0].packed);
    EXPECT_FALSE(file.scratch[1].packed);
    EXPECT_TRUE(file.scratch[2].packed);
    ASSERT_EQ(file.prepacks.size(), 2u);
    EXPECT_EQ(file.launches.size(), 2u);
    for (auto [model, batch] : {std::pair{"tiny-gelu", 3}, std::pair{"gemma4-26b-a4b", 1}}) {
        md::Shape shape = md::make_shape(md::find_preset(model), batch);
        auto result = test_compiler().compile(
            compile_request(file, file.default_knobs(), md::compile_defines(shape), "sm_90", md::params_dir()));
        EXPECT_TRUE(result.ok) << model << ":\n" << result.log;
    }
}

TEST(PrepackGpu, PackedWeightsVerifyAndTime) {
    NS_REQUIRE_GPU();
    const kernels::KernelFile file = interleaved();
    auto& harness = testing::gpu_harness();
    for (auto [model, batch] : {std::pair{"tiny-gelu", 3}, std::pair{"gemma4-26b-a4b", 1}}) {
        unsigned long long seed = fresh_seed();
        auto problem = harness.spec.make_problem({.model = model, .batch = batch, .seed = seed});
        Evaluation e = harness.evaluator.evaluate(file, {}, *problem, harness.spec, harness.quick);
        EXPECT_EQ(e.status, Status::ok) << problem->label() << " seed " << seed << ": " << e.message << "\n" << e.log;
        EXPECT_GT(e.rounds_passed, 0);
        fmt::print("prepack  {:<28} {} rel_l2 {:.2e}, {:.2f} us\n", problem->label(), to_string(e.status),
                   e.comparison.rel_l2, e.median_us());
    }
}

// The candidate alone: prepacks resolved like launches, and a rebind onto
// other weights packs those (run_once against the new reference).
TEST(PrepackGpu, RebindPacksTheNewWeights) {
    NS_REQUIRE_GPU();
    const kernels::KernelFile file = interleaved();
    auto& harness = testing::gpu_harness();
    auto first = harness.spec.make_problem({.model = "tiny", .batch = 2, .seed = fresh_seed()});
    auto second = harness.spec.make_problem({.model = "tiny", .batch = 2, .seed = fresh_seed()});
    Candidate candidate(file, {}, *first, harness.spec, *testing::gpu_device(), test_compiler());
    ASSERT_EQ(candidate.prepacks().size(), 2u);
    EXPECT_EQ(candidate.prepacks()[0].entry, "pack_gate_up");
    EXPECT_EQ(candidate.prepacks()[0].grid.x, 8u * 32u); // E*I at tiny
    EXPECT_EQ(candidate.launches().size(), 2u);

    candidate.rebind(*second);
    cuda::Stream stream;
    second->poison_output(stream);
    candidate.enqueue(stream.get());
    stream.synchronize();
    auto c = verifier::compare(second->read_output(), second->reference(), second->tolerance());
    EXPECT_TRUE(c.passed) << c.reason;
}

// tc_v1's @packed wgu is empty at INTERLEAVE=0: the slot is plain and its
// no-op prepack is not run; at INTERLEAVE=1 it is packed and prepacked. Both
// compute the layer.
TEST(PrepackGpu, EmptyPackedBufferMeansNoPrepack) {
    NS_REQUIRE_GPU();
    const kernels::KernelFile file =
        kernels::load_kernel_file(project_root() / "kernels_seed" / "moe_decode" / "warp_decode_tc_v1.cu");
    auto& harness = testing::gpu_harness();
    for (auto [interleave, prepacks] : {std::pair{0, 0u}, std::pair{1, 1u}}) {
        auto problem = harness.spec.make_problem(
            {.model = "tiny", .batch = 2, .format = "int8_row", .seed = fresh_seed()});
        Candidate candidate(file, {{"INTERLEAVE", interleave}}, *problem, harness.spec, *testing::gpu_device(),
                            test_compiler());
        EXPECT_EQ(candidate.prepacks().size(), prepacks) << "INTERLEAVE=" << interleave;
        cuda::Stream stream;
        problem->poison_output(stream);
        candidate.enqueue(stream.get());
        stream.synchronize();
        auto c = verifier::compare(problem->read_output(), problem->reference(), problem->tolerance());
        EXPECT_TRUE(c.passed) << "INTERLEAVE=" << interleave << ": " << c.reason;
    }
}

} // namespace
} // namespace nightshift::evaluate
