// A result table as the store returns it (every value as text, with its
// SQLite type kept), and the three ways `nightshift query` prints one: an
// aligned table for people, JSON and CSV for scripts.
#pragma once

#include "harness/store/store.h"

#include <string>
#include <string_view>
#include <vector>

namespace nightshift::query {

using ValueKind = store::Store::ValueKind;

struct Table {
    std::vector<std::string> columns;
    std::vector<std::vector<std::string>> rows;
    std::vector<std::vector<ValueKind>> kinds; // per value; empty: every value is text
    // One record shown as "column: value" lines (an experiment in full)
    // rather than as a wide row.
    bool vertical = false;

    // The column's index; InputError naming the table's columns when absent.
    std::size_t column(std::string_view name) const;
    const std::string& at(std::size_t row, std::string_view name) const { return rows.at(row).at(column(name)); }
};

// Runs read-only SQL through the store (its authorizer refuses writes).
Table run_sql(store::Store& store, const std::string& sql);

enum class Format { table, json, csv };
// "table", "json" or "csv"; InputError otherwise.
Format parse_format(std::string_view name);

// table: columns padded to their widest value (cells longer than
// `max_cell` are cut with "..."; vertical tables are never cut);
// json: an array of objects, numbers as numbers, NULL as null;
// csv: RFC 4180 (a header line, fields with a comma, quote or newline quoted).
std::string format(const Table& table, Format format, std::size_t max_cell = 60);

} // namespace nightshift::query
