#include "harness/store/schema.h"

#include "harness/store/sqlite.h"
#include "harness/store/tests/temp_database.h"

#include <sqlite3.h>

#include <gtest/gtest.h>

#include <array>
#include <string>

namespace nightshift::store {
namespace {

using StoreSchema = TempDatabase;

DatabaseHandle open_raw(const std::filesystem::path& path) {
    sqlite3* raw = nullptr;
    EXPECT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
    return DatabaseHandle(raw);
}

bool has_column(sqlite3* db, const std::string& table, const std::string& column) {
    Statement select(db, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?");
    select.bind_all(table, column);
    return select.step();
}

TEST_F(StoreSchema, ScriptsMatchTheVersion) {
    EXPECT_EQ(migrations().size(), static_cast<std::size_t>(k_schema_version));
    EXPECT_EQ(result_tables().size(), 9u);
}

TEST_F(StoreSchema, MigratesStepByStepInOrder) {
    DatabaseHandle db = open_raw(file());
    std::array<std::string_view, 3> scripts = {"CREATE TABLE a (x)", "ALTER TABLE a ADD COLUMN y",
                                               "CREATE TABLE b (z)"};
    EXPECT_EQ(read_schema_version(db.get()), 0);
    migrate(db.get(), "test.db", std::span(scripts).first(1));
    EXPECT_EQ(read_schema_version(db.get()), 1);
    EXPECT_FALSE(has_column(db.get(), "a", "y"));
    migrate(db.get(), "test.db", scripts);
    EXPECT_EQ(read_schema_version(db.get()), 3);
    EXPECT_TRUE(has_column(db.get(), "a", "y"));
    EXPECT_TRUE(has_column(db.get(), "b", "z"));
    Statement rows(db.get(), "SELECT count(*) FROM schema_version");
    rows.step();
    EXPECT_EQ(rows.column_int64(0), 1) << "schema_version holds one row";
    migrate(db.get(), "test.db", scripts); // nothing left to do
    EXPECT_EQ(read_schema_version(db.get()), 3);
}

TEST_F(StoreSchema, FailedMigrationLeavesThePreviousVersion) {
    DatabaseHandle db = open_raw(file());
    std::array<std::string_view, 2> scripts = {"CREATE TABLE a (x)",
                                               "CREATE TABLE b (y); INSERT INTO nowhere VALUES (1)"};
    EXPECT_THROW(migrate(db.get(), "test.db", scripts), StoreError);
    EXPECT_EQ(read_schema_version(db.get()), 1);
    Statement b(db.get(), "SELECT 1 FROM sqlite_master WHERE name = 'b'");
    EXPECT_FALSE(b.step()) << "half of migration 2 was kept";
}

TEST_F(StoreSchema, NewerDatabaseIsRefused) {
    DatabaseHandle db = open_raw(file());
    exec(db.get(), "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (5)");
    std::array<std::string_view, 1> scripts = {"CREATE TABLE a (x)"};
    try {
        migrate(db.get(), "results.db", scripts);
        FAIL() << "no exception";
    } catch (const StoreError& error) {
        EXPECT_NE(std::string(error.what()).find("results.db has schema 5, this nightshift knows up to 1"),
                  std::string::npos)
            << error.what();
    }
}

TEST_F(StoreSchema, OtherProgramsDatabaseIsRefused) {
    DatabaseHandle db = open_raw(file());
    exec(db.get(), "CREATE TABLE somebody_elses (x)");
    try {
        migrate(db.get(), "other.db");
        FAIL() << "no exception";
    } catch (const StoreError& error) {
        EXPECT_NE(std::string(error.what()).find("not a nightshift results.db"), std::string::npos) << error.what();
    }
    EXPECT_EQ(read_schema_version(db.get()), 0);
}

} // namespace
} // namespace nightshift::store
