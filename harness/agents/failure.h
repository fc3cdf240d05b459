// What can go wrong when an agent is asked for a kernel, as data: every way
// is one FailureKind, stored in agent_calls.status by name, and the loop goes
// on (STYLE.md 8). Outcome<T> is the expected<T, Failure>-style result the
// agents module returns instead of throwing for expected failures.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace nightshift::agents {

// Stored by name (agent_calls.status): never rename, only append.
enum class FailureKind {
    network,            // no connection, DNS, TLS, a reset: nothing usable came back
    timeout,            // the request took longer than its limit
    http_error,         // the server answered with an error status
    rate_limited,       // 429 or 529 after every retry
    truncated,          // the body ended before its Content-Length
    malformed_response, // the body is not the API's JSON (or lacks the reply text)
    malformed_reply,    // the model's text holds no kernel file
    rejected_reply,     // a kernel file that breaks the rules (host code, includes, annotations)
    budget_spent,       // the run's call, token or cost budget is used up: no call was made
    replay_exhausted,   // the replay agent has no recorded call left
    cancelled,          // the run was asked to stop (Ctrl-C) while the call was in flight
};

std::string_view to_string(FailureKind kind);

struct Failure {
    FailureKind kind = FailureKind::network;
    std::string message;          // for people; never holds the API key
    std::optional<long> http_status;
    std::string body;             // what the server sent, when anything (stored with the call)
};

template <class T> class Outcome {
public:
    Outcome(T value) : m_value(std::move(value)) {}
    Outcome(Failure failure) : m_value(std::move(failure)) {}

    bool ok() const { return std::holds_alternative<T>(m_value); }
    explicit operator bool() const { return ok(); }
    const T& value() const { return std::get<T>(m_value); }
    T& value() { return std::get<T>(m_value); }
    const Failure& failure() const { return std::get<Failure>(m_value); }

private:
    std::variant<T, Failure> m_value;
};

} // namespace nightshift::agents
