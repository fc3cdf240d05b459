// The thin layer between the store and the SQLite C API: owning handles with
// named deleters, a prepared-statement wrapper, the write-transaction retry
// loop, and the one check macro, NS_SQLITE_CHECK, that turns a failed call into
// a StoreError naming the call, the SQL, SQLite's message, file and line.
//
// This header does not include sqlite3.h (the C types are only forward
// declared), so store.h can be included anywhere; the .cpp files under
// harness/store/ that expand NS_SQLITE_CHECK include <sqlite3.h> themselves.
#pragma once

#include "harness/core/error.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace nightshift::store {

// Anything that went wrong in the store: a failed SQLite call, a database
// newer than this build, a missing row that was asked for by id.
class StoreError : public Error {
public:
    explicit StoreError(const std::string& message, int sqlite_code = 0) : Error(message), m_code(sqlite_code) {}
    // The SQLite (extended) result code, 0 when the error is not SQLite's.
    int sqlite_code() const { return m_code; }
    // Another connection holds the lock (SQLITE_BUSY or SQLITE_LOCKED): the
    // same work may succeed if tried again.
    bool is_busy() const;

private:
    int m_code;
};

struct DatabaseDeleter {
    void operator()(sqlite3* db) const noexcept; // sqlite3_close_v2
};
struct StatementDeleter {
    void operator()(sqlite3_stmt* statement) const noexcept; // sqlite3_finalize
};

using DatabaseHandle = std::unique_ptr<sqlite3, DatabaseDeleter>;
using StatementHandle = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

// Throws StoreError: "sqlite: <message> [<code name>] in <call> (SQL: <sql>) at file:line".
// `db` may be null (then only the code's description is used).
[[noreturn]] void throw_sqlite_error(sqlite3* db, int code, std::string_view call, std::string_view sql,
                                     const char* file, int line);

// Runs one or more SQL statements that return no rows we need.
void exec(sqlite3* db, std::string_view sql);

// A prepared statement. Bind parameters by 1-based index (or all at once with
// bind_all), step through rows, read columns by 0-based index.
class Statement {
public:
    Statement(sqlite3* db, std::string_view sql); // prepares; throws StoreError

    Statement& bind(int index, std::int64_t value);
    Statement& bind(int index, int value) { return bind(index, static_cast<std::int64_t>(value)); }
    Statement& bind(int index, double value);
    Statement& bind(int index, std::string_view text);
    Statement& bind(int index, std::nullopt_t);
    template <class T>
    Statement& bind(int index, const std::optional<T>& value) {
        return value ? bind(index, *value) : bind(index, std::nullopt);
    }

    // Binds parameters 1..N in order and checks that the statement has
    // exactly N, so a column list and its values cannot drift apart.
    template <class... Values>
    Statement& bind_all(const Values&... values) {
        int index = 0;
        (bind(++index, values), ...);
        check_parameter_count(index);
        return *this;
    }

    // True when a row is ready, false when the statement is done.
    bool step();
    // Steps a statement that must finish without returning rows.
    void run();
    void reset(); // ready to step again; bindings are kept

    int column_count() const;
    std::string column_name(int column) const;
    bool is_null(int column) const;
    std::int64_t column_int64(int column) const;
    double column_double(int column) const;
    std::string column_text(int column) const; // NULL reads as ""
    std::optional<std::int64_t> column_optional_int64(int column) const;
    std::optional<double> column_optional_double(int column) const;
    std::optional<std::string> column_optional_text(int column) const;

    sqlite3_stmt* get() const { return m_statement.get(); }
    const std::string& sql() const { return m_sql; }

private:
    void check_parameter_count(int bound) const;

    sqlite3* m_db;
    std::string m_sql;
    StatementHandle m_statement;
};

// Reads the columns of the current row left to right, so a SELECT list and
// the code that reads it stay in the same order; finish() checks every
// column was read.
class ColumnReader {
public:
    explicit ColumnReader(const Statement& statement) : m_statement(statement) {}
    std::int64_t int64() { return m_statement.column_int64(m_next++); }
    int integer() { return static_cast<int>(m_statement.column_int64(m_next++)); }
    double real() { return m_statement.column_double(m_next++); }
    std::string text() { return m_statement.column_text(m_next++); }
    std::optional<std::int64_t> optional_int64() { return m_statement.column_optional_int64(m_next++); }
    std::optional<int> optional_integer();
    std::optional<double> optional_real() { return m_statement.column_optional_double(m_next++); }
    std::optional<std::string> optional_text() { return m_statement.column_optional_text(m_next++); }
    void finish() const; // throws StoreError unless every column was read

private:
    const Statement& m_statement;
    int m_next = 0;
};

// How writes wait for other connections. SQLite's busy handler waits first
// (busy_timeout); if a write still finds the database busy, the whole
// transaction is rolled back and retried after a growing, jittered pause.
struct RetryPolicy {
    int max_attempts = 20;
    std::chrono::milliseconds first_backoff{20};
    std::chrono::milliseconds max_backoff{2000};
};

// Runs `attempt` until it does not throw a busy StoreError, pausing with
// backoff between tries; gives up (StoreError, still busy) after
// policy.max_attempts. For statements SQLite does not wait on by itself
// (switching a new file to WAL while another connection does the same).
void retry_while_busy(const std::function<void()>& attempt, const RetryPolicy& policy = {});

// BEGIN IMMEDIATE; body(); COMMIT. Any exception from body rolls back and
// propagates. A busy or locked database (from BEGIN, body or COMMIT) rolls
// back and runs the whole thing again, so body must only touch the database.
void write_transaction(sqlite3* db, const std::function<void()>& body, const RetryPolicy& policy = {});

} // namespace nightshift::store

// One check macro for the SQLite family: `call` must return an SQLite result
// code; anything but SQLITE_OK throws StoreError naming the call, `sql`, the
// message, file and line. Expand it only where <sqlite3.h> is included.
#define NS_SQLITE_CHECK(db, call, sql)                                                                   \
    do {                                                                                                 \
        int ns_sqlite_result_ = (call);                                                                  \
        if (ns_sqlite_result_ != SQLITE_OK)                                                              \
            ::nightshift::store::throw_sqlite_error((db), ns_sqlite_result_, #call, (sql), __FILE__, __LINE__); \
    } while (0)
