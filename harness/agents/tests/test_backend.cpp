// The two wire formats: what a request looks like, and how a body decodes.
#include "harness/agents/backend.h"
#include "harness/core/error.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>

namespace nightshift::agents {
namespace {
using nlohmann::json;

AgentConfig config(const std::string& name, const std::string& base) {
    return make_agent_config(name, {{"model", "m-1"}, {"base_url", base}, {"temperature", "0.2"}, {"max_tokens", "100"}});
}

bool has(const std::vector<std::string>& headers, const std::string& header) {
    return std::find(headers.begin(), headers.end(), header) != headers.end();
}

TEST(OpenAiBackend, RequestIsChatCompletions) {
    auto backend = make_backend("openai");
    HttpRequest r = backend->request({"sys", "usr"}, config("openai", "http://h:1/v1/"), "k1");
    EXPECT_EQ(r.url, "http://h:1/v1/chat/completions");
    EXPECT_TRUE(has(r.headers, "Authorization: Bearer k1"));
    json body = json::parse(r.body);
    EXPECT_EQ(body["model"], "m-1");
    EXPECT_EQ(body["max_tokens"], 100);
    EXPECT_DOUBLE_EQ(body["temperature"].get<double>(), 0.2);
    ASSERT_EQ(body["messages"].size(), 2u);
    EXPECT_EQ(body["messages"][0]["role"], "system");
    EXPECT_EQ(body["messages"][0]["content"], "sys");
    EXPECT_EQ(body["messages"][1]["content"], "usr");
    AgentConfig newer = config("openai", "http://h:1/v1");
    newer.max_tokens_field = "max_completion_tokens";
    json newer_body = json::parse(backend->request({"s", "u"}, newer, "k").body);
    EXPECT_EQ(newer_body["max_completion_tokens"], 100);
    EXPECT_FALSE(newer_body.contains("max_tokens"));
    // A local server without a key: no Authorization header at all.
    HttpRequest local = backend->request({"s", "u"}, config("openai", "http://h:1/v1"), "");
    EXPECT_TRUE(std::none_of(local.headers.begin(), local.headers.end(),
                             [](const std::string& h) { return h.rfind("Authorization", 0) == 0; }));
}

TEST(OpenAiBackend, ParsesTextAndUsage) {
    auto reply = make_backend("openai")->parse(
        R"({"choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"length"}],
            "usage":{"prompt_tokens":12,"completion_tokens":3}})");
    ASSERT_TRUE(reply.ok()) << reply.failure().message;
    EXPECT_EQ(reply.value().text, "hi");
    EXPECT_EQ(reply.value().tokens_in, 12);
    EXPECT_EQ(reply.value().tokens_out, 3);
    EXPECT_EQ(reply.value().stop_reason, "length");
}

TEST(OpenAiBackend, MalformedBodiesAreTyped) {
    auto backend = make_backend("openai");
    for (const char* body : {"not json", "[1]", R"({"choices":[]})", R"({"choices":[{"message":{"content":null}}]})",
                             R"({"id":"x"})", R"({"choices": [{"message": {"content": "Hypo)"}) {
        auto reply = backend->parse(body);
        ASSERT_FALSE(reply.ok()) << body;
        EXPECT_EQ(reply.failure().kind, FailureKind::malformed_response) << body;
        EXPECT_EQ(reply.failure().body, body);
    }
}

TEST(AnthropicBackend, RequestIsMessagesWithVersionHeader) {
    auto backend = make_backend("anthropic");
    HttpRequest r = backend->request({"sys", "usr"}, config("anthropic", "https://api.example/v1"), "k2");
    EXPECT_EQ(r.url, "https://api.example/v1/messages");
    EXPECT_TRUE(has(r.headers, "x-api-key: k2"));
    EXPECT_TRUE(has(r.headers, "anthropic-version: 2023-06-01"));
    json body = json::parse(r.body);
    EXPECT_EQ(body["system"], "sys");
    ASSERT_EQ(body["messages"].size(), 1u);
    EXPECT_EQ(body["messages"][0]["role"], "user");
    EXPECT_EQ(body["max_tokens"], 100);
}

TEST(AnthropicBackend, JoinsTextBlocksAndReadsUsage) {
    auto reply = make_backend("anthropic")->parse(
        R"({"type":"message","content":[{"type":"text","text":"a"},{"type":"tool_use","id":"t"},{"type":"text","text":"b"}],
            "stop_reason":"end_turn","usage":{"input_tokens":7,"output_tokens":2}})");
    ASSERT_TRUE(reply.ok()) << reply.failure().message;
    EXPECT_EQ(reply.value().text, "ab");
    EXPECT_EQ(reply.value().tokens_in, 7);
    EXPECT_EQ(reply.value().tokens_out, 2);
    auto empty = make_backend("anthropic")->parse(R"({"content":[]})");
    ASSERT_FALSE(empty.ok());
    EXPECT_EQ(empty.failure().kind, FailureKind::malformed_response);
}

TEST(Backends, UnknownNameIsAnInputError) { EXPECT_THROW(make_backend("gemini"), InputError); }

TEST(AgentConfigTest, DefaultsPerBackend) {
    AgentConfig openai = make_agent_config("openai", {{"model", "gpt"}});
    EXPECT_EQ(openai.base_url, "https://api.openai.com/v1");
    EXPECT_EQ(openai.api_key_env, "OPENAI_API_KEY");
    AgentConfig anthropic = make_agent_config("anthropic", {{"model", "claude"}, {"max_calls", "5"},
                                                            {"timeout_s", "1.5"}});
    EXPECT_EQ(anthropic.base_url, "https://api.anthropic.com/v1");
    EXPECT_EQ(anthropic.api_key_env, "ANTHROPIC_API_KEY");
    EXPECT_EQ(anthropic.max_calls, 5);
    EXPECT_EQ(anthropic.timeout, std::chrono::milliseconds(1500));
}

TEST(AgentConfigTest, RejectsUnknownKeysBadValuesAndMissingModel) {
    try {
        make_agent_config("openai", {{"model", "m"}, {"temprature", "1"}});
        FAIL();
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("temprature"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("temperature"), std::string::npos) << e.what(); // lists the known keys
    }
    EXPECT_THROW(make_agent_config("openai", {{"model", "m"}, {"max_calls", "0"}}), InputError);
    EXPECT_THROW(make_agent_config("openai", {{"model", "m"}, {"temperature", "hot"}}), InputError);
    EXPECT_THROW(make_agent_config("openai", {{"model", "m"}, {"base_url", "ftp://x"}}), InputError);
    EXPECT_THROW(make_agent_config("openai", {{"model", "m"}, {"max_tokens_field", "tokens"}}), InputError);
    EXPECT_THROW(make_agent_config("anthropic", {{"model", "m"}, {"max_tokens_field", "max_tokens"}}), InputError);
    EXPECT_THROW(make_agent_config("openai", {}), InputError);
    EXPECT_THROW(make_agent_config("replay", {}), InputError);
    EXPECT_THROW(make_agent_config("replay", {{"replay_db", "x.db"}, {"model", "m"}}), InputError);
    EXPECT_THROW(make_agent_config("tuner", {}), InputError);
    EXPECT_THROW(make_agent_config("gemini", {}), InputError);
}

TEST(AgentConfigTest, HelpListsEveryAgentAndOption) {
    const std::string help = agents_help();
    for (const auto& info : agent_registry()) {
        EXPECT_NE(help.find(info.name), std::string::npos);
        for (const auto& option : info.options) EXPECT_NE(help.find(option.name), std::string::npos);
    }
}

} // namespace
} // namespace nightshift::agents

namespace nightshift::agents {
namespace {

// Every registered agent but the tuner accepts each of its options at its
// documented default (where the default is a value), and names them in --help.
class AgentRegistryContract : public ::testing::TestWithParam<std::string> {};

TEST_P(AgentRegistryContract, AcceptsItsDocumentedDefaults) {
    const auto& registry = agent_registry();
    auto info = std::find_if(registry.begin(), registry.end(), [](const AgentInfo& i) { return i.name == GetParam(); });
    ASSERT_NE(info, registry.end());
    AgentOptions options;
    for (const auto& option : info->options) {
        if (option.default_value.empty() || option.default_value.find(' ') != std::string::npos) continue;
        options[option.name] = option.default_value;
    }
    if (GetParam() == "replay") options["replay_db"] = "results.db";
    else options["model"] = "m";
    AgentConfig config = make_agent_config(GetParam(), options);
    EXPECT_EQ(config.name, GetParam());
    EXPECT_EQ(config.rounds, 1);
    EXPECT_EQ(config.prompt_attempts, 6);
    for (const auto& option : info->options) {
        EXPECT_FALSE(option.description.empty()) << option.name;
        EXPECT_THROW(make_agent_config(GetParam(), {{option.name + "_typo", "1"}}), InputError) << option.name;
    }
}

INSTANTIATE_TEST_SUITE_P(Agents, AgentRegistryContract, ::testing::Values("openai", "anthropic", "replay"));

TEST(AgentRegistry, ListsEveryAgentThePlanKnows) {
    std::vector<std::string> names;
    for (const auto& info : agent_registry()) names.push_back(info.name);
    EXPECT_EQ(names, (std::vector<std::string>{"tuner", "openai", "anthropic", "replay"}));
}

} // namespace
} // namespace nightshift::agents
