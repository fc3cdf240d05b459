#include "harness/store/schema.h"

#include "harness/store/sqlite.h"

#include <sqlite3.h>

#include <fmt/format.h>

#include <array>

namespace nightshift::store {
namespace {

// Version 1: the first schema. Conventions every table follows: an INTEGER
// PRIMARY KEY id, created_at as UTC ISO 8601 with milliseconds, nullable
// columns exactly where a value can be missing (a failed candidate has no
// timing). Rows are appended, never edited, except a run's and a loop's status,
// and a claim's experiment_id once its experiment is written.
//
// experiments.status holds nightshift::evaluate::Status (evaluate/status.h),
// whose numbers are persisted: ok=0, compile_error=1, launch_error=2,
// wrong_answer=3, timeout=4, crashed=5, rejected=6, nondeterministic=7.
constexpr std::string_view k_version_1 = R"sql(
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    host TEXT NOT NULL DEFAULT '',
    device TEXT NOT NULL DEFAULT '',
    driver TEXT NOT NULL DEFAULT '',
    nvrtc TEXT NOT NULL DEFAULT '',
    clock_sm_mhz INTEGER,
    clock_mem_mhz INTEGER,
    copy_gb_per_s REAL,
    git_commit TEXT NOT NULL DEFAULT '',
    plan_path TEXT NOT NULL DEFAULT '',
    plan_hash TEXT NOT NULL DEFAULT '',
    command_line TEXT NOT NULL DEFAULT '',
    evaluator TEXT NOT NULL DEFAULT 'gpu',          -- 'gpu' or 'replay:FILE'
    status TEXT NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'finished', 'interrupted')),
    finished_at TEXT
);

CREATE TABLE loops (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    run_id INTEGER NOT NULL REFERENCES runs(id),
    loop_index INTEGER NOT NULL,
    agent TEXT NOT NULL DEFAULT '',
    strategy TEXT NOT NULL DEFAULT '',
    direction TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'running',
    UNIQUE (run_id, loop_index)
);

CREATE TABLE problems (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    op TEXT NOT NULL,
    model TEXT NOT NULL,
    batch INTEGER NOT NULL,
    format TEXT NOT NULL,
    distribution TEXT NOT NULL,
    UNIQUE (op, model, batch, format, distribution)
);

CREATE TABLE kernels (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    source_hash TEXT NOT NULL UNIQUE,               -- sha256 hex of source
    source TEXT NOT NULL,
    path TEXT NOT NULL DEFAULT '',
    origin TEXT NOT NULL,                           -- seed, tuner, llm, planted, user
    parent_id INTEGER REFERENCES kernels(id),
    op TEXT NOT NULL DEFAULT ''
);

CREATE TABLE experiments (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    run_id INTEGER NOT NULL REFERENCES runs(id),
    loop_id INTEGER REFERENCES loops(id),
    problem_id INTEGER NOT NULL REFERENCES problems(id),
    kernel_id INTEGER NOT NULL REFERENCES kernels(id),
    candidate_key TEXT NOT NULL,
    knobs_json TEXT NOT NULL DEFAULT '{}',
    compile_options_json TEXT NOT NULL DEFAULT '[]',
    status INTEGER NOT NULL,                        -- evaluate::Status, see above
    message TEXT NOT NULL DEFAULT '',
    log TEXT NOT NULL DEFAULT '',
    hypothesis TEXT NOT NULL DEFAULT '',
    seed INTEGER,
    repetitions INTEGER,
    median_us REAL,
    min_us REAL,
    q1_us REAL,
    q3_us REAL,
    cv REAL,
    samples_json TEXT,
    sol_us REAL,
    copy_floor_us REAL,
    fraction_of_floor REAL,
    fraction_of_sol REAL,
    rel_l2 REAL,
    max_abs_over_rms REAL,
    registers INTEGER,
    spill_bytes INTEGER,
    resources_json TEXT,
    baseline_median_us REAL,
    speedup REAL,
    sm_clock_mhz INTEGER,
    mem_clock_mhz INTEGER,
    timing_method TEXT,                             -- 'events'
    evaluator TEXT NOT NULL DEFAULT 'gpu'           -- 'gpu' or 'replay:FILE'
);
CREATE INDEX experiments_by_problem ON experiments (problem_id, status, median_us);
CREATE INDEX experiments_by_candidate ON experiments (candidate_key, problem_id);
CREATE INDEX experiments_by_run ON experiments (run_id);

CREATE TABLE findings (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    run_id INTEGER NOT NULL REFERENCES runs(id),
    loop_id INTEGER REFERENCES loops(id),
    problem_id INTEGER REFERENCES problems(id),
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    evidence_json TEXT NOT NULL DEFAULT '[]'        -- experiment ids
);
CREATE INDEX findings_by_run ON findings (run_id);
CREATE INDEX findings_by_problem ON findings (problem_id);

CREATE TABLE agent_calls (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    run_id INTEGER NOT NULL REFERENCES runs(id),
    loop_id INTEGER REFERENCES loops(id),
    agent TEXT NOT NULL,
    prompt TEXT NOT NULL,
    response TEXT NOT NULL,
    tokens_in INTEGER,
    tokens_out INTEGER,
    latency_s REAL,
    status TEXT NOT NULL,
    cost_usd REAL
);
CREATE INDEX agent_calls_by_run ON agent_calls (run_id);

CREATE TABLE claims (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    candidate_key TEXT NOT NULL,
    problem_id INTEGER NOT NULL REFERENCES problems(id),
    loop_id INTEGER NOT NULL REFERENCES loops(id),
    run_id INTEGER NOT NULL REFERENCES runs(id),
    experiment_id INTEGER REFERENCES experiments(id),
    claimed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (candidate_key, problem_id)
);
CREATE INDEX claims_by_run ON claims (run_id, experiment_id);

CREATE TABLE plan_revisions (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    run_id INTEGER NOT NULL REFERENCES runs(id),
    loop_id INTEGER REFERENCES loops(id),
    reason TEXT NOT NULL,
    directions_json TEXT NOT NULL
);
CREATE INDEX plan_revisions_by_run ON plan_revisions (run_id);
)sql";

// Version 2: what verification did before a number was timed, so a row can
// be re-verified on the very same inputs; and the noise floor of the speedup
// (2 sigma of the interleaved baseline, relative).
constexpr std::string_view k_version_2 = R"sql(
ALTER TABLE experiments ADD COLUMN verification_seed INTEGER;
ALTER TABLE experiments ADD COLUMN rounds_passed INTEGER;
ALTER TABLE experiments ADD COLUMN worst_rel_l2 REAL;
ALTER TABLE experiments ADD COLUMN seed_rel_l2 REAL;
ALTER TABLE experiments ADD COLUMN speedup_noise REAL;
)sql";

// Version 3: what a replay needs that the row did not say: the baseline it
// was timed interleaved with (kernel and knobs), the warm-up count, and the
// error bound against the honest seed that verification applied. Quantized
// weight formats and clocks under load: the error against the model's own
// bf16 output (a quantized kernel is judged against its dequantized
// reference; this is what quantization costs), the lowest SM and memory
// clocks sampled while the candidate was timed, and the union of the GPU's
// clock-limiting reasons seen then (NVML's bitmask; 0: none).
constexpr std::string_view k_version_3 = R"sql(
ALTER TABLE experiments ADD COLUMN baseline_kernel_id INTEGER REFERENCES kernels(id);
ALTER TABLE experiments ADD COLUMN baseline_knobs_json TEXT;
ALTER TABLE experiments ADD COLUMN warmup INTEGER;
ALTER TABLE experiments ADD COLUMN max_error_vs_seed REAL;
ALTER TABLE experiments ADD COLUMN model_rel_l2 REAL;
ALTER TABLE experiments ADD COLUMN timed_sm_clock_mhz INTEGER;
ALTER TABLE experiments ADD COLUMN timed_mem_clock_mhz INTEGER;
ALTER TABLE experiments ADD COLUMN throttle_reasons INTEGER;
)sql";

constexpr std::array<std::string_view, 3> k_migrations = {k_version_1, k_version_2, k_version_3};
static_assert(k_migrations.size() == k_schema_version);

constexpr std::array<std::string_view, 9> k_result_tables = {
    "runs", "loops", "problems", "kernels", "experiments", "findings", "agent_calls", "claims", "plan_revisions"};

bool has_table(sqlite3* db, std::string_view table) {
    Statement statement(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
    statement.bind_all(table);
    return statement.step();
}

int count_tables(sqlite3* db) {
    Statement statement(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table'");
    statement.step();
    return static_cast<int>(statement.column_int64(0));
}

} // namespace

std::span<const std::string_view> migrations() { return k_migrations; }

std::span<const std::string_view> result_tables() { return k_result_tables; }

int read_schema_version(sqlite3* db) {
    if (!has_table(db, "schema_version")) return 0;
    Statement statement(db, "SELECT coalesce(max(version), 0) FROM schema_version");
    statement.step();
    return static_cast<int>(statement.column_int64(0));
}

void check_not_newer(std::string_view name, int version, int known) {
    if (version > known)
        throw StoreError(fmt::format("{} has schema {}, this nightshift knows up to {}; use a newer nightshift",
                                     name, version, known));
}

void migrate(sqlite3* db, std::string_view name, std::span<const std::string_view> scripts,
             const RetryPolicy& policy) {
    const int target = static_cast<int>(scripts.size());
    // Cheap check first, outside any transaction: most opens find nothing to do.
    int version = read_schema_version(db);
    check_not_newer(name, version, target);
    while (version < target) {
        write_transaction(db, [&] {
            // Re-read under the write lock: another process may have migrated.
            version = read_schema_version(db);
            check_not_newer(name, version, target);
            if (version >= target) return;
            if (version == 0 && count_tables(db) > 0)
                throw StoreError(fmt::format("{} is not a nightshift results.db: it has tables but no schema_version",
                                             name));
            exec(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
            exec(db, scripts[static_cast<std::size_t>(version)]);
            exec(db, "DELETE FROM schema_version");
            Statement update(db, "INSERT INTO schema_version (version) VALUES (?)");
            update.bind_all(version + 1).run();
            ++version;
        }, policy);
    }
}

} // namespace nightshift::store
