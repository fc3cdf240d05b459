// The two wire formats an LLM agent speaks: `openai` (POST {base}/chat/completions,
// Bearer key; any OpenAI-compatible server) and `anthropic` (POST {base}/messages,
// x-api-key and anthropic-version headers). A backend builds the request and
// decodes the reply body into text and token usage; the HTTP client moves bytes.
#pragma once

#include "harness/agents/agent_config.h"
#include "harness/agents/failure.h"
#include "harness/agents/http_client.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace nightshift::agents {

struct ChatRequest {
    std::string system, user;
};

struct ChatReply {
    std::string text;
    std::optional<std::int64_t> tokens_in, tokens_out;
    std::string stop_reason; // "length"/"max_tokens" when the reply was cut off
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    // `api_key` may be empty (a local server that wants none): no auth header then.
    virtual HttpRequest request(const ChatRequest& chat, const AgentConfig& config, const std::string& api_key) const = 0;
    // A 2xx body into the reply; malformed_response when it is not the API's JSON.
    virtual Outcome<ChatReply> parse(std::string_view body) const = 0;
};

// "openai" or "anthropic"; InputError for anything else.
std::unique_ptr<Backend> make_backend(std::string_view name);

} // namespace nightshift::agents
