#include "harness/cli/morning.h"

#include "harness/core/error.h"
#include "harness/exports/best_kernels.h"
#include "harness/exports/experiment_file.h"
#include "harness/query/queries.h"
#include "harness/query/results_db.h"
#include "harness/query/table.h"
#include "harness/replay/replay.h"
#include "harness/report/report.h"

#include <fmt/format.h>

#include <fstream>
#include <iostream>

namespace nightshift::cli {
namespace {

std::int64_t parse_id(const std::string& text, std::string_view what) {
    try {
        std::size_t used = 0;
        long long value = std::stoll(text, &used);
        if (used == text.size() && value > 0) return value;
    } catch (const std::exception&) {
    }
    throw InputError(fmt::format("{} '{}' is not a positive integer id", what, text));
}

void write_text(const std::filesystem::path& path, const std::string& text) {
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
    // Written beside, then renamed: a half-written report never replaces a good one.
    std::filesystem::path partial = path;
    partial += ".partial";
    {
        std::ofstream out(partial, std::ios::binary);
        out << text;
        out.close();
        if (!out) throw IoError(fmt::format("cannot write {}", partial.string()));
    }
    std::filesystem::rename(partial, path);
}

} // namespace

int query(const QueryOptions& options) {
    query::Format format = query::parse_format(options.format);
    if (options.name.empty()) throw InputError("query: name a query:\n" + query::named_queries_help());
    if (options.name == "sql") {
        if (options.arguments.size() != 1) throw InputError("query sql takes one argument: the SQL, in quotes");
        if (options.run_id) throw InputError("query sql: --run does not apply (write the WHERE yourself)");
        store::Store store = query::open_results(options.db);
        query::Table table;
        try {
            table = query::run_sql(store, options.arguments[0]);
        } catch (const store::StoreError& e) {
            if (e.is_busy()) throw;
            throw InputError(e.what()); // the user's SQL: refused, or not valid
        }
        std::cout << query::format(table, format);
        return 0;
    }
    if (options.arguments.size() > 1)
        throw InputError(fmt::format("query {}: one id at most, got {}", options.name, options.arguments.size()));
    std::optional<std::int64_t> argument;
    if (!options.arguments.empty()) argument = parse_id(options.arguments[0], "query " + options.name + ":");
    store::Store store = query::open_results(options.db);
    std::cout << query::format(query::run_named(store, {options.name, argument, options.run_id}), format);
    return 0;
}

int export_results(const ExportOptions& options) {
    if (options.best == options.experiment_id.has_value())
        throw InputError("export: give an experiment ID, or --best with --model (not both)");
    store::Store store = query::open_results(options.db);
    if (options.experiment_id) {
        auto path = exports::write_record(exports::experiment_json(store, *options.experiment_id), options.out_dir);
        fmt::print("wrote {}\nreplay it with: nightshift replay {}\n", path.string(), path.string());
        return 0;
    }
    if (options.model.empty()) throw InputError("export --best needs --model NAME");
    exports::BestExport best = exports::export_best(store, {.op = options.op, .model = options.model, .run_id = options.run_id});
    for (const auto& path : exports::write_best(best, options.out_dir)) fmt::print("wrote {}\n", path.string());
    fmt::print("{}", best.summary);
    return 0;
}

int report(const ReportOptions& options) {
    report::ReportRequest request;
    request.run_id = options.run_id;
    if (!options.peers.empty()) request.peers = report::load_peers(options.peers);
    store::Store store = query::open_results(options.db);
    std::string html = report::render_report(store, request);
    write_text(options.out, html);
    fmt::print("wrote {} ({} KB)\n", options.out, html.size() / 1024);
    return 0;
}

int replay(const ReplayOptions& options) {
    exports::RecordedExperiment recorded;
    std::string source;
    if (std::filesystem::is_regular_file(options.target)) {
        recorded = exports::load_recorded(std::filesystem::path(options.target));
        source = options.target;
    } else {
        std::int64_t id = parse_id(options.target, "replay: neither a file nor an experiment id:");
        store::Store store = query::open_results(options.db);
        recorded = exports::load_recorded(store, id);
        source = fmt::format("{} experiment {}", options.db, id);
    }
    replay::ReplayOutcome outcome = replay::replay(recorded, {.gpu = options.gpu, .repetitions = options.repetitions});
    std::cout << replay::describe(recorded, outcome, source);
    return outcome.verdict == replay::Verdict::reproduced ? 0 : 1;
}

} // namespace nightshift::cli
