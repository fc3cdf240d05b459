#include "harness/replay/replay.h"

#include "harness/core/paths.h"
#include "harness/cuda/tests/gpu_test_support.h"
#include "harness/evaluate/candidate.h"
#include "harness/kernels/kernel_file.h"
#include "verifier/moe_decode/presets.h"
#include "verifier/moe_decode/spec.h"

#include <gtest/gtest.h>

namespace nightshift::replay {
namespace {

namespace md = verifier::moe_decode;

// A record of warp_decode_v1 at Gemma 4 B=8, as export writes one, with the
// compile options NVRTC gets on this machine and the expert-centric baseline.
exports::RecordedExperiment warp_decode_record(const cuda::Device& device) {
    exports::RecordedExperiment r;
    r.id = 1;
    r.status = "ok";
    r.evaluator = "gpu";
    r.problem = {"moe_decode", "gemma4-26b-a4b", 8, "bf16", "uniform"};
    r.kernel_path = (project_root() / "kernels_seed/moe_decode/warp_decode_v1.cu").string();
    r.kernel_source = read_text_file(r.kernel_path);
    r.knobs = {{"WARPS", 4}, {"ROWS_PER_WARP", 1}};
    kernels::KernelFile file = kernels::parse_kernel_file(r.kernel_path, r.kernel_source);
    md::Shape shape = md::make_shape(md::find_preset("gemma4-26b-a4b"), 8);
    auto request = evaluate::compile_request(file, file.resolve_knobs(r.knobs.get<kernels::Symbols>()),
                                             md::compile_defines(shape), device.info().arch(), md::params_dir());
    r.compile_options = {"--gpu-architecture=" + request.arch, "--std=c++17", "-Xptxas=-v"};
    for (const auto& dir : request.include_dirs) r.compile_options.push_back("-I" + dir.string());
    r.compile_options.insert(r.compile_options.end(), request.options.begin(), request.options.end());
    r.baseline_path = (project_root() / "kernels_seed/moe_decode/expert_centric_v1.cu").string();
    r.baseline_source = read_text_file(*r.baseline_path);
    r.input_seed = testing::fresh_seed();
    r.warmup = 3;
    r.repetitions = 20;
    const auto& info = device.info();
    r.device = info.name;
    r.driver = cuda::driver_version_string(info.driver_version);
    r.nvrtc = cuda::nvrtc_version();
    return r;
}

TEST(ReplayGpu, ARecordReplaysOnTheSameGpuWithinItsNoise) {
    NS_REQUIRE_GPU();
    exports::RecordedExperiment recorded = warp_decode_record(*testing::gpu_device());
    ReplayOutcome first = replay(recorded, {});
    EXPECT_TRUE(first.environment_changes.empty());
    ASSERT_EQ(first.recorded_seeds.status, evaluate::Status::ok) << first.recorded_seeds.message;
    ASSERT_EQ(first.fresh_seeds.status, evaluate::Status::ok) << first.fresh_seeds.message;
    EXPECT_NE(first.fresh_input_seed, first.input_seed);
    EXPECT_GT(first.recorded_seeds.speedup, 0) << "timed interleaved with the baseline";

    // Record what was just measured; a second replay must find it again.
    recorded.median_us = first.recorded_seeds.timing.median_us;
    recorded.cv = first.recorded_seeds.timing.cv;
    recorded.speedup = first.recorded_seeds.speedup;
    ReplayOutcome second = replay(recorded, {});
    EXPECT_EQ(second.verdict, Verdict::reproduced) << describe(recorded, second, "test");
    std::string text = describe(recorded, second, "test");
    EXPECT_NE(text.find("same GPU, driver and NVRTC as recorded"), std::string::npos) << text;

    // Another GPU named in the record is said before the numbers.
    recorded.device = "NVIDIA A100-SXM4-80GB";
    ReplayOutcome moved = replay(recorded, {.gpu = 0, .repetitions = 10});
    text = describe(recorded, moved, "test");
    EXPECT_LT(text.find("NOT THE RECORDED ENVIRONMENT"), text.find("median us")) << text;
}

TEST(ReplayGpu, AWrongKernelFailsNow) {
    NS_REQUIRE_GPU();
    exports::RecordedExperiment recorded = warp_decode_record(*testing::gpu_device());
    // The recorded source, edited to skip the last token: replay must catch it.
    std::string& source = recorded.kernel_source;
    auto at = source.find("extern \"C\" __global__ void __launch_bounds__(32 * WARPS) down(const MoeDecodeParams p)");
    ASSERT_NE(at, std::string::npos);
    auto body = source.find('{', at);
    source.insert(body + 1, "\n    if (blockIdx.x == NS_T - 1) return;\n");
    ReplayOutcome outcome = replay(recorded, {});
    EXPECT_EQ(outcome.verdict, Verdict::fails_now) << describe(recorded, outcome, "test");
}

} // namespace
} // namespace nightshift::replay
