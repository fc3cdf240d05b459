#include "harness/agents/agent_config.h"

#include "harness/core/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace nightshift::agents {
namespace {

std::vector<AgentOption> llm_options(const std::string& base_url, const std::string& key_env, bool openai) {
    std::vector<AgentOption> options = {
        {"base_url", "the API's base URL (a local server: http://127.0.0.1:PORT/v1)", base_url},
        {"model", "model name the API knows (required)", ""},
        {"api_key_env", "environment variable holding the API key (never stored or logged)", key_env},
        {"temperature", "sampling temperature", "0.7"},
        {"max_tokens", "tokens per reply", "8192"},
        {"max_calls", "calls per run, then the tuner goes on alone", "no limit"},
        {"max_total_tokens", "prompt + reply tokens per run", "no limit"},
        {"max_cost_usd", "cost per run, from the two prices", "no limit"},
        {"price_in_per_mtok", "USD per million prompt tokens", "0"},
        {"price_out_per_mtok", "USD per million reply tokens", "0"},
        {"concurrency", "calls in flight over all loops", "2"},
        {"timeout_s", "seconds per attempt", "180"},
        {"retries", "attempts after the first (backoff with jitter; Retry-After honoured)", "3"},
        {"rounds", "proposals per direction and problem", "1"},
        {"prompt_attempts", "recent attempts shown in the prompt", "6"},
    };
    if (openai)
        options.push_back({"max_tokens_field", "the request field for max_tokens: max_tokens (most servers) or "
                                               "max_completion_tokens (newer hosted OpenAI models)",
                           "max_tokens"});
    return options;
}

const std::vector<std::string_view> k_known_keys = {
    "base_url", "model",       "api_key_env", "temperature", "max_tokens", "max_tokens_field", "max_calls",
    "max_total_tokens", "max_cost_usd", "price_in_per_mtok", "price_out_per_mtok", "concurrency", "timeout_s",
    "retries",  "rounds",      "prompt_attempts", "replay_db", "replay_run"};

double number(const std::string& key, const std::string& value) {
    try {
        std::size_t used = 0;
        const double v = std::stod(value, &used);
        if (used != value.size() || !std::isfinite(v) || v < 0) throw std::invalid_argument(value);
        return v;
    } catch (const std::exception&) {
        throw InputError(fmt::format("agent option '{}': '{}' is not a non-negative number", key, value));
    }
}

std::int64_t integer(const std::string& key, const std::string& value, std::int64_t lo) {
    try {
        std::size_t used = 0;
        const long long v = std::stoll(value, &used);
        if (used != value.size() || v < lo) throw std::invalid_argument(value);
        return v;
    } catch (const std::exception&) {
        throw InputError(fmt::format("agent option '{}': '{}' is not an integer >= {}", key, value, lo));
    }
}

} // namespace

const std::vector<AgentInfo>& agent_registry() {
    static const std::vector<AgentInfo> registry = [] {
        std::vector<AgentInfo> r;
        r.push_back({"tuner", "offline: searches the kernels' knob spaces (no options here; see [tuner])", {}});
        r.push_back({"openai", "any OpenAI-compatible chat-completions API: hosted, vLLM, llama.cpp server, Ollama",
                     llm_options("https://api.openai.com/v1", "OPENAI_API_KEY", true)});
        r.push_back({"anthropic", "the Anthropic messages API (anthropic-version 2023-06-01)",
                     llm_options("https://api.anthropic.com/v1", "ANTHROPIC_API_KEY", false)});
        r.push_back({"replay",
                     "re-drives the loop from the calls recorded in another results.db (no network)",
                     {{"replay_db", "results.db holding the recorded calls (required)", ""},
                      {"replay_run", "the run whose calls to replay", "its latest run with agent calls"},
                      {"rounds", "proposals per direction and problem", "1"},
                      {"prompt_attempts", "recent attempts shown in the (recorded) prompt", "6"}}});
        return r;
    }();
    return registry;
}

std::string agents_help() {
    std::string out;
    for (const auto& info : agent_registry()) {
        out += fmt::format("  {:<10} {}\n", info.name, info.description);
        for (const auto& option : info.options) {
            out += fmt::format("      {:<19} {} (default: {})\n", option.name, option.description,
                               option.default_value.empty() ? "none" : option.default_value);
        }
    }
    return out;
}

AgentConfig make_agent_config(std::string_view name, const AgentOptions& options) {
    const auto& registry = agent_registry();
    auto info = std::find_if(registry.begin(), registry.end(), [&](const AgentInfo& i) { return i.name == name; });
    if (info == registry.end() || name == "tuner") {
        std::string known;
        for (const auto& i : registry) known += (known.empty() ? "" : ", ") + i.name;
        throw InputError(fmt::format("agent '{}': not an LLM or replay agent (known agents: {})", name, known));
    }
    AgentConfig config;
    config.name = std::string(name);
    for (const auto& option : info->options) {
        if (option.name == "base_url") config.base_url = option.default_value;
        if (option.name == "api_key_env") config.api_key_env = option.default_value;
    }
    for (const auto& [key, value] : options) {
        const bool ours = std::any_of(info->options.begin(), info->options.end(),
                                      [&](const AgentOption& o) { return o.name == key; });
        if (!ours) {
            std::string known;
            for (const auto& o : info->options) known += (known.empty() ? "" : ", ") + o.name;
            const bool elsewhere = std::find(k_known_keys.begin(), k_known_keys.end(), key) != k_known_keys.end();
            throw InputError(fmt::format("agent option '{}': {} for agent '{}'; its options: {}", key,
                                         elsewhere ? "not an option" : "unknown key", name, known));
        }
        if (key == "base_url") {
            config.base_url = value;
            while (!config.base_url.empty() && config.base_url.back() == '/') config.base_url.pop_back();
            if (config.base_url.rfind("http://", 0) != 0 && config.base_url.rfind("https://", 0) != 0)
                throw InputError(fmt::format("agent option 'base_url': '{}' is not an http:// or https:// URL", value));
        } else if (key == "model") config.model = value;
        else if (key == "api_key_env") config.api_key_env = value;
        else if (key == "temperature") config.temperature = number(key, value);
        else if (key == "max_tokens") config.max_tokens = static_cast<int>(integer(key, value, 1));
        else if (key == "max_tokens_field") {
            if (value != "max_tokens" && value != "max_completion_tokens")
                throw InputError(fmt::format("agent option 'max_tokens_field': '{}' is neither max_tokens nor "
                                             "max_completion_tokens", value));
            config.max_tokens_field = value;
        } else if (key == "max_calls") config.max_calls = integer(key, value, 1);
        else if (key == "max_total_tokens") config.max_total_tokens = integer(key, value, 1);
        else if (key == "max_cost_usd") config.max_cost_usd = number(key, value);
        else if (key == "price_in_per_mtok") config.price_in_per_mtok = number(key, value);
        else if (key == "price_out_per_mtok") config.price_out_per_mtok = number(key, value);
        else if (key == "concurrency") config.concurrency = static_cast<int>(integer(key, value, 1));
        else if (key == "timeout_s")
            config.timeout = std::chrono::milliseconds(static_cast<long long>(number(key, value) * 1000));
        else if (key == "retries") config.retries = static_cast<int>(integer(key, value, 0));
        else if (key == "rounds") config.rounds = static_cast<int>(integer(key, value, 1));
        else if (key == "prompt_attempts") config.prompt_attempts = static_cast<int>(integer(key, value, 1));
        else if (key == "replay_db") config.replay_db = value;
        else if (key == "replay_run") config.replay_run = integer(key, value, 1);
    }
    if ((config.name == "openai" || config.name == "anthropic") && config.model.empty())
        throw InputError(fmt::format("agent '{}' needs a model: [agent] model = \"...\" or --agent-model", name));
    if (config.name == "replay" && config.replay_db.empty())
        throw InputError("agent 'replay' needs the recorded calls: [agent] replay_db = \"results.db\" or "
                         "--agent-option replay_db=FILE");
    if (config.timeout.count() < 1) throw InputError("agent option 'timeout_s': must be positive");
    return config;
}

} // namespace nightshift::agents
