// The LLM agents against the local server in both wire formats, their budget
// and concurrency limit, and the replay agent re-driving recorded calls.
#include "harness/agents/agent.h"
#include "harness/agents/tests/agent_test_support.h"
#include "harness/agents/tests/llm_test_server.h"
#include "harness/core/error.h"
#include "harness/store/tests/temp_database.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

namespace nightshift::agents {
namespace {
using namespace std::chrono_literals;
using testing::agent_kernel_source;
using testing::Behaviour;
using testing::LlmTestServer;
using testing::moe_symbols;
using testing::Scripted;

constexpr const char* k_key = "sk-test-agent-KEY-987";

class AgentTest : public store::TempDatabase {
protected:
    void SetUp() override {
        store::TempDatabase::SetUp();
        ::setenv("no_proxy", "127.0.0.1,localhost", 1);
        ::setenv("NS_TEST_LLM_KEY", k_key, 1);
        m_kernel = agent_kernel_source();
        m_server.set_default(Scripted::reply(LlmTestServer::kernel_reply(m_kernel, "stage x", "3% faster")));
    }

    std::unique_ptr<Agent> agent(const std::string& name, AgentOptions extra = {}) {
        AgentOptions options = {{"base_url", m_server.base_url()}, {"model", "local-test"},
                                {"api_key_env", "NS_TEST_LLM_KEY"}, {"retries", "1"}, {"timeout_s", "2"}};
        for (auto& [k, v] : extra) options[k] = v;
        return make_agent(make_agent_config(name, options), "moe_decode", moe_symbols());
    }

    ChatRequest m_prompt{"system text", "user text"};
    LlmTestServer m_server;
    std::string m_kernel;
};

TEST_F(AgentTest, OpenAiAgentProposesTheServedKernelAndRecordsTheCall) {
    auto a = agent("openai", {{"price_in_per_mtok", "1000"}, {"price_out_per_mtok", "2000"}});
    AgentTurn turn = a->propose(m_prompt, 0);
    ASSERT_TRUE(turn.proposal) << turn.failure->message;
    EXPECT_EQ(turn.proposal->source, m_kernel);
    EXPECT_EQ(turn.proposal->hypothesis, "stage x");
    EXPECT_EQ(turn.call.status, "ok");
    EXPECT_EQ(turn.call.agent, "openai");
    EXPECT_NE(turn.call.prompt.find("system text"), std::string::npos);
    EXPECT_NE(turn.call.prompt.find("user text"), std::string::npos);
    EXPECT_NE(turn.call.response.find("chat.completion"), std::string::npos); // the raw body, for replay
    ASSERT_TRUE(turn.call.tokens_in && turn.call.tokens_out);
    EXPECT_GT(*turn.call.tokens_in, 0);
    EXPECT_NEAR(*turn.call.cost_usd, (*turn.call.tokens_in * 1000.0 + *turn.call.tokens_out * 2000.0) / 1e6, 1e-9);
    EXPECT_GT(*turn.call.latency_s, 0);
    auto received = m_server.received();
    ASSERT_EQ(received.size(), 1u);
    EXPECT_EQ(received[0].path, "/v1/chat/completions");
    EXPECT_EQ(received[0].headers["authorization"], std::string("Bearer ") + k_key);
    // The key goes to the server and nowhere else.
    EXPECT_EQ(turn.call.prompt.find(k_key), std::string::npos);
    EXPECT_EQ(turn.call.response.find(k_key), std::string::npos);
}

TEST_F(AgentTest, AnthropicAgentSpeaksTheMessagesFormat) {
    auto a = agent("anthropic");
    AgentTurn turn = a->propose(m_prompt, 0);
    ASSERT_TRUE(turn.proposal) << turn.failure->message;
    EXPECT_EQ(turn.proposal->source, m_kernel);
    auto received = m_server.received();
    ASSERT_EQ(received.size(), 1u);
    EXPECT_EQ(received[0].path, "/v1/messages");
    EXPECT_EQ(received[0].headers["x-api-key"], k_key);
    EXPECT_EQ(received[0].headers["anthropic-version"], "2023-06-01");
    EXPECT_EQ(received[0].headers.count("authorization"), 0u);
}

TEST_F(AgentTest, FailuresAreTypedTurnsWithTheirCall) {
    auto a = agent("openai", {{"retries", "0"}, {"timeout_s", "1"}});
    m_server.script({Scripted::with(Behaviour::malformed_json),
                     Scripted::reply("No code today."),
                     Scripted::reply(LlmTestServer::kernel_reply("// @op moe_decode\n// @launch k grid=(1) block=(32)\n"
                                                          "#include <cuda_runtime.h>\n"
                                                          "extern \"C\" __global__ void k(const MoeDecodeParams p) {}\n",
                                                          "h", "p")),
                     Scripted::error(401, R"({"error":{"message":"bad key sk-test-agent-KEY-987"}})"),
                     Scripted::with(Behaviour::hang, "", 5s)});
    const std::pair<FailureKind, const char*> expected[] = {
        {FailureKind::malformed_response, "malformed_response"}, {FailureKind::malformed_reply, "malformed_reply"},
        {FailureKind::rejected_reply, "rejected_reply"},         {FailureKind::http_error, "http_error"},
        {FailureKind::timeout, "timeout"}};
    for (const auto& [kind, status] : expected) {
        AgentTurn turn = a->propose(m_prompt, 0);
        ASSERT_TRUE(turn.failure) << status;
        EXPECT_FALSE(turn.proposal);
        EXPECT_EQ(turn.failure->kind, kind) << turn.failure->message;
        EXPECT_EQ(turn.call.status, status);
        EXPECT_FALSE(turn.call.response.empty()) << status; // the reply (or the error) is stored
        EXPECT_EQ(turn.call.response.find(k_key), std::string::npos) << turn.call.response;
        EXPECT_EQ(turn.failure->message.find(k_key), std::string::npos) << turn.failure->message;
    }
}

TEST_F(AgentTest, CallBudgetStopsTheAgentWithoutARequest) {
    auto a = agent("openai", {{"max_calls", "2"}});
    EXPECT_TRUE(a->propose(m_prompt, 0).proposal);
    EXPECT_TRUE(a->propose(m_prompt, 1).proposal);
    AgentTurn third = a->propose(m_prompt, 0);
    ASSERT_TRUE(third.failure);
    EXPECT_EQ(third.failure->kind, FailureKind::budget_spent);
    EXPECT_TRUE(third.call.status.empty()); // no call was made
    EXPECT_EQ(m_server.received().size(), 2u);
}

TEST_F(AgentTest, TokenAndCostBudgetsStopTheAgent) {
    auto tokens = agent("openai", {{"max_total_tokens", "10"}});
    EXPECT_TRUE(tokens->propose(m_prompt, 0).proposal); // the first call spends more than 10
    EXPECT_EQ(tokens->propose(m_prompt, 0).failure->kind, FailureKind::budget_spent);
    auto cost = agent("openai", {{"max_cost_usd", "0.000001"}, {"price_out_per_mtok", "15"}});
    EXPECT_TRUE(cost->propose(m_prompt, 0).proposal);
    AgentTurn spent = cost->propose(m_prompt, 0);
    ASSERT_TRUE(spent.failure);
    EXPECT_NE(spent.failure->message.find("cost budget"), std::string::npos);
    EXPECT_EQ(m_server.received().size(), 2u);
}

TEST_F(AgentTest, ConcurrencyLimitHoldsOverThreads) {
    // Each request is held 150 ms, then closed unanswered (a network failure).
    testing::Scripted slow = Scripted::with(Behaviour::hang, "", 150ms);
    m_server.script(std::vector<testing::Scripted>(6, slow));
    auto a = agent("openai", {{"concurrency", "2"}, {"retries", "0"}});
    std::vector<std::thread> threads;
    for (int i = 0; i < 6; ++i) threads.emplace_back([&, i] { a->propose(m_prompt, i); });
    for (auto& t : threads) t.join();
    EXPECT_EQ(m_server.received().size(), 6u);
    EXPECT_LE(m_server.max_in_flight(), 2);
    EXPECT_GE(m_server.max_in_flight(), 1);
}

TEST_F(AgentTest, MissingKeyIsAnInputErrorAndNeverStored) {
    ::unsetenv("NS_TEST_LLM_KEY");
    EXPECT_THROW(agent("openai"), InputError);
    EXPECT_THROW(make_agent(make_agent_config("anthropic", {{"model", "m"}, {"api_key_env", "NS_NO_SUCH_VARIABLE"}}),
                            "moe_decode", moe_symbols()),
                 InputError);
}

TEST_F(AgentTest, ReplayServesEachLoopsRecordedCallsInOrder) {
    // Record: loop 0 gets a kernel then a malformed reply; loop 1 a rate-limited call.
    std::int64_t run = 0;
    {
        store::Store db = store::Store::open(file());
        store::RunRecord record;
        run = db.begin_run(record);
        const std::int64_t loop0 = db.add_loop(run, 0, "openai", "exhaustive", "");
        const std::int64_t loop1 = db.add_loop(run, 1, "openai", "exhaustive", "");
        auto live = agent("openai", {{"retries", "0"}});
        m_server.script({Scripted::reply(LlmTestServer::kernel_reply(m_kernel, "stage x", "3%")),
                         Scripted::reply("no code"),
                         Scripted::error(429, R"({"error":{"message":"slow"}})", "1")});
        for (auto [loop_id, index] : {std::pair{loop0, 0}, std::pair{loop0, 0}, std::pair{loop1, 1}}) {
            AgentTurn turn = live->propose(m_prompt, index);
            turn.call.run_id = run;
            turn.call.loop_id = loop_id;
            db.add_agent_call(turn.call);
        }
    }
    const std::size_t requests = m_server.received().size();
    auto replay = make_agent(make_agent_config("replay", {{"replay_db", file().string()}}), "moe_decode", moe_symbols());
    AgentTurn first = replay->propose(m_prompt, 0);
    ASSERT_TRUE(first.proposal) << first.failure->message;
    EXPECT_EQ(first.proposal->source, m_kernel);
    EXPECT_EQ(first.call.agent, "replay:openai");
    EXPECT_EQ(first.call.status, "ok");
    AgentTurn second = replay->propose(m_prompt, 0);
    ASSERT_TRUE(second.failure);
    EXPECT_EQ(second.failure->kind, FailureKind::malformed_reply);
    AgentTurn other = replay->propose(m_prompt, 1);
    ASSERT_TRUE(other.failure);
    EXPECT_EQ(other.failure->kind, FailureKind::rate_limited);
    AgentTurn done = replay->propose(m_prompt, 0);
    ASSERT_TRUE(done.failure);
    EXPECT_EQ(done.failure->kind, FailureKind::replay_exhausted);
    EXPECT_EQ(m_server.received().size(), requests); // no network
    EXPECT_THROW(make_agent(make_agent_config("replay", {{"replay_db", file().string()}, {"replay_run", "99"}}),
                            "moe_decode", moe_symbols()),
                 InputError);
}

} // namespace
} // namespace nightshift::agents
