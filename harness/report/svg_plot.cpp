#include "harness/report/svg_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace nightshift::report {
namespace {

// Okabe-Ito colours, distinguishable with the common colour-vision deficiencies.
constexpr std::array<std::string_view, 8> k_colours = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                                       "#E69F00", "#56B4E9", "#000000", "#F0E442"};
constexpr int k_left = 70, k_right = 200, k_top = 36, k_bottom = 48;

std::string number(double value) {
    if (value == 0) return "0";
    double magnitude = std::fabs(value);
    if (magnitude >= 1e5 || magnitude < 1e-3) return fmt::format("{:.0e}", value);
    if (magnitude >= 100) return fmt::format("{:.0f}", value);
    std::string text = fmt::format("{:.3g}", value);
    return text;
}

struct Axis {
    double low = 0, high = 1;
    bool log = false;
    double to_unit(double v) const {
        if (log) return (std::log10(v) - std::log10(low)) / (std::log10(high) - std::log10(low));
        return (v - low) / (high - low);
    }
};

Axis make_axis(const std::vector<double>& values, bool log, bool from_zero) {
    Axis axis;
    axis.log = log;
    if (values.empty()) return axis.log ? Axis{1, 10, true} : axis;
    auto [min_it, max_it] = std::minmax_element(values.begin(), values.end());
    double low = *min_it, high = *max_it;
    if (log) {
        low = std::pow(10, std::floor(std::log10(low) * 4) / 4); // quarter-decade padding
        high = std::pow(10, std::ceil(std::log10(high) * 4) / 4);
        if (high <= low) high = low * 10;
    } else {
        if (from_zero) low = std::min(0.0, low);
        double pad = (high - low) * 0.05;
        if (pad == 0) pad = std::max(std::fabs(high) * 0.1, 1.0);
        high += pad;
        if (!from_zero || low < 0) low -= pad;
    }
    axis.low = low;
    axis.high = high;
    return axis;
}

} // namespace

std::string escape_xml(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
        }
    }
    return out;
}

std::vector<double> axis_ticks(double low, double high, bool log) {
    std::vector<double> ticks;
    if (!(high > low)) return ticks;
    if (log) {
        int first = static_cast<int>(std::floor(std::log10(low)));
        int last = static_cast<int>(std::ceil(std::log10(high)));
        bool few_decades = last - first <= 3;
        for (int decade = first; decade <= last; ++decade) {
            for (double m : {1.0, 2.0, 5.0}) {
                if (!few_decades && m != 1.0) continue;
                double v = m * std::pow(10.0, decade);
                if (v >= low * (1 - 1e-9) && v <= high * (1 + 1e-9)) ticks.push_back(v);
            }
        }
        return ticks;
    }
    double raw = (high - low) / 6;
    double step = std::pow(10, std::floor(std::log10(raw)));
    for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
        if (m * step >= raw) {
            step *= m;
            break;
        }
    }
    for (double v = std::ceil(low / step) * step; v <= high + step * 1e-9; v += step)
        ticks.push_back(std::fabs(v) < step * 1e-9 ? 0 : v);
    return ticks;
}

std::string render_svg(const PlotSpec& spec, const std::vector<Series>& series) {
    std::vector<double> xs, ys;
    auto shown = [&](const Point& p) {
        return std::isfinite(p.x) && std::isfinite(p.y) && (!spec.log_x || p.x > 0) && (!spec.log_y || p.y > 0);
    };
    for (const auto& s : series) {
        for (const auto& p : s.points) {
            if (!shown(p)) continue;
            xs.push_back(p.x);
            ys.push_back(p.y);
        }
    }
    if (spec.reference_y > 0) ys.push_back(spec.reference_y);
    Axis x = make_axis(xs, spec.log_x, false), y = make_axis(ys, spec.log_y, true);
    const int plot_w = spec.width - k_left - k_right, plot_h = spec.height - k_top - k_bottom;
    auto px = [&](double v) { return k_left + x.to_unit(v) * plot_w; };
    auto py = [&](double v) { return k_top + (1 - y.to_unit(v)) * plot_h; };

    std::string svg = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"{}\" class=\"plot\" width=\"{}\" height=\"{}\" "
        "viewBox=\"0 0 {} {}\" font-family=\"sans-serif\" font-size=\"12\" role=\"img\">\n",
        escape_xml(spec.id), spec.width, spec.height, spec.width, spec.height);
    svg += fmt::format("<title>{}</title>\n", escape_xml(spec.title));
    svg += fmt::format("<text x=\"{}\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n", k_left,
                       escape_xml(spec.title));
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#fafafa\" stroke=\"#888\"/>\n", k_left,
                       k_top, plot_w, plot_h);
    if (xs.empty()) {
        svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n",
                           k_left + plot_w / 2, k_top + plot_h / 2);
        return svg + "</svg>\n";
    }
    svg += "<g class=\"axis\" stroke=\"#ddd\">\n";
    for (double t : axis_ticks(x.low, x.high, x.log)) {
        svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\"/>"
                           "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\" stroke=\"none\" fill=\"#333\">{4}</text>\n",
                           px(t), k_top, k_top + plot_h, k_top + plot_h + 16, number(t));
    }
    for (double t : axis_ticks(y.low, y.high, y.log)) {
        svg += fmt::format("<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\"/>"
                           "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\" stroke=\"none\" fill=\"#333\">{5}</text>\n",
                           k_left, py(t), k_left + plot_w, k_left - 6, py(t) + 4, number(t));
    }
    svg += "</g>\n";
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}{}</text>\n", k_left + plot_w / 2,
                       spec.height - 10, escape_xml(spec.x_label), spec.log_x ? " (log)" : "");
    svg += fmt::format("<text x=\"14\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {})\">{}{}</text>\n",
                       k_top + plot_h / 2, k_top + plot_h / 2, escape_xml(spec.y_label), spec.log_y ? " (log)" : "");
    if (spec.reference_y > 0) {
        svg += fmt::format("<line class=\"reference\" x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#c00\" "
                           "stroke-dasharray=\"2 3\"/><text x=\"{}\" y=\"{:.1f}\" fill=\"#c00\" text-anchor=\"end\">{}</text>\n",
                           k_left, py(spec.reference_y), k_left + plot_w, py(spec.reference_y), k_left + plot_w - 4,
                           py(spec.reference_y) - 4, escape_xml(spec.reference_label));
    }
    for (std::size_t i = 0; i < series.size(); ++i) {
        const Series& s = series[i];
        std::string colour(k_colours[i % k_colours.size()]);
        svg += fmt::format("<g class=\"series\" data-series=\"{}\" stroke=\"{}\" fill=\"{}\">\n", escape_xml(s.name),
                           colour, colour);
        if (s.line) {
            std::string d;
            for (const auto& p : s.points) {
                if (!shown(p)) continue;
                d += fmt::format("{}{:.1f},{:.1f}", d.empty() ? "M" : " L", px(p.x), py(p.y));
            }
            if (!d.empty())
                svg += fmt::format("<path d=\"{}\" fill=\"none\" stroke-width=\"2\"{}/>\n", d,
                                   s.dashed ? " stroke-dasharray=\"6 4\"" : "");
        }
        for (const auto& p : s.points) {
            if (!shown(p)) continue;
            svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\" data-x=\"{}\" data-y=\"{}\"{}>"
                               "<title>{}</title></circle>\n",
                               px(p.x), py(p.y), s.line ? 3 : 3.5, p.x, p.y, s.dashed ? " fill-opacity=\"0.3\"" : "",
                               escape_xml(p.label.empty() ? fmt::format("{}: {}, {}", s.name, number(p.x), number(p.y))
                                                          : p.label));
        }
        // Legend entry.
        int ly = k_top + 8 + static_cast<int>(i) * 18;
        int lx = k_left + plot_w + 12;
        svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke-width=\"2\"{}/>"
                           "<text x=\"{}\" y=\"{}\" stroke=\"none\" fill=\"#222\">{}</text>\n",
                           lx, ly, lx + 22, ly, s.dashed ? " stroke-dasharray=\"6 4\"" : "", lx + 28, ly + 4,
                           escape_xml(s.name));
        svg += "</g>\n";
    }
    return svg + "</svg>\n";
}

} // namespace nightshift::report
