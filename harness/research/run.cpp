#include "harness/research/run.h"

#include "harness/agents/agent.h"
#include "harness/agents/prompt.h"
#include "harness/core/git.h"
#include "harness/core/paths.h"
#include "harness/core/sha256.h"
#include "harness/cuda/compiler.h"
#include "harness/evaluate/candidate.h"
#include "harness/evaluate/evaluation_json.h"
#include "harness/kernels/kernel_file.h"
#include "harness/research/evaluator.h"
#include "harness/research/plan.h"
#include "harness/research/progress.h"
#include "harness/research/strategy.h"
#include "harness/research/tuner.h"
#include "harness/store/store.h"
#include "verifier/moe_decode/presets.h"
#include "verifier/moe_decode/spec.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unistd.h>

namespace nightshift::research {
namespace {
using nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace md = verifier::moe_decode;

std::atomic<bool> g_stop{false};

extern "C" void on_signal(int) { g_stop.store(true); }

// A kernel file as the loops know it: parsed once, with its store id.
struct LoadedKernel {
    kernels::KernelFile file; // path: the resolved file, so its own folder is on the include path
    std::string reference;    // as the plan names it; rows and messages use this
    std::string origin;
    std::int64_t id = 0;
    std::string source_hash;
};

// What every loop shares. Counters are atomics; the rest under m_mutex.
class Shared {
public:
    Shared(const Plan& plan, const RunOptions& options, CandidateEvaluator& evaluator, std::int64_t run_id,
           unsigned long long seed, std::optional<Clock::time_point> deadline,
           std::optional<std::int64_t> experiment_budget, Progress& progress)
        : plan(plan), options(options), evaluator(evaluator), run_id(run_id), seed(seed), deadline(deadline),
          experiment_budget(experiment_budget), progress(progress), compiler(cache_dir() / "nvrtc") {}

    // The kernel-writing agent (openai, anthropic, replay), or none for the tuner alone.
    agents::Agent* agent = nullptr;
    agents::AgentConfig agent_config;
    // True for the first caller once the agent is done (budget spent, replay
    // exhausted): from then on the tuner goes on alone.
    bool stop_agent() { return !m_agent_stopped.exchange(true); }
    bool agent_stopped() const { return m_agent_stopped.load(); }

    const Plan& plan;
    const RunOptions& options;
    CandidateEvaluator& evaluator;
    const std::int64_t run_id;
    const unsigned long long seed;
    const std::optional<Clock::time_point> deadline;
    const std::optional<std::int64_t> experiment_budget;
    Progress& progress;
    const cuda::Compiler compiler;
    std::atomic<std::int64_t> experiments{0}, failures{0}, next_request{1};

    // True once the budget is spent or a stop was asked for. Takes one unit
    // of the experiment budget when `take` is set.
    bool spent(bool take) {
        if (g_stop.load()) return true;
        if (deadline && Clock::now() >= *deadline) return true;
        if (experiment_budget) {
            if (!take) return experiments.load() >= *experiment_budget;
            if (m_reserved.fetch_add(1) >= *experiment_budget) return true;
        }
        return false;
    }
    void give_back() { m_reserved.fetch_sub(1); }

    // The order the loops take directions in. It starts as the plan's and
    // changes only through revise_order(), which the store records.
    std::vector<std::size_t> order() {
        std::lock_guard<std::mutex> guard(m_mutex);
        if (m_order.empty()) {
            for (std::size_t i = 0; i < plan.directions.size(); ++i) m_order.push_back(i);
        }
        return m_order;
    }

    // Near the bandwidth roof, better scheduling cannot pay much: directions
    // about fewer bytes (quantized weights) move up to go next. Returns the
    // reason when the order changed.
    std::optional<std::string> revise_order(std::size_t finished, double best_fraction, std::int64_t best_id) {
        std::lock_guard<std::mutex> guard(m_mutex);
        if (best_fraction < k_roof || m_revised.count(finished)) return std::nullopt;
        m_revised.insert(finished);
        auto here = std::find(m_order.begin(), m_order.end(), finished);
        if (here == m_order.end()) return std::nullopt;
        // Stable partition of what follows: fewer-bytes directions first.
        std::vector<std::size_t> revised(m_order.begin(), here + 1);
        for (auto it = here + 1; it != m_order.end(); ++it) {
            if (about_fewer_bytes(plan.directions[*it])) revised.push_back(*it);
        }
        for (auto it = here + 1; it != m_order.end(); ++it) {
            if (!about_fewer_bytes(plan.directions[*it])) revised.push_back(*it);
        }
        if (revised == m_order) return std::nullopt;
        m_order = std::move(revised);
        return fmt::format("'{}' reached {:.2f} of the copy-rate floor (experiment {}): bandwidth-bound, so the "
                           "directions about fewer bytes go next",
                           plan.directions[finished].name, best_fraction, best_id);
    }

    json order_json() {
        std::lock_guard<std::mutex> guard(m_mutex);
        json names = json::array();
        for (std::size_t i : m_order) names.push_back(plan.directions[i].name);
        return names;
    }

    static bool about_fewer_bytes(const Direction& d) {
        std::string text = d.name + " " + d.hypothesis;
        std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
        for (const char* word : {"fewer bytes", "quantiz", "int8", "int4", "fp8"}) {
            if (text.find(word) != std::string::npos) return true;
        }
        return false;
    }

    bool problem_done(std::int64_t problem_id) {
        std::lock_guard<std::mutex> guard(m_mutex);
        return m_done_problems.count(problem_id) > 0;
    }

    // True for the first loop to ask: one set of findings per kernel and
    // problem in a run.
    bool take_findings(std::int64_t kernel_id, std::int64_t problem_id) {
        std::lock_guard<std::mutex> guard(m_mutex);
        return m_findings.insert({kernel_id, problem_id}).second;
    }
    void mark_problem_done(std::int64_t problem_id) {
        std::lock_guard<std::mutex> guard(m_mutex);
        m_done_problems.insert(problem_id);
    }

private:
    static constexpr double k_roof = 0.85;
    std::mutex m_mutex;
    std::vector<std::size_t> m_order;
    std::set<std::size_t> m_revised;
    std::set<std::int64_t> m_done_problems;
    std::set<std::pair<std::int64_t, std::int64_t>> m_findings;
    std::atomic<std::int64_t> m_reserved{0};
    std::atomic<bool> m_agent_stopped{false};
};

std::string candidate_key(const std::string& source_hash, const kernels::Symbols& knobs, const std::string& arch,
                          int repetitions) {
    // Source, knobs and compile target name the candidate; the repetition
    // count lets a screen and its confirmation be two claims.
    return sha256_hex(fmt::format("{}|{}|{}", source_hash, json(knobs).dump(), arch)) + fmt::format("|r{}", repetitions);
}

store::ExperimentRecord to_record(const worker::EvaluateReply& reply, std::int64_t run_id, std::int64_t loop_id,
                                  std::int64_t problem_id, const LoadedKernel& kernel, const std::string& key,
                                  const cuda::CompileResult& compiled, const std::string& hypothesis,
                                  unsigned long long seed, int repetitions, const DeviceDescription& device,
                                  const std::string& evaluator) {
    const evaluate::Evaluation& e = reply.evaluation;
    store::ExperimentRecord r;
    r.run_id = run_id;
    r.loop_id = loop_id;
    r.problem_id = problem_id;
    r.kernel_id = kernel.id;
    r.candidate_key = key;
    r.knobs_json = json(e.knobs.empty() ? kernels::Symbols{} : e.knobs).dump();
    r.compile_options_json = json(compiled.full_options).dump();
    r.status = e.status;
    r.message = e.message;
    r.log = e.log.empty() && e.status == evaluate::Status::compile_error ? compiled.log : e.log;
    r.hypothesis = hypothesis;
    r.seed = static_cast<std::int64_t>(seed);
    r.repetitions = repetitions;
    r.evaluator = evaluator;
    if (e.verification_seed) {
        r.verification_seed = static_cast<std::int64_t>(e.verification_seed);
        r.rounds_passed = e.rounds_passed;
        r.worst_rel_l2 = e.worst_rel_l2;
        r.seed_rel_l2 = e.seed_rel_l2;
    }
    r.sm_clock_mhz = device.sm_clock_mhz;
    r.mem_clock_mhz = device.memory_clock_mhz;
    json resources = json::array();
    for (const auto& entry : (e.resources.empty() ? compiled.entries : e.resources)) {
        resources.push_back({{"entry", entry.name}, {"registers", entry.registers}, {"stack_bytes", entry.stack_bytes},
                             {"spill_bytes", entry.spill_store_bytes + entry.spill_load_bytes}});
    }
    r.resources_json = resources.dump();
    if (!e.resources.empty() || !compiled.entries.empty()) {
        evaluate::Evaluation with = e;
        if (with.resources.empty()) with.resources = compiled.entries;
        r.registers = with.registers();
        r.spill_bytes = with.spill_bytes();
    }
    if (e.status != evaluate::Status::compile_error && e.status != evaluate::Status::timeout &&
        e.status != evaluate::Status::crashed && e.status != evaluate::Status::not_measured) {
        r.rel_l2 = e.comparison.rel_l2;
        r.max_abs_over_rms = e.comparison.max_abs_over_rms;
        r.model_rel_l2 = e.model_rel_l2;
    }
    if (e.status == evaluate::Status::ok) {
        if (e.timing.clock_samples > 0) {
            r.timed_sm_clock_mhz = e.timing.clock_sm_mhz_min;
            r.timed_mem_clock_mhz = e.timing.clock_memory_mhz_min;
            r.throttle_reasons = static_cast<std::int64_t>(e.timing.clock_reasons);
        }
        r.median_us = e.timing.median_us;
        r.min_us = e.timing.min_us;
        r.q1_us = e.timing.q1_us;
        r.q3_us = e.timing.q3_us;
        r.cv = e.timing.cv;
        r.samples_json = json(e.timing.samples_us).dump();
        r.timing_method = e.timing.method;
        r.copy_floor_us = e.copy_floor_us();
        r.fraction_of_floor = e.fraction_of_copy_floor();
        if (e.speed_of_light.median_us > 0) {
            r.sol_us = e.speed_of_light.median_us;
            r.fraction_of_sol = e.fraction_of_speed_of_light();
        }
        if (reply.baseline && reply.baseline->status == evaluate::Status::ok) {
            r.baseline_median_us = reply.baseline->timing.median_us;
            r.speedup = reply.baseline->timing.median_us / e.timing.median_us;
            if (e.speedup > 0) r.speedup_noise = e.speedup_noise;
        }
    }
    return r;
}

class Loop {
public:
    Loop(Shared& shared, int index, std::vector<LoadedKernel> kernels, LoadedKernel baseline)
        : m_shared(shared), m_index(index), m_kernels(std::move(kernels)), m_baseline(std::move(baseline)),
          m_store(store::Store::open(shared.options.db_path)), m_rng(shared.seed + static_cast<unsigned>(index)) {
        m_id = m_store.add_loop(shared.run_id, index, shared.plan.agent, shared.plan.strategy, "");
        m_device = shared.evaluator.describe();
    }

    void run() {
        std::set<std::size_t> done;
        while (!m_shared.spent(false)) {
            // The first direction in the current order this loop has not done.
            std::optional<std::size_t> next;
            for (std::size_t d : m_shared.order()) {
                if (!done.count(d)) {
                    next = d;
                    break;
                }
            }
            if (!next) break;
            std::size_t d = *next;
            done.insert(d);
            const Direction& direction = m_shared.plan.directions[d];
            m_best_fraction = 0;
            m_best_id = 0;
            for (const auto& name : direction.kernels) {
                const LoadedKernel& kernel = find_kernel(name);
                auto problems = problems_of(direction);
                // Loops start at different problems so they rarely contend
                // for the same claims.
                std::rotate(problems.begin(), problems.begin() + (m_index % static_cast<int>(problems.size())),
                            problems.end());
                for (const auto& key : problems) {
                    if (m_shared.spent(false)) break;
                    search(direction, kernel, key);
                }
            }
            if (m_shared.agent) agent_rounds(direction);
            if (auto reason = m_shared.revise_order(d, m_best_fraction, m_best_id)) {
                m_store.add_plan_revision(m_shared.run_id, m_id, *reason, m_shared.order_json().dump());
                m_store.add_finding(m_shared.run_id, m_id, std::nullopt, "plan_revision", *reason, {m_best_id});
            }
        }
        m_store.set_loop_status(m_id, g_stop.load() ? "interrupted" : "finished");
    }

private:
    const LoadedKernel& find_kernel(const std::string& reference) {
        for (const auto& k : m_kernels) {
            if (k.reference == reference) return k;
        }
        throw Error("internal: kernel " + reference + " was not loaded");
    }

    std::vector<store::ProblemKey> problems_of(const Direction& direction) const {
        const Plan& plan = m_shared.plan;
        std::vector<store::ProblemKey> keys;
        const auto& batches = direction.batches.empty() ? plan.batches : direction.batches;
        for (const auto& model : plan.models) {
            for (int batch : batches) {
                for (const auto& format : plan.formats) {
                    keys.push_back({plan.op, model, batch, format, plan.distribution});
                }
            }
        }
        return keys;
    }

    // Every knob point of the kernel, inside the direction's subspace, that
    // satisfies the file's constraints at this shape.
    std::vector<kernels::Symbols> space_of(const Direction& direction, const LoadedKernel& kernel,
                                           const md::Shape& shape) const {
        std::vector<kernels::Symbols> space;
        for (const auto& point : kernel.file.knob_space()) {
            bool inside = true;
            for (const auto& [name, values] : direction.knobs) {
                if (kernel.origin == "llm") break; // the plan's subspace is about the plan's kernels
                auto it = point.find(name);
                if (it == point.end()) continue; // a knob of another kernel in the direction
                if (std::find(values.begin(), values.end(), it->second) == values.end()) inside = false;
            }
            if (!inside) continue;
            kernels::Symbols symbols = md::shape_symbols(shape);
            symbols.insert(point.begin(), point.end());
            if (kernel.file.satisfies(symbols)) space.push_back(point);
        }
        return space;
    }

    std::vector<Trial> history(std::int64_t problem_id, const LoadedKernel& kernel) {
        std::vector<Trial> trials;
        for (const auto& e : m_store.experiments_for_problem(problem_id)) {
            if (e.kernel_id != kernel.id || e.evaluator != m_shared.evaluator.name()) continue;
            trials.push_back({.knobs = json::parse(e.knobs_json).get<kernels::Symbols>(),
                              .median_us = e.status == evaluate::Status::ok ? e.median_us : std::nullopt,
                              .repetitions = e.repetitions.value_or(0)});
        }
        return trials;
    }

    worker::CompiledKernel compile(const LoadedKernel& kernel, const kernels::Symbols& knobs, const md::Shape& shape) {
        worker::CompiledKernel compiled{kernel.file.path, kernel.file.source, knobs, {}};
        compiled.compiled = m_shared.compiler.compile(evaluate::compile_request(
            kernel.file, knobs, md::compile_defines(shape), m_shared.evaluator.arch(), md::params_dir()));
        return compiled;
    }

    // Structure from the agent, parameters from the tuner: per problem of the
    // direction, the agent writes a kernel file derived from the fastest one so
    // far; it is stored with origin 'llm' and that parent, and searched like any
    // kernel (same claims, compile, verify, time). Every call is stored; a failed
    // one is data and the loop goes on.
    void agent_rounds(const Direction& direction) {
        auto problems = problems_of(direction);
        std::rotate(problems.begin(), problems.begin() + (m_index % static_cast<int>(problems.size())),
                    problems.end());
        const std::int64_t fallback = find_kernel(direction.kernels.front()).id;
        for (const auto& key : problems) {
            const std::int64_t problem_id = m_store.problem_id(key);
            for (int round = 0; round < m_shared.agent_config.rounds; ++round) {
                if (m_shared.spent(false) || m_shared.agent_stopped() || m_shared.problem_done(problem_id)) return;
                agents::PromptInput input =
                    agents::gather_prompt_input(m_store, m_shared.plan, direction, key, problem_id,
                                                m_shared.evaluator.name(), fallback,
                                                m_shared.agent_config.prompt_attempts);
                agents::AgentTurn turn = m_shared.agent->propose(agents::build_prompt(input), m_index);
                std::int64_t call_id = 0;
                if (!turn.call.status.empty()) {
                    turn.call.run_id = m_shared.run_id;
                    turn.call.loop_id = m_id;
                    call_id = m_store.add_agent_call(turn.call);
                }
                if (turn.failure) {
                    const auto kind = turn.failure->kind;
                    if (kind == agents::FailureKind::budget_spent || kind == agents::FailureKind::replay_exhausted) {
                        if (m_shared.stop_agent()) {
                            const std::string text = turn.failure->message + "; the tuner goes on alone";
                            m_store.add_finding(m_shared.run_id, m_id, std::nullopt, "agent_stopped", text, {});
                            m_shared.progress.note("agent: " + text);
                        }
                        return;
                    }
                    m_shared.progress.note(fmt::format("agent call {}: {}: {}", call_id,
                                                       agents::to_string(kind), turn.failure->message.substr(0, 200)));
                    continue;
                }
                LoadedKernel kernel = agent_kernel(*turn.proposal, input.parent_id);
                m_shared.progress.note(fmt::format("agent call {}: wrote {} (kernel {}, parent {}): {}", call_id,
                                                   kernel.reference, kernel.id, input.parent_reference,
                                                   turn.proposal->hypothesis.substr(0, 160)));
                std::string hypothesis = turn.proposal->hypothesis;
                if (!turn.proposal->predicted_effect.empty())
                    hypothesis += " (predicted: " + turn.proposal->predicted_effect + ")";
                try {
                    search(direction, kernel, key, &hypothesis);
                } catch (const InputError& e) {
                    // E.g. a @constrain that cannot be evaluated at this shape.
                    m_store.add_finding(m_shared.run_id, m_id, problem_id, "agent_kernel_rejected",
                                        fmt::format("{}: {}", kernel.reference, e.what()), {});
                }
            }
        }
    }

    LoadedKernel agent_kernel(const agents::KernelProposal& proposal, std::int64_t parent_id) {
        const std::string hash = sha256_hex(proposal.source);
        const std::string reference = fmt::format("llm/{}.cu", hash.substr(0, 12));
        LoadedKernel k{kernels::parse_kernel_file(reference, proposal.source), reference, "llm", 0, hash};
        k.id = m_store.kernel_id({.id = 0, .source_hash = hash, .source = proposal.source, .path = reference,
                                  .origin = "llm", .op = k.file.op, .parent_id = parent_id});
        return k;
    }

    void search(const Direction& direction, const LoadedKernel& kernel, const store::ProblemKey& key,
                const std::string* hypothesis = nullptr) {
        const Plan& plan = m_shared.plan;
        std::int64_t problem_id = m_store.problem_id(key);
        if (m_shared.problem_done(problem_id) && kernel.id != m_baseline.id) return;
        if (!kernel.file.supports_format(key.format)) return; // its @formats leave this one out
        md::Shape shape = md::make_shape(md::find_preset(key.model), key.batch, key.format);
        std::vector<kernels::Symbols> space_all = space_of(direction, kernel, shape);
        if (space_all.empty()) return;
        auto strategy = make_tuner_strategy(plan, kernel.file);
        std::map<std::string, std::string> pending; // points another loop holds a claim on -> its claim key
        std::optional<worker::CompiledKernel> baseline_compiled;
        int measured = 0;

        while (!m_shared.spent(false)) {
            std::vector<kernels::Symbols> space;
            for (const auto& p : space_all) {
                if (!pending.count(json(p).dump())) space.push_back(p);
            }
            auto proposal = strategy->next(space, history(problem_id, kernel), m_rng);
            if (!proposal) break;
            std::string claim = candidate_key(kernel.source_hash, proposal->knobs, m_shared.evaluator.arch(),
                                              proposal->repetitions);
            if (!m_store.try_claim(claim, problem_id, m_id, m_shared.run_id)) {
                pending[json(proposal->knobs).dump()] = claim;
                continue;
            }
            if (m_shared.spent(true)) {
                m_shared.give_back();
                break; // the claim stays unfinished; --resume releases it
            }
            if (kernel.id != m_baseline.id && !baseline_compiled) {
                baseline_compiled = compile(m_baseline, m_baseline.file.default_knobs(), shape);
            }
            store::ExperimentRecord record =
                measure(kernel, proposal->knobs, proposal->repetitions, key, problem_id, shape, claim,
                        kernel.id != m_baseline.id ? baseline_compiled : std::nullopt,
                        hypothesis ? *hypothesis : direction.hypothesis, /*fresh_worker=*/false);
            ++measured;
            if (record.fraction_of_floor && *record.fraction_of_floor > m_best_fraction) {
                m_best_fraction = *record.fraction_of_floor;
                m_best_id = record.id;
            }
            if (record.fraction_of_floor && *record.fraction_of_floor >= plan.stop_fraction_of_floor) {
                m_shared.mark_problem_done(problem_id);
                m_store.add_finding(m_shared.run_id, m_id, problem_id, "stop_rule",
                                    fmt::format("{} reached {:.3f} of the copy-rate floor (stop rule {:.2f}): "
                                                "stopping this problem",
                                                kernel.reference, *record.fraction_of_floor,
                                                plan.stop_fraction_of_floor),
                                    {record.id});
                break;
            }
        }
        // Findings once the search is complete (every point another loop
        // claimed is measured by now), from one loop that measured something.
        bool complete = std::all_of(pending.begin(), pending.end(),
                                    [&](const auto& p) { return m_store.has_experiment(p.second, problem_id); });
        if (measured > 0 && complete && m_shared.take_findings(kernel.id, problem_id)) {
            retime_winner(kernel, key, problem_id, shape, baseline_compiled);
            write_findings(m_store, m_shared.run_id, m_id, problem_id, key, kernel.id, kernel.reference,
                           m_shared.evaluator.name());
        }
    }

    // One claimed candidate measured and stored: built for the problem's
    // shape, evaluated beside the baseline (when given and it compiles) or
    // recorded as a compile error, its row added to the store and counted.
    store::ExperimentRecord measure(const LoadedKernel& kernel, const kernels::Symbols& knobs, int repetitions,
                                    const store::ProblemKey& key, std::int64_t problem_id, const md::Shape& shape,
                                    const std::string& claim,
                                    const std::optional<worker::CompiledKernel>& baseline_compiled,
                                    const std::string& hypothesis, bool fresh_worker) {
        const Plan& plan = m_shared.plan;
        worker::EvaluateRequest request;
        request.id = m_shared.next_request.fetch_add(1);
        request.candidate = compile(kernel, knobs, shape);
        if (baseline_compiled && baseline_compiled->compiled.ok) request.baseline = *baseline_compiled;
        request.problem = {.model = key.model, .batch = key.batch, .format = key.format, .seed = m_shared.seed,
                           .distribution = key.distribution};
        request.timing = {.warmup = plan.warmup, .repetitions = repetitions};
        request.max_error_vs_seed = plan.max_error_vs_seed;
        request.fresh_worker = fresh_worker;

        worker::EvaluateReply reply;
        if (!request.candidate.compiled.ok) {
            reply.evaluation.status = evaluate::Status::compile_error;
            reply.evaluation.message = kernel.reference + " does not compile";
            reply.evaluation.log = request.candidate.compiled.log;
            reply.evaluation.knobs = knobs;
        } else {
            reply = m_shared.evaluator.evaluate(request, m_index);
        }
        store::ExperimentRecord record =
            to_record(reply, m_shared.run_id, m_id, problem_id, kernel, claim, request.candidate.compiled, hypothesis,
                      m_shared.seed, repetitions, m_device, m_shared.evaluator.name());
        if (request.baseline) {
            record.baseline_kernel_id = m_baseline.id;
            record.baseline_knobs_json = json(request.baseline->knobs).dump();
        }
        record.warmup = plan.warmup;
        record.max_error_vs_seed = plan.max_error_vs_seed;
        record.id = m_store.add_experiment(record);
        m_shared.experiments.fetch_add(1);
        if (record.status != evaluate::Status::ok) m_shared.failures.fetch_add(1);
        m_shared.progress.experiment(key, record, kernel.reference);
        return record;
    }

    // The fastest verified point of `kernel` on this problem in this run,
    // measured again in a newly started worker process: a winner must not owe
    // its time to anything the old process held (warm caches, a lucky
    // allocation, a drifting clock). The row is stored like any other; a
    // finding sets the two times side by side. Recorded measurements cannot
    // be re-measured, so a replayed run skips this.
    void retime_winner(const LoadedKernel& kernel, const store::ProblemKey& key, std::int64_t problem_id,
                       const md::Shape& shape, const std::optional<worker::CompiledKernel>& baseline_compiled) {
        if (!m_shared.evaluator.can_remeasure() || m_shared.spent(false)) return;
        std::optional<store::ExperimentRecord> winner;
        for (auto& e : m_store.experiments_for_problem(problem_id)) {
            if (e.kernel_id != kernel.id || e.run_id != m_shared.run_id || e.status != evaluate::Status::ok ||
                !e.median_us || e.evaluator != m_shared.evaluator.name() || e.candidate_key.ends_with("|fresh")) {
                continue;
            }
            if (!winner || *e.median_us < *winner->median_us) winner = e;
        }
        if (!winner) return;
        const std::string claim = winner->candidate_key + "|fresh";
        if (!m_store.try_claim(claim, problem_id, m_id, m_shared.run_id)) return;
        const auto knobs = json::parse(winner->knobs_json).get<kernels::Symbols>();
        const int repetitions = winner->repetitions.value_or(m_shared.plan.repetitions);
        store::ExperimentRecord record =
            measure(kernel, knobs, repetitions, key, problem_id, shape, claim, baseline_compiled,
                    fmt::format("re-timed in a fresh worker: the winner, experiment {}", winner->id),
                    /*fresh_worker=*/true);
        std::string text;
        if (record.status == evaluate::Status::ok && record.median_us) {
            const double drift = *record.median_us / *winner->median_us - 1.0;
            const double noise = 2.0 * std::max(winner->cv.value_or(0.0), record.cv.value_or(0.0));
            text = fmt::format("{} {}: {:.1f} us in the loop's worker, {:.1f} us re-timed in a fresh worker "
                               "({:+.1f}%; {})",
                               kernel.reference, winner->knobs_json, *winner->median_us, *record.median_us,
                               100.0 * drift,
                               std::abs(drift) <= std::max(0.05, noise) ? "holds" : "does not hold: look again");
        } else {
            text = fmt::format("{} {}: the winner ({:.1f} us) failed when re-timed in a fresh worker: {} ({})",
                               kernel.reference, winner->knobs_json, *winner->median_us,
                               evaluate::to_string(record.status), record.message);
        }
        m_store.add_finding(m_shared.run_id, m_id, problem_id, "retimed", text, {winner->id, record.id});
    }

    Shared& m_shared;
    int m_index;
    std::vector<LoadedKernel> m_kernels;
    LoadedKernel m_baseline;
    store::Store m_store;
    std::mt19937_64 m_rng;
    std::int64_t m_id = 0;
    DeviceDescription m_device;
    double m_best_fraction = 0; // the best fraction of the floor in the current direction
    std::int64_t m_best_id = 0;
};

LoadedKernel load_kernel(store::Store& db, const Plan& plan, const std::string& reference, const std::string& origin,
                         int line) {
    auto root = project_root();
    std::filesystem::path path = resolve_kernel(plan, reference, root, line);
    LoadedKernel k{kernels::load_kernel_file(path), reference, origin, 0, ""};
    k.file.check_symbols(md::shape_symbol_names());
    k.source_hash = sha256_hex(k.file.source);
    k.id = db.kernel_id({.id = 0, .source_hash = k.source_hash, .source = k.file.source, .path = reference,
                         .origin = origin, .op = k.file.op, .parent_id = std::nullopt});
    return k;
}

std::string host_name() {
    char name[256] = {};
    ::gethostname(name, sizeof name - 1);
    return name;
}

} // namespace

void request_stop() { g_stop.store(true); }

RunSummary run_plan(const RunOptions& options) {
    Plan plan = load_plan(options.plan_path);
    // The agent: the plan's, unless the command line names another; options
    // from the plan's [agent] table, then the command line's.
    agents::AgentOptions agent_options(plan.agent_options.begin(), plan.agent_options.end());
    if (options.agent && *options.agent != plan.agent) {
        // Another agent keeps only the plan's options it has (rounds, prompt_attempts for a replay).
        agents::AgentOptions kept;
        for (const auto& info : agents::agent_registry()) {
            if (info.name != *options.agent) continue;
            for (const auto& option : info.options) {
                if (auto it = agent_options.find(option.name); it != agent_options.end()) kept.insert(*it);
            }
        }
        agent_options = std::move(kept);
        plan.agent = *options.agent;
    }
    for (const auto& [key, value] : options.agent_options) agent_options[key] = value;
    std::unique_ptr<agents::Agent> agent;
    agents::AgentConfig agent_config;
    if (plan.agent != "tuner") {
        agent_config = agents::make_agent_config(plan.agent, agent_options);
        agent = agents::make_agent(agent_config, plan.op, md::shape_symbol_names(), [] { return g_stop.load(); });
    } else if (!options.agent_options.empty()) {
        throw InputError("--agent-option, --agent-base-url, --agent-model: the agent is 'tuner', which takes none "
                         "(choose one with --agent)");
    }
    if (plan.op != "moe_decode") {
        throw InputError(fmt::format("{}: op '{}' has no run support yet (known: moe_decode)", plan.path, plan.op));
    }
    for (const auto& model : plan.models) md::find_preset(model); // InputError names the valid ones
    if (options.loops < 1) throw InputError("--loops must be at least 1");

    std::unique_ptr<CandidateEvaluator> evaluator;
    if (options.evaluator.rfind("replay:", 0) == 0) {
        evaluator = std::make_unique<ReplayEvaluator>(options.evaluator.substr(7));
    } else if (options.evaluator == "gpu") {
        evaluator = std::make_unique<GpuEvaluator>(options.gpus, options.candidate_limit, cache_dir() / "logs",
                                                   options.record_path);
    } else {
        throw InputError(fmt::format("--evaluator '{}': expected gpu or replay:FILE", options.evaluator));
    }
    DeviceDescription device = evaluator->describe();

    store::Store db = store::Store::open(options.db_path);
    std::int64_t run_id;
    unsigned long long seed = options.seed;
    if (options.resume_run) {
        auto previous = db.run(*options.resume_run);
        if (!previous) throw InputError(fmt::format("--resume {}: no such run in {}", *options.resume_run,
                                                    options.db_path.string()));
        if (previous->plan_hash != plan.hash) {
            throw InputError(fmt::format("--resume {}: the plan changed since that run (hash {} vs {})",
                                         *options.resume_run, previous->plan_hash.substr(0, 12), plan.hash.substr(0, 12)));
        }
        if (previous->evaluator != evaluator->name()) {
            throw InputError(fmt::format("--resume {}: that run used evaluator {}, not {}", *options.resume_run,
                                         previous->evaluator, evaluator->name()));
        }
        run_id = *options.resume_run;
        int released = db.release_unfinished_claims(run_id);
        auto done = db.experiments_of_run(run_id);
        if (!done.empty() && done.front().seed) seed = static_cast<unsigned long long>(*done.front().seed);
        fmt::print("resuming run {}: {} experiments recorded, {} unfinished claims released\n", run_id, done.size(),
                   released);
    } else {
        if (seed == 0) seed = (static_cast<unsigned long long>(std::random_device{}()) << 32) | std::random_device{}();
        store::RunRecord record;
        record.host = host_name();
        record.device = device.device;
        record.driver = device.driver;
        record.nvrtc = cuda::nvrtc_version();
        record.clock_sm_mhz = device.sm_clock_mhz;
        record.clock_mem_mhz = device.memory_clock_mhz;
        record.copy_gb_per_s = device.copy_gb_per_s;
        record.git_commit = describe_code(build_commit(), git_commit(project_root()));
        record.plan_path = plan.path;
        record.plan_hash = plan.hash;
        record.command_line = fmt::format("run {} --loops {} --agent {}", plan.path, options.loops, plan.agent);
        record.evaluator = evaluator->name();
        run_id = db.begin_run(record);
    }

    // Budget: flags override the plan.
    std::optional<double> minutes;
    if (options.hours) minutes = *options.hours * 60;
    else if (options.minutes) minutes = *options.minutes;
    else if (plan.budget_hours) minutes = *plan.budget_hours * 60;
    else if (plan.budget_minutes) minutes = *plan.budget_minutes;
    std::optional<std::int64_t> experiment_budget = options.experiments ? options.experiments : plan.budget_experiments;
    auto start = Clock::now();
    std::optional<Clock::time_point> deadline;
    if (minutes) deadline = start + std::chrono::milliseconds(static_cast<long long>(*minutes * 60'000));

    // Kernels: the baseline, then every direction's, each stored once.
    std::vector<LoadedKernel> kernels;
    LoadedKernel baseline = load_kernel(db, plan, plan.baseline, "seed", plan.line_of("baseline"));
    kernels.push_back(baseline);
    for (const auto& direction : plan.directions) {
        for (const auto& reference : direction.kernels) {
            bool known = std::any_of(kernels.begin(), kernels.end(), [&](auto& k) { return k.reference == reference; });
            if (known) continue;
            std::string origin = reference.find("planted") != std::string::npos ? "planted" : "seed";
            kernels.push_back(load_kernel(db, plan, reference, origin, direction.line));
        }
    }
    // Every strategy option is checked before the night starts, not at 3 am.
    for (const auto& k : kernels) make_tuner_strategy(plan, k.file);

    g_stop.store(false);
    auto previous_int = std::signal(SIGINT, on_signal);
    auto previous_term = std::signal(SIGTERM, on_signal);

    Progress progress(options.progress, deadline, experiment_budget);
    progress.start(run_id, plan, device, evaluator->name(), options.loops);
    Shared shared(plan, options, *evaluator, run_id, seed, deadline, experiment_budget, progress);
    shared.agent = agent.get();
    shared.agent_config = agent_config;
    std::vector<std::thread> threads;
    std::mutex error_mutex;
    std::string loop_error;
    for (int i = 0; i < options.loops; ++i) {
        threads.emplace_back([&, i] {
            try {
                Loop(shared, i, kernels, baseline).run();
            } catch (const std::exception& e) {
                std::lock_guard<std::mutex> guard(error_mutex);
                loop_error += fmt::format("loop {}: {}\n", i, e.what());
                g_stop.store(true);
            }
        });
    }
    for (auto& t : threads) t.join();
    std::signal(SIGINT, previous_int);
    std::signal(SIGTERM, previous_term);

    RunSummary summary;
    summary.run_id = run_id;
    summary.experiments = shared.experiments.load();
    summary.failures = shared.failures.load();
    summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    bool interrupted = !loop_error.empty() || (g_stop.load() && !(deadline && Clock::now() >= *deadline));
    summary.status = interrupted ? "interrupted" : "finished";
    db.finish_run(run_id, summary.status);
    progress.finish(summary.experiments, summary.failures, summary.seconds);
    if (!loop_error.empty()) throw Error("a loop stopped on an error (the run is recorded as interrupted):\n" + loop_error);
    return summary;
}

} // namespace nightshift::research
