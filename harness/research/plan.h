// A research plan (grammar: plans/README.md): TOML front matter between a
// first line `+++` and the next `+++` line for the machine, then Markdown prose
// for people and LLM agents. Parsing checks everything that can be checked from
// the text alone; check_plan_kernels() checks the plan against its kernel files.
// The harness never rewrites a plan file: revisions of the directions go to the
// store, keyed by the plan's hash.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nightshift::research {

// One line of research, in the order the plan gives them (the tuner may
// re-order them from evidence, in the store, never in the file).
struct Direction {
    std::string name;       // unique within the plan
    std::string hypothesis; // optional, but a direction without one teaches nothing
    std::string done_when;  // optional prose stop rule for this direction
    // Kernel files: paths relative to kernels_seed/ (e.g. "moe_decode/warp_decode_v1.cu")
    // or to the plan's folder; see resolve_kernel().
    std::vector<std::string> kernels;
    // Optional knob subspace, e.g. [directions.knobs] WARPS = [4, 8]: the values
    // of each named knob to search; knobs not named keep the kernel's declared values.
    std::map<std::string, std::vector<int64_t>, std::less<>> knobs;
    std::vector<int> batches; // optional: overrides the plan's batches for this direction
    int line = 0;             // the line of its [[directions]] header
};

struct Plan {
    std::string path; // as given, for messages; its folder resolves plan-local kernels
    std::string title;
    std::string op;                  // an identifier, e.g. "moe_decode" (that the op exists is checked elsewhere)
    std::vector<std::string> models; // non-empty; preset names, checked by the verifier
    std::vector<int> batches;        // non-empty, each 1..512, distinct
    std::vector<std::string> formats = {"bf16"};
    std::string distribution = "uniform"; // routing distribution for timing
    std::string baseline;                 // kernel file the candidates are timed against
    std::vector<std::string> seeds;       // kernel files the search starts from
    std::string agent = "tuner";
    // [agent] (agent = "name" or an [agent] table with `name`): every other key,
    // values as strings (harness/agents/agent_config.h reads and checks them).
    std::map<std::string, std::string, std::less<>> agent_options;
    std::string strategy = "exhaustive"; // the tuner's search strategy
    // [tuner]: every key but `strategy`, values as strings (the strategy's
    // registry checks them; scalars only: 3 -> "3", true -> "true").
    std::map<std::string, std::string, std::less<>> strategy_options;
    std::optional<double> budget_hours, budget_minutes; // [budget]; at most one of the two
    std::optional<int64_t> budget_experiments;
    double stop_fraction_of_floor = 0.95;              // [stop] fraction_of_floor, in (0, 1]
    double max_rel_l2 = 1e-2, max_error_vs_seed = 2.0; // [accuracy]
    int repetitions = 30, warmup = 3;                  // [timing]
    std::vector<Direction> directions;                 // [[directions]], in order; at least one
    std::string body;                                  // the Markdown after the closing +++ line
    std::string front_matter;                          // the TOML text between the +++ lines, verbatim
    std::string hash;                                  // SHA-256 (hex) of the whole file text

    // The file line of a field, by its path as error messages name it:
    // "baseline", "seeds[1]", "models[0]", "budget.hours",
    // "directions[2].kernels[0]", "directions[0].knobs.WARPS". 0 when absent.
    int line_of(std::string_view field) const;
    std::map<std::string, int, std::less<>> lines;
};

// Throws InputError "path:LINE: field 'x': message" (structural errors, such as
// a missing +++ line or a TOML syntax error, name no field).
Plan parse_plan(std::string path, std::string_view text);
// Throws IoError when the file cannot be read, InputError as parse_plan.
Plan load_plan(const std::filesystem::path& path);

// Resolves a kernel reference of the plan to a file: <root>/kernels_seed/<reference>
// if that file exists, else <folder of plan.path>/<reference>. Throws InputError
// "plan:LINE: kernel 'reference': not found (looked for A and B)" if neither exists.
std::filesystem::path resolve_kernel(const Plan& plan, const std::string& reference, const std::filesystem::path& root,
                                     int line);

// Checks the plan against its kernel files: every reference (baseline, seeds,
// directions' kernels) resolves and parses; each file's @op is the plan's op;
// every knob of a direction's subspace is declared (@tune) by at least one of
// the direction's kernels, and each of its values is declared by every kernel
// of the direction that declares the knob. Throws InputError naming the plan line
// (or the kernel file's own error). Returns the resolved baseline, seeds, then
// each direction's kernels, in plan order (duplicates kept).
std::vector<std::filesystem::path> check_plan_kernels(const Plan& plan, const std::filesystem::path& root);

} // namespace nightshift::research
