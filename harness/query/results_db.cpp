#include "harness/query/results_db.h"

#include "harness/core/error.h"
#include "harness/store/schema.h"

#include <fmt/format.h>

#include <iostream>

namespace nightshift::query {

store::Store open_results(const std::filesystem::path& path) {
    std::error_code error;
    if (!std::filesystem::is_regular_file(path, error))
        throw InputError(fmt::format("no results database at {} (give one with --db PATH)", path.string()));
    int version = 0;
    {
        store::Store probe = store::Store::open_read_only_any_version(path);
        version = probe.schema_version();
    }
    if (version < store::k_schema_version) {
        std::cerr << fmt::format("note: {} has schema {}; adding the columns of schema {} (nothing else changes)\n",
                                 path.string(), version, store::k_schema_version);
        store::Store::open(path);
    }
    return store::Store::open_read_only(path);
}

} // namespace nightshift::query
