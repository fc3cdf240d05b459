#include "harness/research/evaluator.h"

#include "harness/core/paths.h"
#include "harness/core/sha256.h"
#include "harness/evaluate/evaluation_json.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>

namespace nightshift::research {
using nlohmann::json;

void FairLock::lock() {
    std::unique_lock<std::mutex> guard(m_mutex);
    unsigned long long ticket = m_next++;
    m_turn.wait(guard, [&] { return m_serving == ticket; });
}

void FairLock::unlock() {
    std::lock_guard<std::mutex> guard(m_mutex);
    ++m_serving;
    m_turn.notify_all();
}

std::string replay_key(const worker::EvaluateRequest& r) {
    return fmt::format("{}|{}|{}|{}|{}|{}", sha256_hex(r.candidate.source), json(r.candidate.knobs).dump(),
                       r.problem.model, r.problem.batch, r.problem.format, r.problem.distribution);
}

namespace {

DeviceDescription description_from_hello(const json& hello) {
    return {.device = hello.value("device", ""),
            .arch = hello.value("arch", ""),
            .driver = hello.value("driver", ""),
            .nvrtc = hello.value("nvrtc", ""),
            .sm_clock_mhz = hello.value("sm_clock_mhz", 0),
            .memory_clock_mhz = hello.value("memory_clock_mhz", 0),
            .copy_gb_per_s = hello.value("copy_gb_per_s", 0.0)};
}

// A worker that timed out or crashed leaves a row with that status; the
// candidate's knobs and problem are still known.
worker::EvaluateReply failed_reply(const worker::EvaluateRequest& request, evaluate::Status status,
                                   const std::string& message) {
    worker::EvaluateReply reply;
    reply.id = request.id;
    reply.evaluation.status = status;
    reply.evaluation.message = message;
    reply.evaluation.knobs = request.candidate.knobs;
    reply.evaluation.problem = fmt::format("{} T={} {}", request.problem.model, request.problem.batch,
                                           request.problem.format);
    int global_bytes = 0;
    cuda::parse_ptxas_report(request.candidate.compiled.log, reply.evaluation.resources, global_bytes);
    return reply;
}

} // namespace

GpuEvaluator::GpuEvaluator(const std::vector<int>& gpus, std::chrono::milliseconds candidate_limit,
                           const std::filesystem::path& log_dir, std::filesystem::path record_path)
    : m_limit(candidate_limit), m_record_path(std::move(record_path)) {
    if (gpus.empty()) throw InputError("--gpus: at least one GPU is needed");
    std::filesystem::create_directories(log_dir);
    for (int ordinal : gpus) {
        auto gpu = std::make_unique<Gpu>();
        gpu->ordinal = ordinal;
        gpu->process = std::make_unique<worker::WorkerProcess>(worker::worker_command(ordinal),
                                                               log_dir / fmt::format("worker-gpu{}.log", ordinal));
        m_gpus.push_back(std::move(gpu));
    }
}

worker::WorkerReply GpuEvaluator::ask(Gpu& gpu, const json& message, std::chrono::milliseconds limit, bool fresh) {
    std::lock_guard<FairLock> guard(gpu.lock);
    if (fresh && gpu.process->running()) gpu.process->stop();
    return gpu.process->request(message, limit);
}

DeviceDescription GpuEvaluator::describe() {
    std::lock_guard<std::mutex> guard(m_hello_mutex);
    if (!m_hello) {
        // Start-up measures the copy bandwidth once per device (cached on disk).
        worker::WorkerReply reply = ask(*m_gpus.front(), {{"type", "hello"}}, std::chrono::minutes(2));
        if (reply.kind != worker::WorkerReply::Kind::ok || reply.body->value("type", "") != "hello") {
            throw Error(fmt::format("the GPU worker did not start: {}",
                                    reply.body ? reply.body->value("message", reply.body->dump()) : reply.message));
        }
        m_hello = std::move(reply.body);
    }
    return description_from_hello(*m_hello);
}

std::string GpuEvaluator::arch() const {
    if (!m_hello) throw Error("GpuEvaluator::arch() before describe()");
    return m_hello->value("arch", "");
}

int GpuEvaluator::restarts() const {
    int total = 0;
    for (const auto& gpu : m_gpus) total += gpu->process->restarts();
    return total;
}

worker::EvaluateReply GpuEvaluator::evaluate(const worker::EvaluateRequest& request, int loop_index) {
    Gpu& gpu = *m_gpus[static_cast<std::size_t>(loop_index) % m_gpus.size()];
    worker::WorkerReply reply = ask(gpu, worker::to_json(request), m_limit, request.fresh_worker);
    worker::EvaluateReply result;
    if (reply.kind == worker::WorkerReply::Kind::timeout) {
        result = failed_reply(request, evaluate::Status::timeout, reply.message);
    } else if (reply.kind == worker::WorkerReply::Kind::crashed) {
        result = failed_reply(request, evaluate::Status::crashed, reply.message);
    } else if (reply.body->value("type", "") != "result") {
        // The worker could not evaluate (e.g. an unknown model): the
        // candidate is not at fault, but the row says why nothing was timed.
        result = failed_reply(request, evaluate::Status::rejected,
                              "worker error: " + reply.body->value("message", reply.body->dump()));
    } else {
        result = worker::evaluate_reply_from_json(*reply.body);
    }
    record(request, result);
    return result;
}

void GpuEvaluator::record(const worker::EvaluateRequest& request, const worker::EvaluateReply& reply) {
    // A re-measurement has the same key as the first measurement: the
    // recording keeps the first, which is what a replayed run asks for.
    if (m_record_path.empty() || request.fresh_worker) return;
    std::lock_guard<std::mutex> guard(m_record_mutex);
    json line = {{"key", replay_key(request)}, {"reply", worker::to_json(reply)}};
    if (m_hello) line["device"] = *m_hello;
    std::ofstream(m_record_path, std::ios::app) << line.dump() << '\n';
}

ReplayEvaluator::ReplayEvaluator(const std::filesystem::path& path) : m_path(path) {
    std::ifstream in(path);
    if (!in) throw IoError("cannot read replay file " + path.string());
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
        ++number;
        if (line.empty()) continue;
        try {
            json record = json::parse(line);
            if (record.contains("device") && m_description.arch.empty()) {
                m_description = description_from_hello(record.at("device"));
            }
            worker::evaluate_reply_from_json(record.at("reply")); // validate now, not mid-run
            m_records[record.at("key").get<std::string>()] = record.at("reply");
        } catch (const std::exception& e) {
            throw InputError(fmt::format("{}:{}: not a recorded measurement: {}", path.string(), number, e.what()));
        }
    }
    if (m_records.empty()) throw InputError(fmt::format("{}: no recorded measurements", path.string()));
    if (m_description.arch.empty()) m_description.arch = "sm_90";
}

worker::EvaluateReply ReplayEvaluator::evaluate(const worker::EvaluateRequest& request, int) {
    auto found = m_records.find(replay_key(request));
    if (found == m_records.end()) {
        // No number is invented: the row says the candidate compiled (its
        // resources are known) and was neither verified nor timed.
        return failed_reply(request, evaluate::Status::not_measured,
                            "replay: " + m_path.filename().string() +
                                " holds no measurement of this candidate (not verified, not timed)");
    }
    worker::EvaluateReply reply = worker::evaluate_reply_from_json(found->second);
    reply.id = request.id;
    return reply;
}

} // namespace nightshift::research
