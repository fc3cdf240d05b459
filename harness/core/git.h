// The source tree's git commit, read from .git directly (no git binary on
// the GPU machine). Recorded with every run so a number names its code.
#pragma once

#include <filesystem>
#include <string>

namespace nightshift {

// The commit hash HEAD points at, with "-dirty" never guessed; "unknown" when
// the tree is not a git checkout.
std::string git_commit(const std::filesystem::path& root);

} // namespace nightshift
