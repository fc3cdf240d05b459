#include "harness/worker/worker_process.h"

#include "harness/core/error.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

namespace nightshift::worker {
namespace {

using Clock = std::chrono::steady_clock;

void write_all(int fd, const std::string& text) {
    std::size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw IoError(fmt::format("writing to the worker failed: {}", std::strerror(errno)));
        }
        done += static_cast<std::size_t>(n);
    }
}

} // namespace

std::vector<std::string> worker_command(int gpu) {
    return {"/proc/self/exe", "worker", "--gpu", std::to_string(gpu)};
}

WorkerProcess::WorkerProcess(std::vector<std::string> command, std::filesystem::path log_path)
    : m_command(std::move(command)), m_log_path(std::move(log_path)) {
    // A worker that dies while we write to it must not kill the orchestrator.
    std::signal(SIGPIPE, SIG_IGN);
}

WorkerProcess::~WorkerProcess() { stop(); }

void WorkerProcess::start() {
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) {
        throw IoError(fmt::format("cannot create pipes for a worker: {}", std::strerror(errno)));
    }
    int log_fd = ::open(m_log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) throw IoError(fmt::format("cannot open worker log {}: {}", m_log_path.string(), std::strerror(errno)));

    std::vector<char*> argv;
    for (auto& arg : m_command) argv.push_back(arg.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) throw IoError(fmt::format("fork failed: {}", std::strerror(errno)));
    if (pid == 0) {
        ::dup2(to_child[0], 0);
        ::dup2(from_child[1], 1);
        ::dup2(log_fd, 2);
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    ::close(to_child[0]);
    ::close(from_child[1]);
    ::close(log_fd);
    m_pid = pid;
    m_to_child = to_child[1];
    m_from_child = from_child[0];
    m_buffer.clear();
    ++m_starts;
}

void WorkerProcess::kill_now() {
    if (m_pid > 0) {
        ::kill(m_pid, SIGKILL);
        ::waitpid(m_pid, nullptr, 0);
    }
    if (m_to_child >= 0) ::close(m_to_child);
    if (m_from_child >= 0) ::close(m_from_child);
    m_pid = -1;
    m_to_child = m_from_child = -1;
    m_buffer.clear();
}

void WorkerProcess::stop() {
    if (m_pid <= 0) return;
    try {
        write_all(m_to_child, "{\"type\":\"shutdown\"}\n");
    } catch (const IoError&) {
    }
    // Give it a moment to release the GPU cleanly, then make sure.
    for (int i = 0; i < 50; ++i) {
        if (::waitpid(m_pid, nullptr, WNOHANG) == m_pid) {
            m_pid = -1;
            break;
        }
        ::usleep(20'000);
    }
    kill_now();
}

std::string WorkerProcess::stderr_tail() const {
    std::ifstream in(m_log_path);
    std::string line, tail;
    std::vector<std::string> lines;
    while (std::getline(in, line)) lines.push_back(line);
    std::size_t from = lines.size() > 5 ? lines.size() - 5 : 0;
    for (std::size_t i = from; i < lines.size(); ++i) tail += lines[i] + "\n";
    return tail;
}

WorkerReply WorkerProcess::request(const nlohmann::json& message, std::chrono::milliseconds limit) {
    auto deadline = Clock::now() + limit;
    if (m_pid <= 0) start();
    WorkerReply reply;
    try {
        write_all(m_to_child, message.dump() + "\n");
    } catch (const IoError& e) {
        kill_now();
        reply.kind = WorkerReply::Kind::crashed;
        reply.message = fmt::format("the worker was gone before the request: {}\n{}", e.what(), stderr_tail());
        return reply;
    }
    while (true) {
        auto newline = m_buffer.find('\n');
        if (newline != std::string::npos) {
            std::string line = m_buffer.substr(0, newline);
            m_buffer.erase(0, newline + 1);
            try {
                reply.body = std::make_unique<nlohmann::json>(nlohmann::json::parse(line));
            } catch (const nlohmann::json::exception& e) {
                kill_now();
                reply.kind = WorkerReply::Kind::crashed;
                reply.message = fmt::format("the worker wrote a malformed reply ({}): {}", e.what(), line.substr(0, 200));
                return reply;
            }
            if (reply.body->value("type", "") == "fatal") {
                // The worker lost its context and is exiting: a crash of
                // this candidate, and the next request needs a new worker.
                reply.kind = WorkerReply::Kind::crashed;
                reply.message = reply.body->value("message", "fatal error in the worker");
                kill_now();
            }
            return reply;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            kill_now();
            reply.kind = WorkerReply::Kind::timeout;
            reply.message = fmt::format("no reply within {} ms: the worker was killed", limit.count());
            return reply;
        }
        pollfd fd{.fd = m_from_child, .events = POLLIN, .revents = 0};
        int ready = ::poll(&fd, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
        if (ready < 0 && errno != EINTR) throw IoError(fmt::format("poll failed: {}", std::strerror(errno)));
        if (ready <= 0) continue;
        char chunk[65536];
        ssize_t n = ::read(m_from_child, chunk, sizeof chunk);
        if (n > 0) {
            m_buffer.append(chunk, static_cast<std::size_t>(n));
        } else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
            int status = 0;
            ::waitpid(m_pid, &status, 0);
            m_pid = -1;
            std::string how = WIFSIGNALED(status) ? fmt::format("killed by signal {}", WTERMSIG(status))
                                                  : fmt::format("exited with code {}", WEXITSTATUS(status));
            kill_now();
            reply.kind = WorkerReply::Kind::crashed;
            reply.message = fmt::format("the worker {} before replying\n{}", how, stderr_tail());
            return reply;
        }
    }
}

} // namespace nightshift::worker
