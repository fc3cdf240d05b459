#include "harness/agents/tests/llm_test_server.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <functional>
#include <stdexcept>

namespace nightshift::agents::testing {
namespace {
using nlohmann::json;

bool send_all(int fd, const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
        ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) return false;
        sent += static_cast<std::size_t>(n);
    }
    return true;
}

// Reads until `done(buffer)` or the peer closes or 5 s pass without data.
bool read_until(int fd, std::string& buffer, const std::function<bool(const std::string&)>& done,
                const std::atomic<bool>& stop) {
    char chunk[65536];
    while (!done(buffer)) {
        pollfd p{fd, POLLIN, 0};
        int ready = ::poll(&p, 1, 100);
        if (stop.load()) return false;
        if (ready == 0) continue;
        ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) return false;
        buffer.append(chunk, static_cast<std::size_t>(n));
    }
    return true;
}

std::string reason(int status) {
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 529: return "Overloaded";
    default: return "Status";
    }
}

std::string response(int status, const std::string& body, const std::optional<std::string>& retry_after,
                     std::size_t declared_length) {
    std::string head = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
                                   "Connection: close\r\n",
                                   status, reason(status), declared_length);
    if (retry_after) head += fmt::format("Retry-After: {}\r\n", *retry_after);
    return head + "\r\n" + body;
}

// The API's JSON for a reply of `text` to a request body of `request_bytes`.
std::string reply_body(const std::string& path, const std::string& text, std::size_t request_bytes) {
    const auto tokens_in = static_cast<std::int64_t>(request_bytes / 4), tokens_out = static_cast<std::int64_t>(text.size() / 4);
    if (path.ends_with("/messages")) {
        return json{{"id", "msg_local"},
                    {"type", "message"},
                    {"role", "assistant"},
                    {"model", "local-test"},
                    {"content", json::array({{{"type", "text"}, {"text", text}}})},
                    {"stop_reason", "end_turn"},
                    {"usage", {{"input_tokens", tokens_in}, {"output_tokens", tokens_out}}}}
            .dump();
    }
    return json{{"id", "chatcmpl-local"},
                {"object", "chat.completion"},
                {"model", "local-test"},
                {"choices", json::array({{{"index", 0},
                                          {"message", {{"role", "assistant"}, {"content", text}}},
                                          {"finish_reason", "stop"}}})},
                {"usage", {{"prompt_tokens", tokens_in}, {"completion_tokens", tokens_out}}}}
        .dump();
}

} // namespace

LlmTestServer::LlmTestServer(int port, const std::string& host) : m_host(host) {
    m_listen = ::socket(AF_INET, SOCK_STREAM, 0);
    if (m_listen < 0) throw std::runtime_error(fmt::format("socket: {}", std::strerror(errno)));
    int one = 1;
    ::setsockopt(m_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1)
        throw std::runtime_error(fmt::format("'{}' is not an IPv4 address", host));
    if (::bind(m_listen, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(m_listen, 64) != 0) {
        const std::string why = std::strerror(errno);
        ::close(m_listen);
        throw std::runtime_error(fmt::format("cannot listen on {}:{}: {}", host, port, why));
    }
    socklen_t length = sizeof address;
    ::getsockname(m_listen, reinterpret_cast<sockaddr*>(&address), &length);
    m_port = ntohs(address.sin_port);
    m_acceptor = std::thread([this] { accept_loop(); });
}

LlmTestServer::~LlmTestServer() { stop(); }

void LlmTestServer::stop() {
    if (m_stop.exchange(true)) return;
    if (m_acceptor.joinable()) m_acceptor.join();
    std::vector<std::thread> connections;
    {
        std::lock_guard<std::mutex> guard(m_mutex);
        connections.swap(m_connections);
    }
    for (auto& t : connections) t.join();
    ::close(m_listen);
}

std::string LlmTestServer::base_url() const { return fmt::format("http://{}:{}/v1", m_host, m_port); }

void LlmTestServer::script(std::vector<Scripted> steps) {
    std::lock_guard<std::mutex> guard(m_mutex);
    m_script.assign(steps.begin(), steps.end());
}

void LlmTestServer::set_default(Scripted step) {
    std::lock_guard<std::mutex> guard(m_mutex);
    m_default = std::move(step);
}

std::vector<Received> LlmTestServer::received() const {
    std::lock_guard<std::mutex> guard(m_mutex);
    return m_received;
}

Scripted LlmTestServer::next() {
    std::lock_guard<std::mutex> guard(m_mutex);
    if (m_script.empty()) return m_default;
    Scripted step = std::move(m_script.front());
    m_script.pop_front();
    return step;
}

std::string LlmTestServer::kernel_reply(const std::string& kernel_source, const std::string& hypothesis,
                                        const std::string& predicted_effect) {
    return fmt::format("Hypothesis: {}\nPredicted effect: {}\n\n```cuda\n{}```\n", hypothesis, predicted_effect,
                       kernel_source);
}

void LlmTestServer::accept_loop() {
    while (!m_stop.load()) {
        pollfd p{m_listen, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        int fd = ::accept(m_listen, nullptr, nullptr);
        if (fd < 0) continue;
        std::lock_guard<std::mutex> guard(m_mutex);
        m_connections.emplace_back([this, fd] {
            serve(fd);
            ::close(fd);
        });
    }
}

void LlmTestServer::serve(int fd) {
    std::string buffer;
    if (!read_until(fd, buffer, [](const std::string& b) { return b.find("\r\n\r\n") != std::string::npos; }, m_stop))
        return;
    Received request;
    const std::size_t head_end = buffer.find("\r\n\r\n");
    std::string head = buffer.substr(0, head_end);
    std::size_t line_end = head.find("\r\n");
    std::string first = head.substr(0, line_end);
    const std::size_t space1 = first.find(' '), space2 = first.find(' ', space1 + 1);
    request.method = first.substr(0, space1);
    request.path = first.substr(space1 + 1, space2 - space1 - 1);
    for (std::size_t at = line_end; at != std::string::npos && at < head.size();) {
        std::size_t next_line = head.find("\r\n", at + 2);
        std::string line = head.substr(at + 2, next_line == std::string::npos ? std::string::npos : next_line - at - 2);
        std::size_t colon = line.find(':');
        if (colon != std::string::npos) {
            std::string name = line.substr(0, colon), value = line.substr(colon + 1);
            std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
            value.erase(0, value.find_first_not_of(' '));
            request.headers[name] = value;
        }
        at = next_line;
    }
    std::size_t length = 0;
    if (auto it = request.headers.find("content-length"); it != request.headers.end()) length = std::stoul(it->second);
    if (auto it = request.headers.find("expect"); it != request.headers.end() && it->second == "100-continue") {
        if (!send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n")) return;
    }
    std::string body = buffer.substr(head_end + 4);
    if (!read_until(fd, body, [&](const std::string& b) { return b.size() >= length; }, m_stop)) return;
    request.body = body.substr(0, length);
    {
        std::lock_guard<std::mutex> guard(m_mutex);
        m_received.push_back(request);
    }

    const bool known = request.method == "POST" &&
                       (request.path.ends_with("/chat/completions") || request.path.ends_with("/messages"));
    if (!known) {
        const std::string error = R"({"error":{"type":"not_found","message":"no such endpoint"}})";
        send_all(fd, response(404, error, std::nullopt, error.size()));
        return;
    }
    Scripted step = next();
    const int now = m_in_flight.fetch_add(1) + 1;
    for (int seen = m_max_in_flight.load(); now > seen && !m_max_in_flight.compare_exchange_weak(seen, now);) {
    }
    struct Leave {
        std::atomic<int>& count;
        ~Leave() { count.fetch_sub(1); }
    } leave{m_in_flight};
    switch (step.behaviour) {
    case Behaviour::reply: {
        const std::string out = reply_body(request.path, step.text, request.body.size());
        send_all(fd, response(200, out, std::nullopt, out.size()));
        break;
    }
    case Behaviour::status: send_all(fd, response(step.status, step.text, step.retry_after, step.text.size())); break;
    case Behaviour::malformed_json: {
        const std::string out = R"({"id": "chatcmpl-local", "choices": [{"message": {"content": "Hypo)";
        send_all(fd, response(200, out, std::nullopt, out.size()));
        break;
    }
    case Behaviour::truncated: {
        const std::string out = reply_body(request.path, step.text, request.body.size());
        send_all(fd, response(200, out.substr(0, out.size() / 2), std::nullopt, out.size()));
        break;
    }
    case Behaviour::close: break;
    case Behaviour::hang: {
        const auto until = std::chrono::steady_clock::now() + step.hang;
        while (!m_stop.load() && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        break;
    }
    }
}

} // namespace nightshift::agents::testing
