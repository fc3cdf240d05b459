// The plan's agent: a name (agent = "openai") or an [agent] table with its options.
#include "harness/core/error.h"
#include "harness/research/plan.h"

#include <gtest/gtest.h>

namespace nightshift::research {
namespace {

std::string plan_with(const std::string& agent) {
    return "+++\ntitle = \"t\"\nop = \"moe_decode\"\nmodels = [\"gemma4-26b-a4b\"]\nbatches = [1]\n"
           "baseline = \"moe_decode/warp_decode_v1.cu\"\n" +
           agent + "\n[[directions]]\nname = \"d\"\nkernels = [\"moe_decode/warp_decode_v1.cu\"]\n+++\nbody\n";
}

std::string error_of(const std::string& text) {
    try {
        parse_plan("p.md", text);
    } catch (const InputError& e) {
        return e.what();
    }
    return "";
}

TEST(PlanAgent, NameAloneStillParses) {
    Plan plan = parse_plan("p.md", plan_with("agent = \"openai\""));
    EXPECT_EQ(plan.agent, "openai");
    EXPECT_TRUE(plan.agent_options.empty());
    EXPECT_EQ(parse_plan("p.md", plan_with("")).agent, "tuner");
}

TEST(PlanAgent, TableHoldsTheNameAndTheOptions) {
    Plan plan = parse_plan("p.md", plan_with("[agent]\nname = \"openai\"\nbase_url = \"http://127.0.0.1:8011/v1\"\n"
                                             "model = \"m\"\ntemperature = 0.2\nmax_calls = 3\nmax_cost_usd = 1\n"
                                             "concurrency = 2\ntimeout_s = 30\nretries = 0\n"));
    EXPECT_EQ(plan.agent, "openai");
    EXPECT_EQ(plan.agent_options.at("base_url"), "http://127.0.0.1:8011/v1");
    EXPECT_EQ(plan.agent_options.at("model"), "m");
    EXPECT_EQ(plan.agent_options.at("temperature"), "0.2");
    EXPECT_EQ(plan.agent_options.at("max_calls"), "3");
    EXPECT_EQ(plan.agent_options.at("retries"), "0");
    EXPECT_EQ(plan.agent_options.count("name"), 0u);
    EXPECT_EQ(plan.line_of("agent.model"), 10);
}

TEST(PlanAgent, UnknownKeysAndBadValuesNameTheLine) {
    std::string e = error_of(plan_with("[agent]\nname = \"openai\"\nmodle = \"m\"\n"));
    EXPECT_NE(e.find("p.md:9: field 'agent.modle': unknown key (did you mean 'model'?)"), std::string::npos) << e;
    EXPECT_NE(e.find("base_url"), std::string::npos) << e; // lists the known keys
    e = error_of(plan_with("[agent]\nname = \"gpt\"\n"));
    EXPECT_NE(e.find("unknown agent 'gpt'"), std::string::npos) << e;
    e = error_of(plan_with("[agent]\nmodel = \"m\"\n"));
    EXPECT_NE(e.find("field 'agent.name': missing"), std::string::npos) << e;
    e = error_of(plan_with("[agent]\nname = \"openai\"\nmax_calls = 0\n"));
    EXPECT_NE(e.find("field 'agent.max_calls': 0 is outside 1.."), std::string::npos) << e;
    e = error_of(plan_with("[agent]\nname = \"openai\"\ntemperature = -1\n"));
    EXPECT_NE(e.find("must not be negative"), std::string::npos) << e;
    e = error_of(plan_with("[agent]\nname = \"openai\"\nmodel = 3\n"));
    EXPECT_NE(e.find("field 'agent.model'"), std::string::npos) << e;
}

} // namespace
} // namespace nightshift::research
