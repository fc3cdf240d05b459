// Where a loop's candidates are measured. Loops never touch the GPU
// themselves: they compile (in their own threads) and hand the cubin to an
// evaluator.
//   GpuEvaluator: one disposable worker process per GPU (harness/worker),
//     shared fairly by the loops (first come, first served), with a watchdog.
//   ReplayEvaluator: serves measurements recorded by an earlier run
//     (`nightshift run --record FILE`), so whole loops run with no GPU. Its
//     rows are marked with the evaluator's name and never mix with real ones.
#pragma once

#include "harness/worker/protocol.h"
#include "harness/worker/worker_process.h"

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace nightshift::research {

struct DeviceDescription {
    std::string device, arch, driver, nvrtc;
    int sm_clock_mhz = 0, memory_clock_mhz = 0;
    double copy_gb_per_s = 0;
};

class CandidateEvaluator {
public:
    virtual ~CandidateEvaluator() = default;
    virtual std::string name() const = 0;          // "gpu" or "replay:FILE"
    virtual std::string arch() const = 0;          // what to compile for
    virtual DeviceDescription describe() = 0;
    // Never throws for a bad candidate: hangs become Status::timeout,
    // crashed workers Status::crashed.
    virtual worker::EvaluateReply evaluate(const worker::EvaluateRequest& request, int loop_index) = 0;
    // True when a request can be measured anew (request.fresh_worker): not
    // for recorded measurements, which hold one measurement per candidate.
    virtual bool can_remeasure() const { return false; }
};

// A lock that serves waiters in arrival order, so no loop starves another
// of its GPU.
class FairLock {
public:
    void lock();
    void unlock();

private:
    std::mutex m_mutex;
    std::condition_variable m_turn;
    unsigned long long m_next = 0, m_serving = 0;
};

class GpuEvaluator : public CandidateEvaluator {
public:
    GpuEvaluator(const std::vector<int>& gpus, std::chrono::milliseconds candidate_limit,
                 const std::filesystem::path& log_dir, std::filesystem::path record_path = {});
    std::string name() const override { return "gpu"; }
    std::string arch() const override;
    DeviceDescription describe() override;
    worker::EvaluateReply evaluate(const worker::EvaluateRequest& request, int loop_index) override;
    bool can_remeasure() const override { return true; }
    int restarts() const;

private:
    struct Gpu {
        int ordinal;
        std::unique_ptr<worker::WorkerProcess> process;
        FairLock lock;
    };
    // One request to the GPU's worker; with `fresh`, the running worker is
    // stopped first, so a new process answers.
    worker::WorkerReply ask(Gpu& gpu, const nlohmann::json& message, std::chrono::milliseconds limit,
                            bool fresh = false);
    void record(const worker::EvaluateRequest& request, const worker::EvaluateReply& reply);

    std::vector<std::unique_ptr<Gpu>> m_gpus;
    std::chrono::milliseconds m_limit;
    std::unique_ptr<nlohmann::json> m_hello;
    std::mutex m_hello_mutex;
    std::filesystem::path m_record_path;
    std::mutex m_record_mutex;
};

class ReplayEvaluator : public CandidateEvaluator {
public:
    explicit ReplayEvaluator(const std::filesystem::path& path); // InputError on a malformed file
    std::string name() const override { return "replay:" + m_path.filename().string(); }
    std::string arch() const override { return m_description.arch; }
    DeviceDescription describe() override { return m_description; }
    worker::EvaluateReply evaluate(const worker::EvaluateRequest& request, int loop_index) override;
    std::size_t size() const { return m_records.size(); }

private:
    std::filesystem::path m_path;
    DeviceDescription m_description;
    std::map<std::string, nlohmann::json> m_records; // replay key -> recorded reply
};

// The key a recorded measurement is found by: the kernel's source hash, its
// knobs and the problem (seed excluded: a replay serves what was measured).
std::string replay_key(const worker::EvaluateRequest& request);

} // namespace nightshift::research
