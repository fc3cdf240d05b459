#include "harness/report/report.h"

#include "harness/core/error.h"
#include "harness/query/results_db.h"
#include "harness/query/tests/sample_results.h"
#include "harness/report/tests/xml_check.h"

#include <gtest/gtest.h>

#include <regex>

namespace nightshift::report {
namespace {

// Every <svg>...</svg> of the page.
std::vector<std::string> svgs(const std::string& html) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while ((at = html.find("<svg", at)) != std::string::npos) {
        std::size_t end = html.find("</svg>", at);
        out.push_back(html.substr(at, end + 6 - at));
        at = end;
    }
    return out;
}

// The data-y values of one series in one plot, in drawing order.
std::vector<std::string> series_values(const std::string& svg, const std::string& series) {
    std::size_t start = svg.find("data-series=\"" + series + "\"");
    if (start == std::string::npos) return {};
    std::size_t end = svg.find("</g>", start);
    std::string group = svg.substr(start, end - start);
    std::vector<std::string> values;
    static const std::regex point("data-x=\"([^\"]+)\" data-y=\"([^\"]+)\"");
    for (auto it = std::sregex_iterator(group.begin(), group.end(), point); it != std::sregex_iterator(); ++it)
        values.push_back((*it)[1].str() + ":" + (*it)[2].str());
    return values;
}

const std::string* plot(const std::vector<std::string>& all, const std::string& id) {
    for (const auto& svg : all)
        if (svg.find("id=\"" + id + "\"") != std::string::npos) return &svg;
    return nullptr;
}

class Report : public query::SampleResults {};

TEST_F(Report, PlotsAreWellFormedAndMatchTheStore) {
    store::Store db = query::open_results(file());
    ReportRequest request;
    request.peers = peers_from_json_text(
        R"({"card": "H100", "rows": [{"model": "gemma4-26b-a4b", "batch": 1, "impl": "torch_grouped_mm", "median_us": 123.4},
                                     {"model": "gemma4-26b-a4b", "batch": 8, "impl": "torch_grouped_mm", "median_us": 150}]})",
        "peers.json");
    std::string html = render_report(db, request);
    EXPECT_TRUE(html.starts_with("<!DOCTYPE html>"));
    EXPECT_EQ(html.find("<script"), std::string::npos) << "no script";
    EXPECT_EQ(html.find(" src="), std::string::npos) << "nothing fetched";
    EXPECT_EQ(html.find(" href="), std::string::npos) << "nothing fetched";
    auto all = svgs(html);
    ASSERT_EQ(all.size(), 4u); // crossover, floor, best so far, accuracy
    for (const auto& svg : all) EXPECT_EQ(xml_problem(svg), "") << svg;

    const std::string* crossover = plot(all, "crossover-gemma4-26b-a4b");
    ASSERT_TRUE(crossover);
    // warp_decode family: v1 (60 us) and its child v2 (50 us) at B=1, v1 at B=8 (70 us).
    EXPECT_EQ(series_values(*crossover, "warp_decode"), (std::vector<std::string>{"1:50", "8:70"}));
    EXPECT_EQ(series_values(*crossover, "expert_centric"), (std::vector<std::string>{"1:100", "8:80"}));
    EXPECT_EQ(series_values(*crossover, "warp_decode int8_row"), (std::vector<std::string>{"1:35"}));
    EXPECT_EQ(series_values(*crossover, "peer: torch_grouped_mm"), (std::vector<std::string>{"1:123.4", "8:150"}));

    const std::string* floor = plot(all, "floor-gemma4-26b-a4b");
    ASSERT_TRUE(floor);
    EXPECT_EQ(series_values(*floor, "warp_decode"), (std::vector<std::string>{"1:0.8", "8:0.571428571428571"}));

    const std::string* accuracy = plot(all, "accuracy");
    ASSERT_TRUE(accuracy);
    EXPECT_EQ(series_values(*accuracy, "int8_row"), (std::vector<std::string>{"35:0.02"}));
    EXPECT_EQ(series_values(*accuracy, "bf16").size(), 5u);

    const std::string* progress = plot(all, "best-so-far");
    ASSERT_TRUE(progress);
    EXPECT_FALSE(series_values(*progress, "run 1 loop 0").empty());
    EXPECT_FALSE(series_values(*progress, "run 1 loop 1").empty());

    EXPECT_NE(html.find("over the fastest peer: B=1 2.47x (torch_grouped_mm 123.4 us), B=8 2.14x"), std::string::npos);
    EXPECT_NE(html.find("warp_decode_v2 WARPS=8 is fastest at B=1"), std::string::npos) << "findings table";
    EXPECT_NE(html.find("failed as compile_error"), std::string::npos) << "failures table";
    EXPECT_NE(html.find("B=1 warp_decode 50.0 us, B=8 warp_decode 70.0 us. No crossover"), std::string::npos);
}

TEST_F(Report, UnknownRunAndBadPeersAreInputErrors) {
    store::Store db = query::open_results(file());
    ReportRequest request;
    request.run_id = 42;
    EXPECT_THROW(render_report(db, request), InputError);
    EXPECT_THROW(peers_from_json_text("[]", "p.json"), InputError);
    EXPECT_THROW(peers_from_json_text(R"({"rows": [{"model": "m", "batch": "1", "impl": "x", "median_us": 1}]})", "p.json"),
                 InputError);
    EXPECT_THROW(peers_from_json_text(R"({"rows": [{"model": "m", "batch": 1, "impl": "x", "median_us": -1}]})", "p.json"),
                 InputError);
}

// The peer script's skipped and wrong rows have no time, and its nightshift
// rows are not peers: both are left out, the rest kept.
TEST(PeersFile, SkipsRowsWithoutATimeAndNightshiftsOwn) {
    Peers peers = peers_from_json_text(R"({"card": "c", "rows": [
        {"model": "m", "batch": 1, "impl": "grouped_mm", "median_us": 10.5, "status": "ok"},
        {"model": "m", "batch": 128, "impl": "gathered_bmm", "median_us": null, "status": "skipped"},
        {"model": "m", "batch": 2, "impl": "eager_loop", "median_us": 3.0, "status": "wrong"},
        {"model": "m", "batch": 1, "impl": "nightshift:warp_decode_v2", "median_us": 5.0, "status": "ok"}]})",
                                       "p.json");
    ASSERT_EQ(peers.rows.size(), 1u);
    EXPECT_EQ(peers.rows[0].impl, "grouped_mm");
    EXPECT_EQ(peers.rows[0].median_us, 10.5);
}

TEST(KernelFamily, DropsTheVersionSuffix) {
    EXPECT_EQ(kernel_family("kernels_seed/moe_decode/warp_decode_v1.cu"), "warp_decode");
    EXPECT_EQ(kernel_family("k/expert_centric_v12.cu"), "expert_centric");
    EXPECT_EQ(kernel_family("k/fused_vec.cu"), "fused_vec");
}

} // namespace
} // namespace nightshift::report
