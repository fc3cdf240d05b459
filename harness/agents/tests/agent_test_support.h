// Shared by the agent tests: the agent-written kernel file the local server
// serves (tests/data/warp_decode_xs.cu, derived from the warp_decode_v1 seed).
#pragma once

#include "harness/core/paths.h"
#include "verifier/moe_decode/spec.h"

#include <filesystem>
#include <string>
#include <vector>

namespace nightshift::agents::testing {

inline std::filesystem::path agent_kernel_path() {
    return project_root() / "harness" / "agents" / "tests" / "data" / "warp_decode_xs.cu";
}
inline std::string agent_kernel_source() { return read_text_file(agent_kernel_path()); }
// The op's shape symbols, as the run passes them to an agent.
inline const std::vector<std::string>& moe_symbols() { return verifier::moe_decode::shape_symbol_names(); }

} // namespace nightshift::agents::testing
