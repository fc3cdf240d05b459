#include "harness/cuda/compiler.h"

#include "harness/core/paths.h"
#include "harness/core/sha256.h"
#include "harness/cuda/handles.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>
#include <cstdlib>
#include <unistd.h>

namespace nightshift::cuda {
namespace fs = std::filesystem;
namespace {

#define NS_NVRTC_CHECK(call)                                                                   \
    do {                                                                                       \
        nvrtcResult ns_nvrtc_result_ = (call);                                                 \
        if (ns_nvrtc_result_ != NVRTC_SUCCESS)                                                 \
            throw NvrtcError(fmt::format("{} failed with {} ({}:{})", #call,                   \
                                         nvrtcGetErrorString(ns_nvrtc_result_), __FILE__, __LINE__)); \
    } while (0)

// Bump when the cache's file format or the options the compiler adds change.
// v2: v1 entries may hold logs without ptxas's report (see load() in
// driver_api.cpp), so they are never served again.
constexpr const char* k_cache_format = "nightshift-nvrtc-cache-v2";

std::vector<fs::path> headers_in(const std::vector<fs::path>& dirs) {
    std::vector<fs::path> headers;
    for (const auto& dir : dirs) {
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(dir, ec)) {
            auto ext = entry.path().extension();
            if (entry.is_regular_file() && (ext == ".h" || ext == ".cuh")) headers.push_back(entry.path());
        }
    }
    std::sort(headers.begin(), headers.end());
    return headers;
}

void write_file(const fs::path& path, const std::string& bytes) {
    // Private to this process and thread: two threads may store the same key.
    fs::path tmp = path;
    tmp += ".tmp" + std::to_string(::getpid()) + "-" +
           std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id()));
    {
        std::ofstream out(tmp, std::ios::binary);
        if (!out) throw IoError("cannot write " + tmp.string());
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    fs::rename(tmp, path); // atomic: concurrent readers see all or nothing
}

} // namespace

std::string nvrtc_version() {
    int major = 0, minor = 0;
    NS_NVRTC_CHECK(nvrtcVersion(&major, &minor));
    return fmt::format("{}.{}", major, minor);
}

void parse_ptxas_report(const std::string& log, std::vector<EntryResources>& entries, int& global_bytes) {
    static const std::regex gmem(R"(ptxas info\s*:\s*(\d+) bytes gmem)");
    static const std::regex entry(R"(Compiling entry function '([^']+)')");
    static const std::regex properties(R"(Function properties for (\S+))");
    static const std::regex frame(
        R"((\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads)");
    static const std::regex used(R"(Used (\d+) registers)");
    static const std::regex barriers(R"(used (\d+) barriers)");
    static const std::regex smem(R"((\d+) bytes smem)");

    global_bytes = 0;
    // An index, not a pointer: push_back may move the entries.
    constexpr std::size_t k_none = static_cast<std::size_t>(-1);
    std::size_t current = k_none;
    std::istringstream lines(log);
    std::string line;
    std::smatch m;
    while (std::getline(lines, line)) {
        if (std::regex_search(line, m, gmem)) {
            global_bytes += std::stoi(m[1]);
        } else if (std::regex_search(line, m, entry)) {
            entries.push_back(EntryResources{.name = m[1]});
            current = entries.size() - 1;
        } else if (std::regex_search(line, m, properties)) {
            // Properties of a non-entry (an uninlined device function) follow;
            // they are not the entry's, so stop attributing until the next one.
            auto it = std::find_if(entries.begin(), entries.end(), [&](auto& e) { return e.name == m[1]; });
            current = it == entries.end() ? k_none : static_cast<std::size_t>(it - entries.begin());
        } else if (current != k_none && std::regex_search(line, m, frame)) {
            entries[current].stack_bytes = std::stoi(m[1]);
            entries[current].spill_store_bytes = std::stoi(m[2]);
            entries[current].spill_load_bytes = std::stoi(m[3]);
        } else if (current != k_none && std::regex_search(line, m, used)) {
            EntryResources& e = entries[current];
            e.registers = std::stoi(m[1]);
            if (std::regex_search(line, m, barriers)) e.barriers = std::stoi(m[1]);
            if (std::regex_search(line, m, smem)) e.shared_bytes = std::stoi(m[1]);
        }
    }
}

Compiler::Compiler(fs::path cache_dir, fs::path dump_dir)
    : m_cache_dir(std::move(cache_dir)), m_dump_dir(std::move(dump_dir)) {
    // NVRTC keeps its own compute cache: when it serves a cubin, ptxas does
    // not run and its -v report (registers, spills) is missing from the log.
    // Ours replaces it, keyed on everything that matters, so switch it off.
    // It holds only if set before the CUDA driver initializes, which the
    // driver loader does as well; compile() checks that it held.
    ::setenv("CUDA_CACHE_DISABLE", "1", 1);
    for (const auto* dir : {&m_cache_dir, &m_dump_dir}) {
        if (dir->empty()) continue;
        std::error_code ec;
        fs::create_directories(*dir, ec);
        if (ec) throw IoError("cannot create " + dir->string() + ": " + ec.message());
    }
}

std::vector<std::string> Compiler::full_options(const CompileRequest& request) const {
    std::vector<std::string> options = {"--gpu-architecture=" + request.arch, "--std=c++17",
                                        "-Xptxas=-v"};
    for (const auto& dir : request.include_dirs) options.push_back("-I" + dir.string());
    options.insert(options.end(), request.options.begin(), request.options.end());
    return options;
}

std::string Compiler::cache_key(const CompileRequest& request) const {
    Sha256 hash;
    auto field = [&](std::string_view bytes) {
        hash.update(std::to_string(bytes.size())).update(":").update(bytes);
    };
    field(k_cache_format);
    field(nvrtc_version());
    field(request.arch);
    // Include folders differ between machines; their contents are what count.
    for (const auto& option : request.options) field(option);
    field(request.source);
    for (const auto& header : headers_in(request.include_dirs)) {
        field(header.filename().string());
        field(read_text_file(header));
    }
    return hash.hex_digest();
}

bool Compiler::load_cached(const std::string& key, CompileResult& result) const {
    if (m_cache_dir.empty()) return false;
    fs::path meta = m_cache_dir / (key + ".json");
    fs::path cubin = m_cache_dir / (key + ".cubin");
    std::error_code ec;
    if (!fs::exists(meta, ec) || !fs::exists(cubin, ec)) return false;
    try {
        auto json = nlohmann::json::parse(read_text_file(meta));
        std::string bytes = read_text_file(cubin);
        result.cubin.assign(bytes.begin(), bytes.end());
        result.log = json.at("log").get<std::string>();
        result.entries.clear();
        parse_ptxas_report(result.log, result.entries, result.global_bytes);
        result.ok = true;
        result.from_cache = true;
        return true;
    } catch (const std::exception&) {
        return false; // a damaged entry is a miss; the fresh compile overwrites it
    }
}

void Compiler::store_cached(const CompileResult& result) const {
    if (m_cache_dir.empty() || !result.ok) return;
    write_file(m_cache_dir / (result.key + ".cubin"), std::string(result.cubin.begin(), result.cubin.end()));
    nlohmann::json meta = {{"log", result.log}, {"options", result.full_options}};
    write_file(m_cache_dir / (result.key + ".json"), meta.dump(1));
}

void Compiler::dump(const CompileRequest& request, const CompileResult& result) const {
    if (m_dump_dir.empty()) return;
    write_file(m_dump_dir / (result.key + ".cu"), request.source);
    std::string options;
    for (const auto& option : result.full_options) options += option + "\n";
    write_file(m_dump_dir / (result.key + ".options"), options);
    write_file(m_dump_dir / (result.key + ".log"), result.log);
}

CompileResult Compiler::compile(const CompileRequest& request) const {
    CompileResult result;
    result.key = cache_key(request);
    result.full_options = full_options(request);
    if (load_cached(result.key, result)) {
        dump(request, result);
        return result;
    }

    auto start = std::chrono::steady_clock::now();
    nvrtcProgram raw = nullptr;
    NS_NVRTC_CHECK(nvrtcCreateProgram(&raw, request.source.c_str(), request.name.c_str(), 0, nullptr, nullptr));
    ProgramHandle program(raw);
    std::vector<const char*> argv;
    for (const auto& option : result.full_options) argv.push_back(option.c_str());
    nvrtcResult compiled = nvrtcCompileProgram(program.get(), static_cast<int>(argv.size()), argv.data());

    std::size_t log_size = 0;
    NS_NVRTC_CHECK(nvrtcGetProgramLogSize(program.get(), &log_size));
    std::string log(log_size, '\0');
    NS_NVRTC_CHECK(nvrtcGetProgramLog(program.get(), log.data()));
    while (!log.empty() && log.back() == '\0') log.pop_back();
    result.log = std::move(log);

    if (compiled == NVRTC_SUCCESS) {
        std::size_t cubin_size = 0;
        NS_NVRTC_CHECK(nvrtcGetCUBINSize(program.get(), &cubin_size));
        result.cubin.resize(cubin_size);
        NS_NVRTC_CHECK(nvrtcGetCUBIN(program.get(), result.cubin.data()));
        parse_ptxas_report(result.log, result.entries, result.global_bytes);
        result.ok = true;
        // A cubin with kernels but no report for them came from a cache, not
        // from ptxas: its resources, and the module-scope check, would read
        // as nothing. Never hand that on (or store it) as a compile.
        if (result.entries.empty() && request.source.find("__global__") != std::string::npos) {
            throw NvrtcError(fmt::format("{}: NVRTC returned a cubin without ptxas's resource report, so a compute "
                                         "cache served it; CUDA_CACHE_DISABLE=1 must be set before the CUDA driver "
                                         "initializes",
                                         request.name));
        }
    } else if (compiled != NVRTC_ERROR_COMPILATION) {
        throw NvrtcError(fmt::format("nvrtcCompileProgram({}) failed with {}", request.name,
                                     nvrtcGetErrorString(compiled)));
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    dump(request, result);
    store_cached(result);
    return result;
}

} // namespace nightshift::cuda
