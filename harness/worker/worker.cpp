#include "harness/worker/worker.h"

#include "harness/core/paths.h"
#include "harness/cuda/driver_api.h"
#include "harness/evaluate/evaluate.h"
#include "harness/kernels/kernel_file.h"
#include "harness/timing/timer.h"
#include "harness/worker/protocol.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <map>
#include <optional>

namespace nightshift::worker {
namespace {
using nlohmann::json;

std::string problem_key(const verifier::ProblemRequest& p) {
    return fmt::format("{}|{}|{}|{}|{}", p.model, p.batch, p.format, p.distribution, p.seed);
}

class Worker {
public:
    explicit Worker(int gpu)
        : m_device(gpu), m_compiler(cache_dir() / "nvrtc"), m_timer(m_device, m_compiler),
          m_copy(m_timer.copy_bandwidth()), m_evaluator(m_device, m_compiler, m_timer, m_copy.gb_per_s) {}

    json hello() const {
        const auto& info = m_device.info();
        return {{"type", "hello"},
                {"device", info.name},
                {"arch", info.arch()},
                {"pci_bus_id", info.pci_bus_id},
                {"driver", cuda::driver_version_string(info.driver_version)},
                {"nvrtc", cuda::nvrtc_version()},
                {"sm_clock_mhz", info.sm_clock_khz / 1000},
                {"memory_clock_mhz", info.memory_clock_khz / 1000},
                {"copy_gb_per_s", m_copy.gb_per_s}};
    }

    EvaluateReply evaluate(const EvaluateRequest& request) {
        kernels::KernelFile file = kernels::parse_kernel_file(request.candidate.path, request.candidate.source);
        verifier::OpSpec& spec = spec_for(file.op);
        verifier::Problem& problem = problem_for(spec, request.problem);
        evaluate::EvaluateOptions options{.timing = request.timing,
                                          .time_speed_of_light = request.time_speed_of_light,
                                          .max_error_vs_seed = request.max_error_vs_seed};
        // The baseline is timed interleaved with the candidate (A B A B) in
        // the same run, so the speedup is a ratio measured side by side.
        std::optional<kernels::KernelFile> baseline;
        if (request.baseline) {
            baseline = kernels::parse_kernel_file(request.baseline->path, request.baseline->source);
            options.baseline = &*baseline;
            options.baseline_knobs = request.baseline->knobs;
            options.baseline_compiled = &request.baseline->compiled;
        }
        EvaluateReply reply;
        reply.id = request.id;
        reply.evaluation = m_evaluator.evaluate(file, request.candidate.knobs, problem, spec, options,
                                                &request.candidate.compiled);
        if (reply.evaluation.speedup > 0) {
            evaluate::Evaluation side;
            side.status = evaluate::Status::ok;
            side.problem = reply.evaluation.problem;
            side.knobs = request.baseline->knobs;
            side.timing = reply.evaluation.baseline_timing;
            side.bytes = reply.evaluation.bytes;
            side.flops = reply.evaluation.flops;
            side.copy_gb_per_s = reply.evaluation.copy_gb_per_s;
            reply.baseline = side;
        }
        return reply;
    }

private:
    verifier::OpSpec& spec_for(const std::string& op) {
        auto found = m_specs.find(op);
        if (found == m_specs.end()) found = m_specs.emplace(op, verifier::make_op_spec(op, m_device, m_compiler)).first;
        return *found->second;
    }

    verifier::Problem& problem_for(verifier::OpSpec& spec, const verifier::ProblemRequest& request) {
        std::string key = spec.name() + "|" + problem_key(request);
        auto found = m_problems.find(key);
        if (found != m_problems.end()) return *found->second;
        if (m_problems.size() >= 16) m_problems.clear(); // bound device memory; problems are cheap to rebuild
        return *m_problems.emplace(key, spec.make_problem(request)).first->second;
    }

    cuda::Device m_device;
    cuda::Compiler m_compiler;
    timing::Timer m_timer;
    timing::CopyBandwidth m_copy;
    evaluate::Evaluator m_evaluator;
    std::map<std::string, std::unique_ptr<verifier::OpSpec>> m_specs;
    std::map<std::string, std::unique_ptr<verifier::Problem>> m_problems;
};

void reply(std::ostream& out, const json& message) {
    out << message.dump() << '\n';
    out.flush();
}

} // namespace

int serve(int gpu, std::istream& in, std::ostream& out) {
    std::unique_ptr<Worker> worker;
    try {
        worker = std::make_unique<Worker>(gpu);
    } catch (const std::exception& e) {
        reply(out, {{"type", "fatal"}, {"message", fmt::format("worker could not start: {}", e.what())}});
        return 3;
    }
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        json request;
        try {
            request = json::parse(line);
        } catch (const json::exception& e) {
            reply(out, {{"type", "error"}, {"message", fmt::format("malformed request: {}", e.what())}});
            continue;
        }
        std::string type = request.value("type", "");
        if (type == "shutdown") return 0;
        if (type == "hello") {
            reply(out, worker->hello());
            continue;
        }
        if (type != "evaluate") {
            reply(out, {{"type", "error"}, {"message", fmt::format("unknown request type '{}'", type)}});
            continue;
        }
        try {
            reply(out, to_json(worker->evaluate(evaluate_request_from_json(request))));
        } catch (const cuda::DriverError& e) {
            // The context is gone (a fault inside a kernel): nothing more can
            // run in this process.
            reply(out, {{"type", "fatal"}, {"id", request.value("id", -1LL)}, {"message", e.what()}});
            return 3;
        } catch (const std::exception& e) {
            reply(out, {{"type", "error"}, {"id", request.value("id", -1LL)}, {"message", e.what()}});
        }
    }
    return 0;
}

} // namespace nightshift::worker
