#include "harness/store/store.h"

#include "harness/core/sha256.h"
#include "harness/store/schema.h"

#include <sqlite3.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>

namespace nightshift::store {

// Allows reads only. Keeps what it refused first, for the error message.
struct Store::Authorizer {
    std::string denied;
    static int callback(void* user, int action, const char* first, const char* second, const char* database,
                        const char* trigger);
};

namespace {

constexpr const char* k_now = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

constexpr std::array<std::string_view, 5> k_kernel_origins = {"seed", "tuner", "llm", "planted", "user"};

// PRAGMAs read-only SQL may use: those that describe a table (their argument
// names it), and those that report a setting when given no value. Everything
// else a PRAGMA can do (set a value, checkpoint, optimize) is refused.
constexpr std::array<std::string_view, 6> k_describing_pragmas = {"table_info", "table_xinfo", "index_list",
                                                                  "index_info", "index_xinfo", "foreign_key_list"};
constexpr std::array<std::string_view, 10> k_reporting_pragmas = {
    "journal_mode", "foreign_keys", "user_version", "page_size",     "page_count",
    "freelist_count", "encoding",   "table_list",   "database_list", "compile_options"};

template <std::size_t N>
bool contains(const std::array<std::string_view, N>& names, const char* name) {
    return name && std::find(names.begin(), names.end(), std::string_view(name)) != names.end();
}

// Columns of experiments after id and created_at, in the order of
// ExperimentRecord; bind_experiment and read_experiment follow it.
constexpr std::string_view k_experiment_columns =
    "run_id, loop_id, problem_id, kernel_id, candidate_key, knobs_json, compile_options_json, status, message, log, "
    "hypothesis, seed, repetitions, median_us, min_us, q1_us, q3_us, cv, samples_json, sol_us, copy_floor_us, "
    "fraction_of_floor, fraction_of_sol, rel_l2, max_abs_over_rms, registers, spill_bytes, resources_json, "
    "baseline_median_us, speedup, sm_clock_mhz, mem_clock_mhz, timing_method, evaluator, verification_seed, "
    "rounds_passed, worst_rel_l2, seed_rel_l2, speedup_noise, baseline_kernel_id, baseline_knobs_json, warmup, "
    "max_error_vs_seed, model_rel_l2, timed_sm_clock_mhz, timed_mem_clock_mhz, throttle_reasons";

constexpr std::string_view k_run_columns =
    "host, device, driver, nvrtc, clock_sm_mhz, clock_mem_mhz, copy_gb_per_s, git_commit, plan_path, plan_hash, "
    "command_line, evaluator";

// "?, ?, ?" with one ? per column of a comma-separated list.
std::string placeholders(std::string_view columns) {
    auto count = std::count(columns.begin(), columns.end(), ',') + 1;
    std::string text = "?";
    for (long i = 1; i < count; ++i) text += ", ?";
    return text;
}

std::string describe_action(int action, const char* first, const char* second) {
    std::string a = first ? first : "", b = second ? second : "";
    switch (action) {
    case SQLITE_INSERT: return "INSERT into " + a;
    case SQLITE_UPDATE: return "UPDATE of " + a + "." + b;
    case SQLITE_DELETE: return "DELETE from " + a;
    case SQLITE_ATTACH: return "ATTACH";
    case SQLITE_DETACH: return "DETACH";
    case SQLITE_DROP_TABLE:
    case SQLITE_DROP_TEMP_TABLE: return "DROP TABLE " + a;
    case SQLITE_DROP_INDEX:
    case SQLITE_DROP_TEMP_INDEX: return "DROP INDEX " + a;
    case SQLITE_DROP_VIEW:
    case SQLITE_DROP_TEMP_VIEW: return "DROP VIEW " + a;
    case SQLITE_DROP_TRIGGER:
    case SQLITE_DROP_TEMP_TRIGGER: return "DROP TRIGGER " + a;
    case SQLITE_DROP_VTABLE: return "DROP virtual table " + a;
    case SQLITE_CREATE_TABLE:
    case SQLITE_CREATE_TEMP_TABLE: return "CREATE TABLE " + a;
    case SQLITE_CREATE_INDEX:
    case SQLITE_CREATE_TEMP_INDEX: return "CREATE INDEX " + a;
    case SQLITE_CREATE_VIEW:
    case SQLITE_CREATE_TEMP_VIEW: return "CREATE VIEW " + a;
    case SQLITE_CREATE_TRIGGER:
    case SQLITE_CREATE_TEMP_TRIGGER: return "CREATE TRIGGER " + a;
    case SQLITE_CREATE_VTABLE: return "CREATE virtual table " + a;
    case SQLITE_ALTER_TABLE: return "ALTER TABLE " + b;
    case SQLITE_PRAGMA: return "PRAGMA " + a;
    case SQLITE_TRANSACTION: return a + " (transaction control)";
    case SQLITE_SAVEPOINT: return "SAVEPOINT " + b;
    case SQLITE_ANALYZE: return "ANALYZE";
    case SQLITE_REINDEX: return "REINDEX";
    default: return fmt::format("operation {}", action);
    }
}

DatabaseHandle open_connection(const std::filesystem::path& path, int flags, const char* how) {
    sqlite3* raw = nullptr;
    int result = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    DatabaseHandle db(raw);
    if (result != SQLITE_OK)
        throw StoreError(fmt::format("cannot open {} {}: {}", path.string(), how,
                                     raw ? sqlite3_errmsg(raw) : sqlite3_errstr(result)),
                         result);
    sqlite3_extended_result_codes(db.get(), 1);
    return db;
}

std::int64_t last_insert_id(sqlite3* db) { return sqlite3_last_insert_rowid(db); }
int changes(sqlite3* db) { return sqlite3_changes(db); }

void bind_experiment(Statement& statement, const ExperimentRecord& e) {
    statement.bind_all(e.run_id, e.loop_id, e.problem_id, e.kernel_id, e.candidate_key, e.knobs_json,
                       e.compile_options_json, static_cast<int>(e.status), e.message, e.log, e.hypothesis, e.seed,
                       e.repetitions, e.median_us, e.min_us, e.q1_us, e.q3_us, e.cv, e.samples_json, e.sol_us,
                       e.copy_floor_us, e.fraction_of_floor, e.fraction_of_sol, e.rel_l2, e.max_abs_over_rms,
                       e.registers, e.spill_bytes, e.resources_json, e.baseline_median_us, e.speedup, e.sm_clock_mhz,
                       e.mem_clock_mhz, e.timing_method, e.evaluator, e.verification_seed, e.rounds_passed,
                       e.worst_rel_l2, e.seed_rel_l2, e.speedup_noise, e.baseline_kernel_id,
                       e.baseline_knobs_json, e.warmup, e.max_error_vs_seed, e.model_rel_l2, e.timed_sm_clock_mhz,
                       e.timed_mem_clock_mhz, e.throttle_reasons);
}

// Reads a row of SELECT id, created_at, <k_experiment_columns>.
ExperimentRecord read_experiment(const Statement& statement) {
    ColumnReader c(statement);
    ExperimentRecord e;
    e.id = c.int64();
    e.created_at = c.text();
    e.run_id = c.int64();
    e.loop_id = c.optional_int64();
    e.problem_id = c.int64();
    e.kernel_id = c.int64();
    e.candidate_key = c.text();
    e.knobs_json = c.text();
    e.compile_options_json = c.text();
    e.status = static_cast<evaluate::Status>(c.integer());
    e.message = c.text();
    e.log = c.text();
    e.hypothesis = c.text();
    e.seed = c.optional_int64();
    e.repetitions = c.optional_integer();
    e.median_us = c.optional_real();
    e.min_us = c.optional_real();
    e.q1_us = c.optional_real();
    e.q3_us = c.optional_real();
    e.cv = c.optional_real();
    e.samples_json = c.optional_text();
    e.sol_us = c.optional_real();
    e.copy_floor_us = c.optional_real();
    e.fraction_of_floor = c.optional_real();
    e.fraction_of_sol = c.optional_real();
    e.rel_l2 = c.optional_real();
    e.max_abs_over_rms = c.optional_real();
    e.registers = c.optional_integer();
    e.spill_bytes = c.optional_integer();
    e.resources_json = c.optional_text();
    e.baseline_median_us = c.optional_real();
    e.speedup = c.optional_real();
    e.sm_clock_mhz = c.optional_integer();
    e.mem_clock_mhz = c.optional_integer();
    e.timing_method = c.optional_text();
    e.evaluator = c.text();
    e.verification_seed = c.optional_int64();
    e.rounds_passed = c.optional_integer();
    e.worst_rel_l2 = c.optional_real();
    e.seed_rel_l2 = c.optional_real();
    e.speedup_noise = c.optional_real();
    e.baseline_kernel_id = c.optional_int64();
    e.baseline_knobs_json = c.optional_text();
    e.warmup = c.optional_integer();
    e.max_error_vs_seed = c.optional_real();
    e.model_rel_l2 = c.optional_real();
    e.timed_sm_clock_mhz = c.optional_integer();
    e.timed_mem_clock_mhz = c.optional_integer();
    e.throttle_reasons = c.optional_int64();
    c.finish();
    return e;
}

std::vector<ExperimentRecord> read_experiments(Statement& statement) {
    std::vector<ExperimentRecord> experiments;
    while (statement.step()) experiments.push_back(read_experiment(statement));
    return experiments;
}

std::string experiment_select(std::string_view where) {
    return fmt::format("SELECT id, created_at, {} FROM experiments {}", k_experiment_columns, where);
}

} // namespace

int Store::Authorizer::callback(void* user, int action, const char* first, const char* second, const char*,
                                const char*) {
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_FUNCTION:
    case SQLITE_RECURSIVE: return SQLITE_OK;
    case SQLITE_PRAGMA:
        if (contains(k_describing_pragmas, first) || (contains(k_reporting_pragmas, first) && !second))
            return SQLITE_OK;
        break;
    case SQLITE_INSERT:
    case SQLITE_UPDATE:
    case SQLITE_DELETE:
        // SQLite asks about its own schema table before the statement's own
        // action (INSERT into sqlite_master, then CREATE TABLE), and while it
        // builds a table-valued pragma (SELECT * FROM pragma_table_info(...)).
        // Every statement that really changes the schema is then asked about
        // as CREATE, DROP, ALTER or ANALYZE, refused below with its own name;
        // SQLite itself refuses direct edits of sqlite_master (writable_schema
        // is off and its PRAGMA refused).
        if (first && (std::string_view(first) == "sqlite_master" || std::string_view(first) == "sqlite_temp_master"))
            return SQLITE_OK;
        break;
    default: break;
    }
    auto* self = static_cast<Authorizer*>(user);
    if (self->denied.empty()) self->denied = describe_action(action, first, second);
    return SQLITE_DENY;
}

Store::Store(DatabaseHandle db, std::filesystem::path path, bool read_only, const OpenOptions& options)
    : m_db(std::move(db)), m_path(std::move(path)), m_read_only(read_only), m_options(options),
      m_authorizer(std::make_unique<Authorizer>()) {}

Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;
Store::~Store() = default;

Store Store::open(const std::filesystem::path& path, const OpenOptions& options) {
    DatabaseHandle db = open_connection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "for writing");
    sqlite3_busy_timeout(db.get(), static_cast<int>(options.busy_timeout.count()));
    exec(db.get(), "PRAGMA foreign_keys = ON");
    {
        // WAL lets readers (report, query) run beside the writers; it needs a
        // local filesystem, and SQLite falls back silently where it cannot.
        // Switching a new file is refused at once, not waited for, while
        // another connection switches it too: hence the retry.
        std::string mode;
        retry_while_busy(
            [&] {
                Statement journal(db.get(), "PRAGMA journal_mode = WAL");
                mode = journal.step() ? journal.column_text(0) : "";
            },
            options.retry);
        if (mode != "wal")
            throw StoreError(fmt::format("{}: cannot use WAL mode (journal_mode is '{}'); put results.db on a local "
                                         "filesystem",
                                         path.string(), mode));
    }
    // NORMAL is crash-safe in WAL mode; only a power cut can lose the last commits.
    exec(db.get(), "PRAGMA synchronous = NORMAL");
    migrate(db.get(), path.string(), migrations(), options.retry);
    return Store(std::move(db), path, false, options);
}

namespace {

DatabaseHandle open_reader(const std::filesystem::path& path, const OpenOptions& options, int& version) {
    DatabaseHandle db = open_connection(path, SQLITE_OPEN_READONLY, "read-only");
    sqlite3_busy_timeout(db.get(), static_cast<int>(options.busy_timeout.count()));
    exec(db.get(), "PRAGMA query_only = ON");
    version = read_schema_version(db.get());
    if (version == 0)
        throw StoreError(fmt::format("{} is not a nightshift results.db (no schema_version table)", path.string()));
    check_not_newer(path.string(), version, k_schema_version);
    return db;
}

} // namespace

Store Store::open_read_only_any_version(const std::filesystem::path& path, const OpenOptions& options) {
    int version = 0;
    DatabaseHandle db = open_reader(path, options, version);
    Store store(std::move(db), path, true, options);
    sqlite3_set_authorizer(store.db(), &Authorizer::callback, store.m_authorizer.get());
    return store;
}

Store Store::open_read_only(const std::filesystem::path& path, const OpenOptions& options) {
    int version = 0;
    DatabaseHandle db = open_reader(path, options, version);
    if (version < k_schema_version)
        throw StoreError(fmt::format("{} has schema {}, older than this nightshift's {}; open it once with a command "
                                     "that writes (run) to migrate it",
                                     path.string(), version, k_schema_version));
    Store store(std::move(db), path, true, options);
    sqlite3_set_authorizer(store.db(), &Authorizer::callback, store.m_authorizer.get());
    return store;
}

sqlite3* Store::db() const {
    if (!m_db) throw StoreError("use of a moved-from Store");
    return m_db.get();
}

sqlite3* Store::writable_db() {
    if (m_read_only) throw StoreError(fmt::format("{} was opened read-only; this needs a writing Store", m_path.string()));
    return db();
}

void Store::write(const std::function<void()>& body) { write_transaction(writable_db(), body, m_options.retry); }

int Store::schema_version() { return read_schema_version(db()); }

// --- runs and loops --------------------------------------------------------

std::int64_t Store::begin_run(const RunRecord& r) {
    std::int64_t id = 0;
    write([&] {
        Statement insert(db(), fmt::format("INSERT INTO runs ({}) VALUES ({})", k_run_columns,
                                           placeholders(k_run_columns)));
        insert.bind_all(r.host, r.device, r.driver, r.nvrtc, r.clock_sm_mhz, r.clock_mem_mhz, r.copy_gb_per_s,
                        r.git_commit, r.plan_path, r.plan_hash, r.command_line, r.evaluator);
        insert.run();
        id = last_insert_id(db());
    });
    return id;
}

void Store::finish_run(std::int64_t run_id, std::string_view status) {
    if (status != "finished" && status != "interrupted")
        throw StoreError(fmt::format("finish_run: status must be 'finished' or 'interrupted', not '{}'", status));
    write([&] {
        Statement update(db(), fmt::format("UPDATE runs SET status = ?, finished_at = {} WHERE id = ?", k_now));
        update.bind_all(status, run_id).run();
        if (changes(db()) != 1) throw StoreError(fmt::format("finish_run: no run {} in {}", run_id, m_path.string()));
    });
}

std::optional<RunRecord> Store::run(std::int64_t run_id) {
    Statement select(db(), fmt::format("SELECT id, created_at, {}, status, finished_at FROM runs WHERE id = ?",
                                       k_run_columns));
    select.bind_all(run_id);
    if (!select.step()) return std::nullopt;
    ColumnReader c(select);
    RunRecord r;
    r.id = c.int64();
    r.created_at = c.text();
    r.host = c.text();
    r.device = c.text();
    r.driver = c.text();
    r.nvrtc = c.text();
    r.clock_sm_mhz = c.optional_integer();
    r.clock_mem_mhz = c.optional_integer();
    r.copy_gb_per_s = c.optional_real();
    r.git_commit = c.text();
    r.plan_path = c.text();
    r.plan_hash = c.text();
    r.command_line = c.text();
    r.evaluator = c.text();
    r.status = c.text();
    r.finished_at = c.optional_text();
    c.finish();
    return r;
}

std::int64_t Store::add_loop(std::int64_t run_id, int loop_index, std::string_view agent, std::string_view strategy,
                             std::string_view direction) {
    std::int64_t id = 0;
    write([&] {
        Statement insert(db(), "INSERT INTO loops (run_id, loop_index, agent, strategy, direction) VALUES (?, ?, ?, ?, ?) "
                               "ON CONFLICT (run_id, loop_index) DO NOTHING");
        insert.bind_all(run_id, loop_index, agent, strategy, direction).run();
        Statement select(db(), "SELECT id FROM loops WHERE run_id = ? AND loop_index = ?");
        select.bind_all(run_id, loop_index);
        select.step();
        id = select.column_int64(0);
    });
    return id;
}

void Store::set_loop_status(std::int64_t loop_id, std::string_view status) {
    write([&] {
        Statement update(db(), "UPDATE loops SET status = ? WHERE id = ?");
        update.bind_all(status, loop_id).run();
        if (changes(db()) != 1)
            throw StoreError(fmt::format("set_loop_status: no loop {} in {}", loop_id, m_path.string()));
    });
}

std::vector<std::int64_t> Store::loops_of_run(std::int64_t run_id) {
    Statement select(db(), "SELECT id FROM loops WHERE run_id = ? ORDER BY loop_index");
    select.bind_all(run_id);
    std::vector<std::int64_t> ids;
    while (select.step()) ids.push_back(select.column_int64(0));
    return ids;
}

// --- problems and kernels --------------------------------------------------

std::int64_t Store::problem_id(const ProblemKey& key) {
    constexpr std::string_view k_select =
        "SELECT id FROM problems WHERE op = ? AND model = ? AND batch = ? AND format = ? AND distribution = ?";
    auto find = [&]() -> std::optional<std::int64_t> {
        Statement select(db(), k_select);
        select.bind_all(key.op, key.model, key.batch, key.format, key.distribution);
        if (!select.step()) return std::nullopt;
        return select.column_int64(0);
    };
    if (auto id = find()) return *id; // most calls: no write lock needed
    std::int64_t id = 0;
    write([&] {
        Statement insert(db(), "INSERT INTO problems (op, model, batch, format, distribution) VALUES (?, ?, ?, ?, ?) "
                               "ON CONFLICT DO NOTHING");
        insert.bind_all(key.op, key.model, key.batch, key.format, key.distribution).run();
        id = find().value();
    });
    return id;
}

ProblemKey Store::problem(std::int64_t id) {
    Statement select(db(), "SELECT op, model, batch, format, distribution FROM problems WHERE id = ?");
    select.bind_all(id);
    if (!select.step()) throw StoreError(fmt::format("no problem {} in {}", id, m_path.string()));
    ColumnReader c(select);
    ProblemKey key;
    key.op = c.text();
    key.model = c.text();
    key.batch = c.integer();
    key.format = c.text();
    key.distribution = c.text();
    c.finish();
    return key;
}

std::int64_t Store::kernel_id(const KernelRecord& kernel) {
    if (std::find(k_kernel_origins.begin(), k_kernel_origins.end(), kernel.origin) == k_kernel_origins.end())
        throw StoreError(fmt::format("kernel origin '{}' is not one of seed, tuner, llm, planted, user", kernel.origin));
    const std::string hash = kernel.source_hash.empty() ? sha256_hex(kernel.source) : kernel.source_hash;
    auto find = [&]() -> std::optional<std::int64_t> {
        Statement select(db(), "SELECT id FROM kernels WHERE source_hash = ?");
        select.bind_all(hash);
        if (!select.step()) return std::nullopt;
        return select.column_int64(0);
    };
    if (auto id = find()) return *id;
    std::int64_t id = 0;
    write([&] {
        Statement insert(db(), "INSERT INTO kernels (source_hash, source, path, origin, parent_id, op) "
                               "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source_hash) DO NOTHING");
        insert.bind_all(hash, kernel.source, kernel.path, kernel.origin, kernel.parent_id, kernel.op).run();
        id = find().value();
    });
    return id;
}

KernelRecord Store::kernel(std::int64_t id) {
    Statement select(db(), "SELECT id, source_hash, source, path, origin, op, parent_id FROM kernels WHERE id = ?");
    select.bind_all(id);
    if (!select.step()) throw StoreError(fmt::format("no kernel {} in {}", id, m_path.string()));
    ColumnReader c(select);
    KernelRecord k;
    k.id = c.int64();
    k.source_hash = c.text();
    k.source = c.text();
    k.path = c.text();
    k.origin = c.text();
    k.op = c.text();
    k.parent_id = c.optional_int64();
    c.finish();
    return k;
}

// --- claims and experiments ------------------------------------------------

bool Store::try_claim(std::string_view candidate_key, std::int64_t problem_id, std::int64_t loop_id,
                      std::int64_t run_id) {
    bool claimed = false;
    write([&] {
        // The UNIQUE (candidate_key, problem_id) constraint decides; the write
        // lock makes the insert and its outcome one step for all connections.
        Statement insert(db(), "INSERT INTO claims (candidate_key, problem_id, loop_id, run_id) VALUES (?, ?, ?, ?) "
                               "ON CONFLICT (candidate_key, problem_id) DO NOTHING");
        insert.bind_all(candidate_key, problem_id, loop_id, run_id).run();
        claimed = changes(db()) == 1;
    });
    return claimed;
}

int Store::release_unfinished_claims(std::int64_t run_id) {
    int released = 0;
    write([&] {
        Statement remove(db(), "DELETE FROM claims WHERE run_id = ? AND experiment_id IS NULL");
        remove.bind_all(run_id).run();
        released = changes(db());
    });
    return released;
}

std::int64_t Store::add_experiment(const ExperimentRecord& experiment) {
    std::int64_t id = 0;
    write([&] {
        Statement insert(db(), fmt::format("INSERT INTO experiments ({}) VALUES ({})", k_experiment_columns,
                                           placeholders(k_experiment_columns)));
        bind_experiment(insert, experiment);
        insert.run();
        id = last_insert_id(db());
        Statement link(db(), "UPDATE claims SET experiment_id = ? "
                             "WHERE candidate_key = ? AND problem_id = ? AND experiment_id IS NULL");
        link.bind_all(id, experiment.candidate_key, experiment.problem_id).run();
    });
    return id;
}

std::vector<ExperimentRecord> Store::experiments_for_problem(std::int64_t problem_id) {
    Statement select(db(), experiment_select("WHERE problem_id = ? ORDER BY id"));
    select.bind_all(problem_id);
    return read_experiments(select);
}

std::vector<ExperimentRecord> Store::experiments_of_run(std::int64_t run_id) {
    Statement select(db(), experiment_select("WHERE run_id = ? ORDER BY id"));
    select.bind_all(run_id);
    return read_experiments(select);
}

std::optional<ExperimentRecord> Store::experiment(std::int64_t experiment_id) {
    Statement select(db(), experiment_select("WHERE id = ?"));
    select.bind_all(experiment_id);
    if (!select.step()) return std::nullopt;
    return read_experiment(select);
}

std::optional<ExperimentRecord> Store::best_for_problem(std::int64_t problem_id) {
    Statement select(db(), experiment_select("WHERE problem_id = ? AND status = ? AND median_us IS NOT NULL "
                                             "ORDER BY median_us, id LIMIT 1"));
    select.bind_all(problem_id, static_cast<int>(evaluate::Status::ok));
    if (!select.step()) return std::nullopt;
    return read_experiment(select);
}

bool Store::has_experiment(std::string_view candidate_key, std::int64_t problem_id) {
    Statement select(db(), "SELECT 1 FROM experiments WHERE candidate_key = ? AND problem_id = ? LIMIT 1");
    select.bind_all(candidate_key, problem_id);
    return select.step();
}

// --- findings, agent calls, plan revisions ---------------------------------

std::int64_t Store::add_finding(std::int64_t run_id, std::optional<std::int64_t> loop_id,
                                std::optional<std::int64_t> problem_id, std::string_view kind, std::string_view text,
                                const std::vector<std::int64_t>& evidence) {
    std::string evidence_json = fmt::format("[{}]", fmt::join(evidence, ","));
    std::int64_t id = 0;
    write([&] {
        Statement insert(db(), "INSERT INTO findings (run_id, loop_id, problem_id, kind, text, evidence_json) "
                               "VALUES (?, ?, ?, ?, ?, ?)");
        insert.bind_all(run_id, loop_id, problem_id, kind, text, evidence_json).run();
        id = last_insert_id(db());
    });
    return id;
}

std::int64_t Store::add_agent_call(const AgentCallRecord& call) {
    std::int64_t id = 0;
    write([&] {
        Statement insert(db(), "INSERT INTO agent_calls (run_id, loop_id, agent, prompt, response, tokens_in, "
                               "tokens_out, latency_s, status, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        insert.bind_all(call.run_id, call.loop_id, call.agent, call.prompt, call.response, call.tokens_in,
                        call.tokens_out, call.latency_s, call.status, call.cost_usd);
        insert.run();
        id = last_insert_id(db());
    });
    return id;
}

std::int64_t Store::add_plan_revision(std::int64_t run_id, std::optional<std::int64_t> loop_id,
                                      std::string_view reason, std::string_view directions_json) {
    std::int64_t id = 0;
    write([&] {
        Statement insert(db(), "INSERT INTO plan_revisions (run_id, loop_id, reason, directions_json) "
                               "VALUES (?, ?, ?, ?)");
        insert.bind_all(run_id, loop_id, reason, directions_json).run();
        id = last_insert_id(db());
    });
    return id;
}

std::map<std::string, std::int64_t> Store::count_rows() {
    std::map<std::string, std::int64_t> counts;
    for (std::string_view table : result_tables()) {
        Statement select(db(), fmt::format("SELECT count(*) FROM {}", table));
        select.step();
        counts[std::string(table)] = select.column_int64(0);
    }
    return counts;
}

// --- ad-hoc SQL ------------------------------------------------------------

std::vector<std::vector<std::string>> Store::query(const std::string& sql, std::vector<std::string>* column_names,
                                                   std::vector<std::vector<ValueKind>>* kinds) {
    sqlite3* connection = db();
    // A read-only Store keeps its authorizer for good; a writing one gets it
    // only for this statement.
    struct Guard {
        sqlite3* connection;
        bool temporary;
        ~Guard() {
            if (temporary) sqlite3_set_authorizer(connection, nullptr, nullptr);
        }
    } guard{connection, !m_read_only};
    if (guard.temporary) sqlite3_set_authorizer(connection, &Authorizer::callback, m_authorizer.get());

    // Refusals come at prepare time, or at step time for statements that
    // run others inside (VACUUM).
    auto refuse_if_denied = [&](int result, std::string_view text) {
        if ((result & 0xff) != SQLITE_AUTH) return;
        std::string what = m_authorizer->denied.empty() ? "this statement" : m_authorizer->denied;
        if (text.size() > 200) text = text.substr(0, 200);
        throw StoreError(
            fmt::format("read-only query refused: {} is not allowed; only reads (SELECT) are (SQL: {})", what, text),
            result);
    };
    auto prepare = [&](std::string_view text, const char** tail) -> StatementHandle {
        m_authorizer->denied.clear();
        sqlite3_stmt* raw = nullptr;
        int result = sqlite3_prepare_v2(connection, text.data(), static_cast<int>(text.size()), &raw, tail);
        StatementHandle statement(raw);
        refuse_if_denied(result, text);
        if (result != SQLITE_OK) throw_sqlite_error(connection, result, "sqlite3_prepare_v2", text, __FILE__, __LINE__);
        return statement;
    };

    const char* tail = nullptr;
    StatementHandle statement = prepare(sql, &tail);
    if (!statement) throw StoreError("query: the SQL holds no statement");
    // Anything after the first statement must be empty (comments, semicolons).
    std::string_view rest(tail, static_cast<std::size_t>(sql.data() + sql.size() - tail));
    while (!rest.empty()) {
        const char* next = nullptr;
        if (prepare(rest, &next))
            throw StoreError(fmt::format("query: give one statement at a time; more follows: '{}'", rest));
        if (next <= rest.data()) break;
        rest.remove_prefix(static_cast<std::size_t>(next - rest.data()));
    }

    sqlite3_stmt* s = statement.get();
    int columns = sqlite3_column_count(s);
    if (column_names) {
        column_names->clear();
        for (int i = 0; i < columns; ++i) column_names->push_back(sqlite3_column_name(s, i));
    }
    std::vector<std::vector<std::string>> rows;
    if (kinds) kinds->clear();
    for (;;) {
        int result = sqlite3_step(s);
        if (result == SQLITE_DONE) break;
        if (result != SQLITE_ROW) {
            refuse_if_denied(result, sql);
            throw_sqlite_error(connection, result, "sqlite3_step", sql, __FILE__, __LINE__);
        }
        auto& row = rows.emplace_back();
        row.reserve(static_cast<std::size_t>(columns));
        if (kinds) {
            auto& row_kinds = kinds->emplace_back();
            for (int i = 0; i < columns; ++i) {
                switch (sqlite3_column_type(s, i)) {
                case SQLITE_INTEGER: row_kinds.push_back(ValueKind::integer); break;
                case SQLITE_FLOAT: row_kinds.push_back(ValueKind::real); break;
                case SQLITE_NULL: row_kinds.push_back(ValueKind::null); break;
                case SQLITE_BLOB: row_kinds.push_back(ValueKind::blob); break;
                default: row_kinds.push_back(ValueKind::text); break;
                }
            }
        }
        for (int i = 0; i < columns; ++i) {
            const unsigned char* text = sqlite3_column_text(s, i);
            row.emplace_back(text ? reinterpret_cast<const char*>(text) : "",
                             text ? static_cast<std::size_t>(sqlite3_column_bytes(s, i)) : 0);
        }
    }
    return rows;
}

} // namespace nightshift::store
