#include "harness/core/paths.h"

#include "harness/core/error.h"

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <unistd.h>

namespace nightshift {
namespace fs = std::filesystem;
namespace {

bool holds_tree(const fs::path& dir) {
    std::error_code ec;
    return fs::is_directory(dir / "kernels_seed", ec) && fs::is_directory(dir / "verifier", ec);
}

std::optional<fs::path> search_upwards(fs::path dir) {
    for (; !dir.empty(); dir = dir.parent_path()) {
        if (holds_tree(dir)) return dir;
        if (dir == dir.root_path()) break;
    }
    return std::nullopt;
}

} // namespace

fs::path project_root() {
    if (const char* env = std::getenv("NIGHTSHIFT_ROOT"); env && *env) {
        if (holds_tree(env)) return fs::path(env);
        throw IoError(std::string("NIGHTSHIFT_ROOT=") + env + " does not hold kernels_seed/ and verifier/");
    }
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        if (auto found = search_upwards(exe.parent_path())) return *found;
    }
    if (auto found = search_upwards(fs::current_path())) return *found;
    throw IoError("cannot find the nightshift source tree (kernels_seed/ and verifier/) above the "
                  "executable or the working directory; set NIGHTSHIFT_ROOT");
}

fs::path cache_dir() {
    fs::path dir;
    if (const char* env = std::getenv("NIGHTSHIFT_CACHE"); env && *env) {
        dir = env;
    } else if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
        dir = fs::path(xdg) / "nightshift";
    } else if (const char* home = std::getenv("HOME"); home && *home) {
        dir = fs::path(home) / ".cache" / "nightshift";
    } else {
        dir = fs::temp_directory_path() / "nightshift-cache";
    }
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw IoError("cannot create cache directory " + dir.string() + ": " + ec.message());
    return dir;
}

std::string read_text_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw IoError("cannot read " + path.string());
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

} // namespace nightshift
