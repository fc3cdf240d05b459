// What an LLM agent is told: the plan's prose and current direction, the op's
// shape and Params struct, the kernel-file rules, the current best kernel's
// source with its numbers (µs, fraction of the floor, registers, spills), the
// last attempts with their verdicts and compile logs (capped), and the
// findings of every loop; then the reply format: one whole kernel file with
// annotations, a hypothesis and a predicted effect. How candidates are
// verified beyond "against a float64 reference" (seeds, held-out shapes,
// tolerances) stays out, so a kernel cannot be written to the test.
#pragma once

#include "harness/agents/backend.h"
#include "harness/research/plan.h"
#include "harness/store/store.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nightshift::agents {

struct PromptAttempt {
    std::string kernel, knobs, status, message, log;
    std::optional<double> median_us, fraction_of_floor;
};

struct PromptInput {
    std::string plan_title, plan_body;
    std::string direction, direction_hypothesis, done_when;
    std::string op, problem;   // "gemma4-26b-a4b T=1 bf16 uniform"
    std::string shape;         // "T=1 H=2816 I=704 E=128 K=8 activation=gelu_tanh"
    std::string params_header; // the op's params.h, verbatim
    std::int64_t parent_id = 0;
    std::string parent_reference, parent_source, parent_numbers;
    std::vector<PromptAttempt> attempts; // newest first
    std::vector<std::string> findings;   // newest first
};

// Reads the store: the parent is the fastest verified kernel on the problem
// (by this evaluator), else `fallback_kernel_id` (the direction's first
// kernel); attempts and findings from every loop and run.
PromptInput gather_prompt_input(store::Store& store, const research::Plan& plan, const research::Direction& direction,
                                const store::ProblemKey& key, std::int64_t problem_id, const std::string& evaluator,
                                std::int64_t fallback_kernel_id, int max_attempts);

ChatRequest build_prompt(const PromptInput& input);

// Caps, so one long compile log or plan cannot crowd out the rest.
inline constexpr std::size_t k_max_log_chars = 1'500;
inline constexpr std::size_t k_max_body_chars = 8'000;
inline constexpr std::size_t k_max_findings = 20;

} // namespace nightshift::agents
