#include "harness/store/store.h"

#include "harness/core/sha256.h"
#include "harness/store/schema.h"
#include "harness/store/tests/temp_database.h"

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <thread>

namespace nightshift::store {
namespace {

using evaluate::Status;
using Clock = std::chrono::steady_clock;

RunRecord run_on(std::string host) {
    RunRecord run;
    run.host = std::move(host);
    return run;
}

KernelRecord kernel_of(std::string source, std::string origin, std::optional<std::int64_t> parent_id = std::nullopt) {
    KernelRecord kernel;
    kernel.source = std::move(source);
    kernel.origin = std::move(origin);
    kernel.parent_id = parent_id;
    return kernel;
}

OpenOptions no_busy_wait(int max_attempts) {
    OpenOptions options;
    options.busy_timeout = std::chrono::milliseconds(0);
    options.retry.max_attempts = max_attempts;
    options.retry.first_backoff = std::chrono::milliseconds(5);
    options.retry.max_backoff = std::chrono::milliseconds(40);
    return options;
}

// A store with one run, one loop, one problem and one kernel to hang rows on.
class StoreTest : public TempDatabase {
protected:
    void SetUp() override {
        TempDatabase::SetUp();
        m_store.emplace(Store::open(file()));
        run_id = store().begin_run(run_on("host"));
        loop_id = store().add_loop(run_id, 0, "tuner", "grid", "smaller tiles");
        problem_id = store().problem_id(ProblemKey{"moe_decode", "qwen3", 8, "bf16", "uniform"});
        KernelRecord seed = kernel_of("extern \"C\" __global__ void k() {}", "seed");
        seed.path = "kernels_seed/k.cu";
        seed.op = "moe_decode";
        kernel_id = store().kernel_id(seed);
    }
    void TearDown() override {
        m_store.reset();
        TempDatabase::TearDown();
    }
    Store& store() { return *m_store; }
    void close_store() { m_store.reset(); }
    void reopen_store() { m_store.emplace(Store::open(file())); }

    ExperimentRecord experiment(std::string key, Status status, std::optional<double> median_us) {
        ExperimentRecord e;
        e.run_id = run_id;
        e.loop_id = loop_id;
        e.problem_id = problem_id;
        e.kernel_id = kernel_id;
        e.candidate_key = std::move(key);
        e.status = status;
        e.median_us = median_us;
        return e;
    }

    std::int64_t run_id = 0, loop_id = 0, problem_id = 0, kernel_id = 0;

private:
    std::optional<Store> m_store;
};

using StoreOpen = TempDatabase;

// A second connection, outside the Store, that takes the write lock.
DatabaseHandle open_raw(const std::filesystem::path& path) {
    sqlite3* raw = nullptr;
    EXPECT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
    return DatabaseHandle(raw);
}

std::string what_of(const std::function<void()>& body) {
    try {
        body();
    } catch (const StoreError& error) {
        return error.what();
    }
    return "(no StoreError)";
}

// --- opening and the schema ------------------------------------------------

TEST_F(StoreOpen, CreatesEveryTableAndRecordsTheVersion) {
    Store store = Store::open(file());
    EXPECT_EQ(store.schema_version(), k_schema_version);
    auto counts = store.count_rows();
    std::vector<std::string> expected = {"agent_calls", "claims", "experiments",    "findings", "kernels",
                                         "loops", "plan_revisions", "problems", "runs"};
    std::vector<std::string> tables;
    for (const auto& [table, rows] : counts) {
        tables.push_back(table);
        EXPECT_EQ(rows, 0) << table;
    }
    EXPECT_EQ(tables, expected);
    auto mode = store.query("SELECT * FROM pragma_journal_mode");
    ASSERT_EQ(mode.size(), 1u);
    EXPECT_EQ(mode[0][0], "wal");
    // Foreign keys are enforced: a loop of a run that does not exist.
    EXPECT_THROW(store.add_loop(999, 0, "a", "s", "d"), StoreError);
}

TEST_F(StoreOpen, ReopeningKeepsTheData) {
    std::int64_t id = 0;
    {
        Store store = Store::open(file());
        id = store.problem_id({"op", "m", 1, "f", "d"});
    }
    Store store = Store::open(file());
    EXPECT_EQ(store.problem_id({"op", "m", 1, "f", "d"}), id);
    EXPECT_EQ(store.count_rows()["problems"], 1);
}

TEST_F(StoreOpen, MigratesAnEmptyVersionZeroFile) {
    std::ofstream(file()).close(); // zero bytes: what SQLite calls an empty database
    ASSERT_TRUE(std::filesystem::exists(file()));
    ASSERT_EQ(std::filesystem::file_size(file()), 0u);
    Store store = Store::open(file());
    EXPECT_EQ(store.schema_version(), k_schema_version);
    EXPECT_EQ(store.count_rows().size(), 9u);
}

TEST_F(StoreOpen, RefusesANewerDatabase) {
    { Store::open(file()); }
    {
        DatabaseHandle raw = open_raw(file());
        exec(raw.get(), "UPDATE schema_version SET version = " + std::to_string(k_schema_version + 1));
    }
    std::string expected = fmt::format("results.db has schema {}, this nightshift knows up to {}",
                                       k_schema_version + 1, k_schema_version);
    std::string message = what_of([&] { Store::open(file()); });
    EXPECT_NE(message.find(expected), std::string::npos) << message;
    message = what_of([&] { Store::open_read_only(file()); });
    EXPECT_NE(message.find(expected), std::string::npos) << message;
}

TEST_F(StoreOpen, RefusesAFileThatIsNotADatabase) {
    std::ofstream(file()) << "this is not an SQLite database, just text that is long enough to have a header";
    EXPECT_THROW(Store::open(file()), StoreError);
}

TEST_F(StoreOpen, ReadOnlyNeedsAnExistingNightshiftDatabase) {
    EXPECT_THROW(Store::open_read_only(file("missing.db")), StoreError);
    EXPECT_FALSE(std::filesystem::exists(file("missing.db")));
    { DatabaseHandle raw = open_raw(file("empty.db")); exec(raw.get(), "CREATE TABLE x (y)"); }
    std::string message = what_of([&] { Store::open_read_only(file("empty.db")); });
    EXPECT_NE(message.find("not a nightshift results.db"), std::string::npos) << message;
}

TEST_F(StoreOpen, ThreadsOpeningANewFileAtOnceMigrateItOnce) {
    constexpr int k_threads = 4;
    std::atomic<int> ready = 0;
    std::vector<std::string> errors(k_threads);
    std::vector<std::int64_t> ids(k_threads);
    std::vector<std::thread> threads;
    for (int t = 0; t < k_threads; ++t) {
        threads.emplace_back([&, t] {
            ++ready;
            while (ready < k_threads) std::this_thread::yield();
            try {
                Store store = Store::open(file());
                ids[t] = store.problem_id({"op", "m", 1, "f", "d"});
            } catch (const std::exception& error) {
                errors[t] = error.what();
            }
        });
    }
    for (auto& thread : threads) thread.join();
    for (int t = 0; t < k_threads; ++t) EXPECT_EQ(errors[t], "") << "thread " << t;
    Store store = Store::open(file());
    EXPECT_EQ(store.schema_version(), k_schema_version);
    EXPECT_EQ(store.query("SELECT count(*) FROM schema_version")[0][0], "1");
    EXPECT_EQ(store.count_rows()["problems"], 1);
    for (int t = 0; t < k_threads; ++t) EXPECT_EQ(ids[t], ids[0]);
}

TEST_F(StoreOpen, StoreIsMovable) {
    Store first = Store::open(file());
    Store second = std::move(first);
    EXPECT_EQ(second.problem_id({"op", "m", 1, "f", "d"}), 1);
    EXPECT_THROW(first.count_rows(), StoreError); // NOLINT(bugprone-use-after-move): the moved-from state is defined
    first = Store::open_read_only(file());
    EXPECT_TRUE(first.read_only());
    EXPECT_EQ(first.count_rows()["problems"], 1);
    // The authorizer travelled with the move.
    EXPECT_THROW(first.query("DELETE FROM problems"), StoreError);
}

// --- runs, loops, problems, kernels -----------------------------------------

TEST_F(StoreTest, RunRoundTripsAndFinishes) {
    RunRecord record = run_on("gpu-box");
    record.device = "NVIDIA H100 80GB HBM3";
    record.driver = "580.65";
    record.nvrtc = "13.0";
    record.clock_sm_mhz = 1980;
    record.clock_mem_mhz = 2619;
    record.copy_gb_per_s = 2950.5;
    record.git_commit = "d4f9df2";
    record.plan_path = "plans/moe.toml";
    record.plan_hash = "ff00";
    record.command_line = "nightshift run plans/moe.toml";
    record.evaluator = "replay:night1.jsonl";
    std::int64_t id = store().begin_run(record);
    auto stored = store().run(id);
    ASSERT_TRUE(stored);
    EXPECT_EQ(stored->id, id);
    EXPECT_EQ(stored->host, "gpu-box");
    EXPECT_EQ(stored->device, record.device);
    EXPECT_EQ(stored->driver, "580.65");
    EXPECT_EQ(stored->nvrtc, "13.0");
    EXPECT_EQ(stored->clock_sm_mhz, 1980);
    EXPECT_EQ(stored->clock_mem_mhz, 2619);
    EXPECT_EQ(stored->copy_gb_per_s, 2950.5);
    EXPECT_EQ(stored->git_commit, "d4f9df2");
    EXPECT_EQ(stored->plan_path, "plans/moe.toml");
    EXPECT_EQ(stored->plan_hash, "ff00");
    EXPECT_EQ(stored->command_line, record.command_line);
    EXPECT_EQ(stored->evaluator, "replay:night1.jsonl");
    EXPECT_EQ(stored->status, "running");
    EXPECT_EQ(stored->finished_at, std::nullopt);
    ASSERT_EQ(stored->created_at.size(), 24u) << stored->created_at; // 2025-01-02T03:04:05.678Z
    EXPECT_EQ(stored->created_at.back(), 'Z');

    store().finish_run(id, "interrupted");
    stored = store().run(id);
    EXPECT_EQ(stored->status, "interrupted");
    ASSERT_TRUE(stored->finished_at);
    EXPECT_GE(*stored->finished_at, stored->created_at);

    EXPECT_THROW(store().finish_run(id, "exploded"), StoreError);
    EXPECT_THROW(store().finish_run(12345, "finished"), StoreError);
    EXPECT_EQ(store().run(12345), std::nullopt);
    // A run with no clock readings keeps them missing, not zero.
    auto bare = store().run(run_id);
    EXPECT_EQ(bare->clock_sm_mhz, std::nullopt);
    EXPECT_EQ(bare->copy_gb_per_s, std::nullopt);
}

TEST_F(StoreTest, LoopsAreOrderedAndAddingAnIndexAgainResumes) {
    std::int64_t second = store().add_loop(run_id, 2, "llm", "evolve", "use tensor cores");
    std::int64_t first = store().add_loop(run_id, 1, "llm", "evolve", "vectorize loads");
    EXPECT_EQ(store().loops_of_run(run_id), (std::vector<std::int64_t>{loop_id, first, second}));
    EXPECT_EQ(store().add_loop(run_id, 1, "llm", "evolve", "vectorize loads"), first);
    EXPECT_EQ(store().count_rows()["loops"], 3);
    store().set_loop_status(first, "finished");
    EXPECT_EQ(store().query("SELECT status FROM loops WHERE id = " + std::to_string(first))[0][0], "finished");
    EXPECT_THROW(store().set_loop_status(999, "finished"), StoreError);
    EXPECT_TRUE(store().loops_of_run(run_id + 1).empty());
}

TEST_F(StoreTest, ProblemUpsertIsIdempotent) {
    ProblemKey key{"moe_decode", "qwen3", 8, "bf16", "uniform"};
    EXPECT_EQ(store().problem_id(key), problem_id);
    EXPECT_EQ(store().problem(problem_id), key);
    // Each of the five fields makes a different problem.
    std::vector<ProblemKey> others = {{"other", "qwen3", 8, "bf16", "uniform"},
                                      {"moe_decode", "other", 8, "bf16", "uniform"},
                                      {"moe_decode", "qwen3", 16, "bf16", "uniform"},
                                      {"moe_decode", "qwen3", 8, "fp8", "uniform"},
                                      {"moe_decode", "qwen3", 8, "bf16", "skewed"}};
    std::vector<std::int64_t> ids;
    for (const auto& other : others) ids.push_back(store().problem_id(other));
    for (std::size_t i = 0; i < others.size(); ++i) {
        EXPECT_NE(ids[i], problem_id);
        EXPECT_EQ(store().problem_id(others[i]), ids[i]);
        EXPECT_EQ(store().problem(ids[i]), others[i]);
    }
    EXPECT_EQ(store().count_rows()["problems"], 6);
    EXPECT_THROW(store().problem(999), StoreError);
}

TEST_F(StoreTest, KernelUpsertIsIdempotentByHashAndKeepsLineage) {
    KernelRecord seed = store().kernel(kernel_id);
    EXPECT_EQ(seed.source_hash, sha256_hex(seed.source)) << "an empty hash is filled in";
    EXPECT_EQ(seed.origin, "seed");
    EXPECT_EQ(seed.path, "kernels_seed/k.cu");
    EXPECT_EQ(seed.op, "moe_decode");
    EXPECT_EQ(seed.parent_id, std::nullopt);
    // The same source again, even with other metadata, is the same kernel.
    EXPECT_EQ(store().kernel_id(kernel_of(seed.source, "user")),
              kernel_id);
    KernelRecord child = kernel_of("// v2", "llm", kernel_id);
    child.source_hash = "child-hash";
    child.path = "k_v2.cu";
    child.op = "moe_decode";
    std::int64_t child_id = store().kernel_id(child);
    EXPECT_NE(child_id, kernel_id);
    EXPECT_EQ(store().kernel_id(child), child_id);
    KernelRecord stored = store().kernel(child_id);
    EXPECT_EQ(stored.source_hash, "child-hash");
    EXPECT_EQ(stored.parent_id, kernel_id);
    EXPECT_EQ(stored.source, "// v2");
    EXPECT_EQ(store().count_rows()["kernels"], 2);

    EXPECT_THROW(store().kernel_id(kernel_of("x", "magic")), StoreError);
    EXPECT_THROW(store().kernel_id(kernel_of("x", "llm", 999)), StoreError)
        << "parent must exist";
    EXPECT_THROW(store().kernel(999), StoreError);
}

// --- claims --------------------------------------------------------------------

TEST_F(StoreTest, ClaimsAreUniqueAcrossTwoConnections) {
    Store other = Store::open(file());
    std::int64_t other_loop = other.add_loop(run_id, 1, "llm", "evolve", "other direction");
    EXPECT_TRUE(store().try_claim("k1", problem_id, loop_id, run_id));
    EXPECT_FALSE(other.try_claim("k1", problem_id, other_loop, run_id));
    EXPECT_FALSE(store().try_claim("k1", problem_id, loop_id, run_id)) << "a held claim is held, even by its owner";
    EXPECT_TRUE(other.try_claim("k2", problem_id, other_loop, run_id));
    EXPECT_FALSE(store().try_claim("k2", problem_id, loop_id, run_id));
    // The same candidate on another problem is another claim.
    std::int64_t problem_2 = other.problem_id({"moe_decode", "qwen3", 16, "bf16", "uniform"});
    EXPECT_TRUE(store().try_claim("k1", problem_2, loop_id, run_id));
    EXPECT_EQ(other.count_rows()["claims"], 3);
}

TEST_F(StoreTest, ClaimsAreUniqueAcrossThreadsEachWithItsOwnStore) {
    constexpr int k_threads = 4;
    constexpr int k_keys = 60;
    std::vector<std::int64_t> loops;
    for (int t = 0; t < k_threads; ++t) loops.push_back(store().add_loop(run_id, 10 + t, "tuner", "grid", ""));

    std::vector<std::vector<int>> won(k_threads);
    std::vector<std::string> errors(k_threads);
    std::atomic<int> ready = 0;
    std::vector<std::thread> threads;
    for (int t = 0; t < k_threads; ++t) {
        threads.emplace_back([&, t] {
            try {
                Store mine = Store::open(file()); // one connection per thread
                std::vector<int> order(k_keys);
                for (int i = 0; i < k_keys; ++i) order[i] = i;
                std::shuffle(order.begin(), order.end(), std::mt19937(t));
                ++ready;
                while (ready < k_threads) std::this_thread::yield();
                for (int key : order)
                    if (mine.try_claim("candidate-" + std::to_string(key), problem_id, loops[t], run_id))
                        won[t].push_back(key);
            } catch (const std::exception& error) {
                errors[t] = error.what();
            }
        });
    }
    for (auto& thread : threads) thread.join();
    for (int t = 0; t < k_threads; ++t) EXPECT_EQ(errors[t], "") << "thread " << t;

    std::map<int, int> winners;
    for (const auto& keys : won)
        for (int key : keys) ++winners[key];
    EXPECT_EQ(winners.size(), static_cast<std::size_t>(k_keys));
    for (const auto& [key, count] : winners) EXPECT_EQ(count, 1) << "candidate-" << key;
    EXPECT_EQ(store().count_rows()["claims"], k_keys);
}

TEST_F(StoreTest, ClaimsAreUniqueAcrossProcesses) {
    constexpr int k_processes = 3;
    constexpr int k_keys = 40;
    std::vector<std::int64_t> loops;
    for (int p = 0; p < k_processes; ++p) loops.push_back(store().add_loop(run_id, 20 + p, "tuner", "grid", ""));
    // SQLite connections must not cross a fork: the parent holds none while
    // the children start.
    close_store();
    std::vector<pid_t> children;
    for (int p = 0; p < k_processes; ++p) {
        pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            // The child reports how many claims it won as its exit status
            // (255 for an error) and leaves without running gtest's exit.
            int wins = 0;
            try {
                Store mine = Store::open(file());
                for (int i = 0; i < k_keys; ++i) {
                    int key = (i + p * 7) % k_keys;
                    if (mine.try_claim("candidate-" + std::to_string(key), problem_id, loops[p], run_id)) ++wins;
                }
            } catch (...) {
                ::_exit(255);
            }
            ::_exit(wins);
        }
        children.push_back(child);
    }
    reopen_store();
    int total = 0;
    for (pid_t child : children) {
        int status = 0;
        ASSERT_EQ(::waitpid(child, &status, 0), child);
        ASSERT_TRUE(WIFEXITED(status));
        ASSERT_NE(WEXITSTATUS(status), 255) << "a process failed";
        total += WEXITSTATUS(status);
    }
    EXPECT_EQ(total, k_keys) << "each candidate won exactly once";
    EXPECT_EQ(store().count_rows()["claims"], k_keys);
}

TEST_F(StoreTest, ReleaseUnfinishedClaimsFreesOnlyThisRunsUnfinishedOnes) {
    std::int64_t other_run = store().begin_run(run_on("other"));
    std::int64_t other_loop = store().add_loop(other_run, 0, "tuner", "grid", "");
    ASSERT_TRUE(store().try_claim("done", problem_id, loop_id, run_id));
    ASSERT_TRUE(store().try_claim("crashed-mid-way", problem_id, loop_id, run_id));
    ASSERT_TRUE(store().try_claim("also-unfinished", problem_id, loop_id, run_id));
    ASSERT_TRUE(store().try_claim("other-runs", problem_id, other_loop, other_run));
    store().add_experiment(experiment("done", Status::ok, 10.0));

    EXPECT_EQ(store().release_unfinished_claims(run_id), 2);
    EXPECT_EQ(store().release_unfinished_claims(run_id), 0);
    EXPECT_TRUE(store().try_claim("crashed-mid-way", problem_id, loop_id, run_id)) << "evaluated again";
    EXPECT_FALSE(store().try_claim("done", problem_id, loop_id, run_id)) << "has its experiment";
    EXPECT_FALSE(store().try_claim("other-runs", problem_id, loop_id, run_id)) << "another run's claim";
}

TEST_F(StoreTest, AddExperimentLinksTheClaim) {
    ASSERT_TRUE(store().try_claim("k", problem_id, loop_id, run_id));
    auto unlinked = store().query("SELECT experiment_id FROM claims WHERE candidate_key = 'k'");
    ASSERT_EQ(unlinked.size(), 1u);
    EXPECT_EQ(unlinked[0][0], "") << "NULL before the experiment";
    std::int64_t id = store().add_experiment(experiment("k", Status::wrong_answer, std::nullopt));
    auto linked = store().query("SELECT experiment_id, loop_id, run_id FROM claims WHERE candidate_key = 'k'");
    ASSERT_EQ(linked.size(), 1u);
    EXPECT_EQ(linked[0][0], std::to_string(id));
    EXPECT_EQ(linked[0][1], std::to_string(loop_id));
    EXPECT_EQ(linked[0][2], std::to_string(run_id));
    EXPECT_TRUE(store().has_experiment("k", problem_id));
    EXPECT_FALSE(store().has_experiment("k", problem_id + 1));
    EXPECT_FALSE(store().has_experiment("never", problem_id));
    // An experiment with no claim (a bench) is stored all the same.
    store().add_experiment(experiment("unclaimed", Status::ok, 5.0));
    EXPECT_TRUE(store().has_experiment("unclaimed", problem_id));
    EXPECT_EQ(store().count_rows()["claims"], 1);
}

// --- experiments -------------------------------------------------------------

TEST_F(StoreTest, BestForProblemIgnoresFailures) {
    EXPECT_EQ(store().best_for_problem(problem_id), std::nullopt);
    store().add_experiment(experiment("wrong-but-fast", Status::wrong_answer, 1.0));
    store().add_experiment(experiment("nondeterministic", Status::nondeterministic, 2.0));
    store().add_experiment(experiment("compile-error", Status::compile_error, std::nullopt));
    EXPECT_EQ(store().best_for_problem(problem_id), std::nullopt) << "no ok experiment yet";
    store().add_experiment(experiment("slow", Status::ok, 30.0));
    std::int64_t fast = store().add_experiment(experiment("fast", Status::ok, 12.5));
    store().add_experiment(experiment("tie-later", Status::ok, 12.5));
    store().add_experiment(experiment("timeout", Status::timeout, 0.5));
    auto best = store().best_for_problem(problem_id);
    ASSERT_TRUE(best);
    EXPECT_EQ(best->id, fast);
    EXPECT_EQ(best->candidate_key, "fast");
    EXPECT_EQ(best->median_us, 12.5);
    // Another problem's experiments do not count.
    std::int64_t other = store().problem_id({"moe_decode", "qwen3", 64, "bf16", "uniform"});
    EXPECT_EQ(store().best_for_problem(other), std::nullopt);
}

TEST_F(StoreTest, EveryExperimentColumnRoundTrips) {
    ExperimentRecord full = experiment("kernel@BLOCK=128", Status::ok, 12.25);
    full.knobs_json = R"({"BLOCK":128})";
    full.compile_options_json = R"(["-O3","-DBLOCK=128"])";
    full.message = "";
    full.log = "ptxas info: 40 registers";
    full.hypothesis = "bigger blocks hide latency";
    full.seed = static_cast<std::int64_t>(0xfedcba9876543210ull);
    full.repetitions = 200;
    full.min_us = 11.5;
    full.q1_us = 12.0;
    full.q3_us = 12.75;
    full.cv = 0.0125;
    full.samples_json = "[12.0,12.25,12.5]";
    full.sol_us = 8.5;
    full.copy_floor_us = 9.25;
    full.fraction_of_floor = 0.755;
    full.fraction_of_sol = 0.69;
    full.rel_l2 = 1.5e-7;
    full.max_abs_over_rms = 3.25e-6;
    full.registers = 40;
    full.spill_bytes = 0;
    full.resources_json = R"([{"entry":"k","registers":40}])";
    full.baseline_median_us = 24.5;
    full.speedup = 2.0;
    full.sm_clock_mhz = 1980;
    full.mem_clock_mhz = 2619;
    full.timing_method = "events";
    full.evaluator = "replay:night1.jsonl";
    full.id = store().add_experiment(full);

    auto stored = store().experiments_of_run(run_id);
    ASSERT_EQ(stored.size(), 1u);
    EXPECT_FALSE(stored[0].created_at.empty());
    full.created_at = stored[0].created_at;
    EXPECT_EQ(stored[0], full);
    EXPECT_EQ(stored[0].seed, static_cast<std::int64_t>(0xfedcba9876543210ull));
}

TEST_F(StoreTest, NullableColumnsRoundTripAsMissing) {
    ExperimentRecord failure = experiment("broken", Status::compile_error, std::nullopt);
    failure.loop_id = std::nullopt;
    failure.message = "NVRTC: expected a ';'";
    failure.log = "k.cu(3): error: expected a \";\"";
    std::int64_t id = store().add_experiment(failure);
    auto stored = store().experiments_for_problem(problem_id);
    ASSERT_EQ(stored.size(), 1u);
    const ExperimentRecord& e = stored[0];
    EXPECT_EQ(e.id, id);
    EXPECT_EQ(e.status, Status::compile_error);
    EXPECT_EQ(e.message, failure.message);
    EXPECT_EQ(e.log, failure.log);
    EXPECT_EQ(e.loop_id, std::nullopt);
    EXPECT_EQ(e.seed, std::nullopt);
    EXPECT_EQ(e.repetitions, std::nullopt);
    EXPECT_EQ(e.median_us, std::nullopt);
    EXPECT_EQ(e.min_us, std::nullopt);
    EXPECT_EQ(e.cv, std::nullopt);
    EXPECT_EQ(e.samples_json, std::nullopt);
    EXPECT_EQ(e.sol_us, std::nullopt);
    EXPECT_EQ(e.fraction_of_floor, std::nullopt);
    EXPECT_EQ(e.rel_l2, std::nullopt);
    EXPECT_EQ(e.registers, std::nullopt);
    EXPECT_EQ(e.spill_bytes, std::nullopt);
    EXPECT_EQ(e.resources_json, std::nullopt);
    EXPECT_EQ(e.speedup, std::nullopt);
    EXPECT_EQ(e.sm_clock_mhz, std::nullopt);
    EXPECT_EQ(e.timing_method, std::nullopt);
    failure.id = id;
    failure.created_at = e.created_at;
    EXPECT_EQ(e, failure);
    // Stored as NULL, not as 0 or "".
    auto raw = store().query("SELECT median_us IS NULL, registers IS NULL, loop_id IS NULL, status FROM experiments");
    EXPECT_EQ(raw[0], (std::vector<std::string>{"1", "1", "1", "1"}));
}

TEST_F(StoreTest, StatusIsStoredAsItsExplicitNumber) {
    store().add_experiment(experiment("a", Status::nondeterministic, std::nullopt));
    store().add_experiment(experiment("b", Status::rejected, std::nullopt));
    auto rows = store().query("SELECT candidate_key, status FROM experiments ORDER BY id");
    EXPECT_EQ(rows, (std::vector<std::vector<std::string>>{{"a", "7"}, {"b", "6"}}));
}

TEST_F(StoreTest, ExperimentsAreListedByProblemAndByRunAcrossLoopsAndRuns) {
    std::int64_t run_2 = store().begin_run(run_on("second night"));
    std::int64_t loop_2 = store().add_loop(run_2, 0, "llm", "evolve", "");
    std::int64_t other_problem = store().problem_id({"moe_decode", "qwen3", 1, "bf16", "uniform"});
    std::int64_t a = store().add_experiment(experiment("a", Status::ok, 3.0));
    ExperimentRecord b = experiment("b", Status::ok, 2.0);
    b.run_id = run_2;
    b.loop_id = loop_2;
    std::int64_t b_id = store().add_experiment(b);
    ExperimentRecord c = experiment("c", Status::ok, 1.0);
    c.problem_id = other_problem;
    std::int64_t c_id = store().add_experiment(c);

    auto ids = [](const std::vector<ExperimentRecord>& experiments) {
        std::vector<std::int64_t> result;
        for (const auto& e : experiments) result.push_back(e.id);
        return result;
    };
    EXPECT_EQ(ids(store().experiments_for_problem(problem_id)), (std::vector<std::int64_t>{a, b_id}));
    EXPECT_EQ(ids(store().experiments_of_run(run_id)), (std::vector<std::int64_t>{a, c_id}));
    EXPECT_EQ(ids(store().experiments_of_run(run_2)), (std::vector<std::int64_t>{b_id}));
    EXPECT_EQ(store().best_for_problem(problem_id)->id, b_id) << "the best of every run";
}

// --- findings, agent calls, plan revisions, counts ----------------------------

TEST_F(StoreTest, FindingsAgentCallsAndPlanRevisionsAreStored) {
    std::int64_t e1 = store().add_experiment(experiment("a", Status::ok, 3.0));
    std::int64_t e2 = store().add_experiment(experiment("b", Status::ok, 2.0));
    std::int64_t finding = store().add_finding(run_id, loop_id, problem_id, "speedup", "128 threads beat 256", {e1, e2});
    store().add_finding(run_id, std::nullopt, std::nullopt, "note", "nothing to report", {});
    auto findings = store().query("SELECT id, kind, text, evidence_json, loop_id, problem_id FROM findings ORDER BY id");
    ASSERT_EQ(findings.size(), 2u);
    EXPECT_EQ(findings[0], (std::vector<std::string>{std::to_string(finding), "speedup", "128 threads beat 256",
                                                     fmt::format("[{},{}]", e1, e2), std::to_string(loop_id),
                                                     std::to_string(problem_id)}));
    EXPECT_EQ(findings[1][3], "[]");
    EXPECT_EQ(findings[1][4], "");

    AgentCallRecord call;
    call.run_id = run_id;
    call.loop_id = loop_id;
    call.agent = "anthropic";
    call.prompt = "make it faster";
    call.response = "```cuda\n...\n```";
    call.tokens_in = 1200;
    call.tokens_out = 800;
    call.latency_s = 4.5;
    call.status = "ok";
    call.cost_usd = 0.0125;
    std::int64_t call_id = store().add_agent_call(call);
    AgentCallRecord failed;
    failed.run_id = run_id;
    failed.agent = "openai";
    failed.prompt = "p";
    failed.status = "timeout";
    store().add_agent_call(failed);
    auto calls = store().query("SELECT id, agent, tokens_in, tokens_out, latency_s, cost_usd, status FROM agent_calls "
                               "ORDER BY id");
    ASSERT_EQ(calls.size(), 2u);
    EXPECT_EQ(calls[0], (std::vector<std::string>{std::to_string(call_id), "anthropic", "1200", "800", "4.5",
                                                  "0.0125", "ok"}));
    EXPECT_EQ(calls[1], (std::vector<std::string>{std::to_string(call_id + 1), "openai", "", "", "", "", "timeout"}));

    std::int64_t revision = store().add_plan_revision(run_id, loop_id, "tiles won", R"(["tiles","vectorize"])");
    auto revisions = store().query("SELECT id, reason, directions_json FROM plan_revisions");
    EXPECT_EQ(revisions, (std::vector<std::vector<std::string>>{
                             {std::to_string(revision), "tiles won", R"(["tiles","vectorize"])"}}));

    auto counts = store().count_rows();
    EXPECT_EQ(counts["runs"], 1);
    EXPECT_EQ(counts["loops"], 1);
    EXPECT_EQ(counts["problems"], 1);
    EXPECT_EQ(counts["kernels"], 1);
    EXPECT_EQ(counts["experiments"], 2);
    EXPECT_EQ(counts["findings"], 2);
    EXPECT_EQ(counts["agent_calls"], 2);
    EXPECT_EQ(counts["plan_revisions"], 1);
    EXPECT_EQ(counts["claims"], 0);
}

// --- read-only SQL -------------------------------------------------------------

TEST_F(StoreTest, ReadOnlyStoreAllowsSelectAndRefusesEveryWrite) {
    store().add_experiment(experiment("a", Status::ok, 3.0));
    Store reader = Store::open_read_only(file());
    EXPECT_TRUE(reader.read_only());

    std::vector<std::string> columns;
    auto rows = reader.query("SELECT candidate_key, median_us, loop_id IS NULL AS no_loop FROM experiments", &columns);
    EXPECT_EQ(columns, (std::vector<std::string>{"candidate_key", "median_us", "no_loop"}));
    EXPECT_EQ(rows, (std::vector<std::vector<std::string>>{{"a", "3.0", "0"}}));
    EXPECT_EQ(reader.query("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) "
                           "SELECT sum(i) FROM n;  -- trailing comment")[0][0],
              "6");
    EXPECT_FALSE(reader.query("SELECT name FROM pragma_table_info('runs')").empty());
    EXPECT_FALSE(reader.query("PRAGMA table_info(experiments)").empty());
    EXPECT_EQ(reader.query("PRAGMA journal_mode")[0][0], "wal");
    EXPECT_EQ(reader.query("SELECT * FROM pragma_foreign_keys").size(), 1u);
    EXPECT_EQ(reader.best_for_problem(problem_id)->candidate_key, "a") << "the typed reads work read-only";

    const std::vector<std::pair<std::string, std::string>> refused = {
        {"INSERT INTO problems (op, model, batch, format, distribution) VALUES ('a','b',1,'c','d')", "INSERT"},
        {"UPDATE experiments SET median_us = 0", "UPDATE"},
        {"DELETE FROM experiments", "DELETE"},
        {"DROP TABLE experiments", "DROP"},
        {"ATTACH DATABASE '" + file("attached.db").string() + "' AS other", "ATTACH"},
        {"CREATE TABLE mine (x)", "CREATE"},
        {"PRAGMA journal_mode = DELETE", "PRAGMA journal_mode"},
        {"PRAGMA wal_checkpoint", "PRAGMA wal_checkpoint"},
        {"PRAGMA writable_schema = ON", "PRAGMA writable_schema"},
        {"VACUUM", ""},
        {"REINDEX", "REINDEX"},
        {"ANALYZE", "CREATE TABLE sqlite_stat1"},
        {"ALTER TABLE runs ADD COLUMN x", "ALTER"},
        {"CREATE TEMP VIEW v AS SELECT 1", "CREATE"},
        {"BEGIN", "BEGIN"},
        {"SELECT 1; DELETE FROM experiments", "DELETE"},
    };
    for (const auto& [sql, word] : refused) {
        std::string message = what_of([&] { reader.query(sql); });
        EXPECT_NE(message.find("read-only query refused: " + word), std::string::npos) << sql << ": " << message;
    }
    EXPECT_FALSE(std::filesystem::exists(file("attached.db")));
    EXPECT_THROW(reader.query("SELECT 1; SELECT 2"), StoreError);
    EXPECT_THROW(reader.query("UPDATE sqlite_master SET sql = ''"), StoreError); // SQLite's own refusal
    EXPECT_THROW(reader.query("DELETE FROM sqlite_master"), StoreError);
    // The typed write methods refuse too.
    EXPECT_THROW(reader.begin_run(RunRecord{}), StoreError);
    EXPECT_THROW(reader.problem_id({"new", "m", 1, "f", "d"}), StoreError);
    EXPECT_THROW(reader.try_claim("k", problem_id, loop_id, run_id), StoreError);
    // Nothing changed.
    EXPECT_EQ(store().count_rows()["experiments"], 1);
    EXPECT_EQ(store().count_rows()["problems"], 1);
    EXPECT_EQ(store().best_for_problem(problem_id)->median_us, 3.0);
}

TEST_F(StoreTest, QueryIsReadOnlyOnAWritingStoreToo) {
    std::string message = what_of([&] { store().query("DELETE FROM runs"); });
    EXPECT_NE(message.find("read-only query refused: DELETE from runs"), std::string::npos) << message;
    EXPECT_EQ(store().count_rows()["runs"], 1);
    // The authorizer is gone afterwards: the store still writes.
    EXPECT_GT(store().add_loop(run_id, 5, "a", "b", "c"), 0);
}

// --- locking -----------------------------------------------------------------

// Another connection takes the write lock (BEGIN EXCLUSIVE) and holds it for
// `hold`; returns once the lock is held.
std::jthread hold_lock(const std::filesystem::path& path, std::chrono::milliseconds hold) {
    static std::atomic<int> holds = 0;
    std::string key = "held-" + std::to_string(holds++);
    std::atomic<bool> locked = false;
    std::jthread holder([&locked, path, hold, key] {
        try {
            DatabaseHandle db = open_raw(path);
            exec(db.get(), "BEGIN EXCLUSIVE; INSERT INTO problems (op, model, batch, format, distribution) "
                           "VALUES ('" + key + "', 'm', 1, 'f', 'd')");
            locked = true;
            std::this_thread::sleep_for(hold);
            exec(db.get(), "COMMIT");
        } catch (const std::exception& error) {
            ADD_FAILURE() << "lock holder: " << error.what();
            locked = true;
        }
    });
    while (!locked) std::this_thread::yield();
    return holder;
}

TEST_F(StoreTest, ALockedDatabaseIsWaitedOut) {
    auto start = Clock::now();
    std::jthread holder = hold_lock(file(), std::chrono::milliseconds(200));
    // Reads go on beside the writer (WAL) and do not see its uncommitted row.
    EXPECT_EQ(store().count_rows()["problems"], 1);
    EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(150));
    std::int64_t loop = store().add_loop(run_id, 1, "tuner", "grid", "after the lock");
    auto waited = Clock::now() - start;
    holder.join();
    EXPECT_GT(loop, 0);
    EXPECT_GE(waited, std::chrono::milliseconds(150)) << "the write did not wait for the lock";
    EXPECT_EQ(store().count_rows()["problems"], 2) << "the other writer's row is there too";
}

TEST_F(StoreOpen, BusyWritesAreRetriedWithBackoff) {
    { Store::open(file()); }
    // No SQLite busy wait at all: only the transaction retry loop can wait.
    Store store = Store::open(file(), no_busy_wait(50));
    auto start = Clock::now();
    std::jthread holder = hold_lock(file(), std::chrono::milliseconds(200));
    std::int64_t run = store.begin_run(run_on("retried"));
    auto waited = Clock::now() - start;
    holder.join();
    EXPECT_EQ(store.run(run)->host, "retried");
    EXPECT_GE(waited, std::chrono::milliseconds(150));

    // With one attempt and no wait the same lock is an error that says so.
    Store hasty = Store::open(file(), no_busy_wait(1));
    holder = hold_lock(file(), std::chrono::milliseconds(200));
    std::string message;
    bool busy = false;
    try {
        hasty.begin_run(RunRecord{});
    } catch (const StoreError& error) {
        message = error.what();
        busy = error.is_busy();
    }
    holder.join();
    EXPECT_TRUE(busy) << message;
    EXPECT_NE(message.find("stayed busy through 1 attempts"), std::string::npos) << message;
}

} // namespace
} // namespace nightshift::store
