#include "harness/query/table.h"

#include "harness/core/error.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>

namespace nightshift::query {
namespace {

std::string one_line(const std::string& text, std::size_t max_cell) {
    std::string line;
    for (char c : text) line += (c == '\n' || c == '\t' || c == '\r') ? ' ' : c;
    if (line.size() > max_cell && max_cell > 3) line = line.substr(0, max_cell - 3) + "...";
    return line;
}

ValueKind kind_of(const Table& table, std::size_t row, std::size_t column) {
    if (row >= table.kinds.size() || column >= table.kinds[row].size()) return ValueKind::text;
    return table.kinds[row][column];
}

std::string format_table(const Table& table, std::size_t max_cell) {
    std::string out;
    if (table.vertical) {
        std::size_t width = 0;
        for (const auto& name : table.columns) width = std::max(width, name.size());
        for (std::size_t r = 0; r < table.rows.size(); ++r) {
            if (r > 0) out += "\n";
            for (std::size_t c = 0; c < table.columns.size(); ++c) {
                const std::string& value = table.rows[r][c];
                if (value.find('\n') != std::string::npos) {
                    out += fmt::format("{}:\n{}{}", table.columns[c], value, value.ends_with('\n') ? "" : "\n");
                } else {
                    out += fmt::format("{:<{}}  {}\n", table.columns[c] + ":", width + 1, value);
                }
            }
        }
        return out;
    }
    std::vector<std::size_t> widths;
    for (const auto& name : table.columns) widths.push_back(name.size());
    std::vector<std::vector<std::string>> cells;
    for (const auto& row : table.rows) {
        auto& line = cells.emplace_back();
        for (std::size_t c = 0; c < row.size(); ++c) {
            line.push_back(one_line(row[c], max_cell));
            widths[c] = std::max(widths[c], line.back().size());
        }
    }
    auto numeric = [&](std::size_t c) {
        for (std::size_t r = 0; r < table.rows.size(); ++r) {
            ValueKind kind = kind_of(table, r, c);
            if (kind != ValueKind::integer && kind != ValueKind::real && kind != ValueKind::null) return false;
        }
        return !table.kinds.empty();
    };
    auto emit = [&](const std::vector<std::string>& line) {
        std::string text;
        for (std::size_t c = 0; c < line.size(); ++c) {
            if (c > 0) text += "  ";
            text += numeric(c) ? fmt::format("{:>{}}", line[c], widths[c]) : fmt::format("{:<{}}", line[c], widths[c]);
        }
        while (!text.empty() && text.back() == ' ') text.pop_back();
        out += text + "\n";
    };
    emit(table.columns);
    std::vector<std::string> rule;
    for (std::size_t width : widths) rule.push_back(std::string(width, '-'));
    emit(rule);
    for (const auto& line : cells) emit(line);
    out += fmt::format("({} row{})\n", table.rows.size(), table.rows.size() == 1 ? "" : "s");
    return out;
}

std::string format_json(const Table& table) {
    nlohmann::json rows = nlohmann::json::array();
    for (std::size_t r = 0; r < table.rows.size(); ++r) {
        nlohmann::json row = nlohmann::json::object();
        for (std::size_t c = 0; c < table.columns.size(); ++c) {
            const std::string& value = table.rows[r][c];
            switch (kind_of(table, r, c)) {
            case ValueKind::null: row[table.columns[c]] = nullptr; break;
            case ValueKind::integer: row[table.columns[c]] = std::stoll(value); break;
            case ValueKind::real: row[table.columns[c]] = std::stod(value); break;
            default: row[table.columns[c]] = value; break;
            }
        }
        rows.push_back(std::move(row));
    }
    return rows.dump(1) + "\n";
}

std::string csv_field(const std::string& value) {
    if (value.find_first_of(",\"\n\r") == std::string::npos) return value;
    std::string quoted = "\"";
    for (char c : value) {
        if (c == '"') quoted += '"';
        quoted += c;
    }
    return quoted + "\"";
}

std::string format_csv(const Table& table) {
    std::string out;
    auto emit = [&](const std::vector<std::string>& line) {
        for (std::size_t c = 0; c < line.size(); ++c) out += (c ? "," : "") + csv_field(line[c]);
        out += "\r\n";
    };
    emit(table.columns);
    for (const auto& row : table.rows) emit(row);
    return out;
}

} // namespace

std::size_t Table::column(std::string_view name) const {
    auto it = std::find(columns.begin(), columns.end(), name);
    if (it == columns.end()) {
        std::string known;
        for (const auto& c : columns) known += (known.empty() ? "" : ", ") + c;
        throw InputError(fmt::format("no column '{}' (columns: {})", name, known));
    }
    return static_cast<std::size_t>(it - columns.begin());
}

Table run_sql(store::Store& store, const std::string& sql) {
    Table table;
    table.rows = store.query(sql, &table.columns, &table.kinds);
    return table;
}

Format parse_format(std::string_view name) {
    if (name == "table") return Format::table;
    if (name == "json") return Format::json;
    if (name == "csv") return Format::csv;
    throw InputError(fmt::format("--format '{}': expected table, json or csv", name));
}

std::string format(const Table& table, Format format, std::size_t max_cell) {
    switch (format) {
    case Format::json: return format_json(table);
    case Format::csv: return format_csv(table);
    case Format::table: break;
    }
    return format_table(table, max_cell);
}

} // namespace nightshift::query
