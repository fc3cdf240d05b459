// The orchestrator's side of a GPU worker: a child process (this binary,
// `nightshift worker --gpu N`) with pipes on its stdin and stdout, and its
// stderr in a log file. A request that outlives its time limit gets the
// worker killed (the watchdog); a worker that dies is noticed at once. Either
// way the next request starts a fresh worker, and the caller turns the
// failure into a timeout or crashed row.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

namespace nightshift::worker {

struct WorkerReply {
    enum class Kind { ok, timeout, crashed };
    Kind kind = Kind::ok;
    std::string message;           // for timeout and crashed: what happened, with the worker's last stderr lines
    std::unique_ptr<nlohmann::json> body; // the reply, when ok
};

class WorkerProcess {
public:
    // command: the argv to start (e.g. {"/proc/self/exe", "worker", "--gpu", "0"}).
    WorkerProcess(std::vector<std::string> command, std::filesystem::path log_path);
    ~WorkerProcess();
    WorkerProcess(const WorkerProcess&) = delete;
    WorkerProcess& operator=(const WorkerProcess&) = delete;

    // Sends one request and waits up to `limit` for its reply line. Starts the
    // worker first if none is running (start-up counts against `limit`).
    WorkerReply request(const nlohmann::json& message, std::chrono::milliseconds limit);

    bool running() const { return m_pid > 0; }
    int restarts() const { return m_starts > 0 ? m_starts - 1 : 0; }
    void stop(); // asks politely, then kills

private:
    void start();
    void kill_now();
    std::string stderr_tail() const;

    std::vector<std::string> m_command;
    std::filesystem::path m_log_path;
    int m_pid = -1;
    int m_to_child = -1;   // its stdin
    int m_from_child = -1; // its stdout
    std::string m_buffer;  // bytes read past the last full line
    int m_starts = 0;
};

// The argv that starts this binary as a worker for `gpu`.
std::vector<std::string> worker_command(int gpu);

} // namespace nightshift::worker
