// The HTTP client against a real local server over real sockets: retries,
// Retry-After, errors, truncated bodies, closed connections, a server that
// hangs, a dead port, and the API key kept out of every message.
#include "harness/agents/http_client.h"
#include "harness/agents/tests/llm_test_server.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace nightshift::agents {
namespace {
using namespace std::chrono_literals;
using testing::Behaviour;
using testing::LlmTestServer;
using testing::Scripted;

class HttpClientTest : public ::testing::Test {
protected:
    void SetUp() override {
        // Local requests never go through a proxy the environment may name.
        ::setenv("no_proxy", "127.0.0.1,localhost", 1);
        ::setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    }

    HttpClient client(int retries, std::chrono::milliseconds timeout = 5s) {
        HttpOptions options;
        options.timeout = timeout;
        options.connect_timeout = 2s;
        options.retry.retries = retries;
        options.retry.base_delay = 10ms;
        options.secrets = {"sk-test-SECRET-123"};
        HttpClient c(options);
        c.set_sleep([this](std::chrono::milliseconds d) { m_waits.push_back(d); });
        return c;
    }

    HttpRequest chat() const {
        return {m_server.base_url() + "/chat/completions",
                {"Content-Type: application/json", "Authorization: Bearer sk-test-SECRET-123"},
                R"({"model":"m"})"};
    }

    LlmTestServer m_server;
    std::vector<std::chrono::milliseconds> m_waits;
};

TEST_F(HttpClientTest, PostsTheBodyWithItsHeadersAndReturnsTheReply) {
    m_server.set_default(Scripted::reply("hello"));
    auto response = client(0).post(chat());
    ASSERT_TRUE(response.ok()) << response.failure().message;
    EXPECT_EQ(response.value().status, 200);
    EXPECT_NE(response.value().body.find("\"hello\""), std::string::npos);
    EXPECT_EQ(response.value().attempts, 1);
    auto received = m_server.received();
    ASSERT_EQ(received.size(), 1u);
    EXPECT_EQ(received[0].method, "POST");
    EXPECT_EQ(received[0].path, "/v1/chat/completions");
    EXPECT_EQ(received[0].body, R"({"model":"m"})");
    EXPECT_EQ(received[0].headers["authorization"], "Bearer sk-test-SECRET-123");
    EXPECT_EQ(received[0].headers["content-type"], "application/json");
}

TEST_F(HttpClientTest, HonoursRetryAfterOn429ThenSucceeds) {
    m_server.script({Scripted::error(429, R"({"error":{"message":"slow down"}})", "3"), Scripted::reply("ok")});
    auto response = client(2).post(chat());
    ASSERT_TRUE(response.ok()) << response.failure().message;
    EXPECT_EQ(response.value().attempts, 2);
    ASSERT_EQ(m_waits.size(), 1u);
    EXPECT_EQ(m_waits[0], 3000ms); // the server's wait, not the 10 ms backoff
    EXPECT_EQ(m_server.received().size(), 2u);
}

TEST_F(HttpClientTest, Overloaded529ExhaustsTheRetriesAsRateLimited) {
    m_server.set_default(Scripted::error(529, R"({"type":"error","error":{"message":"overloaded"}})"));
    auto response = client(2).post(chat());
    ASSERT_FALSE(response.ok());
    EXPECT_EQ(response.failure().kind, FailureKind::rate_limited);
    EXPECT_EQ(response.failure().http_status, 529);
    EXPECT_NE(response.failure().message.find("overloaded"), std::string::npos);
    EXPECT_NE(response.failure().message.find("after 3 attempts"), std::string::npos);
    EXPECT_EQ(m_server.received().size(), 3u);
    ASSERT_EQ(m_waits.size(), 2u);
    // Exponential backoff with jitter: 10 ms * 2^n * [0.5, 1).
    EXPECT_GE(m_waits[0], 5ms);
    EXPECT_LE(m_waits[0], 10ms);
    EXPECT_GE(m_waits[1], 10ms);
    EXPECT_LE(m_waits[1], 20ms);
}

TEST_F(HttpClientTest, ServerErrorIsRetriedAndAClientErrorIsNot) {
    m_server.script({Scripted::error(500, R"({"error":{"message":"internal"}})"), Scripted::reply("ok")});
    EXPECT_TRUE(client(1).post(chat()).ok());
    m_server.script({Scripted::error(400, R"({"error":{"message":"model not found"}})")});
    auto response = client(3).post(chat());
    ASSERT_FALSE(response.ok());
    EXPECT_EQ(response.failure().kind, FailureKind::http_error);
    EXPECT_EQ(response.failure().http_status, 400);
    EXPECT_NE(response.failure().message.find("model not found"), std::string::npos);
    EXPECT_EQ(m_server.received().size(), 3u); // 500, ok, then the 400 once
}

TEST_F(HttpClientTest, TruncatedBodyIsATypedFailure) {
    m_server.set_default(Scripted::with(Behaviour::truncated, "a reply long enough to be cut in half"));
    auto response = client(1).post(chat());
    ASSERT_FALSE(response.ok());
    EXPECT_EQ(response.failure().kind, FailureKind::truncated);
    EXPECT_EQ(m_server.received().size(), 2u);
}

TEST_F(HttpClientTest, ConnectionClosedWithoutAnAnswerIsANetworkFailure) {
    m_server.set_default(Scripted::with(Behaviour::close));
    auto response = client(0).post(chat());
    ASSERT_FALSE(response.ok());
    EXPECT_EQ(response.failure().kind, FailureKind::network);
}

TEST_F(HttpClientTest, HangingServerTimesOut) {
    m_server.set_default(Scripted::with(Behaviour::hang, "", 10s));
    const auto start = std::chrono::steady_clock::now();
    auto response = client(0, 1s).post(chat());
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(response.ok());
    EXPECT_EQ(response.failure().kind, FailureKind::timeout);
    EXPECT_LT(took, 3s);
    EXPECT_GE(took, 900ms);
}

TEST_F(HttpClientTest, StopRequestAbortsACallInFlight) {
    m_server.set_default(Scripted::with(Behaviour::hang, "", 10s));
    HttpOptions options;
    options.timeout = 10s;
    options.retry.retries = 3;
    const auto start = std::chrono::steady_clock::now();
    options.cancelled = [&] { return std::chrono::steady_clock::now() - start > 200ms; };
    auto response = HttpClient(options).post(chat());
    ASSERT_FALSE(response.ok());
    EXPECT_EQ(response.failure().kind, FailureKind::cancelled);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
    EXPECT_EQ(m_server.received().size(), 1u); // no retry after a stop
}

TEST_F(HttpClientTest, DeadPortIsANetworkFailure) {
    int port = 0;
    {
        LlmTestServer gone;
        port = gone.port();
    }
    HttpRequest request = chat();
    request.url = "http://127.0.0.1:" + std::to_string(port) + "/v1/chat/completions";
    auto response = client(1).post(request);
    ASSERT_FALSE(response.ok());
    EXPECT_EQ(response.failure().kind, FailureKind::network);
    EXPECT_EQ(m_waits.size(), 1u); // connect failures are retried
}

TEST_F(HttpClientTest, TheKeyIsRedactedFromMessagesAndBodies) {
    m_server.set_default(
        Scripted::error(401, R"({"error":{"message":"invalid key sk-test-SECRET-123 for this org"}})"));
    auto response = client(0).post(chat());
    ASSERT_FALSE(response.ok());
    EXPECT_EQ(response.failure().http_status, 401);
    EXPECT_EQ(response.failure().message.find("SECRET"), std::string::npos) << response.failure().message;
    EXPECT_EQ(response.failure().body.find("SECRET"), std::string::npos);
    EXPECT_NE(response.failure().message.find("[redacted]"), std::string::npos);
}

TEST(RetryAfter, SecondsAndHttpDates) {
    const auto now = std::chrono::system_clock::from_time_t(1445412480); // Wed, 21 Oct 2015 07:28:00 GMT
    EXPECT_EQ(parse_retry_after("7", now), std::chrono::milliseconds(7000));
    EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now), std::chrono::milliseconds(30000));
    EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), std::chrono::milliseconds(0));
    EXPECT_FALSE(parse_retry_after("soon", now));
    EXPECT_FALSE(parse_retry_after("", now));
}

TEST(RetryDelay, ExponentialJitteredAndCapped) {
    RetryPolicy policy{.retries = 5, .base_delay = std::chrono::milliseconds(100), .max_delay = std::chrono::milliseconds(1000)};
    EXPECT_EQ(retry_delay(policy, 0, std::nullopt, 0.0), std::chrono::milliseconds(50));
    EXPECT_EQ(retry_delay(policy, 2, std::nullopt, 1.0), std::chrono::milliseconds(400));
    EXPECT_EQ(retry_delay(policy, 6, std::nullopt, 0.5), std::chrono::milliseconds(1000));
    EXPECT_EQ(retry_delay(policy, 0, std::chrono::milliseconds(700), 0.0), std::chrono::milliseconds(700));
    EXPECT_EQ(retry_delay(policy, 0, std::chrono::milliseconds(5000), 0.0), std::chrono::milliseconds(1000));
}

TEST(Redact, EveryOccurrence) {
    EXPECT_EQ(redact("a KEY b KEY", {"KEY"}), "a [redacted] b [redacted]");
    EXPECT_EQ(redact("nothing", {""}), "nothing");
}

} // namespace
} // namespace nightshift::agents
