// NVRTC: CUDA C++ source to cubin at run time, with the log, the resources of
// every entry, and an on-disk cache.
//
// A compile error is data, not an exception: the result carries ok == false
// and the log, and the caller records it. Exceptions are for a broken NVRTC.
//
// The cache key is a SHA-256 of the source, the options, the contents of every
// header in the include folders, the NVRTC version and the architecture, so a
// changed params.h never serves a stale cubin.
#pragma once

#include "harness/core/error.h"

#include <filesystem>
#include <string>
#include <vector>

namespace nightshift::cuda {

struct CompileRequest {
    std::string name;   // shown in messages and logs, e.g. the kernel file's path
    std::string source;
    std::string arch;   // "sm_90"
    std::vector<std::string> options;              // -D defines and other NVRTC flags
    std::vector<std::filesystem::path> include_dirs;
};

// Resources of one __global__ entry, from ptxas's report.
struct EntryResources {
    std::string name;
    int registers = 0;
    int stack_bytes = 0;
    int spill_store_bytes = 0;
    int spill_load_bytes = 0;
    int shared_bytes = 0; // static shared memory
    int barriers = 0;
};

struct CompileResult {
    bool ok = false;
    std::string key;        // cache key (hex SHA-256)
    std::string log;        // NVRTC's log, ptxas's report included
    std::vector<char> cubin;
    std::vector<EntryResources> entries;
    int global_bytes = 0;   // module-scope __device__ variables (state that outlives a launch)
    bool from_cache = false;
    double seconds = 0.0;   // compile time (0 for a cache hit)
    std::vector<std::string> full_options; // exactly what NVRTC was given
};

class NvrtcError : public Error {
public:
    using Error::Error;
};

std::string nvrtc_version(); // "13.0"

// Parses ptxas's -v report into entries and module global bytes.
void parse_ptxas_report(const std::string& log, std::vector<EntryResources>& entries, int& global_bytes);

class Compiler {
public:
    // cache_dir empty: no cache. dump_dir non-empty: every compile writes the
    // exact source and options there (the debug switch).
    explicit Compiler(std::filesystem::path cache_dir = {}, std::filesystem::path dump_dir = {});

    CompileResult compile(const CompileRequest& request) const;
    std::string cache_key(const CompileRequest& request) const;

private:
    std::vector<std::string> full_options(const CompileRequest& request) const;
    bool load_cached(const std::string& key, CompileResult& result) const;
    void store_cached(const CompileResult& result) const;
    void dump(const CompileRequest& request, const CompileResult& result) const;

    std::filesystem::path m_cache_dir;
    std::filesystem::path m_dump_dir;
};

} // namespace nightshift::cuda
