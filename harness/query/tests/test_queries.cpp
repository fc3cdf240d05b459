#include "harness/query/queries.h"

#include "harness/core/error.h"
#include "harness/query/results_db.h"
#include "harness/query/tests/sample_results.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace nightshift::query {
namespace {

class Queries : public SampleResults {
protected:
    Table named(std::string name, std::optional<std::int64_t> argument = std::nullopt,
                std::optional<std::int64_t> run = std::nullopt) {
        store::Store db = open_results(file());
        return run_named(db, {std::move(name), argument, run});
    }
};

TEST_F(Queries, EveryNamedQueryRunsOnARealSchema) {
    for (const auto& q : named_queries()) {
        std::optional<std::int64_t> argument;
        if (q.argument == "EXPERIMENT_ID") argument = ids.best_b1;
        if (q.argument == "KERNEL_ID") argument = ids.warp;
        Table table = named(std::string(q.name), argument);
        EXPECT_FALSE(table.rows.empty()) << q.name;
        EXPECT_FALSE(table.columns.empty()) << q.name;
    }
}

TEST_F(Queries, BestIsTheFastestVerifiedRowPerProblem) {
    Table best = named("best");
    ASSERT_EQ(best.rows.size(), 3u); // B=1 bf16, B=8 bf16, B=1 int8_row
    for (std::size_t r = 0; r < best.rows.size(); ++r) {
        if (best.at(r, "batch") == "1" && best.at(r, "format") == "bf16") {
            EXPECT_EQ(best.at(r, "experiment"), std::to_string(ids.best_b1));
            EXPECT_EQ(best.at(r, "median_us"), "50.0");
            EXPECT_EQ(best.at(r, "ok_tried"), "3");
        }
        if (best.at(r, "batch") == "8") {
            EXPECT_EQ(best.at(r, "experiment"), std::to_string(ids.best_b8)) << "failed rows never win";
        }
    }
}

TEST_F(Queries, FailuresCountByStatusWithTheLatestMessage) {
    Table failures = named("failures");
    ASSERT_EQ(failures.rows.size(), 2u);
    EXPECT_EQ(failures.at(0, "status"), "wrong_answer");
    EXPECT_EQ(failures.at(0, "experiments"), "2");
    EXPECT_EQ(failures.at(0, "message"), "failed as wrong_answer");
    EXPECT_EQ(failures.at(1, "status"), "compile_error");
}

TEST_F(Queries, LeaderboardRanksByWins) {
    Table board = named("leaderboard");
    ASSERT_GE(board.rows.size(), 3u);
    // warp_decode_v1 wins B=8 bf16 and B=1 int8_row; the child wins B=1 bf16.
    EXPECT_EQ(board.at(0, "kernel"), std::to_string(ids.warp));
    EXPECT_EQ(board.at(0, "wins"), "2");
    EXPECT_EQ(board.at(1, "kernel"), std::to_string(ids.child));
    EXPECT_EQ(board.at(1, "wins"), "1");
}

TEST_F(Queries, ExperimentInFullCarriesSourceSeedsAndEnvironment) {
    Table e = named("experiment", ids.best_b1);
    ASSERT_EQ(e.rows.size(), 1u);
    EXPECT_TRUE(e.vertical);
    EXPECT_EQ(e.at(0, "source"), "// warp v2\n");
    EXPECT_EQ(e.at(0, "status"), "ok");
    EXPECT_EQ(e.at(0, "device"), "NVIDIA H100 80GB HBM3");
    EXPECT_EQ(e.at(0, "baseline_kernel"), std::to_string(ids.expert));
    std::string text = format(e, Format::table);
    EXPECT_NE(text.find("source:\n// warp v2\n"), std::string::npos) << text;
}

TEST_F(Queries, LineageWalksParentsAndChildren) {
    Table from_child = named("lineage", ids.child);
    ASSERT_EQ(from_child.rows.size(), 2u);
    EXPECT_EQ(from_child.at(0, "depth"), "-1");
    EXPECT_EQ(from_child.at(0, "kernel"), std::to_string(ids.warp));
    EXPECT_EQ(from_child.at(1, "depth"), "0");
    Table from_parent = named("lineage", ids.warp);
    ASSERT_EQ(from_parent.rows.size(), 2u);
    EXPECT_EQ(from_parent.at(1, "depth"), "1");
    EXPECT_EQ(from_parent.at(1, "origin"), "llm");
}

TEST_F(Queries, RunFilterAndMissingIdsAreInputErrors) {
    EXPECT_EQ(named("findings", std::nullopt, ids.run).rows.size(), 2u);
    EXPECT_THROW(named("findings", std::nullopt, ids.run + 7), InputError);
    EXPECT_THROW(named("experiment", 9999), InputError);
    EXPECT_THROW(named("lineage", 9999), InputError);
    EXPECT_THROW(named("experiment"), InputError) << "needs an id";
    EXPECT_THROW(named("runs", 3), InputError) << "takes none";
    try {
        named("winners");
        FAIL() << "an unknown query must throw";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("known: runs, loops"), std::string::npos) << e.what();
    }
}

TEST_F(Queries, SqlIsReadOnlyAndLosesNothing) {
    store::Store db = open_results(file());
    EXPECT_EQ(run_sql(db, "SELECT count(*) AS n FROM experiments").at(0, "n"), "9");
    for (std::string write : {"DELETE FROM experiments", "UPDATE experiments SET median_us = 1",
                              "INSERT INTO findings (run_id, kind, text) VALUES (1, 'x', 'y')", "DROP TABLE runs",
                              "CREATE TABLE t (x)", "PRAGMA journal_mode = DELETE"}) {
        EXPECT_THROW(run_sql(db, write), store::StoreError) << write;
    }
    EXPECT_EQ(run_sql(db, "SELECT count(*) AS n FROM experiments").at(0, "n"), "9");
}

TEST_F(Queries, MissingDatabaseIsAnInputErrorAndIsNotCreated) {
    auto missing = file("typo.db");
    EXPECT_THROW(open_results(missing), InputError);
    EXPECT_FALSE(std::filesystem::exists(missing));
}

TEST_F(Queries, FormatsKeepTypes) {
    store::Store db = open_results(file());
    Table t = run_sql(db, "SELECT 1 AS i, 2.5 AS r, NULL AS n, 'a,\"b\"' AS s");
    auto rows = nlohmann::json::parse(format(t, Format::json));
    EXPECT_EQ(rows[0]["i"], 1);
    EXPECT_EQ(rows[0]["r"], 2.5);
    EXPECT_TRUE(rows[0]["n"].is_null());
    EXPECT_EQ(rows[0]["s"], "a,\"b\"");
    EXPECT_EQ(format(t, Format::csv), "i,r,n,s\r\n1,2.5,,\"a,\"\"b\"\"\"\r\n");
    std::string table = format(t, Format::table);
    EXPECT_NE(table.find("(1 row)"), std::string::npos);
    EXPECT_THROW(parse_format("yaml"), InputError);
}

} // namespace
} // namespace nightshift::query
