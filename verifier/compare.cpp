#include "verifier/compare.h"

#include "harness/core/error.h"

#include <fmt/format.h>

#include <cmath>

namespace nightshift::verifier {

Comparison compare(const std::vector<double>& out, const std::vector<double>& ref, const Tolerance& tolerance) {
    if (out.size() != ref.size()) {
        throw Error(fmt::format("compare: output has {} elements, reference {}", out.size(), ref.size()));
    }
    Comparison c;
    double err2 = 0, ref2 = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
        ref2 += ref[i] * ref[i];
        if (!std::isfinite(out[i])) {
            ++c.non_finite;
            continue;
        }
        double d = std::abs(out[i] - ref[i]);
        err2 += d * d;
        if (d > c.max_abs) {
            c.max_abs = d;
            c.worst_index = i;
        }
    }
    double rms = out.empty() ? 0 : std::sqrt(ref2 / static_cast<double>(out.size()));
    c.rel_l2 = ref2 > 0 ? std::sqrt(err2 / ref2) : (err2 > 0 ? INFINITY : 0);
    c.max_abs_over_rms = rms > 0 ? c.max_abs / rms : (c.max_abs > 0 ? INFINITY : 0);

    // The first few bad elements, by index, so a tail or an indexing bug shows.
    int shown = 0;
    for (std::size_t i = 0; i < out.size() && shown < 5; ++i) {
        bool bad = !std::isfinite(out[i]) ||
                   (rms > 0 && std::abs(out[i] - ref[i]) / rms > tolerance.max_abs_over_rms);
        if (bad) {
            c.first_mismatches += fmt::format("{}[{}]={:.6g} vs {:.6g}", shown ? ", " : "", i, out[i], ref[i]);
            ++shown;
        }
    }

    if (c.non_finite > 0) {
        c.reason = fmt::format("{} of {} outputs are NaN/Inf (unwritten or overflowed)", c.non_finite, out.size());
    } else if (rms == 0) {
        c.reason = "the reference is all zeros: the inputs cannot tell a right kernel from a wrong one";
    } else if (c.rel_l2 > tolerance.max_rel_l2) {
        c.reason = fmt::format("relative L2 error {:.3g} > {:.3g}", c.rel_l2, tolerance.max_rel_l2);
    } else if (c.max_abs_over_rms > tolerance.max_abs_over_rms) {
        c.reason = fmt::format("max abs error / rms {:.3g} > {:.3g} at [{}]", c.max_abs_over_rms,
                               tolerance.max_abs_over_rms, c.worst_index);
    }
    c.passed = c.reason.empty();
    return c;
}

} // namespace nightshift::verifier
