#include "harness/report/svg_plot.h"

#include "harness/report/tests/xml_check.h"

#include <gtest/gtest.h>

namespace nightshift::report {
namespace {

TEST(SvgPlot, XmlCheckCatchesWhatItShould) {
    EXPECT_EQ(xml_problem("<a x=\"1\"><b/>t &amp; u</a>"), "");
    EXPECT_NE(xml_problem("<a><b></a>"), "");
    EXPECT_NE(xml_problem("<a x=1></a>"), "");
    EXPECT_NE(xml_problem("<a>t & u</a>"), "");
    EXPECT_NE(xml_problem("<a>"), "");
}

TEST(SvgPlot, SeriesPointsAndEscapingAreWellFormed) {
    std::vector<Series> series = {{.name = "warp <decode> & co", .points = {{1, 40, "e1"}, {8, 240, "e2"}}},
                                  {.name = "peer: bmm", .points = {{1, 90, ""}, {8, 300, ""}}, .dashed = true}};
    std::string svg = render_svg({.id = "t", .title = "a \"title\"", .x_label = "batch", .y_label = "us",
                                  .log_x = true, .log_y = true, .reference_y = 0, .reference_label = {}},
                                 series);
    EXPECT_EQ(xml_problem(svg), "") << svg;
    EXPECT_NE(svg.find("data-series=\"warp &lt;decode&gt; &amp; co\""), std::string::npos);
    EXPECT_NE(svg.find("data-x=\"8\" data-y=\"240\""), std::string::npos);
    EXPECT_NE(svg.find("stroke-dasharray=\"6 4\""), std::string::npos) << "peers are dashed";
}

TEST(SvgPlot, LogAxesDropNonPositivePointsAndEmptyPlotsSaySo) {
    std::string svg = render_svg({.id = "t", .title = "t", .x_label = "x", .y_label = "y", .log_x = true,
                                  .log_y = true, .reference_y = 0, .reference_label = {}},
                                 {{.name = "s", .points = {{0, 1, ""}, {2, -1, ""}, {4, 5, ""}}}});
    EXPECT_EQ(xml_problem(svg), "");
    EXPECT_EQ(svg.find("data-x=\"0\""), std::string::npos);
    EXPECT_NE(svg.find("data-x=\"4\""), std::string::npos);
    std::string empty = render_svg({.id = "e", .title = "e", .x_label = "x", .y_label = "y", .log_x = false,
                                    .log_y = false, .reference_y = 0, .reference_label = {}},
                                   {});
    EXPECT_NE(empty.find("no data"), std::string::npos);
    EXPECT_EQ(xml_problem(empty), "");
}

TEST(SvgPlot, TicksAreRoundNumbers) {
    EXPECT_EQ(axis_ticks(1, 128, true), (std::vector<double>{1, 2, 5, 10, 20, 50, 100}));
    std::vector<double> linear = axis_ticks(0, 1, false);
    ASSERT_EQ(linear.size(), 6u);
    for (std::size_t i = 0; i < linear.size(); ++i) EXPECT_NEAR(linear[i], 0.2 * static_cast<double>(i), 1e-9);
}

} // namespace
} // namespace nightshift::report
