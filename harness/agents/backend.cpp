#include "harness/agents/backend.h"

#include "harness/core/error.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace nightshift::agents {
namespace {
using nlohmann::json;

Failure malformed(std::string_view api, std::string_view what, std::string_view body) {
    return {.kind = FailureKind::malformed_response,
            .message = fmt::format("{} reply: {}", api, what),
            .http_status = std::nullopt,
            .body = std::string(body)};
}

std::optional<std::int64_t> count(const json& usage, const char* key) {
    if (!usage.is_object()) return std::nullopt;
    auto it = usage.find(key);
    if (it == usage.end() || !it->is_number_integer()) return std::nullopt;
    return it->get<std::int64_t>();
}

class OpenAi : public Backend {
public:
    std::string name() const override { return "openai"; }

    HttpRequest request(const ChatRequest& chat, const AgentConfig& config, const std::string& key) const override {
        json body = {{"model", config.model},
                     {"messages",
                      json::array({{{"role", "system"}, {"content", chat.system}},
                                   {{"role", "user"}, {"content", chat.user}}})},
                     {"temperature", config.temperature},
                     {config.max_tokens_field, config.max_tokens}};
        HttpRequest r{config.base_url + "/chat/completions", {"Content-Type: application/json"}, body.dump()};
        if (!key.empty()) r.headers.push_back("Authorization: Bearer " + key);
        return r;
    }

    Outcome<ChatReply> parse(std::string_view body) const override {
        json j = json::parse(body, nullptr, false);
        if (j.is_discarded()) return malformed("openai", "the body is not JSON", body);
        if (!j.is_object()) return malformed("openai", "the body is not a JSON object", body);
        auto choices = j.find("choices");
        if (choices == j.end() || !choices->is_array() || choices->empty())
            return malformed("openai", "no choices", body);
        const json& first = (*choices)[0];
        if (!first.is_object() || !first.contains("message") || !first["message"].is_object() ||
            !first["message"].contains("content") || !first["message"]["content"].is_string())
            return malformed("openai", "choices[0].message.content is not a string", body);
        ChatReply reply;
        reply.text = first["message"]["content"].get<std::string>();
        if (first.contains("finish_reason") && first["finish_reason"].is_string())
            reply.stop_reason = first["finish_reason"].get<std::string>();
        if (j.contains("usage")) {
            reply.tokens_in = count(j["usage"], "prompt_tokens");
            reply.tokens_out = count(j["usage"], "completion_tokens");
        }
        return reply;
    }
};

class Anthropic : public Backend {
public:
    static constexpr const char* k_version = "2023-06-01";

    std::string name() const override { return "anthropic"; }

    HttpRequest request(const ChatRequest& chat, const AgentConfig& config, const std::string& key) const override {
        json body = {{"model", config.model},
                     {"system", chat.system},
                     {"messages", json::array({{{"role", "user"}, {"content", chat.user}}})},
                     {"temperature", config.temperature},
                     {"max_tokens", config.max_tokens}};
        HttpRequest r{config.base_url + "/messages",
                      {"Content-Type: application/json", fmt::format("anthropic-version: {}", k_version)},
                      body.dump()};
        if (!key.empty()) r.headers.push_back("x-api-key: " + key);
        return r;
    }

    Outcome<ChatReply> parse(std::string_view body) const override {
        json j = json::parse(body, nullptr, false);
        if (j.is_discarded()) return malformed("anthropic", "the body is not JSON", body);
        if (!j.is_object()) return malformed("anthropic", "the body is not a JSON object", body);
        auto content = j.find("content");
        if (content == j.end() || !content->is_array()) return malformed("anthropic", "no content array", body);
        ChatReply reply;
        bool any = false;
        for (const json& block : *content) {
            if (!block.is_object() || block.value("type", "") != "text") continue;
            if (!block.contains("text") || !block["text"].is_string())
                return malformed("anthropic", "a text block without text", body);
            reply.text += block["text"].get<std::string>();
            any = true;
        }
        if (!any) return malformed("anthropic", "no text block in content", body);
        if (j.contains("stop_reason") && j["stop_reason"].is_string())
            reply.stop_reason = j["stop_reason"].get<std::string>();
        if (j.contains("usage")) {
            reply.tokens_in = count(j["usage"], "input_tokens");
            reply.tokens_out = count(j["usage"], "output_tokens");
        }
        return reply;
    }
};

} // namespace

std::unique_ptr<Backend> make_backend(std::string_view name) {
    if (name == "openai") return std::make_unique<OpenAi>();
    if (name == "anthropic") return std::make_unique<Anthropic>();
    throw InputError(fmt::format("no LLM backend '{}' (known: openai, anthropic)", name));
}

} // namespace nightshift::agents
