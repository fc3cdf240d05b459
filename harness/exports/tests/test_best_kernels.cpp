#include "harness/exports/best_kernels.h"

#include "harness/core/error.h"
#include "harness/core/paths.h"
#include "harness/cuda/compiler.h"
#include "harness/query/results_db.h"
#include "harness/exports/tests/export_night.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace nightshift::exports {
namespace {

// A night with the real seed kernels: warp decode wins B=1 and 8, the
// expert-centric baseline B=32.
class BestKernels : public testing::ExportNight {
protected:
    void SetUp() override {
        ExportNight::SetUp();
        const std::string warp = "kernels_seed/moe_decode/warp_decode_v1.cu";
        const std::string expert = "kernels_seed/moe_decode/expert_centric_v1.cu";
        add(1, "bf16", warp, R"({"ROWS_PER_WARP":2,"WARPS":2})", 42);
        add(1, "bf16", expert, R"({"STAGES":4,"TILE_K":64,"TILE_M":16,"TILE_N":32})", 95);
        add(8, "bf16", warp, R"({"ROWS_PER_WARP":1,"WARPS":4})", 239);
        add(32, "bf16", warp, R"({"ROWS_PER_WARP":1,"WARPS":4})", 560);
        m_b32 = add(32, "bf16", expert, R"({"STAGES":4,"TILE_K":64,"TILE_M":16,"TILE_N":32})", 525);
    }
    std::int64_t m_b32 = 0;
};

TEST_F(BestKernels, DispatchTablePicksTheWinnerPerBatch) {
    store::Store db = query::open_results(file());
    BestExport best = export_best(db, {.op = "moe_decode", .model = "gemma4-26b-a4b", .run_id = std::nullopt});
    EXPECT_EQ(best.base_name, "moe_decode_gemma4_26b_a4b");
    ASSERT_EQ(best.variants.size(), 3u);
    EXPECT_EQ(best.variants[0].batch, 1);
    EXPECT_EQ(best.variants[0].knobs.at("WARPS"), 2);
    EXPECT_EQ(best.variants[2].experiment_id, m_b32);
    EXPECT_NE(best.variants[2].kernel_path.find("expert_centric_v1.cu"), std::string::npos);
    EXPECT_NE(best.summary.find("tokens   9..32"), std::string::npos) << best.summary;
    EXPECT_NE(best.header.find("static const int moe_decode_gemma4_26b_a4b_H = 2816;"), std::string::npos);
    EXPECT_NE(best.header.find("moe_decode_gemma4_26b_a4b_select(int format, int tokens)"), std::string::npos);
    EXPECT_NE(best.torch_example.find("PYBIND11_MODULE"), std::string::npos);
}

TEST_F(BestKernels, GeneratedSourceCompilesForSm90WithNvrtc) {
    store::Store db = query::open_results(file());
    BestExport best = export_best(db, {.op = "moe_decode", .model = "gemma4-26b-a4b", .run_id = std::nullopt});
    cuda::Compiler compiler; // no cache, no include folders: the file must stand alone
    cuda::CompileResult result = compiler.compile(
        {.name = best.base_name + ".cu", .source = best.cuda_source, .arch = "sm_90", .options = {}, .include_dirs = {}});
    ASSERT_TRUE(result.ok) << result.log;
    std::vector<std::string> entries;
    for (const auto& e : result.entries) entries.push_back(e.name);
    for (std::string name : {"moe_decode_gemma4_26b_a4b_v0_gate_up", "moe_decode_gemma4_26b_a4b_v1_down",
                             "moe_decode_gemma4_26b_a4b_v2_gemm_down", "moe_decode_gemma4_26b_a4b_v2_route"}) {
        EXPECT_NE(std::find(entries.begin(), entries.end(), name), entries.end()) << name << " in\n" << result.log;
    }
}

TEST_F(BestKernels, HostPartCompilesWithNvccWhereItExists) {
    const char* nvcc = "/usr/local/cuda/bin/nvcc";
    if (!std::filesystem::exists(nvcc)) GTEST_SKIP() << "no nvcc at " << nvcc;
    store::Store db = query::open_results(file());
    BestExport best = export_best(db, {.op = "moe_decode", .model = "gemma4-26b-a4b", .run_id = std::nullopt});
    auto dir = file("out");
    auto written = write_best(best, dir);
    ASSERT_EQ(written.size(), 3u);
    // Host and device, the launchers and the header included.
    std::string command = fmt::format("{} -arch=sm_90 -std=c++17 -c {} -o {} > {} 2>&1", nvcc, written[0].string(),
                                      (dir / "best.o").string(), (dir / "nvcc.log").string());
    EXPECT_EQ(std::system(command.c_str()), 0) << read_text_file(dir / "nvcc.log");
}

// A night whose bf16 winner keeps its weights in its own layout (@packed,
// @prepack: the harness's test kernel) and whose int4 winner is a seed.
class BestKernelsPackedAndQuantized : public testing::ExportNight {
protected:
    void SetUp() override {
        ExportNight::SetUp();
        add(3, "bf16", "harness/evaluate/tests/data/prepack_interleaved.cu", "{}", 400);
        add(1, "int4_g128", "kernels_seed/moe_decode/warp_decode_tc_v1.cu",
            R"({"INFLIGHT":16,"INTER_SPLIT":0,"PDL":2,"TILE":8,"WARPS":4})", 18.8);
    }
};

TEST_F(BestKernelsPackedAndQuantized, PackedWeightsGetAPrepackEntryAndQuantizedVariantsTheirFormat) {
    store::Store db = query::open_results(file());
    BestExport best = export_best(db, {.op = "moe_decode", .model = "gemma4-26b-a4b", .run_id = std::nullopt});
    ASSERT_EQ(best.variants.size(), 2u);
    EXPECT_EQ(best.variants[0].format, "bf16");
    EXPECT_EQ(best.variants[1].format, "int4_g128");
    // Slots 0 (wgu) and 2 (wdt) are packed, slot 1 (inter) is plain: mask 0b101.
    EXPECT_NE(best.header.find("5u}, // v0 bf16"), std::string::npos) << best.header;
    EXPECT_NE(best.header.find("0u}, // v1 int4_g128"), std::string::npos) << best.header;
    EXPECT_NE(best.header.find("cudaError_t moe_decode_gemma4_26b_a4b_prepack(int variant"), std::string::npos);
    EXPECT_NE(best.cuda_source.find("case 0: return moe_decode_gemma4_26b_a4b_v0_prepack(p, stream);"),
              std::string::npos);
    EXPECT_EQ(best.cuda_source.find("moe_decode_gemma4_26b_a4b_v1_prepack"), std::string::npos);
    EXPECT_NE(best.cuda_source.find("p.scratch[i] = !packed_only || ((v.packed_mask >> i) & 1u) ? next : nullptr;"),
              std::string::npos);
    EXPECT_NE(best.cuda_source.find("if (!moe_decode_gemma4_26b_a4b_bind(variant, p, workspace, true))"),
              std::string::npos);
    // The int4 variant is compiled for int4 (NS_FORMAT 2) and BITS sized its buffers.
    std::size_t v1 = best.cuda_source.find("// ---- v1: int4_g128");
    ASSERT_NE(v1, std::string::npos);
    EXPECT_NE(best.cuda_source.find("#define NS_FORMAT 2", v1), std::string::npos);
    EXPECT_NE(best.torch_example.find("_prepack(variant"), std::string::npos);

    cuda::Compiler compiler;
    cuda::CompileResult result = compiler.compile(
        {.name = best.base_name + ".cu", .source = best.cuda_source, .arch = "sm_90", .options = {}, .include_dirs = {}});
    ASSERT_TRUE(result.ok) << result.log;
    std::vector<std::string> entries;
    for (const auto& e : result.entries) entries.push_back(e.name);
    for (std::string name : {"moe_decode_gemma4_26b_a4b_v0_pack_gate_up", "moe_decode_gemma4_26b_a4b_v0_pack_down",
                             "moe_decode_gemma4_26b_a4b_v0_gate_up", "moe_decode_gemma4_26b_a4b_v1_down"}) {
        EXPECT_NE(std::find(entries.begin(), entries.end(), name), entries.end()) << name << " in\n" << result.log;
    }

    const char* nvcc = "/usr/local/cuda/bin/nvcc";
    if (!std::filesystem::exists(nvcc)) GTEST_SKIP() << "no nvcc at " << nvcc;
    auto dir = file("out");
    auto written = write_best(best, dir);
    std::string command = fmt::format("{} -arch=sm_90 -std=c++17 -c {} -o {} > {} 2>&1", nvcc, written[0].string(),
                                      (dir / "best.o").string(), (dir / "nvcc.log").string());
    EXPECT_EQ(std::system(command.c_str()), 0) << read_text_file(dir / "nvcc.log");
}

TEST_F(BestKernels, UnknownModelOpOrNoResultsAreInputErrors) {
    store::Store db = query::open_results(file());
    EXPECT_THROW(export_best(db, {.op = "softmax", .model = "gemma4-26b-a4b", .run_id = std::nullopt}), InputError);
    EXPECT_THROW(export_best(db, {.op = "moe_decode", .model = "gpt-7", .run_id = std::nullopt}), InputError);
    EXPECT_THROW(export_best(db, {.op = "moe_decode", .model = "qwen3-30b-a3b", .run_id = std::nullopt}), InputError);
}

// tc_v1 declares a @packed buffer whose size is INTERLEAVE*...: at INTERLEAVE=1
// its slot is packed and the variant has a prepack; at 0 the slot is empty,
// so it is plain and the variant has none.
class BestKernelsEmptyPackedSlot : public testing::ExportNight {
protected:
    void SetUp() override {
        ExportNight::SetUp();
        add(1, "int8_row", "kernels_seed/moe_decode/warp_decode_tc_v1.cu",
            R"({"INFLIGHT":8,"INTERLEAVE":1,"INTER_SPLIT":0,"OCCUPANCY":32,"PDL":2,"TILE":4,"WARPS":8})", 23.0);
        add(1, "int4_g128", "kernels_seed/moe_decode/warp_decode_tc_v1.cu",
            R"({"INFLIGHT":16,"INTERLEAVE":0,"INTER_SPLIT":0,"PDL":2,"TILE":8,"WARPS":4})", 18.8);
    }
};

TEST_F(BestKernelsEmptyPackedSlot, OnlyAVariantWithPackedBytesIsPackedAndPrepacks) {
    store::Store db = query::open_results(file());
    BestExport best = export_best(db, {.op = "moe_decode", .model = "gemma4-26b-a4b", .run_id = std::nullopt});
    ASSERT_EQ(best.variants.size(), 2u);
    EXPECT_EQ(best.variants[0].format, "int8_row");
    EXPECT_EQ(best.variants[1].format, "int4_g128");
    // Slot 2 (wgu) is packed at INTERLEAVE=1 (mask 0b100) and empty at 0.
    EXPECT_NE(best.header.find("4u}, // v0 int8_row"), std::string::npos) << best.header;
    EXPECT_NE(best.header.find("0u}, // v1 int4_g128"), std::string::npos) << best.header;
    EXPECT_NE(best.cuda_source.find("case 0: return moe_decode_gemma4_26b_a4b_v0_prepack(p, stream);"),
              std::string::npos);
    EXPECT_EQ(best.cuda_source.find("moe_decode_gemma4_26b_a4b_v1_prepack"), std::string::npos);
}

} // namespace
} // namespace nightshift::exports
