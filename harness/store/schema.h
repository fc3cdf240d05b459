// The versioned schema of results.db. The version lives in the one-row table
// schema_version(version). Migration i (0-based) takes a database from version
// i to i + 1; each runs in its own write transaction together with the update
// of schema_version, so a database is always at exactly one version.
//
// Append-only: to change the schema, add a script at the end of the list in
// schema.cpp and bump k_schema_version. Never edit a script that has shipped.
#pragma once

#include "harness/store/sqlite.h"

#include <span>
#include <string>
#include <string_view>

namespace nightshift::store {

inline constexpr int k_schema_version = 3;

// The scripts, oldest first; migrations().size() == k_schema_version.
std::span<const std::string_view> migrations();

// The tables that hold results (everything but schema_version), in the order
// they were created.
std::span<const std::string_view> result_tables();

// 0 for a database nightshift has never written (no schema_version table).
int read_schema_version(sqlite3* db);

// Brings `db` up to migrations.size(). `name` (the file) is used in messages.
// Throws StoreError if the database is newer than the list, or is some other
// program's database (tables, but no schema_version). Safe when several
// processes open the same new file at once: each step re-reads the version
// inside its transaction.
void migrate(sqlite3* db, std::string_view name, std::span<const std::string_view> migrations,
             const RetryPolicy& policy = {});
inline void migrate(sqlite3* db, std::string_view name) { migrate(db, name, migrations()); }

// StoreError unless `version` can be read by a build whose newest schema is
// `known` (the "newer database" message lives here).
void check_not_newer(std::string_view name, int version, int known);

} // namespace nightshift::store
