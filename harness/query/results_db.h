// Opening results.db for the morning-after commands (query, report, export,
// replay): never created by accident, read-only once open.
#pragma once

#include "harness/store/store.h"

#include <filesystem>

namespace nightshift::query {

// InputError when `path` does not exist (a typo must not create an empty
// database). A database at an older schema is first brought up to date
// (columns are only ever added; a note goes to stderr); then it is opened
// read-only, so nothing the command does can change a result.
store::Store open_results(const std::filesystem::path& path);

} // namespace nightshift::query
