#include "harness/report/report.h"

#include "harness/core/error.h"
#include "harness/core/paths.h"
#include "harness/query/queries.h"
#include "harness/query/table.h"
#include "harness/report/svg_plot.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

namespace nightshift::report {
namespace {

// One verified, timed experiment, as the plots need it.
struct Row {
    std::int64_t id = 0, run = 0, loop = 0;
    double minutes = 0; // since its run started
    std::string model, format, distribution, path, family, knobs;
    int batch = 0;
    double median_us = 0, fraction_of_floor = 0, rel_l2 = -1;
};

double to_double(const std::string& text) { return text.empty() ? 0 : std::stod(text); }

std::vector<Row> load_rows(store::Store& store, const std::optional<std::int64_t>& run_id) {
    std::string sql =
        "SELECT e.id, e.run_id, coalesce(e.loop_id, 0), (julianday(e.created_at) - julianday(r.created_at)) * 1440, "
        "p.model, p.format, p.distribution, k.path, e.knobs_json, p.batch, e.median_us, "
        "coalesce(e.fraction_of_floor, 0), coalesce(e.rel_l2, -1) "
        "FROM experiments e JOIN problems p ON p.id = e.problem_id JOIN kernels k ON k.id = e.kernel_id "
        "JOIN runs r ON r.id = e.run_id WHERE e.status = 0 AND e.median_us IS NOT NULL";
    if (run_id) sql += fmt::format(" AND e.run_id = {}", *run_id);
    sql += " ORDER BY e.id";
    query::Table table = query::run_sql(store, sql);
    std::vector<Row> rows;
    for (const auto& t : table.rows) {
        Row r;
        r.id = std::stoll(t[0]);
        r.run = std::stoll(t[1]);
        r.loop = std::stoll(t[2]);
        r.minutes = to_double(t[3]);
        r.model = t[4];
        r.format = t[5];
        r.distribution = t[6];
        r.path = t[7];
        r.family = kernel_family(t[7]);
        r.knobs = t[8];
        r.batch = std::stoi(t[9]);
        r.median_us = to_double(t[10]);
        r.fraction_of_floor = to_double(t[11]);
        r.rel_l2 = to_double(t[12]);
        rows.push_back(std::move(r));
    }
    return rows;
}

std::string series_name(const Row& r) { return r.format == "bf16" ? r.family : r.family + " " + r.format; }

std::string point_label(const Row& r) {
    return fmt::format("experiment {}: {} {} B={} {}: {:.2f} us, {:.3f} of floor, rel_l2 {:.2e}", r.id,
                       std::filesystem::path(r.path).filename().string(), r.knobs, r.batch, r.format, r.median_us,
                       r.fraction_of_floor, r.rel_l2);
}

// The best row per (series, batch) of one model, by `better`.
template <class Better>
std::map<std::string, std::map<int, const Row*>> best_per_batch(const std::vector<Row>& rows, const std::string& model,
                                                                Better better) {
    std::map<std::string, std::map<int, const Row*>> best;
    for (const auto& r : rows) {
        if (r.model != model) continue;
        const Row*& slot = best[series_name(r)][r.batch];
        if (!slot || better(r, *slot)) slot = &r;
    }
    return best;
}

std::string html_table(const query::Table& table, std::string_view css_class) {
    std::string html = fmt::format("<table class=\"{}\">\n<tr>", css_class);
    for (const auto& c : table.columns) html += "<th>" + escape_xml(c) + "</th>";
    html += "</tr>\n";
    for (const auto& row : table.rows) {
        html += "<tr>";
        for (const auto& cell : row) html += "<td>" + escape_xml(cell) + "</td>";
        html += "</tr>\n";
    }
    if (table.rows.empty())
        html += fmt::format("<tr><td colspan=\"{}\">none</td></tr>\n", std::max<std::size_t>(1, table.columns.size()));
    return html + "</table>\n";
}

std::string slug(const std::string& text) {
    std::string out;
    for (char c : text) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
    return out;
}

constexpr std::string_view k_style = R"css(
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #eee; } td { max-width: 420px; overflow-wrap: anywhere; }
p.note { color: #555; font-size: 13px; } svg.plot { display: block; margin: 12px 0; background: #fff; }
ul.summary li { margin: 3px 0; }
)css";

} // namespace

std::string kernel_family(const std::string& path) {
    std::string stem = std::filesystem::path(path).stem().string();
    auto v = stem.rfind("_v");
    if (v != std::string::npos && v + 2 < stem.size() &&
        std::all_of(stem.begin() + static_cast<long>(v) + 2, stem.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
        stem.erase(v);
    return stem.empty() ? path : stem;
}

Peers peers_from_json_text(const std::string& text, const std::string& name) {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw InputError(fmt::format("{}: not a JSON object", name));
    Peers peers;
    if (j.contains("card")) {
        if (!j["card"].is_string()) throw InputError(fmt::format("{}: 'card' is not a string", name));
        peers.card = j["card"].get<std::string>();
    }
    if (!j.contains("rows") || !j["rows"].is_array()) throw InputError(fmt::format("{}: no 'rows' array", name));
    std::size_t index = 0;
    for (const auto& row : j["rows"]) {
        const std::size_t at = index++;
        auto fail = [&](std::string_view what) {
            return InputError(fmt::format("{}: rows[{}]: {}", name, at, what));
        };
        if (!row.is_object()) throw fail("not an object");
        // A peer that was skipped or computed a wrong answer has no time to
        // draw; nightshift's own rows (impl "nightshift:...") are the store's
        // business, not a peer's.
        if (row.contains("status") && row["status"] != "ok") continue;
        if (row.contains("impl") && row["impl"].is_string() &&
            row["impl"].get<std::string>().rfind("nightshift:", 0) == 0) {
            continue;
        }
        PeerRow p;
        if (!row.contains("model") || !row["model"].is_string()) throw fail("'model' missing or not a string");
        if (!row.contains("impl") || !row["impl"].is_string()) throw fail("'impl' missing or not a string");
        if (!row.contains("batch") || !row["batch"].is_number_integer()) throw fail("'batch' missing or not an integer");
        if (!row.contains("median_us") || !row["median_us"].is_number()) throw fail("'median_us' missing or not a number");
        p.model = row["model"].get<std::string>();
        p.impl = row["impl"].get<std::string>();
        p.batch = row["batch"].get<int>();
        p.median_us = row["median_us"].get<double>();
        if (p.batch <= 0 || !(p.median_us > 0)) throw fail("'batch' and 'median_us' must be positive");
        peers.rows.push_back(std::move(p));
    }
    return peers;
}

Peers load_peers(const std::filesystem::path& path) { return peers_from_json_text(read_text_file(path), path.string()); }

std::string render_report(store::Store& store, const ReportRequest& request) {
    if (request.run_id && !store.run(*request.run_id))
        throw InputError(fmt::format("no run {} in {}", *request.run_id, store.path().string()));
    std::vector<Row> rows = load_rows(store, request.run_id);
    query::Table runs = query::run_named(store, {"runs", std::nullopt, request.run_id});

    std::string html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n";
    html += "<title>nightshift report</title>\n<style>" + std::string(k_style) + "</style>\n</head>\n<body>\n";
    html += fmt::format("<h1>nightshift report: {}</h1>\n",
                        request.run_id ? fmt::format("run {}", *request.run_id) : std::string("every run"));
    html += fmt::format("<p class=\"note\">{} from {}; {} verified, timed experiments. Latency is the median of "
                        "the timed repetitions with a cold L2; the floor is the bytes the call must move over the "
                        "measured copy bandwidth.</p>\n",
                        runs.rows.size() == 1 ? "1 run" : fmt::format("{} runs", runs.rows.size()),
                        escape_xml(store.path().filename().string()), rows.size());
    html += "<h2>Runs</h2>\n" + html_table(runs, "runs");

    std::set<std::string> models;
    for (const auto& r : rows) models.insert(r.model);
    if (request.peers)
        for (const auto& p : request.peers->rows) models.insert(p.model);

    html += "<h2>Crossover map: latency against batch</h2>\n";
    html += "<p class=\"note\">Each line is a kernel family's fastest verified variant at each batch (any knobs); "
            "dashed lines are peer implementations timed outside nightshift";
    if (request.peers && !request.peers->card.empty())
        html += fmt::format(" (on {})", escape_xml(request.peers->card));
    html += ". Both axes are logarithmic.</p>\n";
    std::string summary;
    for (const auto& model : models) {
        auto fastest = best_per_batch(rows, model, [](const Row& a, const Row& b) { return a.median_us < b.median_us; });
        std::vector<Series> series;
        for (const auto& [name, per_batch] : fastest) {
            Series s;
            s.name = name;
            for (const auto& [batch, r] : per_batch) s.points.push_back({double(batch), r->median_us, point_label(*r)});
            series.push_back(std::move(s));
        }
        if (request.peers) {
            std::map<std::string, std::map<int, double>> peer_series;
            for (const auto& p : request.peers->rows) {
                if (p.model != model) continue;
                double& slot = peer_series[p.impl][p.batch];
                slot = slot > 0 ? std::min(slot, p.median_us) : p.median_us;
            }
            for (const auto& [impl, per_batch] : peer_series) {
                Series s;
                s.name = "peer: " + impl;
                s.dashed = true;
                for (const auto& [batch, us] : per_batch)
                    s.points.push_back({double(batch), us, fmt::format("{} B={}: {:.2f} us", impl, batch, us)});
                series.push_back(std::move(s));
            }
        }
        html += render_svg({.id = "crossover-" + slug(model),
                            .title = model + ": median latency against batch",
                            .x_label = "batch (tokens)",
                            .y_label = "median us",
                            .log_x = true,
                            .log_y = true,
                            .reference_y = 0,
                            .reference_label = {}},
                           series);

        // The winner per batch among bf16 families and where it changes.
        std::map<int, std::pair<std::string, double>> winner;
        for (const auto& [name, per_batch] : fastest) {
            for (const auto& [batch, r] : per_batch) {
                if (r->format != "bf16") continue;
                auto it = winner.find(batch);
                if (it == winner.end() || r->median_us < it->second.second) winner[batch] = {name, r->median_us};
            }
        }
        std::string previous;
        std::string crossings;
        for (const auto& [batch, w] : winner) {
            if (!previous.empty() && w.first != previous)
                crossings += fmt::format("{}{} takes over from {} at B={}", crossings.empty() ? "" : "; ", w.first,
                                         previous, batch);
            previous = w.first;
        }
        if (!winner.empty()) {
            summary += fmt::format("<li>{}: fastest bf16 family per batch: ", escape_xml(model));
            bool first = true;
            for (const auto& [batch, w] : winner) {
                summary += fmt::format("{}B={} {} {:.1f} us", first ? "" : ", ", batch, escape_xml(w.first), w.second);
                first = false;
            }
            summary += ". " + (crossings.empty() ? std::string("No crossover in the measured range.")
                                                 : "Crossover: " + escape_xml(crossings) + ".") + "</li>\n";
        }
        // Against the fastest peer at each batch both measured.
        if (request.peers && !winner.empty()) {
            std::string against;
            for (const auto& [batch, w] : winner) {
                const PeerRow* fastest_peer = nullptr;
                for (const auto& p : request.peers->rows)
                    if (p.model == model && p.batch == batch && (!fastest_peer || p.median_us < fastest_peer->median_us))
                        fastest_peer = &p;
                if (!fastest_peer) continue;
                against += fmt::format("{}B={} {:.2f}x ({} {:.1f} us)", against.empty() ? "" : ", ", batch,
                                       fastest_peer->median_us / w.second, escape_xml(fastest_peer->impl),
                                       fastest_peer->median_us);
            }
            if (!against.empty())
                summary += fmt::format("<li>{}: speedup of the fastest bf16 kernel over the fastest peer: {}.</li>\n",
                                       escape_xml(model), against);
        }
    }
    if (!summary.empty()) html += "<ul class=\"summary\">\n" + summary + "</ul>\n";

    html += "<h2>Fraction of the floor per batch</h2>\n";
    html += "<p class=\"note\">Copy-rate floor over the median: 1.0 would move the routed weights at the measured "
            "copy bandwidth. The best variant per family and batch.</p>\n";
    for (const auto& model : models) {
        auto closest = best_per_batch(rows, model, [](const Row& a, const Row& b) {
            return a.fraction_of_floor > b.fraction_of_floor;
        });
        std::vector<Series> series;
        for (const auto& [name, per_batch] : closest) {
            Series s;
            s.name = name;
            for (const auto& [batch, r] : per_batch)
                s.points.push_back({double(batch), r->fraction_of_floor, point_label(*r)});
            series.push_back(std::move(s));
        }
        if (series.empty()) continue;
        html += render_svg({.id = "floor-" + slug(model),
                            .title = model + ": fraction of the copy-rate floor",
                            .x_label = "batch (tokens)",
                            .y_label = "fraction of floor",
                            .log_x = true,
                            .reference_y = 1.0,
                            .reference_label = "floor"},
                           series);
    }

    html += "<h2>Best so far, per loop</h2>\n";
    html += "<p class=\"note\">The highest fraction of the floor a loop had reached, over minutes since its run "
            "started (any problem).</p>\n";
    {
        std::map<std::pair<std::int64_t, std::int64_t>, Series> per_loop;
        std::map<std::int64_t, int> loop_index;
        query::Table loops = query::run_named(store, {"loops", std::nullopt, request.run_id});
        for (std::size_t i = 0; i < loops.rows.size(); ++i)
            loop_index[std::stoll(loops.at(i, "loop"))] = std::stoi(loops.at(i, "loop_index"));
        for (const auto& r : rows) {
            Series& s = per_loop[{r.run, r.loop}];
            if (s.name.empty())
                s.name = r.loop ? fmt::format("run {} loop {}", r.run, loop_index[r.loop]) : fmt::format("run {}", r.run);
            double best = s.points.empty() ? 0 : s.points.back().y;
            if (r.fraction_of_floor > best || s.points.empty())
                s.points.push_back({r.minutes, std::max(best, r.fraction_of_floor), point_label(r)});
        }
        std::vector<Series> series;
        for (auto& [key, s] : per_loop) series.push_back(std::move(s));
        html += render_svg({.id = "best-so-far",
                            .title = "best fraction of the floor so far, per loop",
                            .x_label = "minutes since the run started",
                            .y_label = "best fraction of floor",
                            .reference_y = 1.0,
                            .reference_label = "floor"},
                           series);
    }

    html += "<h2>Accuracy against latency, per weight format</h2>\n";
    html += "<p class=\"note\">Every verified experiment: relative L2 error against the float64 reference (on the "
            "format's own weights) over its median latency. Lower left is better.</p>\n";
    {
        std::map<std::string, Series> per_format;
        for (const auto& r : rows) {
            if (r.rel_l2 <= 0) continue;
            Series& s = per_format[r.format];
            s.name = r.format;
            s.line = false;
            s.points.push_back({r.median_us, r.rel_l2, point_label(r)});
        }
        std::vector<Series> series;
        for (auto& [format, s] : per_format) series.push_back(std::move(s));
        html += render_svg({.id = "accuracy",
                            .title = "relative L2 error against median latency",
                            .x_label = "median us",
                            .y_label = "relative L2 error",
                            .log_x = true,
                            .log_y = true,
                            .reference_y = 0,
                            .reference_label = {}},
                           series);
    }

    html += "<h2>Fastest verified experiment per problem</h2>\n";
    html += html_table(query::run_named(store, {"best", std::nullopt, request.run_id}), "best");
    html += "<h2>Findings</h2>\n";
    html += html_table(query::run_named(store, {"findings", std::nullopt, request.run_id}), "findings");
    html += "<h2>Failures</h2>\n";
    html += html_table(query::run_named(store, {"failures", std::nullopt, request.run_id}), "failures");
    std::string recent = "SELECT e.id AS experiment, " + query::status_name_sql("e.status") +
                         " AS status, p.model, p.batch, p.format, k.path AS kernel, e.knobs_json AS knobs, e.message "
                         "FROM experiments e JOIN problems p ON p.id = e.problem_id JOIN kernels k ON k.id = e.kernel_id "
                         "WHERE e.status != 0";
    if (request.run_id) recent += fmt::format(" AND e.run_id = {}", *request.run_id);
    recent += " ORDER BY e.id DESC LIMIT 50";
    html += "<p class=\"note\">The latest 50 failed experiments (nightshift query experiment ID shows one in full, "
            "its log included).</p>\n";
    html += html_table(query::run_sql(store, recent), "failed");
    html += "</body>\n</html>\n";
    return html;
}

} // namespace nightshift::report
