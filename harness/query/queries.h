// The named queries behind `nightshift query NAME`: the questions a person
// asks the store the morning after. Each is one read-only SQL statement; a
// registry lists them with a description for --help and rejects unknown
// names.
#pragma once

#include "harness/query/table.h"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace nightshift::query {

struct NamedQuery {
    std::string_view name;
    std::string_view argument; // "" when it takes none, else what it is ("EXPERIMENT_ID")
    std::string_view description;
};

std::span<const NamedQuery> named_queries();
// "  runs           every run: ..." lines for --help.
std::string named_queries_help();

struct QueryRequest {
    std::string name;
    std::optional<std::int64_t> argument;  // the id a query takes (experiment, lineage)
    std::optional<std::int64_t> run_id;    // restricts runs-scoped queries to one run
};

// InputError for an unknown name, a missing or unexpected argument, or an
// id that is not in the store (an experiment or kernel that does not exist).
Table run_named(store::Store& store, const QueryRequest& request);

// The SQL CASE expression naming experiments.status (0 -> 'ok', ...), for
// queries that show a status by name.
std::string status_name_sql(std::string_view column);

} // namespace nightshift::query
