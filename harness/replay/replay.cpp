#include "harness/replay/replay.h"

#include "harness/core/error.h"
#include "harness/cuda/device.h"
#include "harness/evaluate/status.h"
#include "harness/kernels/kernel_file.h"
#include "harness/timing/timer.h"
#include "verifier/op_spec.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

namespace nightshift::replay {
namespace {

std::string percent(double change) { return fmt::format("{:+.1f}%", change * 100); }

std::string value_or_dash(const std::optional<double>& value, std::string_view format_spec = "{:.2f}") {
    return value ? fmt::format(fmt::runtime(format_spec), *value) : "-";
}

unsigned long long fresh_seed() {
    std::random_device random;
    return (static_cast<unsigned long long>(random()) << 32) | random();
}

} // namespace

std::string_view to_string(Verdict verdict) {
    switch (verdict) {
    case Verdict::reproduced: return "reproduced";
    case Verdict::drifted: return "drifted";
    case Verdict::fails_now: return "fails now";
    }
    return "?";
}

std::vector<std::string> environment_changes(const exports::RecordedExperiment& recorded, const Environment& now) {
    std::vector<std::string> changes;
    auto compare = [&](std::string_view what, const std::string& then, const std::string& current) {
        if (then != current)
            changes.push_back(fmt::format("{}: recorded '{}', now '{}'", what, then.empty() ? "(not recorded)" : then,
                                          current));
    };
    compare("GPU", recorded.device, now.device);
    compare("driver", recorded.driver, now.driver);
    compare("NVRTC", recorded.nvrtc, now.nvrtc);
    return changes;
}

RebuiltRequest rebuild_request(const exports::RecordedExperiment& recorded, const std::string& device_arch,
                               const std::filesystem::path& params_dir) {
    RebuiltRequest rebuilt;
    cuda::CompileRequest& request = rebuilt.request;
    request.name = recorded.kernel_path;
    request.source = recorded.kernel_source;
    request.arch = device_arch;
    std::set<std::string> seen_dirs;
    bool params_added = false;
    for (const auto& option : recorded.compile_options) {
        if (option.starts_with("--gpu-architecture=")) {
            std::string arch = option.substr(std::string_view("--gpu-architecture=").size());
            if (arch != device_arch)
                rebuilt.notes.push_back(fmt::format("compiled for {} (this GPU) instead of the recorded {}", device_arch, arch));
            continue;
        }
        if (option == "--std=c++17" || option == "-Xptxas=-v") continue; // the compiler adds these itself
        if (option.starts_with("-I")) {
            std::filesystem::path dir = option.substr(2);
            std::error_code error;
            if (!std::filesystem::is_directory(dir, error)) {
                rebuilt.notes.push_back(fmt::format("include folder {} does not exist here; using {}", dir.string(),
                                                    params_dir.string()));
                if (params_added) continue;
                dir = params_dir;
                params_added = true;
            }
            if (seen_dirs.insert(dir.string()).second) request.include_dirs.push_back(dir);
            continue;
        }
        request.options.push_back(option);
    }
    if (recorded.compile_options.empty()) {
        rebuilt.notes.push_back("no compile options were recorded");
    }
    return rebuilt;
}

Judgement judge(const exports::RecordedExperiment& recorded, const evaluate::Evaluation& recorded_seeds,
                const evaluate::Evaluation& fresh_seeds, bool environment_changed) {
    Judgement j;
    using evaluate::Status;
    if (recorded.status != "ok") {
        std::string now(evaluate::to_string(recorded_seeds.status));
        j.verdict = now == recorded.status ? Verdict::reproduced : Verdict::drifted;
        j.text = now == recorded.status
                     ? fmt::format("reproduced: recorded as {}, and {} again ({})", recorded.status, now,
                                   recorded_seeds.message)
                     : fmt::format("recorded as {}, now {}{}", recorded.status, now,
                                   recorded_seeds.message.empty() ? "" : ": " + recorded_seeds.message);
        return j;
    }
    for (const auto* e : {&recorded_seeds, &fresh_seeds}) {
        if (e->status != Status::ok) {
            j.verdict = Verdict::fails_now;
            j.text = fmt::format("FAILS NOW on the {} seeds: {}: {}", e == &recorded_seeds ? "recorded" : "fresh",
                                 evaluate::to_string(e->status), e->message);
            return j;
        }
    }
    const double now_us = recorded_seeds.timing.median_us;
    if (recorded.median_us && *recorded.median_us > 0 && now_us > 0) j.drift.change = now_us / *recorded.median_us - 1;
    double recorded_cv = recorded.cv.value_or(0);
    j.drift.tolerance = std::max({0.05, 2 * recorded_cv, 2 * recorded_seeds.timing.cv});
    if (recorded.speedup && *recorded.speedup > 0 && recorded_seeds.speedup > 0) {
        j.drift.speedup_change = recorded_seeds.speedup / *recorded.speedup - 1;
    }
    std::optional<double> judged = j.drift.change;
    std::string what = "median";
    if (environment_changed && j.drift.speedup_change) {
        j.drift.judged_by_speedup = true;
        judged = j.drift.speedup_change;
        what = "speedup against the interleaved baseline";
        double noise = std::max(recorded.speedup_noise.value_or(0), recorded_seeds.speedup_noise);
        j.drift.tolerance = std::max(0.05, noise);
    }
    if (!judged) {
        j.verdict = Verdict::reproduced;
        j.text = "verified again on the recorded and on fresh seeds; no recorded time to compare";
        return j;
    }
    if (std::fabs(*judged) <= j.drift.tolerance) {
        j.verdict = Verdict::reproduced;
        j.text = fmt::format("reproduced: {} {} (within +-{:.1f}%), verified on the recorded and on fresh seeds", what,
                             percent(*judged), j.drift.tolerance * 100);
    } else {
        j.verdict = Verdict::drifted;
        bool worse = j.drift.judged_by_speedup ? *judged < 0 : *judged > 0;
        j.text = fmt::format("drifted: {} {} ({} than recorded; tolerance +-{:.1f}%)", what, percent(*judged),
                             worse ? "worse" : "better", j.drift.tolerance * 100);
    }
    return j;
}

ReplayOutcome replay(const exports::RecordedExperiment& recorded, const ReplayOptions& options) {
    ReplayOutcome outcome;
    cuda::Device device(options.gpu);
    const auto& info = device.info();
    outcome.now = {info.name, cuda::driver_version_string(info.driver_version), cuda::nvrtc_version()};
    outcome.environment_changes = environment_changes(recorded, outcome.now);
    if (recorded.evaluator.starts_with("replay:"))
        outcome.notes.push_back(fmt::format("the recorded row was served from recorded measurements ({}) of the GPU "
                                            "named; its numbers are that GPU's",
                                            recorded.evaluator));

    cuda::Compiler compiler; // no cache: the source is compiled again
    timing::Timer timer(device, compiler);
    double copy_gb_per_s = timer.copy_bandwidth(false).gb_per_s;
    auto spec = verifier::make_op_spec(recorded.problem.op, device, compiler);
    kernels::KernelFile file = kernels::parse_kernel_file(recorded.kernel_path, recorded.kernel_source);
    kernels::Symbols knobs = recorded.knobs.get<kernels::Symbols>();

    RebuiltRequest rebuilt = rebuild_request(recorded, info.arch(), spec->params_dir());
    outcome.notes.insert(outcome.notes.end(), rebuilt.notes.begin(), rebuilt.notes.end());
    cuda::CompileResult compiled = compiler.compile(rebuilt.request);

    std::optional<kernels::KernelFile> baseline;
    kernels::Symbols baseline_knobs;
    cuda::CompileResult baseline_compiled;
    verifier::ProblemRequest request{.model = recorded.problem.model,
                                     .batch = recorded.problem.batch,
                                     .format = recorded.problem.format,
                                     .seed = recorded.input_seed.value_or(0),
                                     .distribution = recorded.problem.distribution};
    if (request.seed == 0) {
        request.seed = fresh_seed();
        outcome.notes.push_back("no input seed was recorded; the 'recorded seeds' column uses a fresh one");
    }
    outcome.input_seed = request.seed;
    if (recorded.baseline_source && recorded.baseline_path) {
        baseline = kernels::parse_kernel_file(*recorded.baseline_path, *recorded.baseline_source);
        baseline_knobs = recorded.baseline_knobs.get<kernels::Symbols>();
        auto probe = spec->make_problem(request);
        baseline_compiled = compiler.compile(evaluate::compile_request(
            *baseline, baseline->resolve_knobs(baseline_knobs), probe->compile_defines(), info.arch(), spec->params_dir()));
    } else {
        outcome.notes.push_back("no baseline was recorded with this row (a database before schema 3, or a baseline "
                                "row itself): timed alone, so no speedup");
    }

    evaluate::Evaluator evaluator(device, compiler, timer, copy_gb_per_s);
    auto evaluate_with = [&](unsigned long long input_seed, unsigned long long verification_seed) {
        if (!compiled.ok) {
            evaluate::Evaluation failed;
            failed.status = evaluate::Status::compile_error;
            failed.message = recorded.kernel_path + " does not compile here";
            failed.log = compiled.log;
            return failed;
        }
        verifier::ProblemRequest r = request;
        r.seed = input_seed;
        auto problem = spec->make_problem(r);
        evaluate::EvaluateOptions o;
        o.timing = {.warmup = recorded.warmup, .repetitions = options.repetitions.value_or(recorded.repetitions)};
        o.verification_seed = verification_seed;
        o.max_error_vs_seed = recorded.max_error_vs_seed;
        if (baseline && baseline_compiled.ok) {
            o.baseline = &*baseline;
            o.baseline_knobs = baseline_knobs;
            o.baseline_compiled = &baseline_compiled;
        }
        return evaluator.evaluate(file, knobs, *problem, *spec, o, &compiled);
    };
    outcome.recorded_seeds = evaluate_with(outcome.input_seed, recorded.verification_seed.value_or(0));
    outcome.fresh_input_seed = fresh_seed();
    outcome.fresh_seeds = evaluate_with(outcome.fresh_input_seed, 0);
    outcome.judgement =
        judge(recorded, outcome.recorded_seeds, outcome.fresh_seeds, !outcome.environment_changes.empty());
    outcome.verdict = outcome.judgement.verdict;
    return outcome;
}

std::string describe(const exports::RecordedExperiment& recorded, const ReplayOutcome& outcome,
                     const std::string& source) {
    std::string out = fmt::format("replay of {}\n", source);
    out += fmt::format("  problem   {} {} B={} {} {}\n", recorded.problem.op, recorded.problem.model,
                       recorded.problem.batch, recorded.problem.format, recorded.problem.distribution);
    out += fmt::format("  kernel    {} (sha256 {}) knobs {}\n", recorded.kernel_path, recorded.kernel_hash.substr(0, 12),
                       recorded.knobs.dump());
    out += fmt::format("  baseline  {}\n", recorded.baseline_path ? *recorded.baseline_path + " " + recorded.baseline_knobs.dump()
                                                                 : std::string("none recorded"));
    out += fmt::format("  recorded  {} on {}, driver {}, NVRTC {} (evaluator {})\n", recorded.created_at,
                       recorded.device, recorded.driver, recorded.nvrtc, recorded.evaluator);
    out += fmt::format("  now       {}, driver {}, NVRTC {}\n", outcome.now.device, outcome.now.driver, outcome.now.nvrtc);
    if (outcome.environment_changes.empty()) {
        out += "  same GPU, driver and NVRTC as recorded\n";
    } else {
        out += "  NOT THE RECORDED ENVIRONMENT (microseconds are not comparable; the speedup is):\n";
        for (const auto& change : outcome.environment_changes) out += "    " + change + "\n";
    }
    for (const auto& note : outcome.notes) out += "  note: " + note + "\n";
    out += fmt::format("  seeds     recorded: inputs {}, verification {}; fresh: inputs {}, verification {}\n",
                       outcome.input_seed, recorded.verification_seed ? fmt::format("{}", *recorded.verification_seed) : "-",
                       outcome.fresh_input_seed, outcome.fresh_seeds.verification_seed);

    const auto& a = outcome.recorded_seeds;
    const auto& b = outcome.fresh_seeds;
    auto ok = [](const evaluate::Evaluation& e) { return e.status == evaluate::Status::ok; };
    auto timed = [&](const evaluate::Evaluation& e, double v) { return ok(e) && v > 0 ? std::optional<double>(v) : std::nullopt; };
    out += fmt::format("\n  {:<20} {:>14} {:>16} {:>16}\n", "", "recorded", "now (rec. seeds)", "now (fresh)");
    auto line = [&](std::string_view name, const std::string& r, const std::string& x, const std::string& y) {
        out += fmt::format("  {:<20} {:>14} {:>16} {:>16}\n", name, r, x, y);
    };
    line("status", recorded.status, std::string(evaluate::to_string(a.status)), std::string(evaluate::to_string(b.status)));
    line("median us", value_or_dash(recorded.median_us), value_or_dash(timed(a, a.timing.median_us)),
         value_or_dash(timed(b, b.timing.median_us)));
    line("min us", value_or_dash(recorded.min_us), value_or_dash(timed(a, a.timing.min_us)),
         value_or_dash(timed(b, b.timing.min_us)));
    line("cv", value_or_dash(recorded.cv, "{:.4f}"), value_or_dash(timed(a, a.timing.cv), "{:.4f}"),
         value_or_dash(timed(b, b.timing.cv), "{:.4f}"));
    line("baseline median us", value_or_dash(recorded.baseline_median_us),
         value_or_dash(timed(a, a.baseline_timing.median_us)), value_or_dash(timed(b, b.baseline_timing.median_us)));
    line("speedup", value_or_dash(recorded.speedup, "{:.3f}"), value_or_dash(timed(a, a.speedup), "{:.3f}"),
         value_or_dash(timed(b, b.speedup), "{:.3f}"));
    line("fraction of floor", value_or_dash(recorded.fraction_of_floor, "{:.3f}"),
         value_or_dash(timed(a, a.fraction_of_copy_floor()), "{:.3f}"),
         value_or_dash(timed(b, b.fraction_of_copy_floor()), "{:.3f}"));
    line("rel_l2", value_or_dash(recorded.rel_l2, "{:.2e}"),
         value_or_dash(a.status == evaluate::Status::compile_error ? std::nullopt : std::optional(a.comparison.rel_l2), "{:.2e}"),
         value_or_dash(b.status == evaluate::Status::compile_error ? std::nullopt : std::optional(b.comparison.rel_l2), "{:.2e}"));
    line("rounds passed", "-", fmt::format("{}", a.rounds_passed), fmt::format("{}", b.rounds_passed));
    for (const auto* e : {&a, &b}) {
        if (!ok(*e) && !e->log.empty()) out += "\n" + e->log + "\n";
    }
    const Drift& d = outcome.judgement.drift;
    out += "\n";
    if (d.change) out += fmt::format("  drift     median {}", percent(*d.change));
    if (d.speedup_change) out += fmt::format("{}speedup {}", d.change ? ", " : "  drift     ", percent(*d.speedup_change));
    if (d.change || d.speedup_change) out += fmt::format(" (tolerance +-{:.1f}%)\n", d.tolerance * 100);
    out += fmt::format("  verdict   {}\n", outcome.judgement.text);
    return out;
}

} // namespace nightshift::replay
