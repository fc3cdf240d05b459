// `nightshift export --best --op moe_decode --model NAME`: the winning kernels
// of one model as standalone CUDA for a serving stack. Per weight format and
// measured batch, the fastest verified experiment; each becomes one
// specialization (its kernel compiled for exactly that batch, knobs fixed), in
// one .cu file with a dispatch table in a header, and a PyTorch C++ extension
// that calls it.
//
// A specialization computes exactly its batch (the kernels take the shape as
// compile-time constants); a smaller batch is padded up to the next measured
// one with zero-weight tokens, as serving stacks pad to their CUDA-graph
// batch sizes. The .cu's device part compiles with NVRTC as well as nvcc;
// its host part sits under #ifndef __CUDACC_RTC__.
#pragma once

#include "harness/kernels/expression.h"
#include "harness/store/store.h"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace nightshift::exports {

struct BestRequest {
    std::string op = "moe_decode";
    std::string model;
    std::optional<std::int64_t> run_id; // none: every run
};

struct Variant {
    std::string format;
    int batch = 0;
    std::int64_t experiment_id = 0;
    std::string kernel_path, kernel_source;
    kernels::Symbols knobs;
    double median_us = 0;
    double fraction_of_floor = 0;
};

struct BestExport {
    std::string base_name;  // "moe_decode_gemma4_26b_a4b": file names and C identifiers
    std::vector<Variant> variants; // by format, then batch
    std::string cuda_source, header, torch_example;
    std::string summary;    // the dispatch table, for people
};

// InputError for an op other than moe_decode, an unknown model, or no
// verified experiment of that model in the store.
BestExport export_best(store::Store& store, const BestRequest& request);

// Writes <base>.cu, <base>.h and <base>_torch.cpp under `dir`; returns them.
std::vector<std::filesystem::path> write_best(const BestExport& best, const std::filesystem::path& dir);

} // namespace nightshift::exports
