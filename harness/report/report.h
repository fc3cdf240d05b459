// `nightshift report`: one self-contained HTML file (inline CSS and SVG, no
// script, nothing fetched) that shows what a night found: the crossover map
// (latency against batch per kernel family, with peer baselines), the fraction
// of the copy-rate floor per batch, best-so-far over time per loop, accuracy
// against latency per weight format, and tables of the winners, findings
// and failures.
#pragma once

#include "harness/store/store.h"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace nightshift::report {

// Peer baselines timed outside nightshift (scripts/, PyTorch), as JSON:
// {"card": "...", "rows": [{"model": "...", "batch": 1, "impl": "...", "median_us": 1.0}, ...]}.
struct PeerRow {
    std::string model;
    int batch = 0;
    std::string impl;
    double median_us = 0;
};
struct Peers {
    std::string card;
    std::vector<PeerRow> rows;
};

// IoError when unreadable; InputError naming the row and field that does not
// fit the shape above.
Peers load_peers(const std::filesystem::path& path);
Peers peers_from_json_text(const std::string& text, const std::string& name);

struct ReportRequest {
    std::optional<std::int64_t> run_id; // none: every run in the store
    std::optional<Peers> peers;
};

// The HTML page. InputError for a run that does not exist.
std::string render_report(store::Store& store, const ReportRequest& request);

// "kernels_seed/moe_decode/warp_decode_v1.cu" -> "warp_decode": the file's
// stem without a trailing _v<N>, so versions of one design share a series
// (each point's tooltip names the version and knobs).
std::string kernel_family(const std::string& path);

} // namespace nightshift::report
