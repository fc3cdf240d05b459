// The morning-after commands: query, export, report, replay. Plain functions
// over plain option structs, like commands.h, so tests call them without a
// command line. Each returns the process exit code (see cli.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace nightshift::cli {

struct QueryOptions {
    std::string db = "results.db";
    std::string name;                  // a named query, or "sql"
    std::vector<std::string> arguments; // the id a named query takes, or the SQL
    std::string format = "table";      // table, json, csv
    std::optional<std::int64_t> run_id;
};

struct ExportOptions {
    std::string db = "results.db";
    std::optional<std::int64_t> experiment_id;
    std::string out_dir = "experiments";
    // --best: the winning kernels of one op and model as standalone CUDA.
    bool best = false;
    std::string op = "moe_decode";
    std::string model;
    std::optional<std::int64_t> run_id;
};

struct ReportOptions {
    std::string db = "results.db";
    std::optional<std::int64_t> run_id;
    std::string out = "report.html";
    std::string peers; // optional peer-baseline JSON
};

struct ReplayOptions {
    std::string db = "results.db";
    std::string target; // an experiment id in db, or an exported .json file
    int gpu = 0;
    std::optional<int> repetitions; // default: the recorded count
};

int query(const QueryOptions& options);
int export_results(const ExportOptions& options);
int report(const ReportOptions& options);
int replay(const ReplayOptions& options);

} // namespace nightshift::cli
