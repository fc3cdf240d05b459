#include "harness/evaluate/evaluate.h"

#include "harness/cuda/driver_api.h"

#include <fmt/format.h>

#include <cstring>

namespace nightshift::evaluate {
namespace {

bool bitwise_equal(const std::vector<double>& a, const std::vector<double>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

} // namespace

int Evaluation::registers() const {
    int most = 0;
    for (const auto& e : resources) most = std::max(most, e.registers);
    return most;
}

int Evaluation::spill_bytes() const {
    int total = 0;
    for (const auto& e : resources) total += e.spill_store_bytes + e.spill_load_bytes;
    return total;
}

Evaluator::Evaluator(const cuda::Device& device, const cuda::Compiler& compiler, timing::Timer& timer,
                     double copy_gb_per_s)
    : m_device(device), m_compiler(compiler), m_timer(timer), m_copy_gb_per_s(copy_gb_per_s) {}

Evaluation Evaluator::evaluate(const kernels::KernelFile& file, const kernels::Symbols& knob_overrides,
                               verifier::Problem& problem, const verifier::OpSpec& spec,
                               const EvaluateOptions& options, const cuda::CompileResult* precompiled) {
    Evaluation result;
    result.problem = problem.label();
    result.bytes = problem.bytes();
    result.flops = problem.flops();
    result.copy_gb_per_s = m_copy_gb_per_s;

    std::unique_ptr<Candidate> candidate;
    try {
        candidate = std::make_unique<Candidate>(file, knob_overrides, problem, spec, m_device, m_compiler, precompiled);
    } catch (const CandidateError& e) {
        result.status = e.status();
        result.message = e.what();
        result.log = e.log();
        result.knobs = file.resolve_knobs(knob_overrides);
        return result;
    }
    result.knobs = candidate->knobs();
    result.resources = candidate->compiled().entries;
    result.compile_cached = candidate->compiled().from_cache;
    result.compile_seconds = candidate->compiled().seconds;

    const cuda::Stream& stream = m_timer.stream();
    auto run_once = [&]() {
        problem.poison_output(stream);
        candidate->enqueue(stream.get());
        stream.synchronize();
        return problem.read_output();
    };

    // Verify before timing. A launch the driver refuses (bad configuration)
    // is the candidate's fault; a fault inside the kernel kills the context
    // and escapes to the caller.
    std::vector<double> first;
    try {
        first = run_once();
    } catch (const cuda::DriverError& e) {
        if (e.code() == CUDA_ERROR_INVALID_VALUE || e.code() == CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES) {
            result.status = Status::launch_error;
            result.message = e.what();
            return result;
        }
        throw;
    }
    result.comparison = verifier::compare(first, problem.reference(), problem.tolerance());
    if (!result.comparison.passed) {
        result.status = Status::wrong_answer;
        result.message = result.comparison.reason +
                         (result.comparison.first_mismatches.empty() ? "" : "; first: " + result.comparison.first_mismatches);
        return result;
    }
    std::vector<double> second = run_once();
    if (!file.nondeterministic && !bitwise_equal(first, second)) {
        result.status = Status::nondeterministic;
        result.message = "two runs on the same inputs differ bitwise (declare @nondeterministic if intended)";
        return result;
    }

    result.timing = m_timer.time([&](CUstream s) { candidate->enqueue(s); }, options.timing);

    // The last timed iteration's output must still be right: a kernel that is
    // only right on its first call (state, caches) fails here.
    auto last = problem.read_output();
    auto recheck = verifier::compare(last, problem.reference(), problem.tolerance());
    if (!recheck.passed) {
        result.status = Status::wrong_answer;
        result.message = "after timing: " + recheck.reason;
        return result;
    }
    if (options.time_speed_of_light) {
        auto bytes = static_cast<std::size_t>(result.bytes);
        auto found = m_speed_of_light.find(bytes);
        if (found == m_speed_of_light.end()) {
            found = m_speed_of_light.emplace(bytes, m_timer.time_read(bytes, options.timing)).first;
        }
        result.speed_of_light = found->second;
    }
    return result;
}

} // namespace nightshift::evaluate
