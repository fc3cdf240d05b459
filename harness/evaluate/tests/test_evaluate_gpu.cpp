#include "harness/evaluate/evaluate.h"

#include "harness/cuda/tests/gpu_test_support.h"
#include "harness/evaluate/tests/gpu_harness.h"
#include "harness/evaluate/tests/precompile.h"
#include "harness/evaluate/tests/seed_files.h"
#include "verifier/moe_decode/presets.h"
#include "verifier/moe_decode/spec.h"

#include <fmt/format.h>

#include <fstream>
#include <map>
#include <random>

namespace nightshift::evaluate {
namespace {
namespace md = verifier::moe_decode;
using testing::gpu_device;
using testing::test_compiler;

using testing::fresh_seed;

using testing::GpuHarness;
GpuHarness& harness() { return testing::gpu_harness(); }

std::string knobs_text(const kernels::Symbols& knobs) {
    std::string text;
    for (const auto& [name, value] : knobs) text += fmt::format("{}={} ", name, value);
    return text;
}

Evaluation run(const kernels::KernelFile& file, verifier::Problem& problem, const kernels::Symbols& knobs = {}) {
    return harness().evaluator.evaluate(file, knobs, problem, harness().spec, harness().quick);
}

// Adds what evaluating `file` at `knobs` on `request` compiles to `requests`.
void add_compiles(std::vector<cuda::CompileRequest>& requests, const kernels::KernelFile& file,
                  const kernels::Symbols& knobs, const verifier::ProblemRequest& request) {
    auto more = testing::evaluation_compiles(file, knobs, request, harness().spec, gpu_device()->info().arch());
    requests.insert(requests.end(), more.begin(), more.end());
}

// Every seed verifies at every preset's small shapes, on fresh inputs, with
// odd batch sizes; its error is printed so a drift shows in the log.
TEST(SeedKernelsGpu, EverySeedVerifiesAtEveryPreset) {
    NS_REQUIRE_GPU();
    auto files = testing::moe_decode_seed_files();
    std::vector<kernels::KernelFile> seeds;
    for (const auto& path : files) seeds.push_back(kernels::load_kernel_file(path));
    std::vector<cuda::CompileRequest> compiles;
    for (const auto& preset : md::presets())
        for (int batch : {1, 3, 16})
            for (const auto& file : seeds) add_compiles(compiles, file, {}, {.model = preset.name, .batch = batch});
    testing::precompile(compiles);
    for (const auto& preset : md::presets()) {
        unsigned long long seed = fresh_seed();
        for (int batch : {1, 3, 16}) {
            auto problem = harness().spec.make_problem({.model = preset.name, .batch = batch, .seed = seed});
            for (const auto& file : seeds) {
                Evaluation e = run(file, *problem);
                EXPECT_EQ(e.status, Status::ok) << file.path << " on " << problem->label() << " seed " << seed << ": "
                                                << e.message << "\n" << e.log;
                fmt::print("{:<24} {:<32} rel_l2 {:.2e} max/rms {:.2e}\n", std::filesystem::path(file.path).filename().string(),
                           problem->label(), e.comparison.rel_l2, e.comparison.max_abs_over_rms);
            }
        }
    }
}

// The honest seeds must never be rejected: 1,000 verification rounds on
// fresh seeds (every distribution and held-out shape the spec lists), no false
// rejection allowed.
TEST(SeedKernelsGpu, HonestSeedsPassAThousandVerificationRoundsOnFreshSeeds) {
    NS_REQUIRE_GPU();
    EvaluateOptions verify_only{.timing = {.warmup = 0, .repetitions = 1}, .time_speed_of_light = false};
    const char* models[] = {"tiny", "tiny-gelu", "gemma4-26b-a4b", "olmoe-1b-7b"};
    auto model_of = [&](int evaluation) { return models[evaluation % 4]; };
    auto batch_of = [](int evaluation) { return 1 + (evaluation * 7) % 24; };
    std::vector<cuda::CompileRequest> compiles;
    for (const auto& path : testing::moe_decode_seed_files()) {
        auto file = kernels::load_kernel_file(path);
        for (int evaluation = 0; evaluation < 24; ++evaluation) // the (model, batch) cycle repeats every 24
            add_compiles(compiles, file, {}, {.model = model_of(evaluation), .batch = batch_of(evaluation)});
    }
    testing::precompile(compiles);
    for (const auto& path : testing::moe_decode_seed_files()) {
        auto file = kernels::load_kernel_file(path);
        int rounds = 0, evaluations = 0;
        while (rounds < 1000) {
            const char* model = model_of(evaluations);
            int batch = batch_of(evaluations);
            auto problem = harness().spec.make_problem({.model = model, .batch = batch, .seed = fresh_seed()});
            Evaluation e = harness().evaluator.evaluate(file, {}, *problem, harness().spec, verify_only);
            ASSERT_EQ(e.status, Status::ok) << path << " falsely rejected on " << problem->label() << " (verification seed "
                                            << e.verification_seed << "): " << e.message;
            ASSERT_GE(e.rounds_passed, 7);
            rounds += e.rounds_passed;
            ++evaluations;
        }
        fmt::print("{}: {} rounds in {} evaluations, 0 rejected\n", path.filename().string(), rounds, evaluations);
    }
}

TEST(SeedKernelsGpu, EverySeedVerifiesOnSkewedRoutingAndEveryKnobPoint) {
    NS_REQUIRE_GPU();
    // Large knob spaces are sampled: 24 points at a fixed stride from an
    // offset that changes from run to run, so that runs together cover the
    // space; the whole space is the loops' job, not the suite's. (Before the
    // compiles ran in parallel, 24 points of 8 seeds took 311 s here.)
    struct Case {
        kernels::KernelFile file;
        const char* model;
        const char* distribution;
        std::vector<kernels::Symbols> points;
    };
    std::vector<Case> cases;
    std::vector<cuda::CompileRequest> compiles;
    for (const auto& path : testing::moe_decode_seed_files()) {
        auto file = kernels::load_kernel_file(path);
        auto space = file.knob_space();
        const std::size_t stride = space.size() > 24 ? (space.size() + 23) / 24 : 1;
        for (const char* model : {"tiny-gelu", "gemma4-26b-a4b"}) {
            for (const char* distribution : {"zipf", "identical"}) {
                Case c{file, model, distribution, {}};
                for (std::size_t i = fresh_seed() % stride; i < space.size(); i += stride) {
                    c.points.push_back(space[i]);
                    add_compiles(compiles, file, space[i], {.model = model, .batch = 37});
                }
                cases.push_back(std::move(c));
            }
        }
    }
    testing::precompile(compiles);
    for (const auto& c : cases) {
        auto problem = harness().spec.make_problem(
            {.model = c.model, .batch = 37, .seed = fresh_seed(), .distribution = c.distribution});
        for (const auto& knobs : c.points) {
            Evaluation e;
            try {
                e = run(c.file, *problem, knobs);
            } catch (const std::exception& error) { // a fault: the context is lost, name the point
                FAIL() << c.file.path << " " << problem->label() << " " << c.distribution << " knobs "
                       << knobs_text(knobs) << ": " << error.what();
            }
            if (e.status == Status::rejected) continue; // a @constrain excludes this point here
            EXPECT_EQ(e.status, Status::ok) << c.file.path << " " << problem->label() << " " << c.distribution
                                            << " knobs " << knobs_text(knobs) << ": " << e.message;
        }
    }
}

// The seeds that read every weight format (warp_decode_v2, warp_decode_tc_v1):
// their error against the dequantized reference is a bf16 kernel's, their
// error against the bf16 model is what the format costs, and fewer bits cost more.
TEST(SeedKernelsGpu, EveryFormatSeedVerifiesInEveryFormat) {
    NS_REQUIRE_GPU();
    const char* models[] = {"tiny", "tiny-gelu", "gemma4-26b-a4b"};
    const char* formats[] = {"bf16", "int8_row", "fp8_e4m3", "int4_g128"};
    std::vector<cuda::CompileRequest> compiles;
    for (const auto& path : testing::moe_decode_seed_files()) {
        auto file = kernels::load_kernel_file(path);
        if (!file.supports_format("int4_g128")) continue;
        for (const char* model : models)
            for (const char* format : formats) add_compiles(compiles, file, {}, {.model = model, .batch = 4, .format = format});
    }
    testing::precompile(compiles);
    int files = 0;
    for (const auto& path : testing::moe_decode_seed_files()) {
        auto file = kernels::load_kernel_file(path);
        if (!file.supports_format("int4_g128")) continue;
        ++files;
        for (const char* model : models) {
            unsigned long long seed = fresh_seed();
            std::map<std::string, double> model_error;
            for (const char* format : formats) {
                auto problem =
                    harness().spec.make_problem({.model = model, .batch = 4, .format = format, .seed = seed});
                Evaluation e = run(file, *problem);
                ASSERT_EQ(e.status, Status::ok) << path << " " << problem->label() << ": " << e.message << "\n" << e.log;
                EXPECT_LT(e.comparison.rel_l2, 5e-3) << path << " " << problem->label();
                model_error[format] = e.model_rel_l2;
                fmt::print("{} {:<32} rel_l2 {:.2e} vs bf16 model {:.2e} ({:.1f} us)\n", path.filename().string(),
                           problem->label(), e.comparison.rel_l2, e.model_rel_l2, e.median_us());
            }
            EXPECT_LT(model_error["bf16"], model_error["int8_row"]) << path << " " << model;
            EXPECT_LT(model_error["int8_row"], model_error["int4_g128"]) << path << " " << model;
            EXPECT_LT(model_error["fp8_e4m3"], model_error["int4_g128"]) << path << " " << model;
        }
    }
    EXPECT_GE(files, 2) << "warp_decode_v2 and warp_decode_tc_v1 read every format";
}

// precompile() compiles what an evaluation asks for, so the evaluation finds
// its cubin in the cache; a knob point that is not precompiled does not.
TEST(PrecompileGpu, AnEvaluationFindsWhatWasPrecompiled) {
    NS_REQUIRE_GPU();
    auto file = kernels::load_kernel_file(project_root() / "kernels_seed" / "moe_decode" / "warp_decode_tc_v1.cu");
    const verifier::ProblemRequest request{.model = "tiny-gelu", .batch = 3, .format = "int8_row", .seed = fresh_seed()};
    // A knob point no other test evaluates at this shape, so the cache is cold.
    const kernels::Symbols knobs{{"TILE", 4}, {"WARPS", 16}, {"INFLIGHT", 4}, {"OCCUPANCY", 48}, {"INTERLEAVE", 1}};
    const auto compiles = testing::evaluation_compiles(file, knobs, request, harness().spec, gpu_device()->info().arch());
    EXPECT_EQ(compiles.size(), 4u); // the timed shape, two held-out shapes, the accuracy seed
    auto problem = harness().spec.make_problem(request);
    kernels::Symbols other = knobs;
    other["INFLIGHT"] = 16;
    EXPECT_FALSE(run(file, *problem, other).compile_cached);
    testing::precompile(compiles);
    Evaluation e = run(file, *problem, knobs);
    EXPECT_EQ(e.status, Status::ok) << e.message;
    EXPECT_TRUE(e.compile_cached);
}

// Small kernels that must fail, each for its own reason.
class PlantedGpu : public ::testing::Test {
protected:
    kernels::KernelFile write(const std::string& name, const std::string& body) {
        auto dir = std::filesystem::temp_directory_path() / "ns-planted";
        std::filesystem::create_directories(dir);
        auto path = dir / name;
        std::ofstream(path) << body;
        return kernels::load_kernel_file(path);
    }
};

// Right everywhere but the last element, which stays poisoned.
const char* k_unwritten_tail = R"(// @op moe_decode
// @formats bf16
// @launch copy grid=(T) block=(256)
#include "params.h"
extern "C" __global__ void copy(const MoeDecodeParams p) {
    // writes x into y: wrong values AND a skipped final element
    for (int h = threadIdx.x; h < p.H; h += blockDim.x) {
        if (blockIdx.x == p.T - 1 && h == p.H - 1) continue;
        p.y[blockIdx.x * p.H + h] = p.x[blockIdx.x * p.H + h];
    }
}
)";

TEST_F(PlantedGpu, AnUnwrittenElementIsAWrongAnswer) {
    NS_REQUIRE_GPU();
    auto file = write("unwritten_tail.cu", k_unwritten_tail);
    auto problem = harness().spec.make_problem({.model = "tiny", .batch = 2, .seed = fresh_seed()});
    Evaluation e = run(file, *problem);
    EXPECT_EQ(e.status, Status::wrong_answer);
    EXPECT_NE(e.message.find("1 of "), std::string::npos) << e.message; // exactly one element unwritten
    EXPECT_NE(e.message.find("NaN/Inf"), std::string::npos) << e.message;
}

TEST_F(PlantedGpu, ACompileErrorIsData) {
    NS_REQUIRE_GPU();
    auto file = write("broken.cu", "// @op moe_decode\n// @launch k grid=(1) block=(32)\n#include \"params.h\"\n"
                                   "extern \"C\" __global__ void k(const MoeDecodeParams p) { p.y[0] = nope; }\n");
    auto problem = harness().spec.make_problem({.model = "tiny", .batch = 1, .seed = fresh_seed()});
    Evaluation e = run(file, *problem);
    EXPECT_EQ(e.status, Status::compile_error);
    EXPECT_NE(e.log.find("nope"), std::string::npos) << e.log;
}

TEST_F(PlantedGpu, LaunchesBeyondDeviceLimitsAreRejectedBeforeRunning) {
    NS_REQUIRE_GPU();
    auto problem = harness().spec.make_problem({.model = "tiny", .batch = 1, .seed = fresh_seed()});
    auto threads = write("threads.cu", "// @op moe_decode\n// @launch k grid=(1) block=(2048)\n#include \"params.h\"\n"
                                       "extern \"C\" __global__ void k(const MoeDecodeParams p) {}\n");
    Evaluation e = run(threads, *problem);
    EXPECT_EQ(e.status, Status::rejected);
    EXPECT_NE(e.message.find("threads"), std::string::npos) << e.message;

    auto shared = write("shared.cu", "// @op moe_decode\n// @launch k grid=(1) block=(32) smem=(1024*1024)\n"
                                     "#include \"params.h\"\nextern \"C\" __global__ void k(const MoeDecodeParams p) {}\n");
    e = run(shared, *problem);
    EXPECT_EQ(e.status, Status::rejected);
    EXPECT_NE(e.message.find("shared memory"), std::string::npos) << e.message;

    auto constrained = write("constrained.cu", "// @op moe_decode\n// @constrain H % 4096 == 0\n"
                                               "// @launch k grid=(1) block=(32)\n#include \"params.h\"\n"
                                               "extern \"C\" __global__ void k(const MoeDecodeParams p) {}\n");
    e = run(constrained, *problem);
    EXPECT_EQ(e.status, Status::rejected);
    EXPECT_NE(e.message.find("@constrain"), std::string::npos) << e.message;
}

// 40 KB of static and 16 KB of dynamic shared memory: under 48 KB each, over
// it together, so the launch needs the opt-in although its dynamic part alone
// would not. It copies x to y: a wrong answer, which means it ran.
const char* k_static_plus_dynamic_shared = R"(// @op moe_decode
// @formats bf16
// @launch copy grid=(T) block=(256) smem=16*1024
#include "params.h"
extern "C" __global__ void copy(const MoeDecodeParams p) {
    __shared__ ns_bf16 fixed[20 * 1024];
    extern __shared__ ns_bf16 dynamic_part[];
    for (int h = threadIdx.x; h < p.H; h += blockDim.x) {
        fixed[h] = p.x[blockIdx.x * p.H + h];
        dynamic_part[h] = fixed[h];
    }
    __syncthreads();
    for (int h = threadIdx.x; h < p.H; h += blockDim.x) p.y[blockIdx.x * p.H + h] = dynamic_part[h];
}
)";

TEST_F(PlantedGpu, StaticPlusDynamicSharedMemoryPast48KBLaunches) {
    NS_REQUIRE_GPU();
    auto file = write("static_plus_dynamic.cu", k_static_plus_dynamic_shared);
    auto problem = harness().spec.make_problem({.model = "tiny", .batch = 2, .seed = fresh_seed()});
    Evaluation e = run(file, *problem);
    EXPECT_EQ(e.status, Status::wrong_answer) << e.message;
}

} // namespace
} // namespace nightshift::evaluate
