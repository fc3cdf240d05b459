#include "harness/store/sqlite.h"

#include <sqlite3.h>

#include <gtest/gtest.h>

#include <string>

namespace nightshift::store {
namespace {

DatabaseHandle open_memory() {
    sqlite3* raw = nullptr;
    EXPECT_EQ(sqlite3_open(":memory:", &raw), SQLITE_OK);
    return DatabaseHandle(raw);
}

TEST(StoreSqlite, CheckMacroNamesCallSqlMessageFileAndLine) {
    DatabaseHandle db = open_memory();
    const char* sql = "SELEC 1";
    int line = 0;
    try {
        line = __LINE__ + 1;
        NS_SQLITE_CHECK(db.get(), sqlite3_exec(db.get(), sql, nullptr, nullptr, nullptr), sql);
        FAIL() << "no exception";
    } catch (const StoreError& error) {
        std::string message = error.what();
        EXPECT_NE(message.find("sqlite3_exec"), std::string::npos) << message;
        EXPECT_NE(message.find("SELEC 1"), std::string::npos) << message;
        EXPECT_NE(message.find("syntax error"), std::string::npos) << message;
        EXPECT_NE(message.find("test_sqlite.cpp:" + std::to_string(line)), std::string::npos) << message;
        EXPECT_EQ(error.sqlite_code(), SQLITE_ERROR);
        EXPECT_FALSE(error.is_busy());
    }
}

TEST(StoreSqlite, StoreErrorIsANightshiftError) {
    DatabaseHandle db = open_memory();
    EXPECT_THROW(Statement(db.get(), "SELECT * FROM nowhere"), Error);
}

TEST(StoreSqlite, StatementBindsAndReadsEveryType) {
    DatabaseHandle db = open_memory();
    exec(db.get(), "CREATE TABLE t (i INTEGER, r REAL, s TEXT, n INTEGER)");
    Statement insert(db.get(), "INSERT INTO t VALUES (?, ?, ?, ?)");
    std::optional<double> none;
    insert.bind_all(std::int64_t{1} << 40, 2.5, std::string("text with \0 nul", 15), none).run();
    insert.reset();
    insert.bind_all(7, std::optional<double>(0.25), "second", std::optional<int>(3)).run();

    Statement select(db.get(), "SELECT i, r, s, n FROM t ORDER BY rowid");
    ASSERT_TRUE(select.step());
    EXPECT_EQ(select.column_count(), 4);
    EXPECT_EQ(select.column_name(2), "s");
    EXPECT_EQ(select.column_int64(0), std::int64_t{1} << 40);
    EXPECT_EQ(select.column_double(1), 2.5);
    EXPECT_EQ(select.column_text(2), std::string("text with \0 nul", 15));
    EXPECT_EQ(select.column_optional_int64(3), std::nullopt);
    EXPECT_EQ(select.column_text(3), "");
    ASSERT_TRUE(select.step());
    ColumnReader c(select);
    EXPECT_EQ(c.integer(), 7);
    EXPECT_EQ(c.optional_real(), 0.25);
    EXPECT_EQ(c.text(), "second");
    EXPECT_EQ(c.optional_integer(), 3);
    c.finish();
    EXPECT_FALSE(select.step());
}

TEST(StoreSqlite, BindAllChecksTheParameterCount) {
    DatabaseHandle db = open_memory();
    exec(db.get(), "CREATE TABLE t (a, b)");
    Statement insert(db.get(), "INSERT INTO t VALUES (?, ?)");
    EXPECT_THROW(insert.bind_all(1), StoreError);
}

TEST(StoreSqlite, ColumnReaderChecksEveryColumnWasRead) {
    DatabaseHandle db = open_memory();
    Statement select(db.get(), "SELECT 1, 2");
    ASSERT_TRUE(select.step());
    ColumnReader c(select);
    c.int64();
    EXPECT_THROW(c.finish(), StoreError);
}

TEST(StoreSqlite, WriteTransactionCommitsOrRollsBack) {
    DatabaseHandle db = open_memory();
    exec(db.get(), "CREATE TABLE t (a)");
    write_transaction(db.get(), [&] { exec(db.get(), "INSERT INTO t VALUES (1)"); });
    EXPECT_THROW(write_transaction(db.get(),
                                   [&] {
                                       exec(db.get(), "INSERT INTO t VALUES (2)");
                                       throw std::runtime_error("the body failed");
                                   }),
                 std::runtime_error);
    EXPECT_TRUE(sqlite3_get_autocommit(db.get())) << "transaction left open";
    Statement count(db.get(), "SELECT count(*), max(a) FROM t");
    ASSERT_TRUE(count.step());
    EXPECT_EQ(count.column_int64(0), 1);
    EXPECT_EQ(count.column_int64(1), 1);
}

} // namespace
} // namespace nightshift::store
