#include "harness/cli/commands.h"

#include "harness/core/paths.h"
#include "harness/cuda/compiler.h"
#include "harness/cuda/cupti.h"
#include "harness/cuda/device.h"
#include "harness/cuda/driver_api.h"
#include "harness/evaluate/evaluate.h"
#include "harness/evaluate/evaluation_json.h"
#include "harness/kernels/kernel_file.h"
#include "harness/timing/timer.h"
#include "verifier/moe_decode/presets.h"
#include "verifier/moe_decode/spec.h"
#include "verifier/op_spec.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <random>

namespace nightshift::cli {
namespace {

using nlohmann::json;

cuda::Compiler make_compiler(bool no_cache, const std::string& dump_dir) {
    std::filesystem::path cache = no_cache ? std::filesystem::path() : cache_dir() / "nvrtc";
    return cuda::Compiler(cache, dump_dir);
}

std::string knobs_text(const kernels::Symbols& knobs) {
    std::string text;
    for (const auto& [name, value] : knobs) text += fmt::format("{}{}={}", text.empty() ? "" : ",", name, value);
    return text.empty() ? "-" : text;
}

json evaluation_json(const std::string& kernel, int batch, const evaluate::Evaluation& e) {
    json row = evaluate::to_json(e);
    row["kernel"] = kernel;
    row["batch"] = batch;
    return row;
}

void print_table_header() {
    fmt::print("{:<22} {:<28} {:>4} {:>9} {:>9} {:>6} {:>7} {:>6} {:>6} {:>9} {:>9} {:>5} {:>6}  {}\n", "kernel",
               "knobs", "B", "median_us", "min_us", "cv", "GB/s", "floor", "sol", "rel_l2", "model_l2", "regs",
               "spills", "status");
}

void print_table_row(const std::string& kernel, int batch, const evaluate::Evaluation& e) {
    if (e.status != evaluate::Status::ok) {
        fmt::print("{:<22} {:<28} {:>4} {:>9} {:>9} {:>6} {:>7} {:>6} {:>6} {:>9.2e} {:>9} {:>5} {:>6}  {}: {}\n",
                   kernel, knobs_text(e.knobs), batch, "-", "-", "-", "-", "-", "-", e.comparison.rel_l2, "-",
                   e.registers(),
                   e.spill_bytes(), evaluate::to_string(e.status), e.message);
        if (!e.log.empty()) fmt::print("{}\n", e.log);
        return;
    }
    fmt::print("{:<22} {:<28} {:>4} {:>9.2f} {:>9.2f} {:>6.3f} {:>7.0f} {:>6.3f} {:>6.3f} {:>9.2e} {:>9.2e} {:>5} {:>6}  "
               "ok ({}, {} rounds)\n",
               kernel, knobs_text(e.knobs), batch, e.median_us(), e.timing.min_us, e.timing.cv, e.achieved_gb_per_s(),
               e.fraction_of_copy_floor(), e.fraction_of_speed_of_light(), e.comparison.rel_l2, e.model_rel_l2,
               e.registers(),
               e.spill_bytes(), e.timing.method, e.rounds_passed);
    if (e.timing.throttled()) {
        fmt::print("  throttled while timed: {} (lowest clocks SM {} MHz, memory {} MHz)\n",
                   cuda::describe_clock_reasons(e.timing.clock_reasons), e.timing.clock_sm_mhz_min,
                   e.timing.clock_memory_mhz_min);
    }
}

} // namespace

int bench(const BenchOptions& options) {
    // Parse the file before touching the GPU: a bad annotation is reported
    // the same way on a machine without one.
    kernels::KernelFile file = kernels::load_kernel_file(options.kernel_file);
    std::string kernel = std::filesystem::path(options.kernel_file).filename().string();

    cuda::Device device(options.gpu);
    cuda::Compiler compiler = make_compiler(options.no_cache, options.dump_nvrtc_dir);
    timing::Timer timer(device, compiler);
    timing::CopyBandwidth bandwidth = timer.copy_bandwidth(options.remeasure_bandwidth);
    auto spec = verifier::make_op_spec(file.op, device, compiler);

    unsigned long long seed = options.seed;
    if (seed == 0) seed = (static_cast<unsigned long long>(std::random_device{}()) << 32) | std::random_device{}();

    const auto& info = device.info();
    if (!options.json) {
        fmt::print("device {} ({}, {} SMs, L2 {} MB), driver {}, NVRTC {}\n", info.name, info.arch(), info.sm_count,
                   info.l2_bytes >> 20, cuda::driver_version_string(info.driver_version), cuda::nvrtc_version());
        fmt::print("copy bandwidth {:.0f} GB/s{}; model {}; seed {}; routing {}; {} warm-up + {} timed, L2 read-flush\n",
                   bandwidth.gb_per_s, bandwidth.from_cache ? " (cached)" : "", options.model, seed,
                   options.distribution, options.warmup, options.repetitions);
        fmt::print("floor = bytes / copy bandwidth; sol = time of a plain one-pass read of the same bytes\n");
        print_table_header();
    }

    evaluate::Evaluator evaluator(device, compiler, timer, bandwidth.gb_per_s);
    evaluate::EvaluateOptions evaluate_options{
        .timing = {.warmup = options.warmup, .repetitions = options.repetitions}};
    json rows = json::array();
    int failures = 0;
    for (int batch : options.batches) {
        verifier::ProblemRequest request{.model = options.model,
                                         .batch = batch,
                                         .format = options.format,
                                         .seed = seed,
                                         .distribution = options.distribution};
        auto problem = spec->make_problem(request);
        evaluate::Evaluation e = evaluator.evaluate(file, options.knobs, *problem, *spec, evaluate_options);
        if (e.status != evaluate::Status::ok) ++failures;
        if (options.json) {
            rows.push_back(evaluation_json(kernel, batch, e));
        } else {
            print_table_row(kernel, batch, e);
            std::cout.flush();
        }
    }
    if (options.json) {
        json out = {{"device", info.name},
                    {"arch", info.arch()},
                    {"driver", cuda::driver_version_string(info.driver_version)},
                    {"nvrtc", cuda::nvrtc_version()},
                    {"copy_gb_per_s", bandwidth.gb_per_s},
                    {"model", options.model},
                    {"seed", seed},
                    {"distribution", options.distribution},
                    {"warmup", options.warmup},
                    {"repetitions", options.repetitions},
                    {"results", rows}};
        fmt::print("{}\n", out.dump(1));
    }
    return failures == 0 ? 0 : 1;
}

int compile(const CompileOptions& options) {
    kernels::KernelFile file = kernels::load_kernel_file(options.kernel_file);
    if (file.op != "moe_decode") {
        throw InputError(fmt::format("{}: compile without a GPU knows the op moe_decode only, not '{}'",
                                     file.path, file.op));
    }
    namespace md = verifier::moe_decode;
    md::Shape shape = md::make_shape(md::find_preset(options.model), options.batch, options.format);
    file.check_symbols(md::shape_symbol_names());
    if (!file.supports_format(options.format)) {
        throw InputError(fmt::format("{}: @formats {} does not include {}", file.path, fmt::join(file.formats, " "),
                                     options.format));
    }
    std::vector<kernels::Symbols> points;
    if (options.all_knobs) {
        points = file.knob_space();
    } else {
        points = {file.resolve_knobs(options.knobs)};
    }
    cuda::Compiler compiler({}, options.dump_nvrtc_dir);
    int failures = 0;
    for (const auto& knobs : points) {
        kernels::Symbols symbols = md::shape_symbols(shape);
        symbols.insert(knobs.begin(), knobs.end());
        if (!file.satisfies(symbols)) {
            fmt::print("{} [{}]: skipped, a @constrain does not hold\n", file.path, knobs_text(knobs));
            continue;
        }
        auto result = compiler.compile(
            evaluate::compile_request(file, knobs, md::compile_defines(shape), options.arch, md::params_dir()));
        if (!result.ok) {
            ++failures;
            fmt::print("{} [{}]: compile_error\n{}\n", file.path, knobs_text(knobs), result.log);
            continue;
        }
        fmt::print("{} [{}]: ok, {} bytes of cubin, {:.2f} s\n", file.path, knobs_text(knobs), result.cubin.size(),
                   result.seconds);
        for (const auto& e : result.entries) {
            fmt::print("  {:<16} {:>3} registers, {:>5} B stack, {:>5} B spill stores, {:>5} B spill loads, {:>6} B smem\n",
                       e.name, e.registers, e.stack_bytes, e.spill_store_bytes, e.spill_load_bytes, e.shared_bytes);
        }
        if (auto why = evaluate::module_scope_state(result); !why.empty()) {
            ++failures;
            fmt::print("  rejected: {}\n", why);
        }
    }
    return failures == 0 ? 0 : 1;
}

int doctor(const DoctorOptions& options) {
    fmt::print("NVRTC   {}\n", cuda::nvrtc_version());
    std::string why;
    if (!cuda::driver_available(&why)) {
        fmt::print("driver  none: {}\n", why);
        fmt::print("no GPU is usable here: bench and the GPU tests need an NVIDIA GPU and its driver.\n");
        return 1;
    }
    cuda::Device device(options.gpu);
    const auto& info = device.info();
    fmt::print("driver  {} (CUDA API)\n", cuda::driver_version_string(info.driver_version));
    fmt::print("GPUs    {}\n", cuda::device_count());
    fmt::print("device  {}: {} ({}), {} SMs, L2 {} MB, {:.1f} GB, smem/block opt-in {} KB, PCI {}\n", info.ordinal,
               info.name, info.arch(), info.sm_count, info.l2_bytes >> 20, info.total_memory_bytes / 1e9,
               info.max_shared_per_block_optin / 1024, info.pci_bus_id);
    fmt::print("clocks  SM max {} MHz, memory {} MHz, bus {} bits (as reported; never changed)\n",
               info.sm_clock_khz / 1000, info.memory_clock_khz / 1000, info.memory_bus_bits);
    std::string cupti_why;
    if (auto version = cuda::cupti_version(&cupti_why)) {
        fmt::print("CUPTI   API version {}\n", *version);
    } else {
        fmt::print("CUPTI   {}\n", cupti_why);
    }
    cuda::Compiler compiler(cache_dir() / "nvrtc");
    timing::Timer timer(device, compiler);
    auto bandwidth = timer.copy_bandwidth(options.remeasure_bandwidth);
    fmt::print("copy    {:.0f} GB/s device-to-device, read plus written{}\n", bandwidth.gb_per_s,
               bandwidth.from_cache ? " (cached; --remeasure-bandwidth to measure again)" : "");
    return 0;
}

} // namespace nightshift::cli
