#include "harness/cli/cli.h"

#include "harness/agents/agent_config.h"
#include "harness/cli/commands.h"
#include "harness/cli/morning.h"
#include "harness/query/queries.h"
#include "harness/core/error.h"
#include "harness/cuda/driver_api.h"
#include "harness/research/run.h"
#include "harness/research/strategy.h"
#include "harness/worker/worker.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <iostream>

namespace nightshift::cli {
namespace {

// "K=V" pairs into a knob map; a malformed pair is an InputError naming it.
kernels::Symbols parse_knobs(const std::vector<std::string>& pairs) {
    kernels::Symbols knobs;
    for (const auto& pair : pairs) {
        auto eq = pair.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == pair.size()) {
            throw InputError(fmt::format("--knob '{}': expected NAME=VALUE", pair));
        }
        try {
            std::size_t used = 0;
            long long value = std::stoll(pair.substr(eq + 1), &used);
            if (used != pair.size() - eq - 1) throw std::invalid_argument("trailing characters");
            knobs[pair.substr(0, eq)] = value;
        } catch (const std::exception&) {
            throw InputError(fmt::format("--knob '{}': the value is not an integer", pair));
        }
    }
    return knobs;
}

} // namespace

int run(int argc, char** argv) {
    CLI::App app{"nightshift: autonomous GPU-kernel research (JIT-compile, verify, time, record)"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "nightshift 0.1");

    BenchOptions bench_options;
    std::vector<std::string> bench_knobs;
    auto* bench_cmd = app.add_subcommand("bench", "compile, verify and time one kernel file on one model's shapes");
    bench_cmd->add_option("file", bench_options.kernel_file, "kernel file (.cu with annotations)")->required();
    bench_cmd->add_option("--model", bench_options.model, "model preset")->capture_default_str();
    bench_cmd->add_option("--batch", bench_options.batches, "batch sizes T, e.g. 1,8,64")->delimiter(',');
    bench_cmd->add_option("--format", bench_options.format, "weight format")->capture_default_str();
    bench_cmd->add_option("--knob", bench_knobs, "knob value NAME=VALUE (repeatable)");
    bench_cmd->add_option("--distribution", bench_options.distribution, "routing: uniform, zipf, identical")
        ->capture_default_str();
    bench_cmd->add_option("--seed", bench_options.seed, "input seed (default: fresh, printed)");
    bench_cmd->add_option("--warmup", bench_options.warmup, "warm-up iterations")->capture_default_str();
    bench_cmd->add_option("--reps", bench_options.repetitions, "timed iterations")->capture_default_str();
    bench_cmd->add_option("--gpu", bench_options.gpu, "GPU ordinal")->capture_default_str();
    bench_cmd->add_flag("--json", bench_options.json, "print JSON instead of a table");
    bench_cmd->add_flag("--no-cache", bench_options.no_cache, "do not use the compile cache");
    bench_cmd->add_option("--dump-nvrtc", bench_options.dump_nvrtc_dir,
                          "write the exact source, options and log of every compile to this folder");
    bench_cmd->add_flag("--remeasure-bandwidth", bench_options.remeasure_bandwidth,
                        "measure the copy bandwidth again instead of using the cached value");

    CompileOptions compile_options;
    std::vector<std::string> compile_knobs;
    auto* compile_cmd = app.add_subcommand("compile", "compile a kernel file with NVRTC (no GPU needed) and print its resources");
    compile_cmd->add_option("file", compile_options.kernel_file, "kernel file")->required();
    compile_cmd->add_option("--model", compile_options.model, "model preset")->capture_default_str();
    compile_cmd->add_option("--batch", compile_options.batch, "batch size T")->capture_default_str();
    compile_cmd->add_option("--format", compile_options.format, "weight format")->capture_default_str();
    compile_cmd->add_option("--knob", compile_knobs, "knob value NAME=VALUE (repeatable)");
    compile_cmd->add_option("--arch", compile_options.arch, "target architecture")->capture_default_str();
    compile_cmd->add_flag("--all-knobs", compile_options.all_knobs, "compile every point of the knob space");
    compile_cmd->add_option("--dump-nvrtc", compile_options.dump_nvrtc_dir, "write the exact source and options here");

    DoctorOptions doctor_options;
    auto* doctor_cmd = app.add_subcommand("doctor", "check the GPU, driver, NVRTC and CUPTI; measure copy bandwidth");
    doctor_cmd->add_option("--gpu", doctor_options.gpu, "GPU ordinal")->capture_default_str();
    doctor_cmd->add_flag("--remeasure-bandwidth", doctor_options.remeasure_bandwidth, "measure again");

    research::RunOptions run_options;
    double candidate_seconds = 60;
    bool no_progress = false;
    std::string plan_path, db_path = "results.db", record_path;
    auto* run_cmd = app.add_subcommand("run", "run a research plan: loops propose, verify, time and record until the budget ends");
    run_cmd->add_option("plan", plan_path, "plan file (plans/*.md)")->required();
    run_cmd->add_option("--db", db_path, "results database")->capture_default_str();
    run_cmd->add_option("--loops", run_options.loops, "parallel loops in this process")->capture_default_str();
    run_cmd->add_option("--gpus", run_options.gpus, "GPU ordinals, one worker each, e.g. 0,1")->delimiter(',');
    run_cmd->add_option("--hours", run_options.hours, "time budget (overrides the plan)");
    run_cmd->add_option("--minutes", run_options.minutes, "time budget (overrides the plan)");
    run_cmd->add_option("--experiments", run_options.experiments, "experiment budget (overrides the plan)");
    run_cmd->add_option("--resume", run_options.resume_run, "continue run ID after an interruption");
    run_cmd->add_option("--evaluator", run_options.evaluator, "gpu, or replay:FILE to serve recorded measurements")
        ->capture_default_str();
    run_cmd->add_option("--record", record_path, "append every GPU measurement to FILE (for --evaluator replay:FILE)");
    run_cmd->add_option("--candidate-timeout", candidate_seconds, "seconds before the watchdog kills a worker")
        ->capture_default_str();
    run_cmd->add_option("--seed", run_options.seed, "input seed (default: fresh, recorded)");
    run_cmd->add_flag("--no-progress", no_progress, "no live status line or per-experiment lines");
    std::string agent_name, agent_base_url, agent_model;
    std::vector<std::string> agent_pairs;
    run_cmd->add_option("--agent", agent_name, "who writes kernels: tuner, openai, anthropic, replay (overrides the plan)");
    run_cmd->add_option("--agent-base-url", agent_base_url, "the agent's API base URL (overrides [agent] base_url)");
    run_cmd->add_option("--agent-model", agent_model, "the agent's model (overrides [agent] model)");
    run_cmd->add_option("--agent-option", agent_pairs, "an [agent] option KEY=VALUE (repeatable; overrides the plan)");
    run_cmd->footer("Search strategies (plan [tuner] strategy = NAME, options as keys):\n" + research::strategies_help() +
                    "\nAgents (plan agent = NAME, or an [agent] table with name = NAME and these options):\n" +
                    agents::agents_help());

    int worker_gpu = 0;
    auto* worker_cmd = app.add_subcommand("worker", "serve evaluation requests on stdin/stdout for one GPU (started by run)");
    worker_cmd->add_option("--gpu", worker_gpu, "GPU ordinal")->capture_default_str();

    QueryOptions query_options;
    std::int64_t query_run = 0;
    auto* query_cmd = app.add_subcommand("query", "ask results.db a named question, or read-only SQL");
    query_cmd->add_option("name", query_options.name, "a named query (below) or sql")->required();
    query_cmd->add_option("arguments", query_options.arguments, "the id it takes, or the SQL");
    query_cmd->add_option("--db", query_options.db, "results database")->capture_default_str();
    query_cmd->add_option("--format", query_options.format, "table, json or csv")->capture_default_str();
    query_cmd->add_option("--run", query_run, "only this run");
    query_cmd->footer("Named queries:\n" + query::named_queries_help());

    ExportOptions export_options;
    std::int64_t export_id = 0, export_run = 0;
    auto* export_cmd = app.add_subcommand(
        "export", "an experiment as a replayable JSON record, or (--best) the winning kernels as standalone CUDA");
    export_cmd->add_option("id", export_id, "experiment id");
    export_cmd->add_option("--db", export_options.db, "results database")->capture_default_str();
    export_cmd->add_option("--out", export_options.out_dir, "folder to write into")->capture_default_str();
    export_cmd->add_flag("--best", export_options.best, "the fastest verified kernel per format and batch of --model");
    export_cmd->add_option("--op", export_options.op, "op (with --best)")->capture_default_str();
    export_cmd->add_option("--model", export_options.model, "model preset (with --best)");
    export_cmd->add_option("--run", export_run, "only this run's experiments (with --best)");

    ReportOptions report_options;
    std::int64_t report_run = 0;
    auto* report_cmd = app.add_subcommand("report", "one self-contained HTML page with plots and tables of results.db");
    report_cmd->add_option("--db", report_options.db, "results database")->capture_default_str();
    report_cmd->add_option("--run", report_run, "only this run (default: every run)");
    report_cmd->add_option("--out", report_options.out, "HTML file to write")->capture_default_str();
    report_cmd->add_option("--peers", report_options.peers, "peer baselines JSON to draw on the crossover map");

    ReplayOptions replay_options;
    int replay_reps = 0;
    auto* replay_cmd = app.add_subcommand(
        "replay", "recompile, re-verify (recorded and fresh seeds) and re-time one experiment; show the drift");
    replay_cmd->add_option("target", replay_options.target, "experiment id in --db, or an exported .json")->required();
    replay_cmd->add_option("--db", replay_options.db, "results database")->capture_default_str();
    replay_cmd->add_option("--gpu", replay_options.gpu, "GPU ordinal")->capture_default_str();
    replay_cmd->add_option("--reps", replay_reps, "timed iterations (default: as recorded)");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }

    try {
        if (*bench_cmd) {
            bench_options.knobs = parse_knobs(bench_knobs);
            return bench(bench_options);
        }
        if (*compile_cmd) {
            compile_options.knobs = parse_knobs(compile_knobs);
            return compile(compile_options);
        }
        if (*doctor_cmd) return doctor(doctor_options);
        if (*run_cmd) {
            run_options.plan_path = plan_path;
            run_options.db_path = db_path;
            run_options.record_path = record_path;
            run_options.progress = !no_progress;
            if (!agent_name.empty()) run_options.agent = agent_name;
            for (const auto& pair : agent_pairs) {
                const auto eq = pair.find('=');
                if (eq == std::string::npos || eq == 0)
                    throw InputError(fmt::format("--agent-option '{}': expected KEY=VALUE", pair));
                run_options.agent_options[pair.substr(0, eq)] = pair.substr(eq + 1);
            }
            if (!agent_base_url.empty()) run_options.agent_options["base_url"] = agent_base_url;
            if (!agent_model.empty()) run_options.agent_options["model"] = agent_model;
            run_options.candidate_limit = std::chrono::milliseconds(static_cast<long long>(candidate_seconds * 1000));
            auto summary = research::run_plan(run_options);
            fmt::print("run {} {}: {} experiments, {} failed; query it in {}\n", summary.run_id, summary.status,
                       summary.experiments, summary.failures, db_path);
            return summary.status == "finished" ? 0 : 130;
        }
        if (*worker_cmd) return worker::serve(worker_gpu, std::cin, std::cout);
        if (*query_cmd) {
            if (query_run) query_options.run_id = query_run;
            return query(query_options);
        }
        if (*export_cmd) {
            if (export_id) export_options.experiment_id = export_id;
            if (export_run) export_options.run_id = export_run;
            return export_results(export_options);
        }
        if (*report_cmd) {
            if (report_run) report_options.run_id = report_run;
            return report(report_options);
        }
        if (*replay_cmd) {
            if (replay_reps > 0) replay_options.repetitions = replay_reps;
            return replay(replay_options);
        }
    } catch (const InputError& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 2;
    } catch (const IoError& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 2;
    } catch (const cuda::NoDriverError& e) {
        std::cerr << "error: " << e.what() << "\nThis command needs an NVIDIA GPU and its driver.\n";
        return 1;
    } catch (const Error& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 3;
    } catch (const std::exception& e) {
        std::cerr << "internal error: " << e.what() << "\n";
        return 3;
    }
    return 0;
}

} // namespace nightshift::cli
