// The source tree's git commit, read from .git directly (no git binary on
// the GPU machine). Recorded with every run so a number names its code.
#pragma once

#include <filesystem>
#include <string>

namespace nightshift {

// The commit hash HEAD points at, with "-dirty" never guessed; "unknown" when
// the tree is not a git checkout.
std::string git_commit(const std::filesystem::path& root);

// The commit this binary was built from, "-dirty" when tracked files differed
// from it at build time; "unknown" when the build had no git.
std::string build_commit();

// What a run records as its code: the binary's commit, and the tree's .git
// commit as well where that says something else (a GPU machine runs a built
// binary over a copy of the tree whose .git may be older).
std::string describe_code(const std::string& build, const std::string& tree);

} // namespace nightshift
