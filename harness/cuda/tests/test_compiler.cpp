#include "harness/cuda/compiler.h"

#include <gtest/gtest.h>

#include <fstream>

namespace nightshift::cuda {
namespace {
namespace fs = std::filesystem;

const char* k_kernel = R"(
#include "answer.h"
extern "C" __global__ void write_answer(int* out) { out[threadIdx.x] = ANSWER + threadIdx.x; }
)";

class CompilerTest : public ::testing::Test {
protected:
    void SetUp() override {
        m_dir = fs::temp_directory_path() / ("ns-compiler-test-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
                                             ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(m_dir);
        fs::create_directories(m_dir / "include");
        write_header("#define ANSWER 42\n");
    }
    void TearDown() override { fs::remove_all(m_dir); }
    void write_header(const std::string& text) { std::ofstream(m_dir / "include" / "answer.h") << text; }
    CompileRequest request(std::string source = k_kernel) {
        return {.name = "answer.cu", .source = std::move(source), .arch = "sm_90", .options = {}, .include_dirs = {m_dir / "include"}};
    }
    fs::path m_dir;
};

TEST_F(CompilerTest, CompilesForSm90WithoutAGpuAndReportsResources) {
    Compiler compiler;
    CompileResult result = compiler.compile(request());
    ASSERT_TRUE(result.ok) << result.log;
    EXPECT_GT(result.cubin.size(), 100u);
    ASSERT_EQ(result.entries.size(), 1u);
    EXPECT_EQ(result.entries[0].name, "write_answer");
    EXPECT_GT(result.entries[0].registers, 0);
    EXPECT_EQ(result.entries[0].spill_store_bytes, 0);
    EXPECT_EQ(result.global_bytes, 0);
    EXPECT_FALSE(result.from_cache);
}

// NVRTC's own compute cache would skip ptxas on the second compile and drop
// its resource report; the compiler must report resources every time.
TEST_F(CompilerTest, ResourcesAreReportedOnEveryCompileInOneProcess) {
    Compiler compiler;
    for (int i = 0; i < 3; ++i) {
        CompileResult result = compiler.compile(request());
        ASSERT_TRUE(result.ok);
        ASSERT_EQ(result.entries.size(), 1u) << "compile " << i << "\n" << result.log;
        EXPECT_GT(result.entries[0].registers, 0);
    }
}

TEST_F(CompilerTest, ACompileErrorIsDataWithTheLog) {
    Compiler compiler;
    CompileResult result = compiler.compile(request("extern \"C\" __global__ void broken(int* p) { p[0] = undefined_name; }\n"));
    EXPECT_FALSE(result.ok);
    EXPECT_TRUE(result.cubin.empty());
    EXPECT_NE(result.log.find("undefined_name"), std::string::npos) << result.log;
}

TEST_F(CompilerTest, ReportsModuleGlobalsThatCouldCarryState) {
    Compiler compiler;
    CompileResult result = compiler.compile(
        request("__device__ int counter[4];\nextern \"C\" __global__ void bump() { atomicAdd(&counter[0], 1); }\n"));
    ASSERT_TRUE(result.ok) << result.log;
    EXPECT_EQ(result.global_bytes, 16);
}

TEST_F(CompilerTest, CacheServesTheSameCubinAndAChangedHeaderMisses) {
    Compiler compiler(m_dir / "cache");
    CompileResult first = compiler.compile(request());
    ASSERT_TRUE(first.ok);
    CompileResult second = compiler.compile(request());
    ASSERT_TRUE(second.ok);
    EXPECT_TRUE(second.from_cache);
    EXPECT_EQ(first.cubin, second.cubin);
    EXPECT_EQ(second.entries.size(), 1u);

    write_header("#define ANSWER 43\n");
    CompileResult third = compiler.compile(request());
    EXPECT_FALSE(third.from_cache);
    EXPECT_NE(third.key, first.key);

    CompileRequest with_define = request();
    with_define.options.push_back("-DUNUSED=1");
    EXPECT_NE(compiler.cache_key(with_define), third.key);
}

TEST_F(CompilerTest, DumpSwitchWritesTheExactSourceAndOptions) {
    Compiler compiler({}, m_dir / "dump");
    CompileRequest r = request();
    r.options.push_back("-DKNOB=7");
    CompileResult result = compiler.compile(r);
    ASSERT_TRUE(result.ok);
    std::ifstream source(m_dir / "dump" / (result.key + ".cu"));
    std::string text((std::istreambuf_iterator<char>(source)), {});
    EXPECT_EQ(text, k_kernel);
    std::ifstream options(m_dir / "dump" / (result.key + ".options"));
    std::string opts((std::istreambuf_iterator<char>(options)), {});
    EXPECT_NE(opts.find("-DKNOB=7"), std::string::npos);
    EXPECT_NE(opts.find("--gpu-architecture=sm_90"), std::string::npos);
}

TEST(PtxasReport, ParsesEntriesAndIgnoresNonEntryFunctions) {
    const std::string log = "ptxas info    : 8 bytes gmem\n"
                            "ptxas info    : Compiling entry function 'gate_up' for 'sm_90'\n"
                            "ptxas info    : Function properties for gate_up\n"
                            "ptxas         .     16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n"
                            "ptxas info    : Used 40 registers, used 1 barriers, 2048 bytes smem, 400 bytes cmem[0]\n"
                            "ptxas info    : Function properties for helper\n"
                            "ptxas         .     99 bytes stack frame, 99 bytes spill stores, 99 bytes spill loads\n"
                            "ptxas info    : Compiling entry function 'down' for 'sm_90'\n"
                            "ptxas info    : Function properties for down\n"
                            "ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
                            "ptxas info    : Used 32 registers, used 0 barriers, 380 bytes cmem[0]\n";
    std::vector<EntryResources> entries;
    int global_bytes = -1;
    parse_ptxas_report(log, entries, global_bytes);
    EXPECT_EQ(global_bytes, 8);
    ASSERT_EQ(entries.size(), 2u);
    EXPECT_EQ(entries[0].name, "gate_up");
    EXPECT_EQ(entries[0].registers, 40);
    EXPECT_EQ(entries[0].stack_bytes, 16);
    EXPECT_EQ(entries[0].spill_store_bytes, 8);
    EXPECT_EQ(entries[0].spill_load_bytes, 4);
    EXPECT_EQ(entries[0].shared_bytes, 2048);
    EXPECT_EQ(entries[0].barriers, 1);
    EXPECT_EQ(entries[1].name, "down");
    EXPECT_EQ(entries[1].registers, 32);
    EXPECT_EQ(entries[1].shared_bytes, 0);
}

TEST(NvrtcVersion, IsTheToolkitMajor) { EXPECT_EQ(nvrtc_version().substr(0, 3), "13."); }

} // namespace
} // namespace nightshift::cuda
