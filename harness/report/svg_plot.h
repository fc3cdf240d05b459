// A small SVG chart for the HTML report: lines or points, linear or log axes,
// a legend, no script. Every series is a <g class="series" data-series=NAME>
// and every point a <circle> carrying its data values (data-x, data-y), so a
// test (or a reader's browser tools) can check the picture against the store.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace nightshift::report {

struct Point {
    double x = 0, y = 0;
    std::string label; // tooltip (<title>), e.g. the experiment id and knobs
};

struct Series {
    std::string name;
    std::vector<Point> points; // drawn in the order given
    bool line = true;          // false: points only (a scatter)
    bool dashed = false;       // peers and other reference series
};

struct PlotSpec {
    std::string id;    // the <svg id>, unique in the page
    std::string title;
    std::string x_label, y_label;
    bool log_x = false, log_y = false;
    int width = 760, height = 420;
    // A horizontal reference line (e.g. 1.0 = the floor); none when <= 0.
    double reference_y = 0;
    std::string reference_label;
};

// Escapes &, <, >, " and ' for text and attribute values.
std::string escape_xml(std::string_view text);

// The chart as an <svg> element. Points that a log axis cannot show (<= 0)
// are left out. An empty chart says "no data" in its middle.
std::string render_svg(const PlotSpec& spec, const std::vector<Series>& series);

// Tick values for an axis over [low, high]: 1-2-5 decades on a log axis,
// round steps on a linear one. Exposed for tests.
std::vector<double> axis_ticks(double low, double high, bool log);

} // namespace nightshift::report
