// The exported code, run: `export --best` output built by nvcc into a shared
// library, loaded into the test, and called through its own entry points
// (_prepack, _run) on the harness's problems; every variant's output must
// match the float64 reference. The CPU tests only compile the export; this
// is where a launcher, a packed workspace slot or a format define that is
// wrong shows up as a wrong answer.
#include "harness/exports/best_kernels.h"

#include "harness/core/error.h"
#include "harness/core/paths.h"
#include "harness/cuda/buffer.h"
#include "harness/evaluate/tests/gpu_harness.h"
#include "harness/query/results_db.h"
#include "harness/exports/tests/export_night.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

namespace nightshift::exports {
namespace {

// Three winners, one per path of the export: a kernel with packed weights
// (bf16, the harness's prepack test kernel), a quantized seed with a PDL
// launch (int4), and one with a zeroing launch and integer scratch (int8).
class ExportedCode : public testing::ExportNight {
protected:
    void SetUp() override {
        ExportNight::SetUp();
        add(3, "bf16", "harness/evaluate/tests/data/prepack_interleaved.cu", "{}", 10);
        add(1, "int4_g128", "kernels_seed/moe_decode/warp_decode_tc_v1.cu",
            R"({"INFLIGHT":16,"INTER_SPLIT":0,"PDL":2,"TILE":8,"WARPS":4})", 10);
        add(2, "int8_row", "kernels_seed/moe_decode/warp_decode_tc_onelaunch_v1.cu", R"({"TILE":8,"WARPS":4})", 10);
    }
};

TEST_F(ExportedCode, EveryVariantRunsThroughItsEntryPointsAndMatchesTheReference) {
    NS_REQUIRE_GPU();
    const char* nvcc = "/usr/local/cuda/bin/nvcc";
    if (!std::filesystem::exists(nvcc)) GTEST_SKIP() << "no nvcc at " << nvcc;
    BestExport best = [&] {
        store::Store db = query::open_results(file());
        return export_best(db, {.op = "moe_decode", .model = k_model, .run_id = std::nullopt});
    }();
    ASSERT_EQ(best.variants.size(), 3u);
    const auto dir = file("export");
    write_best(best, dir);

    // A C shim over the generated C++ entry points, built into one library with them.
    {
        std::ofstream shim(dir / "shim.cu");
        shim << fmt::format(R"(#include "{0}.h"
#include <cstring>
extern "C" size_t ns_workspace_bytes(int variant) {{ return {0}_variants[variant].workspace_bytes; }}
extern "C" int ns_call(int variant, const void* params, void* workspace) {{
    MoeDecodeParams p;
    std::memcpy(&p, params, sizeof p);
    cudaError_t status = {0}_prepack(variant, p, workspace, 0);
    if (status == cudaSuccess) status = {0}_run(variant, p, workspace, 0);
    if (status == cudaSuccess) status = cudaDeviceSynchronize();
    return static_cast<int>(status);
}}
)",
                            best.base_name);
    }
    const auto library = dir / "libexport.so";
    std::string command = fmt::format("{} -arch=sm_90 -std=c++17 -shared -Xcompiler -fPIC -I{} -o {} {} {} > {} 2>&1",
                                      nvcc, dir.string(), library.string(), (dir / "shim.cu").string(),
                                      (dir / (best.base_name + ".cu")).string(), (dir / "nvcc.log").string());
    ASSERT_EQ(std::system(command.c_str()), 0) << read_text_file(dir / "nvcc.log");
    void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(handle, nullptr) << dlerror();
    auto workspace_bytes = reinterpret_cast<std::size_t (*)(int)>(dlsym(handle, "ns_workspace_bytes"));
    auto call = reinterpret_cast<int (*)(int, const void*, void*)>(dlsym(handle, "ns_call"));
    ASSERT_TRUE(workspace_bytes && call);

    auto& harness = nightshift::testing::gpu_harness();
    cuda::Stream stream;
    for (std::size_t v = 0; v < best.variants.size(); ++v) {
        const Variant& variant = best.variants[v];
        const unsigned long long seed = nightshift::testing::fresh_seed();
        auto problem = harness.spec.make_problem(
            {.model = k_model, .batch = variant.batch, .format = variant.format, .seed = seed});
        problem->poison_output(stream);
        stream.synchronize();
        const std::vector<unsigned char> params = problem->params({}); // the export fills scratch itself
        cuda::DeviceBuffer workspace(std::max<std::size_t>(workspace_bytes(static_cast<int>(v)), 1));
        ASSERT_EQ(call(static_cast<int>(v), params.data(), workspace.as<void>()), 0)
            << "v" << v << " " << problem->label();
        verifier::Comparison c = verifier::compare(problem->read_output(), problem->reference(), problem->tolerance());
        EXPECT_TRUE(c.passed) << "v" << v << " " << variant.kernel_path << " on " << problem->label() << " seed "
                              << seed << ": " << c.reason << " " << c.first_mismatches;
        fmt::print("export v{} {:<30} {:<28} rel_l2 {:.2e}\n", v,
                   std::filesystem::path(variant.kernel_path).filename().string(), problem->label(), c.rel_l2);
    }
    dlclose(handle);
}

} // namespace
} // namespace nightshift::exports
