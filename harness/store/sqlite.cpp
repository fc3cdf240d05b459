#include "harness/store/sqlite.h"

#include <sqlite3.h>

#include <fmt/format.h>

#include <algorithm>
#include <random>
#include <thread>

namespace nightshift::store {
namespace {

// Long SQL (a migration script) is cut in messages; the start names it.
std::string shorten(std::string_view sql) {
    constexpr std::size_t k_max = 300;
    if (sql.size() <= k_max) return std::string(sql);
    return fmt::format("{}... ({} more characters)", sql.substr(0, k_max), sql.size() - k_max);
}

} // namespace

bool StoreError::is_busy() const {
    int primary = m_code & 0xff;
    return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

void DatabaseDeleter::operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }

void StatementDeleter::operator()(sqlite3_stmt* statement) const noexcept { sqlite3_finalize(statement); }

void throw_sqlite_error(sqlite3* db, int code, std::string_view call, std::string_view sql, const char* file,
                        int line) {
    // sqlite3_errmsg describes the connection's latest failure, which is this
    // one; without a connection, the code's generic text is all there is.
    int extended = db ? sqlite3_extended_errcode(db) : code;
    if ((extended & 0xff) != (code & 0xff)) extended = code;
    std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(code);
    throw StoreError(fmt::format("sqlite: {} [{}] in {} (SQL: {}) at {}:{}", message, sqlite3_errstr(extended), call,
                                 shorten(sql), file, line),
                     extended);
}

void exec(sqlite3* db, std::string_view sql) {
    std::string text(sql);
    NS_SQLITE_CHECK(db, sqlite3_exec(db, text.c_str(), nullptr, nullptr, nullptr), text);
}

Statement::Statement(sqlite3* db, std::string_view sql) : m_db(db), m_sql(sql) {
    sqlite3_stmt* statement = nullptr;
    NS_SQLITE_CHECK(db, sqlite3_prepare_v2(db, m_sql.data(), static_cast<int>(m_sql.size()), &statement, nullptr),
                    m_sql);
    m_statement.reset(statement);
    if (!m_statement) throw StoreError(fmt::format("sqlite: no statement in SQL: {}", shorten(m_sql)));
}

Statement& Statement::bind(int index, std::int64_t value) {
    NS_SQLITE_CHECK(m_db, sqlite3_bind_int64(get(), index, value), m_sql);
    return *this;
}

Statement& Statement::bind(int index, double value) {
    NS_SQLITE_CHECK(m_db, sqlite3_bind_double(get(), index, value), m_sql);
    return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
    NS_SQLITE_CHECK(m_db,
                    sqlite3_bind_text64(get(), index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8),
                    m_sql);
    return *this;
}

Statement& Statement::bind(int index, std::nullopt_t) {
    NS_SQLITE_CHECK(m_db, sqlite3_bind_null(get(), index), m_sql);
    return *this;
}

void Statement::check_parameter_count(int bound) const {
    int expected = sqlite3_bind_parameter_count(get());
    if (bound != expected)
        throw StoreError(fmt::format("sqlite: bound {} values to {} parameters (SQL: {})", bound, expected,
                                     shorten(m_sql)));
}

bool Statement::step() {
    int result = sqlite3_step(get());
    if (result == SQLITE_ROW) return true;
    if (result == SQLITE_DONE) return false;
    // Leave the statement ready for another try (a busy retry re-runs it).
    sqlite3_reset(get());
    throw_sqlite_error(m_db, result, "sqlite3_step", m_sql, __FILE__, __LINE__);
}

void Statement::run() {
    if (step()) throw StoreError(fmt::format("sqlite: statement returned rows where none were expected (SQL: {})",
                                             shorten(m_sql)));
}

void Statement::reset() { sqlite3_reset(get()); }

int Statement::column_count() const { return sqlite3_column_count(get()); }

std::string Statement::column_name(int column) const {
    const char* name = sqlite3_column_name(get(), column);
    return name ? name : "";
}

bool Statement::is_null(int column) const { return sqlite3_column_type(get(), column) == SQLITE_NULL; }

std::int64_t Statement::column_int64(int column) const { return sqlite3_column_int64(get(), column); }

double Statement::column_double(int column) const { return sqlite3_column_double(get(), column); }

std::string Statement::column_text(int column) const {
    // Text first, then its length: the order SQLite documents as safe.
    const unsigned char* text = sqlite3_column_text(get(), column);
    int bytes = sqlite3_column_bytes(get(), column);
    return text ? std::string(reinterpret_cast<const char*>(text), static_cast<std::size_t>(bytes)) : std::string();
}

std::optional<std::int64_t> Statement::column_optional_int64(int column) const {
    if (is_null(column)) return std::nullopt;
    return column_int64(column);
}

std::optional<double> Statement::column_optional_double(int column) const {
    if (is_null(column)) return std::nullopt;
    return column_double(column);
}

std::optional<std::string> Statement::column_optional_text(int column) const {
    if (is_null(column)) return std::nullopt;
    return column_text(column);
}

std::optional<int> ColumnReader::optional_integer() {
    auto value = m_statement.column_optional_int64(m_next++);
    if (!value) return std::nullopt;
    return static_cast<int>(*value);
}

void ColumnReader::finish() const {
    if (m_next != m_statement.column_count())
        throw StoreError(fmt::format("sqlite: read {} of {} columns (SQL: {})", m_next, m_statement.column_count(),
                                     shorten(m_statement.sql())));
}

void retry_while_busy(const std::function<void()>& attempt, const RetryPolicy& policy) {
    // Jitter keeps processes that collided once from colliding again in step.
    thread_local std::minstd_rand random(
        static_cast<unsigned>(std::hash<std::thread::id>{}(std::this_thread::get_id())) ^
        static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
    auto backoff = policy.first_backoff;
    for (int tries = 1;; ++tries) {
        try {
            attempt();
            return;
        } catch (const StoreError& error) {
            if (!error.is_busy()) throw;
            if (tries >= policy.max_attempts)
                throw StoreError(fmt::format("database stayed busy through {} attempts: {}", tries, error.what()),
                                 error.sqlite_code());
        }
        auto pause = backoff / 2 + std::chrono::milliseconds(random() % (backoff.count() / 2 + 1));
        std::this_thread::sleep_for(pause);
        backoff = std::min(backoff * 2, policy.max_backoff);
    }
}

void write_transaction(sqlite3* db, const std::function<void()>& body, const RetryPolicy& policy) {
    retry_while_busy(
        [&] {
            exec(db, "BEGIN IMMEDIATE");
            try {
                body();
                exec(db, "COMMIT");
            } catch (...) {
                // A failed COMMIT may already have ended the transaction.
                if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
                throw;
            }
        },
        policy);
}

} // namespace nightshift::store
