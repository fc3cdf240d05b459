// Where things live at run time. The binary travels with the source tree to
// other machines (a GPU machine runs a build made elsewhere), so nothing here
// is compiled in: the tree is found from the executable's location or the
// working directory, and the cache follows XDG.
#pragma once

#include <filesystem>

namespace nightshift {

// The source tree (the folder holding kernels_seed/ and verifier/). Looks at
// $NIGHTSHIFT_ROOT, then upwards from the executable, then from the working
// directory. Throws IoError when none holds the tree.
std::filesystem::path project_root();

// $NIGHTSHIFT_CACHE, else $XDG_CACHE_HOME/nightshift, else ~/.cache/nightshift;
// created if missing.
std::filesystem::path cache_dir();

// Reads a whole file; IoError naming the path if it cannot.
std::string read_text_file(const std::filesystem::path& path);

} // namespace nightshift
