// A real HTTP/1.1 server on a local socket that speaks both LLM wire formats
// (POST /v1/chat/completions as OpenAI, POST /v1/messages as Anthropic), for
// the agent tests and for loops driven with no network
// (nightshift_test_llm_server). Each request takes the next scripted
// behaviour, or the default one when the script is empty: a reply with given
// text, an error status (with Retry-After), malformed JSON, a truncated body,
// a connection closed with no answer, or a hang.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace nightshift::agents::testing {

enum class Behaviour { reply, status, malformed_json, truncated, close, hang };

struct Scripted {
    Behaviour behaviour = Behaviour::reply;
    std::string text;                       // reply: the model's text; status: the error body
    int status = 200;                       // status: the HTTP status
    std::optional<std::string> retry_after; // status: a Retry-After header
    std::chrono::milliseconds hang{0};      // hang: how long before closing (the server's stop ends it too)

    static Scripted reply(std::string text) { return with(Behaviour::reply, std::move(text)); }
    static Scripted error(int status, std::string body, std::optional<std::string> retry_after = std::nullopt) {
        Scripted s = with(Behaviour::status, std::move(body));
        s.status = status;
        s.retry_after = std::move(retry_after);
        return s;
    }
    static Scripted with(Behaviour behaviour, std::string text = {}, std::chrono::milliseconds hang = {}) {
        Scripted s;
        s.behaviour = behaviour;
        s.text = std::move(text);
        s.hang = hang;
        return s;
    }
};

struct Received {
    std::string method, path, body;
    std::map<std::string, std::string> headers; // names lower-cased
};

class LlmTestServer {
public:
    // port 0: any free port. Throws std::runtime_error when it cannot listen.
    explicit LlmTestServer(int port = 0, const std::string& host = "127.0.0.1");
    ~LlmTestServer();
    LlmTestServer(const LlmTestServer&) = delete;
    LlmTestServer& operator=(const LlmTestServer&) = delete;

    int port() const { return m_port; }
    std::string base_url() const; // http://HOST:PORT/v1

    void script(std::vector<Scripted> steps);
    void set_default(Scripted step);
    std::vector<Received> received() const;
    int max_in_flight() const { return m_max_in_flight.load(); } // most requests served at once
    void stop();

    // A model's reply holding `kernel_source`, in the format the prompt asks for.
    static std::string kernel_reply(const std::string& kernel_source, const std::string& hypothesis,
                                    const std::string& predicted_effect);

private:
    void accept_loop();
    void serve(int fd);
    Scripted next();

    int m_listen = -1, m_port = 0;
    std::string m_host;
    std::atomic<bool> m_stop{false};
    std::atomic<int> m_in_flight{0}, m_max_in_flight{0};
    mutable std::mutex m_mutex;
    std::deque<Scripted> m_script;
    Scripted m_default;
    std::vector<Received> m_received;
    std::vector<std::thread> m_connections;
    std::thread m_acceptor;
};

} // namespace nightshift::agents::testing
