// The line-delimited JSON protocol between the orchestrator and a GPU worker.
// One request per line on the worker's stdin, one reply per line on its
// stdout:
//   {"type":"hello"}                    -> {"type":"hello", "device", "arch", "copy_gb_per_s", ...}
//   {"type":"evaluate", "id", ...}      -> {"type":"result", "id", "evaluation", "baseline"}
//   {"type":"shutdown"}                 -> (the worker exits)
// A worker whose CUDA context is lost replies {"type":"fatal","message"} and
// exits; the orchestrator starts a fresh one. Cubins travel base64-encoded.
#pragma once

#include "harness/cuda/compiler.h"
#include "harness/evaluate/evaluate.h"
#include "verifier/op_spec.h"

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>

namespace nightshift::worker {

// A kernel file at one knob assignment, compiled by the orchestrator.
struct CompiledKernel {
    std::string path;
    std::string source;
    kernels::Symbols knobs;
    cuda::CompileResult compiled;
};

struct EvaluateRequest {
    long long id = 0;
    CompiledKernel candidate;
    std::optional<CompiledKernel> baseline; // timed on the same problem in the same worker
    verifier::ProblemRequest problem;
    timing::TimingOptions timing;
    bool time_speed_of_light = true;
    double max_error_vs_seed = 2.5; // the plan's accuracy policy
    // The evaluator's side only, never sent: measure in a newly started worker
    // process (a winner re-timed away from anything the old one held).
    bool fresh_worker = false;
};

struct EvaluateReply {
    long long id = 0;
    evaluate::Evaluation evaluation;
    std::optional<evaluate::Evaluation> baseline;
};

std::string base64_encode(const std::vector<char>& bytes);
std::vector<char> base64_decode(const std::string& text); // InputError on bad input

nlohmann::json to_json(const EvaluateRequest& request);
EvaluateRequest evaluate_request_from_json(const nlohmann::json& json);
nlohmann::json to_json(const EvaluateReply& reply);
EvaluateReply evaluate_reply_from_json(const nlohmann::json& json);

} // namespace nightshift::worker
