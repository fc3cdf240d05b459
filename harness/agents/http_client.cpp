#include "harness/agents/http_client.h"

#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

namespace nightshift::agents {
namespace {

// Every libcurl handle is owned by one of these (STYLE.md 7).
struct EasyDeleter {
    void operator()(CURL* handle) const noexcept { curl_easy_cleanup(handle); }
};
struct SlistDeleter {
    void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};
using EasyHandle = std::unique_ptr<CURL, EasyDeleter>;
using SlistHandle = std::unique_ptr<curl_slist, SlistDeleter>;

// The one check for libcurl setup calls: a failure here is a bug or a libcurl
// without a feature, not a network condition.
#define NS_CURL_SETOPT(handle, option, value)                                                                   \
    do {                                                                                                        \
        const CURLcode ns_code = curl_easy_setopt(handle, option, value);                                       \
        if (ns_code != CURLE_OK)                                                                                \
            throw std::runtime_error(fmt::format("curl_easy_setopt({}) failed: {} at {}:{}", #option,           \
                                                 curl_easy_strerror(ns_code), __FILE__, __LINE__));             \
    } while (0)

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
    std::string body;
    std::string retry_after;
    std::size_t limit = 0;
    bool too_large = false;
    const std::function<bool()>* cancelled = nullptr;
};

extern "C" int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    const auto* transfer = static_cast<const Transfer*>(user);
    return transfer->cancelled && *transfer->cancelled && (*transfer->cancelled)() ? 1 : 0; // 1 aborts
}

extern "C" std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
    auto* transfer = static_cast<Transfer*>(user);
    const std::size_t bytes = size * count;
    if (transfer->body.size() + bytes > transfer->limit) {
        transfer->too_large = true;
        return 0; // aborts the transfer with CURLE_WRITE_ERROR
    }
    transfer->body.append(data, bytes);
    return bytes;
}

extern "C" std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
    auto* transfer = static_cast<Transfer*>(user);
    const std::size_t bytes = size * count;
    std::string line(data, bytes);
    const std::size_t colon = line.find(':');
    if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
        if (name == "retry-after") {
            std::string value = line.substr(colon + 1);
            while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) value.erase(0, 1);
            while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.pop_back();
            transfer->retry_after = value;
        }
    } else if (line.rfind("HTTP/", 0) == 0) {
        transfer->retry_after.clear(); // a new response (after a 100 Continue or a redirect)
    }
    return bytes;
}

// A JSON error body's message, when the server sent one ({"error": {"message": ...}}
// in both wire formats); else the body's first 300 bytes.
std::string body_excerpt(const std::string& body) {
    const std::size_t at = body.find("\"message\"");
    std::string excerpt = at != std::string::npos ? body.substr(at, 300) : body.substr(0, 300);
    std::replace(excerpt.begin(), excerpt.end(), '\n', ' ');
    return excerpt;
}

bool retryable_status(long status) {
    return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 || status == 504 ||
           status == 529;
}

struct Attempt {
    CURLcode code = CURLE_OK;
    long status = 0;
    Transfer transfer;
    std::string error;
};

Attempt perform(const HttpRequest& request, const HttpOptions& options) {
    Attempt attempt;
    attempt.transfer.limit = options.max_body_bytes;
    attempt.transfer.cancelled = &options.cancelled;
    EasyHandle easy(curl_easy_init());
    if (!easy) {
        attempt.code = CURLE_FAILED_INIT;
        attempt.error = "curl_easy_init failed";
        return attempt;
    }
    SlistHandle headers;
    for (const auto& header : request.headers) {
        curl_slist* appended = curl_slist_append(headers.get(), header.c_str());
        if (!appended) throw std::bad_alloc();
        headers.release();
        headers.reset(appended);
    }
    char error_buffer[CURL_ERROR_SIZE] = {};
    CURL* h = easy.get();
    NS_CURL_SETOPT(h, CURLOPT_URL, request.url.c_str());
    NS_CURL_SETOPT(h, CURLOPT_HTTPHEADER, headers.get());
    NS_CURL_SETOPT(h, CURLOPT_POSTFIELDS, request.body.c_str());
    NS_CURL_SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    NS_CURL_SETOPT(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options.timeout.count()));
    NS_CURL_SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout.count()));
    NS_CURL_SETOPT(h, CURLOPT_NOSIGNAL, 1L); // loops call from several threads
    NS_CURL_SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L);
    NS_CURL_SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L);
    NS_CURL_SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L);
    NS_CURL_SETOPT(h, CURLOPT_USERAGENT, "nightshift/0.1");
    NS_CURL_SETOPT(h, CURLOPT_ERRORBUFFER, error_buffer);
    NS_CURL_SETOPT(h, CURLOPT_WRITEFUNCTION, on_body);
    NS_CURL_SETOPT(h, CURLOPT_WRITEDATA, &attempt.transfer);
    NS_CURL_SETOPT(h, CURLOPT_HEADERFUNCTION, on_header);
    NS_CURL_SETOPT(h, CURLOPT_HEADERDATA, &attempt.transfer);
    NS_CURL_SETOPT(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    NS_CURL_SETOPT(h, CURLOPT_XFERINFODATA, &attempt.transfer);
    NS_CURL_SETOPT(h, CURLOPT_NOPROGRESS, 0L);
    // Proxies: with CURLOPT_PROXY unset, libcurl reads https_proxy, http_proxy,
    // all_proxy and no_proxy from the environment itself.
    attempt.code = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &attempt.status);
    attempt.error = error_buffer[0] ? error_buffer : curl_easy_strerror(attempt.code);
    return attempt;
}

// A transport-level failure: its kind, and whether trying again may help.
std::pair<FailureKind, bool> classify(CURLcode code) {
    switch (code) {
    case CURLE_OPERATION_TIMEDOUT: return {FailureKind::timeout, true};
    case CURLE_PARTIAL_FILE: return {FailureKind::truncated, true};
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING: return {FailureKind::network, true};
    default: return {FailureKind::network, false}; // TLS, a bad URL, an unsupported protocol, ...
    }
}

} // namespace

std::string_view to_string(FailureKind kind) {
    switch (kind) {
    case FailureKind::network: return "network";
    case FailureKind::timeout: return "timeout";
    case FailureKind::http_error: return "http_error";
    case FailureKind::rate_limited: return "rate_limited";
    case FailureKind::truncated: return "truncated";
    case FailureKind::malformed_response: return "malformed_response";
    case FailureKind::malformed_reply: return "malformed_reply";
    case FailureKind::rejected_reply: return "rejected_reply";
    case FailureKind::budget_spent: return "budget_spent";
    case FailureKind::replay_exhausted: return "replay_exhausted";
    case FailureKind::cancelled: return "cancelled";
    }
    return "unknown";
}

std::optional<std::chrono::milliseconds> parse_retry_after(const std::string& value,
                                                           std::chrono::system_clock::time_point now) {
    if (value.empty()) return std::nullopt;
    if (std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c); })) {
        if (value.size() > 9) return std::chrono::milliseconds(std::chrono::hours(24 * 365));
        return std::chrono::milliseconds(std::stoll(value) * 1000);
    }
    // An HTTP-date: "Wed, 21 Oct 2015 07:28:00 GMT".
    std::tm tm{};
    const char* end = strptime(value.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end != '\0') return std::nullopt;
    const auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(at - now);
    return std::max(wait, std::chrono::milliseconds(0));
}

std::chrono::milliseconds retry_delay(const RetryPolicy& policy, int retry,
                                      std::optional<std::chrono::milliseconds> retry_after, double jitter01) {
    if (retry_after) return std::min(*retry_after, policy.max_delay);
    const double exponential = static_cast<double>(policy.base_delay.count()) * std::pow(2.0, std::min(retry, 30));
    const double jittered = exponential * (0.5 + 0.5 * std::clamp(jitter01, 0.0, 1.0));
    return std::min(std::chrono::milliseconds(static_cast<long long>(jittered)), policy.max_delay);
}

std::string redact(std::string text, const std::vector<std::string>& secrets) {
    for (const auto& secret : secrets) {
        if (secret.empty()) continue;
        for (std::size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at)) {
            text.replace(at, secret.size(), "[redacted]");
            at += 10;
        }
    }
    return text;
}

HttpClient::HttpClient(HttpOptions options)
    : m_options(std::move(options)), m_sleep([](std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }) {
    global_init();
}

Outcome<HttpResponse> HttpClient::post(const HttpRequest& request) const {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    const auto start = std::chrono::steady_clock::now();
    const int attempts = 1 + std::max(0, m_options.retry.retries);
    Failure last;
    for (int attempt = 0; attempt < attempts; ++attempt) {
        Attempt a = perform(request, m_options);
        std::optional<std::chrono::milliseconds> retry_after;
        bool retry = false;
        if (a.code == CURLE_OK && a.status >= 200 && a.status < 300) {
            HttpResponse response;
            response.status = a.status;
            response.body = std::move(a.transfer.body);
            response.attempts = attempt + 1;
            response.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            return response;
        }
        if (a.code == CURLE_OK) {
            const bool limited = a.status == 429 || a.status == 529;
            last = {.kind = limited ? FailureKind::rate_limited : FailureKind::http_error,
                    .message = fmt::format("HTTP {} from {}: {}", a.status, request.url, body_excerpt(a.transfer.body)),
                    .http_status = a.status,
                    .body = std::move(a.transfer.body)};
            retry = retryable_status(a.status);
            retry_after = parse_retry_after(a.transfer.retry_after, std::chrono::system_clock::now());
        } else if (a.code == CURLE_ABORTED_BY_CALLBACK) {
            last = {.kind = FailureKind::cancelled,
                    .message = fmt::format("{}: cancelled (the run is stopping)", request.url),
                    .http_status = std::nullopt,
                    .body = {}};
        } else if (a.transfer.too_large) {
            last = {.kind = FailureKind::malformed_response,
                    .message = fmt::format("the response from {} is larger than {} bytes", request.url,
                                           m_options.max_body_bytes),
                    .http_status = std::nullopt,
                    .body = {}};
        } else {
            auto [kind, again] = classify(a.code);
            last = {.kind = kind,
                    .message = fmt::format("{} ({}): {}", request.url, curl_easy_strerror(a.code), a.error),
                    .http_status = a.status ? std::optional<long>(a.status) : std::nullopt,
                    .body = std::move(a.transfer.body)};
            retry = again;
        }
        if (m_options.cancelled && m_options.cancelled()) retry = false;
        if (!retry || attempt + 1 == attempts) {
            if (attempt > 0) last.message += fmt::format(" (after {} attempts)", attempt + 1);
            break;
        }
        m_sleep(retry_delay(m_options.retry, attempt, retry_after,
                            std::uniform_real_distribution<double>(0, 1)(rng)));
    }
    last.message = redact(std::move(last.message), m_options.secrets);
    last.body = redact(std::move(last.body), m_options.secrets);
    return last;
}

} // namespace nightshift::agents
