// CUPTI, loaded at run time like the driver (it needs one). For now the
// harness only asks its version; kernel timing from activity records builds
// on this loader.
#pragma once

#include <optional>
#include <string>

namespace nightshift::cuda {

// CUPTI's API version number, or nullopt with `why` filled when it is missing.
std::optional<unsigned> cupti_version(std::string* why = nullptr);

} // namespace nightshift::cuda
