#include "harness/core/git.h"

#include "build_commit.h" // generated at build time (scripts/build_commit.cmake)

#include <fstream>
#include <sstream>

namespace nightshift {
namespace {

std::string first_line(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

} // namespace

std::string git_commit(const std::filesystem::path& root) {
    std::filesystem::path git = root / ".git";
    std::string head = first_line(git / "HEAD");
    if (head.empty()) return "unknown";
    if (head.rfind("ref: ", 0) != 0) return head; // detached HEAD holds the hash itself
    std::string ref = head.substr(5);
    std::string hash = first_line(git / ref);
    if (!hash.empty()) return hash;
    std::ifstream packed(git / "packed-refs");
    std::string line;
    while (std::getline(packed, line)) {
        auto space = line.find(' ');
        if (space != std::string::npos && line.substr(space + 1) == ref) return line.substr(0, space);
    }
    return "unknown";
}

std::string build_commit() { return NIGHTSHIFT_BUILD_COMMIT; }

std::string describe_code(const std::string& build, const std::string& tree) {
    if (build == tree || build.rfind(tree + "-", 0) == 0) return build;
    return build + " (binary); the tree's .git: " + tree;
}

} // namespace nightshift
