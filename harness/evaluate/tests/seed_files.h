// The seed kernels the tests run: every .cu under kernels_seed/moe_decode/.
#pragma once

#include "harness/core/paths.h"

#include <algorithm>
#include <filesystem>
#include <vector>

namespace nightshift::testing {

inline std::vector<std::filesystem::path> moe_decode_seed_files() {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(project_root() / "kernels_seed" / "moe_decode")) {
        if (entry.path().extension() == ".cu") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    return files;
}

} // namespace nightshift::testing
