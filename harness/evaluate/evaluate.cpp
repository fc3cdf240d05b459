#include "harness/evaluate/evaluate.h"

#include "harness/cuda/driver_api.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>

namespace nightshift::evaluate {
namespace {

// Below this many outputs the ratio of two kernels' errors is mostly noise
// (bf16 rounding of a few hundred values), so the honest-seed bound is not
// applied: at tiny T=1 an honest bf16-intermediate kernel measured 2.8x the
// fp32 seed's error on one round, against ~1.75x on large outputs.
constexpr std::size_t k_min_pooled_elements = 4096;

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

std::vector<double> Evaluator::run_once(const Candidate& candidate, verifier::Problem& problem) {
    const cuda::Stream& stream = m_timer.stream();
    problem.poison_output(stream);
    candidate.enqueue(stream.get());
    stream.synchronize();
    return problem.read_output();
}

Candidate* Evaluator::accuracy_seed(verifier::Problem& problem, const verifier::OpSpec& spec,
                                    const std::string& source) {
    std::string path = spec.accuracy_seed_path(problem.request().format);
    if (path.empty()) return nullptr;
    std::string key;
    for (const auto& d : problem.compile_defines()) key += d + " ";
    auto found = m_seeds.find(key);
    if (found == m_seeds.end()) {
        kernels::KernelFile seed = kernels::load_kernel_file(path);
        if (seed.source == source) return nullptr;
        found = m_seeds.emplace(key, std::make_unique<Candidate>(seed, kernels::Symbols{}, problem, spec, m_device,
                                                                 m_compiler)).first;
    }
    found->second->rebind(problem);
    return found->second.get();
}

Evaluation Evaluator::evaluate(const kernels::KernelFile& file, const kernels::Symbols& knob_overrides,
                               verifier::Problem& problem, verifier::OpSpec& spec,
                               const EvaluateOptions& options, const cuda::CompileResult* precompiled) {
    Evaluation result;
    result.problem = problem.label();
    result.bytes = problem.bytes();
    result.flops = problem.flops();
    result.copy_gb_per_s = m_copy_gb_per_s;
    result.verification_seed = options.verification_seed;
    if (result.verification_seed == 0) {
        std::random_device entropy;
        result.verification_seed = (static_cast<unsigned long long>(entropy()) << 32) | entropy();
    }
    auto fail = [&](Status status, std::string message) {
        result.status = status;
        result.message = std::move(message);
        return result;
    };

    std::unique_ptr<Candidate> candidate;
    try {
        candidate = std::make_unique<Candidate>(file, knob_overrides, problem, spec, m_device, m_compiler, precompiled);
    } catch (const CandidateError& e) {
        result.log = e.log();
        result.knobs = file.resolve_knobs(knob_overrides);
        return fail(e.status(), e.what());
    }
    result.knobs = candidate->knobs();
    result.resources = candidate->compiled().entries;
    result.compile_cached = candidate->compiled().from_cache;
    result.compile_seconds = candidate->compiled().seconds;

    // Static check: module-scope variables outlive a launch, so a kernel
    // could carry results (or a pointer-keyed cache) from one call to the next.
    if (auto why = module_scope_state(candidate->compiled()); !why.empty()) {
        return fail(Status::rejected, fmt::format("{} has {}", file.path, why));
    }

    // A launch the driver refuses is the candidate's fault; a fault inside
    // the kernel kills the context and escapes to the caller. Prepacks run
    // wherever a candidate is bound to weights (construction, rebind,
    // prepare_input_sets) and fail the same way.
    auto guarded = [&](auto&& body) -> std::optional<Evaluation> {
        try {
            body();
        } catch (const cuda::DriverError& e) {
            if (e.launch_refused()) {
                return fail(Status::launch_error, e.what());
            }
            throw;
        } catch (const CandidateError& e) { // a held-out shape the candidate cannot build
            result.log = e.log();
            return fail(e.status(), e.what());
        }
        return std::nullopt;
    };

    // Verification rounds, each on fresh inputs; the first doubles as the
    // determinism check and the second as the input-dependence check.
    if (options.verification_rounds) {
        std::vector<double> first;
        // Errors of the candidate and of the honest seed, pooled over the
        // rounds at the timed shape: one round of a small output is too noisy
        // to hold a kernel to a multiple of another's error.
        struct Pooled {
            double candidate_err2 = 0, seed_err2 = 0, ref2 = 0;
            std::size_t elements = 0;
            void add(double candidate_rel, double seed_rel, double round_ref2, std::size_t n) {
                candidate_err2 += candidate_rel * candidate_rel * round_ref2;
                seed_err2 += seed_rel * seed_rel * round_ref2;
                ref2 += round_ref2;
                elements += n;
            }
        } pooled;
        std::string first_defines;
        auto cases = spec.verification_cases(problem.request(), result.verification_seed);
        for (std::size_t i = 0; i < cases.size(); ++i) {
            const auto& round = cases[i];
            auto round_problem = spec.make_problem(round.request);
            bool same_shape = round_problem->compile_defines() == problem.compile_defines();
            std::unique_ptr<Candidate> other_shape;
            std::vector<double> out;
            double seed_error = 0;
            if (auto failed = guarded([&] {
                    Candidate* c = candidate.get();
                    if (same_shape) {
                        c->rebind(*round_problem);
                    } else {
                        other_shape = std::make_unique<Candidate>(file, knob_overrides, *round_problem, spec,
                                                                  m_device, m_compiler);
                        c = other_shape.get();
                    }
                    out = run_once(*c, *round_problem);
                    Candidate* seed = same_shape ? accuracy_seed(*round_problem, spec, file.source) : nullptr;
                    if (seed) {
                        seed_error = verifier::compare(run_once(*seed, *round_problem), round_problem->reference(),
                                                       round_problem->tolerance())
                                         .rel_l2;
                    }
                })) {
                failed->message = fmt::format("round {}: {}", round.name, failed->message);
                return *failed;
            }
            if (!round_problem->output_guard_intact()) {
                return fail(Status::wrong_answer,
                            fmt::format("round {}: wrote past the end of the output (the guard after y changed)",
                                        round.name));
            }
            auto c = verifier::compare(out, round_problem->reference(), round_problem->tolerance());
            result.worst_rel_l2 = std::max(result.worst_rel_l2, c.rel_l2);
            if (!c.passed) {
                return fail(Status::wrong_answer,
                            fmt::format("round {}: {}{}", round.name, c.reason,
                                        c.first_mismatches.empty() ? "" : "; first: " + c.first_mismatches));
            }
            if (seed_error > 0 && same_shape) {
                double ref2 = 0;
                for (double v : round_problem->reference()) ref2 += v * v;
                pooled.add(c.rel_l2, seed_error, ref2, out.size());
            }
            if (i == 0) {
                result.seed_rel_l2 = seed_error;
                first = out;
            }
            // Every round at the timed shape runs twice: float atomics whose
            // order varies flip only a few outputs per pair of runs, so one
            // comparison would miss them more often than not.
            if (same_shape && !file.nondeterministic) {
                std::vector<double> again;
                if (auto failed = guarded([&] { again = run_once(*candidate, *round_problem); })) return *failed;
                if (!bitwise_equal(out, again)) {
                    return fail(Status::nondeterministic,
                                fmt::format("round {}: two runs on the same inputs differ bitwise (declare "
                                            "@nondeterministic if intended)",
                                            round.name));
                }
            }
            if (i > 0 && same_shape && bitwise_equal(first, out)) {
                return fail(Status::wrong_answer,
                            fmt::format("round {}: the output is bitwise identical to round {}'s on other inputs: "
                                        "it does not depend on its inputs",
                                        round.name, cases[0].name));
            }
            ++result.rounds_passed;
        }
        // Back on the timed problem's weights (a prepack runs again).
        if (auto failed = guarded([&] { candidate->rebind(problem); })) return *failed;
        if (pooled.elements >= k_min_pooled_elements && pooled.ref2 > 0) {
            double candidate_rel = std::sqrt(pooled.candidate_err2 / pooled.ref2);
            double seed_rel = std::sqrt(pooled.seed_err2 / pooled.ref2);
            if (candidate_rel > options.max_error_vs_seed * std::max(seed_rel, 5e-4)) {
                return fail(Status::wrong_answer,
                            fmt::format("relative L2 error {:.3g} is more than {:.1f}x that of the honest seed "
                                        "({:.3g}) on the same inputs, pooled over {} outputs of the rounds at the "
                                        "timed shape",
                                        candidate_rel, options.max_error_vs_seed, seed_rel, pooled.elements));
            }
        }
    }

    // The timed problem itself.
    std::vector<double> first;
    if (auto failed = guarded([&] { first = run_once(*candidate, problem); })) return *failed;
    result.comparison = verifier::compare(first, problem.reference(), problem.tolerance());
    result.model_rel_l2 = &problem.model_reference() == &problem.reference()
                              ? result.comparison.rel_l2
                              : verifier::compare(first, problem.model_reference(), problem.tolerance()).rel_l2;
    if (!problem.output_guard_intact()) {
        return fail(Status::wrong_answer, "wrote past the end of the output (the guard after y changed)");
    }
    if (!result.comparison.passed) {
        return fail(Status::wrong_answer,
                    result.comparison.reason + (result.comparison.first_mismatches.empty()
                                                    ? ""
                                                    : "; first: " + result.comparison.first_mismatches));
    }
    if (!options.verification_rounds) {
        std::vector<double> second = run_once(*candidate, problem);
        if (!file.nondeterministic && !bitwise_equal(first, second)) {
            return fail(Status::nondeterministic,
                        "two runs on the same inputs differ bitwise (declare @nondeterministic if intended)");
        }
    }

    std::unique_ptr<Candidate> baseline;
    if (options.baseline) {
        try {
            baseline = std::make_unique<Candidate>(*options.baseline, options.baseline_knobs, problem, spec, m_device,
                                                   m_compiler, options.baseline_compiled);
            auto check = verifier::compare(run_once(*baseline, problem), problem.reference(), problem.tolerance());
            if (!check.passed) {
                result.baseline_message = "the baseline is wrong on this problem: " + check.reason;
                baseline.reset();
            }
        } catch (const CandidateError& e) {
            result.baseline_message = std::string("the baseline does not build here: ") + e.what();
        }
    }
    // Timed calls rotate over the problem's input sets (other inputs, other
    // output buffers), every output poisoned first: after timing, each set's
    // output must be the candidate's latest answer for that set's inputs.
    const int sets = problem.input_sets();
    // Binding runs the candidate's prepacks: here, before anything is timed.
    if (auto failed = guarded([&] { candidate->prepare_input_sets(problem); })) return *failed;
    if (baseline) baseline->prepare_input_sets(problem);
    for (int set = 0; set < sets; ++set) {
        problem.select_input_set(set);
        problem.poison_output(m_timer.stream());
    }
    problem.select_input_set(0);
    m_timer.stream().synchronize();
    int candidate_calls = 0, baseline_calls = 0;
    auto timed_candidate = [&](CUstream s) { candidate->enqueue(s, candidate_calls++ % sets); };
    if (baseline) {
        // B A B A with both on the same set in each pair: the candidate writes every set last.
        auto [candidate_timing, baseline_timing] = m_timer.time_pair(
            timed_candidate, [&](CUstream s) { baseline->enqueue(s, baseline_calls++ % sets); }, options.timing);
        result.timing = std::move(candidate_timing);
        result.baseline_timing = std::move(baseline_timing);
        const timing::Stats& b = result.baseline_timing;
        result.speedup = b.median_us / result.timing.median_us;
        result.speedup_noise = 2.0 * b.cv * b.mean_us / b.median_us;
    } else {
        result.timing = m_timer.time(timed_candidate, options.timing);
    }

    // The last timed iteration on every input set must still be right: a
    // kernel that is only right on its first call (state, caches, results
    // kept from the other set's inputs) fails here.
    for (int set = 0; set < std::min(sets, candidate_calls); ++set) { // sets it was timed on
        problem.select_input_set(set);
        auto recheck = verifier::compare(problem.read_output(), problem.reference(), problem.tolerance());
        const bool guard = problem.output_guard_intact();
        problem.select_input_set(0);
        if (!recheck.passed) {
            return fail(Status::wrong_answer, fmt::format("after timing, input set {}: {}", set, recheck.reason));
        }
        if (!guard) {
            return fail(Status::wrong_answer,
                        fmt::format("after timing, input set {}: wrote past the end of the output", set));
        }
    }
    // Faster than the bytes can move: something was not computed, or was
    // computed in an earlier call. The copy rate (read plus write) is not a
    // hard bound for a kernel that only reads: an honest seed streaming 2.1 GB
    // (Mixtral, T=3) measured 1.7% under the copy-rate floor on an H100, so
    // only more than 5% under it is suspicious.
    constexpr double k_read_margin = 0.95;
    if (result.copy_floor_us() > 0 && result.timing.median_us < k_read_margin * result.copy_floor_us()) {
        return fail(Status::rejected,
                    fmt::format("{:.2f} us is faster than the copy-rate floor ({:.2f} us for {:.0f} bytes) by more "
                                "than {:.0f}%: suspicious, not recorded as a result",
                                result.timing.median_us, result.copy_floor_us(), result.bytes,
                                100 * (1 - k_read_margin)));
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
