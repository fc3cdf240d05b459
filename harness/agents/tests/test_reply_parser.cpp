// A model's reply into a kernel file, or the reason it is refused before compiling.
#include "harness/agents/reply_parser.h"
#include "harness/agents/tests/agent_test_support.h"
#include "harness/agents/tests/llm_test_server.h"

#include <gtest/gtest.h>

namespace nightshift::agents {
namespace {
using testing::agent_kernel_source;
using testing::LlmTestServer;
using testing::moe_symbols;

const char* k_small = R"(// a small kernel: <<< in a comment is prose, not a launch
// @op moe_decode
// @tune WARPS 4 8
// @launch k grid=(T) block=(32*WARPS)
#include "params.h"
extern "C" __global__ void k(const MoeDecodeParams p) { const char* s = "cudaMalloc("; (void)s; }
)";

Outcome<KernelProposal> parse(const std::string& text) { return parse_reply(text, "moe_decode", moe_symbols()); }

std::string reply(const std::string& kernel) { return LlmTestServer::kernel_reply(kernel, "h", "p"); }

void expect_failure(const std::string& text, FailureKind kind, const std::string& reason) {
    auto result = parse(text);
    ASSERT_FALSE(result.ok()) << text;
    EXPECT_EQ(result.failure().kind, kind) << result.failure().message;
    EXPECT_NE(result.failure().message.find(reason), std::string::npos) << result.failure().message;
}

TEST(ReplyParser, AcceptsTheAgentKernelWithItsHypothesis) {
    const std::string source = agent_kernel_source();
    auto result = parse(LlmTestServer::kernel_reply(source, "stage x in shared memory", "3% faster at T=1"));
    ASSERT_TRUE(result.ok()) << result.failure().message;
    EXPECT_EQ(result.value().source, source);
    EXPECT_EQ(result.value().hypothesis, "stage x in shared memory");
    EXPECT_EQ(result.value().predicted_effect, "3% faster at T=1");
}

TEST(ReplyParser, ReadsMarkdownStyledLabelsAndCommentsAreNotCode) {
    const std::string text = std::string("Some thoughts first.\n\n**Hypothesis**: fewer loads\n\n### Predicted effect: "
                                         "0.9 of the floor\n\n```cu\n") + k_small + "```\nThat's all.";
    auto result = parse(text);
    ASSERT_TRUE(result.ok()) << result.failure().message;
    EXPECT_EQ(result.value().hypothesis, "fewer loads");
    EXPECT_EQ(result.value().predicted_effect, "0.9 of the floor");
}

TEST(ReplyParser, NoKernelFileIsMalformed) {
    expect_failure("I would rather not.", FailureKind::malformed_reply, "no fenced code block");
    expect_failure("Hypothesis: x\n```python\nprint(1)\n```\n", FailureKind::malformed_reply, "@op");
    expect_failure("Hypothesis: x\n```cuda\n" + std::string(k_small) + "```\n```cuda\n" + k_small + "```\n",
                   FailureKind::malformed_reply, "2 kernel files");
    expect_failure("Hypothesis: x\n```cuda\n" + std::string(k_small).substr(0, 120), FailureKind::malformed_reply,
                   "never closed");
}

TEST(ReplyParser, IncludesOutsideTheAllowedSetAreRejected) {
    std::string kernel = k_small;
    kernel.insert(kernel.find("#include"), "#include <cstdio>\n");
    expect_failure(reply(kernel), FailureKind::rejected_reply, "#include <cstdio>");
    kernel = k_small;
    kernel.insert(kernel.find("#include"), "#include \"../../secret.h\"\n");
    expect_failure(reply(kernel), FailureKind::rejected_reply, "outside the allowed set");
    kernel = k_small;
    kernel.insert(kernel.find("#include"), "// #include <vector> in a comment is fine\n");
    EXPECT_TRUE(parse(reply(kernel)).ok());
}

TEST(ReplyParser, HostCodeIsRejected) {
    const std::string base = k_small;
    const std::pair<const char*, const char*> cases[] = {
        {"int main() { return 0; }\n", "main()"},
        {"void h() { k<<<1, 32>>>(MoeDecodeParams{}); }\n", "<<<"},
        {"__host__ void h() {}\n", "__host__"},
        {"void h() { void* q; cudaMalloc(&q, 4); }\n", "CUDA runtime"},
        {"void h() { cuLaunchKernel(0); }\n", "driver API"},
        {"void h() { std::vector<int> v; }\n", "standard library"},
    };
    for (const auto& [code, reason] : cases) expect_failure(reply(base + code), FailureKind::rejected_reply, reason);
}

TEST(ReplyParser, MissingOrBadAnnotationsAreRejected) {
    expect_failure(reply("// @op moe_decode\n#include \"params.h\"\nextern \"C\" __global__ void k(const MoeDecodeParams p) {}\n"),
                   FailureKind::rejected_reply, "no @launch");
    expect_failure(reply("// @op other_op\n// @launch k grid=(1) block=(32)\n"
                         "extern \"C\" __global__ void k(int) {}\n"),
                   FailureKind::rejected_reply, "plan's op");
    expect_failure(reply("// @op moe_decode\n// @launch missing grid=(T) block=(32)\n"
                         "extern \"C\" __global__ void k(const MoeDecodeParams p) {}\n"),
                   FailureKind::rejected_reply, "@launch missing");
    expect_failure(reply("// @op moe_decode\n// @launch k grid=(T) block=(32)\n// @packed w bf16 E*I*H\n"
                         "// @prepack pack grid=(E) block=(32)\n"
                         "extern \"C\" __global__ void k(const MoeDecodeParams p) {}\n"),
                   FailureKind::rejected_reply, "@prepack pack names no extern");
    expect_failure(reply("// @op moe_decode\n// @launch k grid=(T) block=(32)\n// @packed w bf16 E*I*H\n"
                         "extern \"C\" __global__ void k(const MoeDecodeParams p) {}\n"),
                   FailureKind::rejected_reply, "no @prepack");
    expect_failure(reply("// @op moe_decode\n// @launch k grid=(T*Q) block=(32)\n"
                         "extern \"C\" __global__ void k(const MoeDecodeParams p) {}\n"),
                   FailureKind::rejected_reply, "annotations");
    expect_failure(reply("// @op moe_decode\n// @tune WARPS\n// @launch k grid=(T) block=(32)\n"
                         "extern \"C\" __global__ void k(const MoeDecodeParams p) {}\n"),
                   FailureKind::rejected_reply, "annotations");
}

TEST(ReplyParser, AHypothesisIsRequired) {
    expect_failure("```cuda\n" + std::string(k_small) + "```\n", FailureKind::rejected_reply, "no hypothesis");
}

} // namespace
} // namespace nightshift::agents
