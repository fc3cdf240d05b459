// The commands behind the CLI, as plain functions over plain option structs,
// so tests call them without parsing a command line.
#pragma once

#include "harness/kernels/expression.h"

#include <map>
#include <string>
#include <vector>

namespace nightshift::cli {

struct BenchOptions {
    std::string kernel_file;
    std::string model = "gemma4-26b-a4b";
    std::vector<int> batches = {1};
    std::string format = "bf16";
    kernels::Symbols knobs;
    std::string distribution = "uniform";
    unsigned long long seed = 0; // 0: a fresh random seed, printed
    int warmup = 5;
    int repetitions = 50;
    int gpu = 0;
    bool json = false;
    bool no_cache = false;
    std::string dump_nvrtc_dir;
    bool remeasure_bandwidth = false;
};

struct CompileOptions {
    std::string kernel_file;
    std::string model = "gemma4-26b-a4b";
    int batch = 1;
    std::string format = "bf16";
    kernels::Symbols knobs;
    std::string arch = "sm_90";
    bool all_knobs = false; // compile every point of the knob space
    std::string dump_nvrtc_dir;
};

struct DoctorOptions {
    int gpu = 0;
    bool remeasure_bandwidth = false;
};

// Each returns the process exit code (see cli.h).
int bench(const BenchOptions& options);
int compile(const CompileOptions& options);
int doctor(const DoctorOptions& options);

} // namespace nightshift::cli
