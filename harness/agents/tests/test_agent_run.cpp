// Whole loops driven by an LLM agent on the local server, with no GPU: the
// replay evaluator serves the seed's measurements recorded on an H100, and has
// none for the agent's kernel, which is compiled (NVRTC), stored with its
// lineage, swept by the tuner and recorded as not_measured, with no number
// invented. Then the same loop replayed from the recorded calls, no network.
#include "harness/agents/tests/agent_test_support.h"
#include "harness/agents/tests/llm_test_server.h"
#include "harness/core/error.h"
#include "harness/core/paths.h"
#include "harness/research/run.h"
#include "harness/store/store.h"
#include "harness/store/tests/temp_database.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <set>

namespace nightshift::agents {
namespace {
using testing::LlmTestServer;
using testing::Scripted;

std::string plan_text(const std::string& base_url, int max_calls) {
    return fmt::format(R"(+++
title = "Does staging x in shared memory help warp decode at B=1?"
op = "moe_decode"
models = ["gemma4-26b-a4b"]
batches = [1]
baseline = "moe_decode/warp_decode_v1.cu"

[agent]
name = "openai"
base_url = "{}"
model = "local-test"
max_calls = {}
rounds = 4
retries = 0
timeout_s = 5

[[directions]]
name = "warp decode, then what the agent writes"
hypothesis = "the seed at its default point; the agent's structure next"
kernels = ["moe_decode/warp_decode_v1.cu"]

[directions.knobs]
WARPS = [4]
ROWS_PER_WARP = [1]
+++

# Question

Can a structural change to warp decode's gate_up beat the seed at B=1?
)",
                       base_url, max_calls);
}

class AgentRun : public store::TempDatabase {
protected:
    void SetUp() override {
        store::TempDatabase::SetUp();
        ::setenv("no_proxy", "127.0.0.1,localhost", 1);
        m_plan = file("plan.md");
    }

    research::RunSummary run(const std::string& plan, const std::filesystem::path& db,
                             std::optional<std::string> agent = std::nullopt,
                             std::map<std::string, std::string, std::less<>> options = {}) {
        std::ofstream(m_plan) << plan;
        research::RunOptions o;
        o.plan_path = m_plan;
        o.db_path = db;
        o.evaluator = "replay:" + (project_root() / "experiments" / "2026-11-26_h100_gemma4-measurements.jsonl").string();
        o.progress = false;
        o.seed = 7;
        o.agent = std::move(agent);
        o.agent_options = std::move(options);
        return research::run_plan(o);
    }

    static std::vector<std::vector<std::string>> rows(const std::filesystem::path& db, const std::string& sql) {
        return store::Store::open_read_only(db).query(sql);
    }

    std::filesystem::path m_plan;
};

TEST_F(AgentRun, AgentKernelIsCompiledStoredWithLineageAndSweptWithoutInventedNumbers) {
    LlmTestServer server;
    const std::string kernel = testing::agent_kernel_source();
    server.script({Scripted::error(429, R"({"error":{"message":"slow down"}})", "0"),
                   Scripted::reply(LlmTestServer::kernel_reply(kernel, "stage x in shared memory", "3% faster")),
                   Scripted::reply("No code today."),
                   Scripted::reply(LlmTestServer::kernel_reply(
                       "// @op moe_decode\n// @launch k grid=(1) block=(32)\n#include \"params.h\"\n"
                       "extern \"C\" __global__ void k(const MoeDecodeParams p) { cudaFree(0); }\n",
                       "h", "p"))});
    const std::string plan = plan_text(server.base_url(), 3);
    // The 429 is retried within the first call (retries = 0 applies to the
    // agent; give the client one retry for it).
    auto summary = run(plan, file(), std::nullopt, {{"retries", "1"}});
    EXPECT_EQ(summary.status, "finished");
    const auto db = file();

    auto calls = rows(db, "SELECT agent, status, length(prompt), length(response), tokens_in, tokens_out FROM "
                          "agent_calls ORDER BY id");
    ASSERT_EQ(calls.size(), 3u);
    EXPECT_EQ(calls[0][0], "openai");
    EXPECT_EQ(calls[0][1], "ok");
    EXPECT_EQ(calls[1][1], "malformed_reply");
    EXPECT_EQ(calls[2][1], "rejected_reply");
    for (const auto& c : calls) {
        EXPECT_GT(std::stoi(c[2]), 1000);
        EXPECT_GT(std::stoi(c[3]), 0);
        EXPECT_FALSE(c[4].empty());
    }
    EXPECT_EQ(server.received().size(), 4u); // 429, then three calls

    // The prompt carries the plan, the parent's source and numbers; not how verification works.
    auto prompt = rows(db, "SELECT prompt FROM agent_calls ORDER BY id LIMIT 1")[0][0];
    EXPECT_NE(prompt.find("Does staging x in shared memory help"), std::string::npos);
    EXPECT_NE(prompt.find("warp_decode_v1"), std::string::npos);
    EXPECT_NE(prompt.find("extern \"C\" __global__"), std::string::npos);
    EXPECT_NE(prompt.find("of the copy-rate floor"), std::string::npos); // the seed's recorded numbers
    EXPECT_EQ(prompt.find("held-out"), std::string::npos);
    EXPECT_EQ(prompt.find("verification_seed"), std::string::npos);
    // The second call's prompt shows the first's attempts.
    auto second = rows(db, "SELECT prompt FROM agent_calls ORDER BY id LIMIT 1 OFFSET 1")[0][0];
    EXPECT_NE(second.find("not_measured"), std::string::npos);

    auto lineage = rows(db, "SELECT k.path, k.origin, p.path, k.source FROM kernels k JOIN kernels p ON "
                            "p.id = k.parent_id WHERE k.origin = 'llm'");
    ASSERT_EQ(lineage.size(), 1u);
    EXPECT_EQ(lineage[0][0].rfind("llm/", 0), 0u);
    EXPECT_EQ(lineage[0][2], "moe_decode/warp_decode_v1.cu");
    EXPECT_EQ(lineage[0][3], kernel);

    // The tuner swept all four knob points of the agent's file (the plan's
    // subspace is for its own kernels); each was compiled, none was timed.
    auto swept = rows(db, "SELECT e.status, e.knobs_json, e.median_us, e.rel_l2, e.registers, e.hypothesis, e.message "
                          "FROM experiments e JOIN kernels k ON k.id = e.kernel_id WHERE k.origin = 'llm' ORDER BY e.id");
    ASSERT_EQ(swept.size(), 4u);
    std::set<std::string> knobs;
    for (const auto& e : swept) {
        EXPECT_EQ(e[0], "8") << "not_measured";
        knobs.insert(e[1]);
        EXPECT_EQ(e[2], "");  // no time
        EXPECT_EQ(e[3], "");  // no error figure
        EXPECT_FALSE(e[4].empty()) << "registers from the compile";
        EXPECT_NE(e[5].find("stage x in shared memory (predicted: 3% faster)"), std::string::npos);
        EXPECT_NE(e[6].find("holds no measurement"), std::string::npos);
    }
    EXPECT_EQ(knobs.size(), 4u);
    auto seed = rows(db, "SELECT e.status, e.median_us FROM experiments e JOIN kernels k ON k.id = e.kernel_id "
                         "WHERE k.path = 'moe_decode/warp_decode_v1.cu'");
    ASSERT_EQ(seed.size(), 1u);
    EXPECT_EQ(seed[0][0], "0");
    EXPECT_FALSE(seed[0][1].empty());
    EXPECT_EQ(rows(db, "SELECT count(*) FROM findings WHERE kind = 'agent_stopped'")[0][0], "1");

    // Replay: the recorded calls drive the same loop with no network.
    server.stop();
    const auto replayed = file("replayed.db");
    auto again = run(plan, replayed, "replay", {{"replay_db", db.string()}});
    EXPECT_EQ(again.status, "finished");
    auto replay_calls = rows(replayed, "SELECT agent, status FROM agent_calls ORDER BY id");
    ASSERT_EQ(replay_calls.size(), 3u);
    EXPECT_EQ(replay_calls[0][0], "replay:openai");
    EXPECT_EQ(replay_calls[0][1], "ok");
    EXPECT_EQ(replay_calls[1][1], "malformed_reply");
    EXPECT_EQ(replay_calls[2][1], "rejected_reply");
    EXPECT_EQ(rows(replayed, "SELECT source_hash FROM kernels WHERE origin = 'llm'"),
              rows(db, "SELECT source_hash FROM kernels WHERE origin = 'llm'"));
    EXPECT_EQ(rows(replayed, "SELECT count(*) FROM experiments e JOIN kernels k ON k.id = e.kernel_id "
                             "WHERE k.origin = 'llm'")[0][0],
              "4");
}

TEST_F(AgentRun, DeadApiIsStoredAndTheTunerGoesOn) {
    int port = 0;
    {
        LlmTestServer gone;
        port = gone.port();
    }
    auto summary = run(plan_text(fmt::format("http://127.0.0.1:{}/v1", port), 2), file());
    EXPECT_EQ(summary.status, "finished");
    auto calls = rows(file(), "SELECT status, response FROM agent_calls ORDER BY id");
    ASSERT_EQ(calls.size(), 2u);
    for (const auto& c : calls) {
        EXPECT_EQ(c[0], "network");
        EXPECT_NE(c[1].find("127.0.0.1"), std::string::npos);
    }
    EXPECT_EQ(rows(file(), "SELECT count(*) FROM kernels WHERE origin = 'llm'")[0][0], "0");
    EXPECT_EQ(rows(file(), "SELECT count(*) FROM experiments WHERE status = 0")[0][0], "1");
    EXPECT_EQ(rows(file(), "SELECT count(*) FROM findings WHERE kind = 'agent_stopped'")[0][0], "1");
}

TEST_F(AgentRun, FlagsOverrideThePlansAgent) {
    // --agent tuner on an LLM plan: no calls at all.
    auto summary = run(plan_text("http://127.0.0.1:9/v1", 2), file(), "tuner");
    EXPECT_EQ(summary.status, "finished");
    EXPECT_EQ(rows(file(), "SELECT count(*) FROM agent_calls")[0][0], "0");
    EXPECT_THROW(run(plan_text("http://127.0.0.1:9/v1", 2), file("b.db"), std::nullopt, {{"modle", "x"}}),
                 InputError);
}

} // namespace
} // namespace nightshift::agents
