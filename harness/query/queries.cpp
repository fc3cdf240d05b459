#include "harness/query/queries.h"

#include "harness/core/error.h"
#include "harness/evaluate/status.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace nightshift::query {
namespace {

constexpr std::array<NamedQuery, 8> k_queries = {{
    {"runs", "", "every run: device, driver, NVRTC, evaluator, status, experiments (ok, failed), hours"},
    {"loops", "", "every loop: agent, strategy, direction, experiments, best fraction of the floor"},
    {"best", "", "the fastest verified experiment per problem (model, batch, format, routing)"},
    {"leaderboard", "", "kernels ranked by problems won, with their best and mean fraction of the floor"},
    {"findings", "", "what the loops learned, with the experiments each finding cites"},
    {"failures", "", "failed experiments by status: count, kernels, the latest example and its message"},
    {"experiment", "EXPERIMENT_ID", "one experiment in full: problem, kernel source, knobs, options, seeds, numbers"},
    {"lineage", "KERNEL_ID", "a kernel's ancestors and descendants (parent links), with their best results"},
}};

// " WHERE <column> = id" / " AND ..." for the --run filter.
std::string run_filter(const std::optional<std::int64_t>& run_id, std::string_view column, std::string_view joiner) {
    if (!run_id) return "";
    return fmt::format(" {} {} = {}", joiner, column, *run_id);
}

std::string sql_for(const QueryRequest& r) {
    const std::string status = status_name_sql("e.status");
    if (r.name == "runs") {
        return fmt::format(
            "SELECT r.id AS run, r.created_at, r.status, r.evaluator, r.device, r.driver, r.nvrtc, r.host, "
            "r.plan_path AS plan, r.git_commit AS commit_, "
            "(SELECT count(*) FROM experiments e WHERE e.run_id = r.id) AS experiments, "
            "(SELECT count(*) FROM experiments e WHERE e.run_id = r.id AND e.status = 0) AS ok, "
            "(SELECT count(*) FROM experiments e WHERE e.run_id = r.id AND e.status != 0) AS failed, "
            "round((julianday(coalesce(r.finished_at, (SELECT max(created_at) FROM experiments e WHERE e.run_id = "
            "r.id), r.created_at)) - julianday(r.created_at)) * 24, 3) AS hours "
            "FROM runs r{} ORDER BY r.id",
            run_filter(r.run_id, "r.id", "WHERE"));
    }
    if (r.name == "loops") {
        return fmt::format(
            "SELECT l.id AS loop, l.run_id AS run, l.loop_index, l.agent, l.strategy, l.direction, l.status, "
            "count(e.id) AS experiments, sum(e.status = 0) AS ok, round(max(e.fraction_of_floor), 4) AS best_fraction, "
            "(SELECT e2.id FROM experiments e2 WHERE e2.loop_id = l.id AND e2.status = 0 "
            " ORDER BY e2.fraction_of_floor DESC, e2.id LIMIT 1) AS best_experiment "
            "FROM loops l LEFT JOIN experiments e ON e.loop_id = l.id{} GROUP BY l.id ORDER BY l.run_id, l.loop_index",
            run_filter(r.run_id, "l.run_id", "WHERE"));
    }
    if (r.name == "best") {
        return fmt::format(
            "WITH ranked AS (SELECT e.*, row_number() OVER (PARTITION BY e.problem_id ORDER BY e.median_us, e.id) AS rank_, "
            " count(*) OVER (PARTITION BY e.problem_id) AS tried FROM experiments e "
            " WHERE e.status = 0 AND e.median_us IS NOT NULL{}) "
            "SELECT p.op, p.model, p.batch, p.format, p.distribution, b.id AS experiment, k.path AS kernel, "
            "b.knobs_json AS knobs, round(b.median_us, 2) AS median_us, round(b.fraction_of_floor, 4) AS fraction_of_floor, "
            "round(b.fraction_of_sol, 4) AS fraction_of_sol, round(b.speedup, 3) AS speedup, b.rel_l2, b.tried AS ok_tried, "
            "b.evaluator "
            "FROM ranked b JOIN problems p ON p.id = b.problem_id JOIN kernels k ON k.id = b.kernel_id "
            "WHERE b.rank_ = 1 ORDER BY p.op, p.model, p.format, p.distribution, p.batch",
            run_filter(r.run_id, "e.run_id", "AND"));
    }
    if (r.name == "leaderboard") {
        return fmt::format(
            "WITH ok AS (SELECT * FROM experiments e WHERE e.status = 0 AND e.median_us IS NOT NULL{}), "
            "best_of_kernel AS (SELECT kernel_id, problem_id, min(median_us) AS median_us, max(fraction_of_floor) AS "
            " fraction_of_floor FROM ok GROUP BY kernel_id, problem_id), "
            "winners AS (SELECT problem_id, kernel_id FROM (SELECT problem_id, kernel_id, row_number() OVER "
            " (PARTITION BY problem_id ORDER BY median_us, id) AS rank_ FROM ok) WHERE rank_ = 1) "
            "SELECT k.id AS kernel, k.path, k.origin, k.parent_id AS parent, "
            "(SELECT count(*) FROM experiments e WHERE e.kernel_id = k.id{}) AS experiments, "
            "count(b.problem_id) AS problems, "
            "(SELECT count(*) FROM winners w WHERE w.kernel_id = k.id) AS wins, "
            "round(max(b.fraction_of_floor), 4) AS best_fraction, round(avg(b.fraction_of_floor), 4) AS mean_fraction "
            "FROM kernels k JOIN best_of_kernel b ON b.kernel_id = k.id GROUP BY k.id "
            "ORDER BY wins DESC, mean_fraction DESC, k.id",
            run_filter(r.run_id, "e.run_id", "AND"), run_filter(r.run_id, "e.run_id", "AND"));
    }
    if (r.name == "findings") {
        return fmt::format(
            "SELECT f.id AS finding, f.run_id AS run, f.loop_id AS loop, "
            "CASE WHEN p.id IS NULL THEN '' ELSE p.model || ' B=' || p.batch || ' ' || p.format END AS problem, "
            "f.kind, f.text, f.evidence_json AS evidence FROM findings f LEFT JOIN problems p ON p.id = f.problem_id{} "
            "ORDER BY f.id",
            run_filter(r.run_id, "f.run_id", "WHERE"));
    }
    if (r.name == "failures") {
        return fmt::format(
            "SELECT {} AS status, count(*) AS experiments, count(DISTINCT e.kernel_id) AS kernels, "
            "max(e.id) AS latest, e.message AS message " // SQLite: a bare column comes from the max() row
            "FROM experiments e WHERE e.status != 0{} GROUP BY e.status ORDER BY experiments DESC, e.status",
            status, run_filter(r.run_id, "e.run_id", "AND"));
    }
    if (r.name == "experiment") {
        return fmt::format(
            "SELECT e.id AS experiment, e.created_at, e.run_id AS run, e.loop_id AS loop, {} AS status, e.message, "
            "p.op, p.model, p.batch, p.format, p.distribution, k.id AS kernel, k.path AS kernel_path, k.origin, "
            "k.parent_id AS parent, k.source_hash, e.knobs_json AS knobs, e.compile_options_json AS compile_options, "
            "e.hypothesis, e.evaluator, r.device, r.driver, r.nvrtc, r.host, r.git_commit AS commit_, e.seed, "
            "e.verification_seed, e.rounds_passed, e.repetitions, e.warmup, e.median_us, e.min_us, e.q1_us, e.q3_us, "
            "e.cv, e.timing_method, e.sol_us, e.copy_floor_us, e.fraction_of_floor, e.fraction_of_sol, e.rel_l2, "
            "e.max_abs_over_rms, e.worst_rel_l2, e.seed_rel_l2, e.max_error_vs_seed, e.registers, e.spill_bytes, "
            "e.resources_json AS resources, e.baseline_median_us, e.speedup, e.speedup_noise, "
            "e.baseline_kernel_id AS baseline_kernel, e.baseline_knobs_json AS baseline_knobs, e.sm_clock_mhz, "
            "e.mem_clock_mhz, e.samples_json AS samples, e.log, k.source "
            "FROM experiments e JOIN problems p ON p.id = e.problem_id JOIN kernels k ON k.id = e.kernel_id "
            "JOIN runs r ON r.id = e.run_id WHERE e.id = {}",
            status, *r.argument);
    }
    // lineage: ancestors (depth < 0), the kernel (0) and descendants (depth > 0).
    return fmt::format(
        "WITH RECURSIVE up(id, depth) AS (SELECT {0}, 0 UNION ALL SELECT k.parent_id, up.depth - 1 FROM kernels k "
        " JOIN up ON k.id = up.id WHERE k.parent_id IS NOT NULL AND up.depth > -64), "
        "down(id, depth) AS (SELECT {0}, 0 UNION ALL SELECT k.id, down.depth + 1 FROM kernels k JOIN down ON "
        " k.parent_id = down.id WHERE down.depth < 64), "
        "family AS (SELECT id, depth FROM up UNION SELECT id, depth FROM down) "
        "SELECT f.depth, k.id AS kernel, k.parent_id AS parent, k.origin, k.path, substr(k.source_hash, 1, 12) AS hash, "
        "k.created_at, (SELECT count(*) FROM experiments e WHERE e.kernel_id = k.id) AS experiments, "
        "(SELECT count(*) FROM experiments e WHERE e.kernel_id = k.id AND e.status = 0) AS ok, "
        "(SELECT round(max(e.fraction_of_floor), 4) FROM experiments e WHERE e.kernel_id = k.id AND e.status = 0) "
        " AS best_fraction "
        "FROM family f JOIN kernels k ON k.id = f.id ORDER BY f.depth, k.id",
        *r.argument);
}

} // namespace

std::span<const NamedQuery> named_queries() { return k_queries; }

std::string named_queries_help() {
    std::string text;
    for (const auto& q : k_queries) {
        std::string name = q.argument.empty() ? std::string(q.name) : fmt::format("{} {}", q.name, q.argument);
        text += fmt::format("  {:<26} {}\n", name, q.description);
    }
    text += fmt::format("  {:<26} {}\n", "sql \"SELECT ...\"", "any read-only SQL (writes are refused)");
    return text;
}

std::string status_name_sql(std::string_view column) {
    std::string text = fmt::format("CASE {}", column);
    for (int value = 0; value <= static_cast<int>(evaluate::Status::nondeterministic); ++value)
        text += fmt::format(" WHEN {} THEN '{}'", value, evaluate::to_string(static_cast<evaluate::Status>(value)));
    return text + fmt::format(" ELSE 'status ' || {} END", column);
}

Table run_named(store::Store& store, const QueryRequest& request) {
    auto it = std::find_if(k_queries.begin(), k_queries.end(), [&](const NamedQuery& q) { return q.name == request.name; });
    if (it == k_queries.end()) {
        std::string known;
        for (const auto& q : k_queries) known += fmt::format("{}{}", known.empty() ? "" : ", ", q.name);
        throw InputError(fmt::format("no query named '{}' (known: {}, sql)", request.name, known));
    }
    if (!it->argument.empty() && !request.argument)
        throw InputError(fmt::format("query {} needs {}", it->name, it->argument));
    if (it->argument.empty() && request.argument)
        throw InputError(fmt::format("query {} takes no id (for one run, use --run ID)", it->name));
    if (request.run_id && !store.run(*request.run_id))
        throw InputError(fmt::format("no run {} in {}", *request.run_id, store.path().string()));

    Table table = run_sql(store, sql_for(request));
    if (it->name == "experiment") {
        if (table.rows.empty())
            throw InputError(fmt::format("no experiment {} in {}", *request.argument, store.path().string()));
        table.vertical = true;
    }
    if (it->name == "lineage" && table.rows.empty())
        throw InputError(fmt::format("no kernel {} in {}", *request.argument, store.path().string()));
    return table;
}

} // namespace nightshift::query
