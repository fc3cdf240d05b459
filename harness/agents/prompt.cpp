#include "harness/agents/prompt.h"

#include "harness/core/paths.h"
#include "verifier/moe_decode/presets.h"
#include "verifier/moe_decode/problem.h"
#include "verifier/moe_decode/spec.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

namespace nightshift::agents {
namespace {
namespace md = verifier::moe_decode;

std::string capped(const std::string& text, std::size_t limit) {
    if (text.size() <= limit) return text;
    return text.substr(0, limit) + fmt::format("\n[... {} more characters cut]", text.size() - limit);
}

std::string numbers_of(const store::ExperimentRecord& e) {
    std::string out = fmt::format("knobs {}", e.knobs_json);
    if (e.median_us) out += fmt::format(", median {:.2f} us", *e.median_us);
    if (e.fraction_of_floor) out += fmt::format(", {:.3f} of the copy-rate floor", *e.fraction_of_floor);
    if (e.copy_floor_us) out += fmt::format(" (floor {:.2f} us)", *e.copy_floor_us);
    if (e.speedup) out += fmt::format(", {:.3f}x the baseline", *e.speedup);
    if (e.registers) out += fmt::format(", {} registers", *e.registers);
    if (e.spill_bytes) out += fmt::format(", {} spill bytes", *e.spill_bytes);
    return out;
}

const char* k_rules = R"(Rules for a kernel file (the harness rejects a file that breaks one, before compiling):
- One .cu file of device code only, compiled by NVRTC with no host headers. The only #include allowed is "params.h".
  No host code: no main, no <<<>>> launches, no CUDA runtime or driver API calls, no std::.
- Entries are extern "C" __global__ functions that take the op's Params struct by value
  (e.g. extern "C" __global__ void gate_up(const MoeDecodeParams p)).
- The problem's shape arrives as compile-time defines NS_T, NS_H, NS_I, NS_E, NS_K (and NS_ACT); knobs as -DNAME=VALUE.
- Annotations, one per comment line:
    // @op NAME                       the op (exactly once)
    // @formats F ...                  weight formats the file implements (bf16 int8_row int4_g128 fp8_e4m3)
    // @tune NAME V1 V2 ...            a knob and its integer values; the first is the default. The tuner sweeps them.
    // @constrain EXPR                 a condition every configuration must meet (knobs and T H I E K BITS)
    // @scratch NAME TYPE COUNT        a device buffer the harness allocates (f32 f64 bf16 i32 u32 u8), params.scratch[i] in order
    // @packed NAME TYPE COUNT         weights in the file's own layout: a buffer like @scratch (shares params.scratch[]
                                     in declaration order), written by the @prepack launches, poisoned (0xFF) before them
    // @launch ENTRY grid=(X[,Y[,Z]]) block=(X[,Y[,Z]]) [smem=BYTES] [pdl=EXPR]   one launch, in order, on one stream;
    //     pdl=1 (not on the first launch): may start before the previous launch ends; the kernel must run
    //     asm volatile("griddepcontrol.wait;" ::: "memory") before reading what the previous launch wrote
    // @prepack ENTRY grid=(...) block=(...) [smem=...]   fills the @packed buffers, once per set of weights, untimed;
                                     its params hold only shapes, format, weights, scales and packed buffers (the rest null)
    // @parent FILE                    the file this one was derived from
  Expressions are integer arithmetic over T H I E K, BITS (bits per stored weight: 16, 8, 4) and the knobs: + - * / % ( ) cdiv(a,b) min(a,b) max(a,b) comparisons && || !.
- Every output element must be written by every call; results must be bitwise reproducible run to run unless the file
  declares @nondeterministic; module-scope __device__ variables are rejected (no state between calls), and NVRTC
  makes a namespace-scope constexpr used in device code one: use #define for such constants.
- Open the file with a comment that teaches: what it computes, the parallel strategy, the launch rule, and how it
  differs from its parent.)";

const char* k_reply_format = R"(Reply with exactly this, in this order:
Hypothesis: <what you change and why it should be faster, in one or two sentences>
Predicted effect: <a number you can be wrong about, e.g. "0.80 -> 0.88 of the floor at T=1">
```cuda
<one whole kernel file with its annotations>
```
Change the structure (parallel strategy, fusion, data movement), not only constants: the tuner sweeps the @tune
knobs you declare, so declare the knobs whose best value you do not know.)";

} // namespace

PromptInput gather_prompt_input(store::Store& store, const research::Plan& plan, const research::Direction& direction,
                                const store::ProblemKey& key, std::int64_t problem_id, const std::string& evaluator,
                                std::int64_t fallback_kernel_id, int max_attempts) {
    PromptInput in;
    in.plan_title = plan.title;
    in.plan_body = plan.body;
    in.direction = direction.name;
    in.direction_hypothesis = direction.hypothesis;
    in.done_when = direction.done_when;
    in.op = plan.op;
    in.problem = fmt::format("{} T={} {} routing={}", key.model, key.batch, key.format, key.distribution);
    const md::Shape shape = md::make_shape(md::find_preset(key.model), key.batch);
    in.shape = fmt::format("T={} H={} I={} E={} K={} activation={}", shape.T, shape.H, shape.I, shape.E, shape.K,
                           shape.activation == 1 ? "gelu_tanh" : "silu");
    try {
        in.params_header = read_text_file(std::filesystem::path(md::params_dir()) / "params.h");
    } catch (const Error&) {
        in.params_header = "(params.h could not be read)";
    }

    const std::vector<store::ExperimentRecord> all = store.experiments_for_problem(problem_id);
    const store::ExperimentRecord* best = nullptr;
    for (const auto& e : all) {
        if (e.evaluator != evaluator || e.status != evaluate::Status::ok || !e.median_us) continue;
        if (!best || *e.median_us < *best->median_us) best = &e;
    }
    in.parent_id = best ? best->kernel_id : fallback_kernel_id;
    const store::KernelRecord parent = store.kernel(in.parent_id);
    in.parent_reference = parent.path;
    in.parent_source = parent.source;
    in.parent_numbers = best ? numbers_of(*best)
                             : "not yet measured on this problem (no verified, timed experiment)";

    for (auto it = all.rbegin(); it != all.rend() && static_cast<int>(in.attempts.size()) < max_attempts; ++it) {
        PromptAttempt a;
        a.kernel = store.kernel(it->kernel_id).path;
        a.knobs = it->knobs_json;
        a.status = std::string(evaluate::to_string(it->status));
        a.message = it->message;
        if (it->status == evaluate::Status::compile_error) a.log = capped(it->log, k_max_log_chars);
        a.median_us = it->median_us;
        a.fraction_of_floor = it->fraction_of_floor;
        in.attempts.push_back(std::move(a));
    }
    for (const auto& row : store.query(fmt::format("SELECT kind, text FROM findings ORDER BY id DESC LIMIT {}",
                                                   k_max_findings))) {
        in.findings.push_back(fmt::format("[{}] {}", row.at(0), capped(row.at(1), 400)));
    }
    return in;
}

ChatRequest build_prompt(const PromptInput& in) {
    ChatRequest chat;
    chat.system = fmt::format(
        "You are a GPU kernel engineer working inside nightshift, a harness that compiles each kernel file you write "
        "with NVRTC, verifies it against a float64 reference on fresh random inputs, times it with a cold L2, and "
        "reports its time as a fraction of the hardware's floor. A fast wrong kernel is worthless.\n\n{}\n\n{}",
        k_rules, k_reply_format);

    std::string u;
    u += fmt::format("# Plan: {}\n\n{}\n\n", in.plan_title, capped(in.plan_body, k_max_body_chars));
    u += fmt::format("# Current direction: {}\n", in.direction);
    if (!in.direction_hypothesis.empty()) u += fmt::format("Hypothesis of the plan: {}\n", in.direction_hypothesis);
    if (!in.done_when.empty()) u += fmt::format("Done when: {}\n", in.done_when);
    u += fmt::format("\n# Op `{}`, problem {}\nShape: {}\n\nparams.h (the one argument of every entry):\n```c\n{}\n```\n\n",
                     in.op, in.problem, in.shape, in.params_header);
    u += fmt::format("# Current best kernel: {} (kernel id {})\nNumbers: {}\n```cuda\n{}\n```\n\n", in.parent_reference,
                     in.parent_id, in.parent_numbers, in.parent_source);
    u += "# Last attempts on this problem (newest first)\n";
    if (in.attempts.empty()) u += "(none yet)\n";
    for (const auto& a : in.attempts) {
        u += fmt::format("- {} knobs {}: {}", a.kernel, a.knobs, a.status);
        if (a.median_us) u += fmt::format(", {:.2f} us", *a.median_us);
        if (a.fraction_of_floor) u += fmt::format(", {:.3f} of the floor", *a.fraction_of_floor);
        if (!a.message.empty() && a.status != "ok") u += fmt::format(" ({})", a.message);
        u += "\n";
        if (!a.log.empty()) u += fmt::format("  compile log:\n```\n{}\n```\n", a.log);
    }
    u += "\n# Findings of every loop (newest first)\n";
    if (in.findings.empty()) u += "(none yet)\n";
    for (const auto& f : in.findings) u += "- " + f + "\n";
    u += fmt::format("\nWrite one new kernel file for `{}` derived from {} (give it `// @parent {}`). {}\n", in.op,
                     in.parent_reference, in.parent_reference, "Follow the reply format exactly.");
    chat.user = std::move(u);
    return chat;
}

} // namespace nightshift::agents
