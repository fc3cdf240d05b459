#include "harness/evaluate/candidate.h"

#include "harness/evaluate/tests/seed_files.h"
#include "verifier/moe_decode/presets.h"
#include "verifier/moe_decode/spec.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace nightshift::evaluate {
namespace {
namespace md = verifier::moe_decode;

// NVRTC must accept every seed, with no GPU, for sm_90, at every preset's
// shape: shapes are compile-time constants, so a tail bug can be a compile
// error at one preset only.
TEST(SeedKernels, EverySeedCompilesForSm90AtEveryPreset) {
    auto files = testing::moe_decode_seed_files();
    ASSERT_GE(files.size(), 2u);
    cuda::Compiler compiler;
    for (const auto& path : files) {
        auto file = kernels::load_kernel_file(path);
        EXPECT_EQ(file.op, "moe_decode");
        file.check_symbols(md::shape_symbol_names());
        for (const auto& preset : md::presets()) {
            for (int batch : {1, 64}) {
                md::Shape shape = md::make_shape(preset, batch);
                auto knobs = file.default_knobs();
                auto result = compiler.compile(
                    compile_request(file, knobs, md::compile_defines(shape), "sm_90", md::params_dir()));
                ASSERT_TRUE(result.ok) << path << " at " << preset.name << " T=" << batch << "\n" << result.log;
                for (const auto& entry : result.entries) {
                    EXPECT_EQ(entry.spill_store_bytes, 0) << path << " " << entry.name << " at " << preset.name;
                }
                EXPECT_EQ(result.global_bytes, 0) << path << ": module-scope variables could carry state";
            }
        }
    }
}

// Every knob point of a small space, and 48 points at a fixed stride (the
// first and last included) of a large one: a full sweep of the tensor-core
// seed's ~600 points is minutes of NVRTC on two cores. Every format a file
// declares compiles at its default knobs.
TEST(SeedKernels, KnobPointsCompileAtGemma4) {
    cuda::Compiler compiler;
    for (const auto& path : testing::moe_decode_seed_files()) {
        auto file = kernels::load_kernel_file(path);
        for (const auto& format : file.formats.empty() ? std::vector<std::string>{"bf16"} : file.formats) {
            md::Shape shape = md::make_shape(md::find_preset("gemma4-26b-a4b"), 8, format);
            std::vector<kernels::Symbols> points;
            for (const auto& knobs : file.knob_space()) {
                kernels::Symbols symbols = md::shape_symbols(shape);
                symbols.insert(knobs.begin(), knobs.end());
                if (file.satisfies(symbols)) points.push_back(knobs);
            }
            if (format != "bf16") points.resize(std::min<std::size_t>(points.size(), 1));
            const std::size_t stride = points.size() > 48 ? (points.size() + 46) / 47 : 1;
            for (std::size_t i = 0; i < points.size(); i += stride) {
                const std::size_t at = i + stride >= points.size() ? points.size() - 1 : i;
                auto result = compiler.compile(
                    compile_request(file, points[at], md::compile_defines(shape), "sm_90", md::params_dir()));
                EXPECT_TRUE(result.ok) << path << " " << format << "\n" << result.log;
            }
        }
    }
}

TEST(CompileRequest, CarriesShapeDefinesKnobsAndIncludeFolders) {
    auto file = kernels::parse_kernel_file("/somewhere/k.cu", "// @op moe_decode\n// @tune WARPS 4 8\n"
                                                               "// @launch k grid=(T) block=(32*WARPS)\n");
    md::Shape shape = md::make_shape(md::find_preset("tiny"), 3);
    auto request = compile_request(file, {{"WARPS", 8}}, md::compile_defines(shape), "sm_90", "/params");
    EXPECT_EQ(request.arch, "sm_90");
    auto has = [&](const std::string& option) {
        return std::find(request.options.begin(), request.options.end(), option) != request.options.end();
    };
    EXPECT_TRUE(has("-DWARPS=8"));
    EXPECT_TRUE(has("-DNS_T=3"));
    EXPECT_TRUE(has(fmt::format("-DNS_H={}", shape.H)));
    ASSERT_EQ(request.include_dirs.size(), 2u);
    EXPECT_EQ(request.include_dirs[0], "/somewhere");
    EXPECT_EQ(request.include_dirs[1], "/params");
}

} // namespace
} // namespace nightshift::evaluate
