// The agents and their options (STYLE.md 11): a registry that produces
// --help, and make_agent_config, which reads the plan's [agent] table (and
// the command line's overrides) into typed settings, rejecting unknown keys
// and bad values. The API key is named here (api_key_env), never held.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nightshift::agents {

struct AgentOption {
    std::string name, description, default_value;
};

struct AgentInfo {
    std::string name, description;
    std::vector<AgentOption> options;
};

// tuner, openai, anthropic, replay; the options every agent but the tuner reads.
const std::vector<AgentInfo>& agent_registry();
std::string agents_help();

using AgentOptions = std::map<std::string, std::string, std::less<>>;

struct AgentConfig {
    std::string name;     // openai, anthropic, replay
    std::string base_url; // without a trailing '/'
    std::string model;
    std::string api_key_env;
    double temperature = 0.7;
    int max_tokens = 8192;                     // per reply
    std::string max_tokens_field = "max_tokens"; // openai: or "max_completion_tokens" (newer hosted models)
    std::optional<std::int64_t> max_calls;     // per run
    std::optional<std::int64_t> max_total_tokens;
    std::optional<double> max_cost_usd;
    double price_in_per_mtok = 0, price_out_per_mtok = 0; // USD per million tokens, for the cost column
    int concurrency = 2;                       // calls in flight over all loops
    std::chrono::milliseconds timeout{180'000};
    int retries = 3;
    int rounds = 1;                            // proposals per direction and problem
    int prompt_attempts = 6;                   // recent attempts the prompt shows
    std::string replay_db;                     // replay: the results.db holding the recorded calls
    std::optional<std::int64_t> replay_run;    // replay: that run (default: its latest run with calls)
};

// Throws InputError naming the key ("--agent-option" or "[agent]") for an
// unknown agent, an unknown key (listing the known ones) or a bad value.
AgentConfig make_agent_config(std::string_view name, const AgentOptions& options);

} // namespace nightshift::agents
