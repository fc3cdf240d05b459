#include "harness/cli/cli.h"

#include "harness/cli/commands.h"
#include "harness/core/error.h"
#include "harness/cuda/driver_api.h"

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
    compile_cmd->add_option("--knob", compile_knobs, "knob value NAME=VALUE (repeatable)");
    compile_cmd->add_option("--arch", compile_options.arch, "target architecture")->capture_default_str();
    compile_cmd->add_flag("--all-knobs", compile_options.all_knobs, "compile every point of the knob space");
    compile_cmd->add_option("--dump-nvrtc", compile_options.dump_nvrtc_dir, "write the exact source and options here");

    DoctorOptions doctor_options;
    auto* doctor_cmd = app.add_subcommand("doctor", "check the GPU, driver, NVRTC and CUPTI; measure copy bandwidth");
    doctor_cmd->add_option("--gpu", doctor_options.gpu, "GPU ordinal")->capture_default_str();
    doctor_cmd->add_flag("--remeasure-bandwidth", doctor_options.remeasure_bandwidth, "measure again");

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
