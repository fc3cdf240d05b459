// How a candidate's output is judged against the float64 reference: error
// relative to the reference's scale, never to each element (a near-zero
// reference element would make any kernel fail), and every element must be
// written and finite.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace nightshift::verifier {

struct Tolerance {
    double max_rel_l2 = 1e-2;        // ||out - ref|| / ||ref||
    double max_abs_over_rms = 5e-2;  // max |out - ref| / rms(ref)
};

struct Comparison {
    bool passed = false;
    std::string reason;               // empty when passed
    double rel_l2 = 0;
    double max_abs = 0;
    double max_abs_over_rms = 0;
    std::size_t worst_index = 0;
    std::size_t non_finite = 0;       // NaN or Inf elements (poisoned and unwritten, or computed)
    std::string first_mismatches;     // "y[i]=out vs ref" for the first few bad elements
};

// out and ref must have the same size (Error otherwise).
Comparison compare(const std::vector<double>& out, const std::vector<double>& ref, const Tolerance& tolerance);

} // namespace nightshift::verifier
