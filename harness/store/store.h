// results.db: every run, loop, problem, kernel, experiment, finding and agent
// call nightshift makes, in SQLite. The only code that includes sqlite3.h is
// under harness/store/.
//
// Concurrency: a Store is one SQLite connection and belongs to one thread;
// never share a Store across threads (open one per thread, or per process).
// Any number of Stores, in any number of threads and processes, may open the
// same file: the database runs in WAL mode (readers never wait for the
// writer), every write is one BEGIN IMMEDIATE transaction, and a writer that
// finds the file locked waits (busy_timeout, 10 s) and then retries the whole
// transaction with backoff. Claims (try_claim) are how parallel loops avoid
// evaluating the same candidate on the same problem twice.
//
// Results are append-only: rows are added, never edited, except a run's and a
// loop's status and a claim's link to its experiment.
#pragma once

#include "harness/evaluate/status.h"
#include "harness/store/sqlite.h"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nightshift::store {

// One `nightshift run` (or bench) invocation and the machine it ran on.
struct RunRecord {
    std::int64_t id = 0;    // set by the store
    std::string created_at; // set by the store (UTC ISO 8601)
    std::string host, device, driver, nvrtc;
    std::optional<int> clock_sm_mhz, clock_mem_mhz;
    std::optional<double> copy_gb_per_s; // measured device-to-device copy bandwidth
    std::string git_commit, plan_path, plan_hash, command_line;
    std::string evaluator = "gpu";          // 'gpu' or 'replay:FILE'
    std::string status = "running";         // set by the store: running, finished, interrupted
    std::optional<std::string> finished_at; // set by finish_run
};

struct ProblemKey {
    std::string op, model;
    int batch = 0;
    std::string format, distribution;
    bool operator==(const ProblemKey&) const = default;
};

struct KernelRecord {
    std::int64_t id = 0;       // set by the store
    std::string source_hash;   // sha256 hex of source; filled in by kernel_id() when empty
    std::string source, path;
    std::string origin;        // seed, tuner, llm, planted, user
    std::string op;
    std::optional<std::int64_t> parent_id; // the kernel this one was derived from
};

// One candidate (kernel + knobs) evaluated on one problem. Every number a
// failure cannot have is optional and stored as NULL.
struct ExperimentRecord {
    std::int64_t id = 0;    // set by the store
    std::string created_at; // set by the store
    std::int64_t run_id = 0;
    std::optional<std::int64_t> loop_id; // none for a bench outside any loop
    std::int64_t problem_id = 0;
    std::int64_t kernel_id = 0;
    std::string candidate_key; // names kernel + knobs; the claim key
    std::string knobs_json = "{}";
    std::string compile_options_json = "[]";
    evaluate::Status status = evaluate::Status::ok; // stored as its explicit number
    std::string message, log, hypothesis;
    std::optional<std::int64_t> seed; // a 64-bit unsigned seed is stored by its bit pattern
    std::optional<int> repetitions;
    std::optional<double> median_us, min_us, q1_us, q3_us, cv;
    std::optional<std::string> samples_json;
    std::optional<double> sol_us, copy_floor_us, fraction_of_floor, fraction_of_sol;
    std::optional<double> rel_l2, max_abs_over_rms;
    std::optional<int> registers, spill_bytes;
    std::optional<std::string> resources_json;
    std::optional<double> baseline_median_us, speedup;
    std::optional<int> sm_clock_mhz, mem_clock_mhz;
    std::optional<std::string> timing_method; // 'events'
    std::string evaluator = "gpu";            // 'gpu' or 'replay:FILE'
    // Verification before timing (schema 2): the seed its rounds drew their
    // inputs from, how many passed, the worst error over them, and the honest
    // seed kernel's error on round 0's inputs.
    std::optional<std::int64_t> verification_seed;
    std::optional<int> rounds_passed;
    std::optional<double> worst_rel_l2, seed_rel_l2;
    std::optional<double> speedup_noise; // a speedup within 1 +- this is no change
    // What a replay needs (schema 3): the baseline timed interleaved with
    // this row, the warm-up count, and the error bound against the seed.
    std::optional<std::int64_t> baseline_kernel_id;
    std::optional<std::string> baseline_knobs_json;
    std::optional<int> warmup;
    std::optional<double> max_error_vs_seed;
    // Schema 3: the error against the model's bf16 output (quantized formats;
    // equal to rel_l2 for bf16), the lowest SM and memory clocks sampled while
    // timing, and the union of the clock-limiting reasons seen (NVML bits).
    std::optional<double> model_rel_l2;
    std::optional<int> timed_sm_clock_mhz, timed_mem_clock_mhz;
    std::optional<std::int64_t> throttle_reasons;
    bool operator==(const ExperimentRecord&) const = default;
};

struct AgentCallRecord {
    std::int64_t run_id = 0;
    std::optional<std::int64_t> loop_id;
    std::string agent, prompt, response;
    std::optional<std::int64_t> tokens_in, tokens_out;
    std::optional<double> latency_s;
    std::string status; // 'ok', or why the call failed
    std::optional<double> cost_usd;
};

struct OpenOptions {
    std::chrono::milliseconds busy_timeout{10'000}; // SQLite's own wait for a lock
    RetryPolicy retry;                              // then whole-transaction retries
};

class Store {
public:
    // Creates the file if missing and migrates an older schema. Throws
    // StoreError for a database newer than this build, or one that is not
    // nightshift's.
    static Store open(const std::filesystem::path& path, const OpenOptions& options = {});
    // Opens an existing, current database for reading only: the connection is
    // SQLITE_OPEN_READONLY and an authorizer refuses anything but reads. Every
    // write method throws StoreError.
    static Store open_read_only(const std::filesystem::path& path, const OpenOptions& options = {});
    // As open_read_only, but accepts a nightshift database at any schema this
    // build knows (to decide whether it needs migrating first).
    static Store open_read_only_any_version(const std::filesystem::path& path, const OpenOptions& options = {});

    Store(Store&&) noexcept;
    Store& operator=(Store&&) noexcept;
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;
    ~Store();

    const std::filesystem::path& path() const { return m_path; }
    bool read_only() const { return m_read_only; }
    int schema_version();

    // Runs. begin_run stores the record with status 'running'; finish_run sets
    // 'finished' or 'interrupted' and finished_at.
    std::int64_t begin_run(const RunRecord& run);
    void finish_run(std::int64_t run_id, std::string_view status);
    std::optional<RunRecord> run(std::int64_t run_id);
    std::optional<ExperimentRecord> experiment(std::int64_t experiment_id);

    // Loops. (run_id, loop_index) is unique: adding an index that exists
    // (a resumed run) returns the existing loop's id.
    std::int64_t add_loop(std::int64_t run_id, int loop_index, std::string_view agent, std::string_view strategy,
                          std::string_view direction);
    void set_loop_status(std::int64_t loop_id, std::string_view status);
    std::vector<std::int64_t> loops_of_run(std::int64_t run_id); // by loop_index

    // Problems and kernels: insert, or return the id of the equal row.
    std::int64_t problem_id(const ProblemKey& key);
    ProblemKey problem(std::int64_t id); // StoreError if missing
    std::int64_t kernel_id(const KernelRecord& kernel); // by source_hash; the first record wins
    KernelRecord kernel(std::int64_t id);               // StoreError if missing

    // Claims make parallel loops (threads or processes) never evaluate the
    // same candidate on the same problem twice. True if this call took the
    // claim, false if anyone (this loop included) holds it.
    bool try_claim(std::string_view candidate_key, std::int64_t problem_id, std::int64_t loop_id,
                   std::int64_t run_id);
    // On resume after a crash: this run's claims that never got an experiment
    // are deleted so they are evaluated again. Returns how many.
    int release_unfinished_claims(std::int64_t run_id);

    // Appends the experiment and, in the same transaction, links the claim
    // on (candidate_key, problem_id) to it if there is an unlinked one.
    std::int64_t add_experiment(const ExperimentRecord& experiment);
    std::vector<ExperimentRecord> experiments_for_problem(std::int64_t problem_id); // every run and loop, by id
    std::vector<ExperimentRecord> experiments_of_run(std::int64_t run_id);          // by id
    // The fastest experiment with status ok (by median_us; the earliest on a tie).
    std::optional<ExperimentRecord> best_for_problem(std::int64_t problem_id);
    bool has_experiment(std::string_view candidate_key, std::int64_t problem_id);

    // `evidence`: the experiment ids the finding rests on.
    std::int64_t add_finding(std::int64_t run_id, std::optional<std::int64_t> loop_id,
                             std::optional<std::int64_t> problem_id, std::string_view kind, std::string_view text,
                             const std::vector<std::int64_t>& evidence);
    std::int64_t add_agent_call(const AgentCallRecord& call);
    std::int64_t add_plan_revision(std::int64_t run_id, std::optional<std::int64_t> loop_id, std::string_view reason,
                                   std::string_view directions_json);

    // Every result table and its row count, for resume checks.
    std::map<std::string, std::int64_t> count_rows();

    // Ad-hoc read-only SQL (one statement), on any Store: while it is
    // prepared an authorizer allows only reads, so INSERT, UPDATE, DELETE,
    // DROP, ATTACH, CREATE, writing PRAGMAs and transactions are refused with
    // a StoreError that says so. Values come back as SQLite's text (NULL as "").
    // `kinds`, when given, gets each value's SQLite type, row by row.
    enum class ValueKind { null = 0, integer = 1, real = 2, text = 3, blob = 4 };
    std::vector<std::vector<std::string>> query(const std::string& sql,
                                                std::vector<std::string>* column_names = nullptr,
                                                std::vector<std::vector<ValueKind>>* kinds = nullptr);

private:
    struct Authorizer;
    Store(DatabaseHandle db, std::filesystem::path path, bool read_only, const OpenOptions& options);
    sqlite3* db() const;      // StoreError if moved from
    sqlite3* writable_db();   // StoreError if read-only
    void write(const std::function<void()>& body);

    DatabaseHandle m_db;
    std::filesystem::path m_path;
    bool m_read_only = false;
    OpenOptions m_options;
    std::unique_ptr<Authorizer> m_authorizer; // stable address: SQLite holds a pointer to it
};

} // namespace nightshift::store
