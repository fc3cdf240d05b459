// The tuner agent (offline, the default): structure comes from the kernel
// files, parameters from a search strategy over their @tune space. It reads
// every loop's results for a problem from the store (warm starts, never
// re-tests), and after each search writes what it learned as findings with
// the experiment ids that support them.
#pragma once

#include "harness/kernels/kernel_file.h"
#include "harness/research/plan.h"
#include "harness/research/strategy.h"
#include "harness/store/store.h"

#include <memory>

namespace nightshift::research {

// The plan's strategy with its options; the plan's [timing] repetitions fill
// a strategy's `repetitions` option when the plan does not set it.
std::unique_ptr<Strategy> make_tuner_strategy(const Plan& plan, const kernels::KernelFile& file);

// Findings for one kernel on one problem, from every evaluator-matching row:
// the best knobs with their time and fraction of the floor; "bandwidth-bound"
// when the best is within 0.9 of the floor; and each knob's measured effect
// (the best time at each of its values). Returns how many were written.
int write_findings(store::Store& store, std::int64_t run_id, std::int64_t loop_id, std::int64_t problem_id,
                   const store::ProblemKey& key, std::int64_t kernel_id, const std::string& kernel_path,
                   const std::string& evaluator);

} // namespace nightshift::research
