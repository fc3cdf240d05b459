#include "harness/query/results_db.h"

#include "harness/core/error.h"
#include "harness/store/schema.h"
#include "harness/store/tests/temp_database.h"

#include <sqlite3.h>

#include <gtest/gtest.h>

namespace nightshift::query {
namespace {

class ResultsDb : public store::TempDatabase {};

TEST_F(ResultsDb, AnOlderSchemaGetsItsNewColumnsAndKeepsItsRows) {
    {
        sqlite3* raw = nullptr;
        ASSERT_EQ(sqlite3_open(file().c_str(), &raw), SQLITE_OK);
        store::DatabaseHandle db(raw);
        store::migrate(db.get(), "test.db", store::migrations().first(2)); // a database written before schema 3
        store::exec(db.get(), "INSERT INTO runs (host) VALUES ('old')");
    }
    store::Store reader = open_results(file());
    EXPECT_TRUE(reader.read_only());
    EXPECT_EQ(reader.schema_version(), store::k_schema_version);
    EXPECT_EQ(reader.query("SELECT host FROM runs")[0][0], "old");
    EXPECT_EQ(reader.query("SELECT count(*) FROM pragma_table_info('experiments') WHERE name = 'baseline_kernel_id'")[0][0],
              "1");
}

TEST_F(ResultsDb, SomethingElseIsRefusedAndNotChanged) {
    {
        sqlite3* raw = nullptr;
        ASSERT_EQ(sqlite3_open(file().c_str(), &raw), SQLITE_OK);
        store::DatabaseHandle db(raw);
        store::exec(db.get(), "CREATE TABLE notes (x)");
    }
    EXPECT_THROW(open_results(file()), store::StoreError);
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(file().c_str(), &raw), SQLITE_OK);
    store::DatabaseHandle db(raw);
    store::Statement tables(db.get(), "SELECT count(*) FROM sqlite_master WHERE type = 'table'");
    tables.step();
    EXPECT_EQ(tables.column_int64(0), 1) << "no schema_version or results tables were added";
}

} // namespace
} // namespace nightshift::query
