// The model's reply into a kernel file, checked before anything compiles: one
// fenced code block holding a whole kernel file with annotations, device code
// only (no host API, no launches), #include only of the op's "params.h", every
// @launch entry defined as an extern "C" __global__ function, annotations that
// parse and name only the op's shape symbols and the file's knobs. A reply
// that fails is malformed_reply (no kernel file at all) or rejected_reply (a
// kernel file that breaks a rule), with the reason.
#pragma once

#include "harness/agents/failure.h"

#include <string>
#include <string_view>
#include <vector>

namespace nightshift::agents {

struct KernelProposal {
    std::string source;           // the kernel file, verbatim
    std::string hypothesis;       // what the model expects and why
    std::string predicted_effect; // a number it can be wrong about
};

// Includes a kernel file may have.
const std::vector<std::string>& allowed_includes();

Outcome<KernelProposal> parse_reply(std::string_view text, std::string_view op,
                                    const std::vector<std::string>& shape_symbols);

} // namespace nightshift::agents
