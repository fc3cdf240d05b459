// HTTPS POSTs for the LLM backends, over libcurl: the only code in nightshift
// that includes curl.h (STYLE.md 2). Timeouts, retries with exponential backoff
// and jitter, 429/529 and Retry-After honoured, TLS verified, and the usual
// proxy variables (https_proxy, http_proxy, no_proxy, all_proxy) respected, as
// libcurl reads them. Expected failures are returned, never thrown; every
// message has the client's secrets (the API key) replaced by "[redacted]".
#pragma once

#include "harness/agents/failure.h"

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace nightshift::agents {

struct HttpRequest {
    std::string url;
    std::vector<std::string> headers; // "Name: value"
    std::string body;                 // sent as the POST body
};

struct HttpResponse {
    long status = 0;
    std::string body;
    int attempts = 0;    // 1 when the first try succeeded
    double seconds = 0;  // wall time over all attempts, waits included
};

struct RetryPolicy {
    int retries = 3;                              // attempts after the first
    std::chrono::milliseconds base_delay{1'000};  // doubled each retry, then jittered
    std::chrono::milliseconds max_delay{60'000};  // also caps a server's Retry-After
};

struct HttpOptions {
    std::chrono::milliseconds timeout{180'000};         // one attempt, end to end
    std::chrono::milliseconds connect_timeout{15'000};
    RetryPolicy retry;
    std::vector<std::string> secrets;                   // redacted from every message
    std::size_t max_body_bytes = 16 << 20;
    // Polled during a transfer and before each retry: true aborts the call
    // (FailureKind::cancelled), so Ctrl-C does not wait out a slow reply.
    std::function<bool()> cancelled;
};

// Retry-After: delay-seconds or an HTTP-date; nullopt when neither.
std::optional<std::chrono::milliseconds> parse_retry_after(const std::string& value,
                                                           std::chrono::system_clock::time_point now);

// The wait before retry number `retry` (0 for the first): the server's
// Retry-After when it gave one, else base * 2^retry scaled by a random factor
// in [0.5, 1); both capped by max_delay.
std::chrono::milliseconds retry_delay(const RetryPolicy& policy, int retry,
                                      std::optional<std::chrono::milliseconds> retry_after, double jitter01);

// `text` with every non-empty secret replaced by "[redacted]".
std::string redact(std::string text, const std::vector<std::string>& secrets);

class HttpClient {
public:
    explicit HttpClient(HttpOptions options);

    // One POST, retried on network errors, timeouts, truncated bodies, 408,
    // 429, 500, 502, 503, 504 and 529. A 2xx is a response; any other status
    // after the retries is a Failure (http_error or rate_limited) with the body.
    Outcome<HttpResponse> post(const HttpRequest& request) const;

    // For tests: replaces the sleep between attempts (records the waits).
    void set_sleep(std::function<void(std::chrono::milliseconds)> sleep) { m_sleep = std::move(sleep); }

private:
    HttpOptions m_options;
    std::function<void(std::chrono::milliseconds)> m_sleep;
};

} // namespace nightshift::agents
