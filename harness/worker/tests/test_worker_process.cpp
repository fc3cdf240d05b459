#include "harness/worker/worker_process.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

namespace nightshift::worker {
namespace {
using namespace std::chrono_literals;

// Stand-in workers are small shell programs: real processes and pipes, so the
// watchdog and crash handling are exercised without a GPU.
std::vector<std::string> shell(const std::string& script) { return {"/bin/sh", "-c", script}; }

std::filesystem::path log_path() {
    return std::filesystem::temp_directory_path() /
           ("ns-worker-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ".log");
}

TEST(WorkerProcess, RepliesLineByLine) {
    WorkerProcess worker(shell("while read line; do echo '{\"type\":\"result\",\"echo\":1}'; done"), log_path());
    for (int i = 0; i < 3; ++i) {
        WorkerReply reply = worker.request({{"type", "hello"}}, 5s);
        ASSERT_EQ(reply.kind, WorkerReply::Kind::ok) << reply.message;
        EXPECT_EQ(reply.body->at("echo"), 1);
    }
    EXPECT_EQ(worker.restarts(), 0);
}

TEST(WorkerProcess, AHangIsKilledByTheWatchdogAndTheNextRequestGetsAFreshWorker) {
    // Answers the first request, hangs on the second, like a kernel that never returns.
    WorkerProcess worker(shell("read line; echo '{\"n\":1}'; read line; sleep 60"), log_path());
    EXPECT_EQ(worker.request({{"type", "a"}}, 5s).kind, WorkerReply::Kind::ok);
    auto start = std::chrono::steady_clock::now();
    WorkerReply hung = worker.request({{"type", "b"}}, 300ms);
    EXPECT_EQ(hung.kind, WorkerReply::Kind::timeout);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    EXPECT_FALSE(worker.running());
    WorkerReply fresh = worker.request({{"type", "c"}}, 5s);
    EXPECT_EQ(fresh.kind, WorkerReply::Kind::ok) << fresh.message;
    EXPECT_EQ(worker.restarts(), 1);
}

TEST(WorkerProcess, ACrashIsReportedWithTheWorkersLastWords) {
    WorkerProcess worker(shell("read line; echo 'illegal memory access' >&2; kill -SEGV $$"), log_path());
    WorkerReply reply = worker.request({{"type", "evaluate"}}, 5s);
    EXPECT_EQ(reply.kind, WorkerReply::Kind::crashed);
    EXPECT_NE(reply.message.find("signal 11"), std::string::npos) << reply.message;
    EXPECT_NE(reply.message.find("illegal memory access"), std::string::npos) << reply.message;
}

TEST(WorkerProcess, AFatalReplyMeansTheWorkerMustBeReplaced) {
    WorkerProcess worker(shell("read line; echo '{\"type\":\"fatal\",\"message\":\"context lost\"}'; sleep 60"),
                         log_path());
    WorkerReply reply = worker.request({{"type", "evaluate"}}, 5s);
    EXPECT_EQ(reply.kind, WorkerReply::Kind::crashed);
    EXPECT_EQ(reply.message, "context lost");
    EXPECT_FALSE(worker.running());
}

TEST(WorkerProcess, GarbageOnStdoutIsACrashNotAnException) {
    WorkerProcess worker(shell("read line; echo 'not json'; sleep 60"), log_path());
    WorkerReply reply = worker.request({{"type", "evaluate"}}, 5s);
    EXPECT_EQ(reply.kind, WorkerReply::Kind::crashed);
    EXPECT_NE(reply.message.find("malformed"), std::string::npos);
}

} // namespace
} // namespace nightshift::worker
