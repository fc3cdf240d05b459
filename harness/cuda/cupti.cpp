#include "harness/cuda/cupti.h"

#include "harness/cuda/driver_api.h"

#include <cupti.h>
#include <cupti_activity_deprecated.h>
#include <dlfcn.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <mutex>

namespace nightshift::cuda {
namespace {

static_assert(CUPTI_SUCCESS == 0, "NS_CUPTI_CHECK compares with 0");

// The CUPTI functions the harness calls. Add one here and it is loaded.
#define NS_CUPTI_FUNCTIONS(X)          \
    X(cuptiGetVersion)                 \
    X(cuptiGetResultString)            \
    X(cuptiActivityRegisterCallbacks)  \
    X(cuptiActivityEnable)             \
    X(cuptiActivityDisable)            \
    X(cuptiActivityFlushAll)           \
    X(cuptiActivityGetNextRecord)      \
    X(cuptiActivityGetNumDroppedRecords)

struct CuptiApi {
#define NS_DECLARE_POINTER(name) decltype(&::name) name = nullptr;
    NS_CUPTI_FUNCTIONS(NS_DECLARE_POINTER)
#undef NS_DECLARE_POINTER
};

// The CONCURRENT_KERNEL record of CUPTI 13.0. CUPTI writes the record version
// of the library that runs, not of the headers we compiled with; the fields
// read here have sat at the same offsets from CUpti_ActivityKernel4 to 10, so
// a library writing any of those versions yields them correctly.
using KernelActivityRecord = CUpti_ActivityKernel10;
#define NS_SAME_OFFSET(field) \
    static_assert(offsetof(KernelActivityRecord, field) == offsetof(CUpti_ActivityKernel4, field), #field)
NS_SAME_OFFSET(kind);
NS_SAME_OFFSET(start);
NS_SAME_OFFSET(end);
NS_SAME_OFFSET(streamId);
NS_SAME_OFFSET(correlationId);
NS_SAME_OFFSET(name);
#undef NS_SAME_OFFSET

// Grids launched from the device (dynamic parallelism) come, where CUPTI
// traces them at all, as CDP_KERNEL records, enabled with CONCURRENT_KERNEL.
using CdpKernelActivityRecord = CUpti_ActivityCdpKernel;

template <typename Record>
KernelRecord kernel_record(const CUpti_Activity* activity) {
    const auto* record = reinterpret_cast<const Record*>(activity);
    // The name points into CUPTI's memory: copy it.
    return KernelRecord{.name = record->name ? record->name : "",
                        .start_ns = record->start,
                        .end_ns = record->end,
                        .stream_id = record->streamId,
                        .correlation_id = record->correlationId};
}

struct LoadedCupti {
    CuptiApi api;
    std::string error; // empty when loading succeeded
};

LoadedCupti load(const std::vector<std::string>& names) {
    LoadedCupti loaded;
    void* library = nullptr;
    std::string name;
    std::string tried;
    for (const std::string& candidate : names) {
        if ((library = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL))) {
            name = candidate;
            break;
        }
        const char* why = dlerror();
        tried += fmt::format("{}{}", tried.empty() ? "" : "; ", why ? why : candidate + ": dlopen failed");
    }
    if (!library) {
        loaded.error = "CUPTI not found: " + tried;
        return loaded;
    }
    std::string missing;
#define NS_RESOLVE(function)                                                                     \
    loaded.api.function = reinterpret_cast<decltype(loaded.api.function)>(dlsym(library, #function)); \
    if (!loaded.api.function) missing += std::string(missing.empty() ? "" : ", ") + #function;
    NS_CUPTI_FUNCTIONS(NS_RESOLVE)
#undef NS_RESOLVE
    if (!missing.empty()) {
        loaded.error = fmt::format("{} lacks CUPTI functions this build needs: {}", name, missing);
        loaded.api = {};
        dlclose(library);
    }
    return loaded;
}

const LoadedCupti& loaded_cupti() {
    static const LoadedCupti instance = load({"libcupti.so.13", "libcupti.so"});
    return instance;
}

const CuptiApi& cupti_api() {
    const LoadedCupti& loaded = loaded_cupti();
    if (!loaded.error.empty()) throw CuptiError(0, loaded.error);
    return loaded.api;
}

// Shorthand for calling a loaded CUPTI function: NS_CUPTI(cuptiActivityEnable, kind).
#define NS_CUPTI(name, ...) NS_CUPTI_CHECK(cupti_api().name(__VA_ARGS__))

// Records arrive in CUPTI's callbacks, on CUPTI's thread or inside
// cuptiActivityFlushAll, so the collector is process-wide. It is never
// destroyed: CUPTI may hand back a buffer while the process exits.
struct Collector {
    std::atomic<bool> claimed{false}; // a KernelActivity exists
    std::mutex mutex;
    std::vector<KernelRecord> records;
    std::size_t dropped = 0;
    std::string error; // the first failure inside a callback
};

Collector& collector() {
    static Collector* instance = new Collector;
    return *instance;
}

// CUPTI asks for 8-byte-aligned buffers; 8 MB holds ~40,000 kernel records.
constexpr std::size_t k_buffer_bytes = std::size_t{8} << 20;
constexpr std::size_t k_buffer_alignment = 8;

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
    *buffer = static_cast<uint8_t*>(std::aligned_alloc(k_buffer_alignment, k_buffer_bytes));
    *size = *buffer ? k_buffer_bytes : 0; // no buffer: CUPTI drops records, and counts them
    *max_records = 0;                     // as many as fit
}

// Must not throw: it is called from C.
void CUPTIAPI buffer_completed(CUcontext context, uint32_t stream_id, uint8_t* buffer, size_t size,
                               size_t valid_size) {
    Collector& c = collector();
    const CuptiApi& api = loaded_cupti().api; // set: callbacks are registered only once it loaded
    try {
        std::vector<KernelRecord> parsed;
        std::string error;
        CUpti_Activity* record = nullptr;
        while (buffer && valid_size > 0) {
            CUptiResult result = api.cuptiActivityGetNextRecord(buffer, valid_size, &record);
            if (result == CUPTI_ERROR_MAX_LIMIT_REACHED) break; // the buffer's end
            if (result != CUPTI_SUCCESS) {
                error = "reading CUPTI's activity buffer failed: " + describe_cupti_result(result);
                break;
            }
            if (record->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL)
                parsed.push_back(kernel_record<KernelActivityRecord>(record));
            else if (record->kind == CUPTI_ACTIVITY_KIND_CDP_KERNEL)
                parsed.push_back(kernel_record<CdpKernelActivityRecord>(record));
        }
        size_t dropped = 0;
        api.cuptiActivityGetNumDroppedRecords(context, stream_id, &dropped);
        std::lock_guard lock(c.mutex);
        c.records.insert(c.records.end(), std::make_move_iterator(parsed.begin()),
                         std::make_move_iterator(parsed.end()));
        c.dropped += dropped;
        if (c.error.empty()) c.error = error;
    } catch (...) {
        std::lock_guard lock(c.mutex);
        if (c.error.empty()) c.error = "out of memory while copying CUPTI's kernel records";
    }
    std::free(buffer);
}

void register_callbacks_once() {
    static std::mutex mutex;
    static bool registered = false;
    std::lock_guard lock(mutex);
    if (registered) return;
    NS_CUPTI(cuptiActivityRegisterCallbacks, buffer_requested, buffer_completed);
    registered = true;
}

bool kernel_less(const KernelRecord& a, const KernelRecord& b) {
    if (a.start_ns != b.start_ns) return a.start_ns < b.start_ns;
    if (a.end_ns != b.end_ns) return a.end_ns < b.end_ns;
    return a.correlation_id < b.correlation_id;
}

} // namespace

std::optional<unsigned> cupti_version(std::string* why) {
    const LoadedCupti& loaded = loaded_cupti();
    if (!loaded.error.empty()) {
        if (why) *why = loaded.error;
        return std::nullopt;
    }
    uint32_t version = 0;
    CUptiResult result = loaded.api.cuptiGetVersion(&version);
    if (result != CUPTI_SUCCESS) {
        if (why) *why = "CUPTI loaded but cuptiGetVersion failed: " + describe_cupti_result(result);
        return std::nullopt;
    }
    return version;
}

bool cupti_available(std::string* why) {
    const LoadedCupti& loaded = loaded_cupti();
    if (why) *why = loaded.error;
    return loaded.error.empty();
}

std::string describe_cupti_result(int code) {
    const LoadedCupti& loaded = loaded_cupti();
    const char* text = nullptr;
    if (loaded.api.cuptiGetResultString &&
        loaded.api.cuptiGetResultString(static_cast<CUptiResult>(code), &text) != CUPTI_SUCCESS)
        text = nullptr;
    return text ? std::string(text) : fmt::format("CUptiResult {}", code);
}

void throw_cupti_error(int code, const char* call, const char* file, int line) {
    throw CuptiError(code, fmt::format("{} failed with {} ({}:{})", call, describe_cupti_result(code), file, line));
}

KernelActivity::KernelActivity() {
    std::string why;
    if (!cupti_available(&why)) throw CuptiError(0, why);
    // CUPTI answers without a driver, but only with CUPTI_ERROR_UNKNOWN.
    if (!driver_available(&why)) throw CuptiError(0, "CUPTI needs the CUDA driver: " + why);
    if (collector().claimed.exchange(true))
        throw CuptiError(0, "another KernelActivity is collecting in this process (CUPTI's activity records are "
                            "process-wide: one collector at a time)");
    try {
        register_callbacks_once();
    } catch (...) {
        collector().claimed = false;
        throw;
    }
}

KernelActivity::~KernelActivity() {
    const CuptiApi& api = loaded_cupti().api;
    // Errors are ignored: after a fault the context is gone and the error
    // that matters was reported already.
    if (m_enabled) {
        api.cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
        api.cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED); // no buffer of ours arrives later
    }
    Collector& c = collector();
    {
        std::lock_guard lock(c.mutex);
        c.records.clear();
        c.records.shrink_to_fit();
    }
    c.claimed = false;
}

void KernelActivity::start() {
    if (m_enabled) throw CuptiError(0, "KernelActivity::start() while already collecting");
    Collector& c = collector();
    {
        std::lock_guard lock(c.mutex);
        c.records.clear();
        c.dropped = 0;
        c.error.clear();
    }
    NS_CUPTI(cuptiActivityEnable, CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    m_enabled = true;
}

std::vector<KernelRecord> KernelActivity::stop() {
    if (!m_enabled) throw CuptiError(0, "KernelActivity::stop() without start()");
    // Flush before disabling (everything completed is delivered) and after
    // (anything recorded while the kind was switched off).
    NS_CUPTI(cuptiActivityFlushAll, CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    NS_CUPTI(cuptiActivityDisable, CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
    m_enabled = false;
    NS_CUPTI(cuptiActivityFlushAll, CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);

    Collector& c = collector();
    std::vector<KernelRecord> records;
    std::size_t dropped = 0;
    std::string error;
    {
        std::lock_guard lock(c.mutex);
        records.swap(c.records);
        dropped = c.dropped;
        error = c.error;
    }
    if (!error.empty()) throw CuptiError(0, error);
    if (dropped > 0) throw CuptiError(0, fmt::format("CUPTI dropped {} kernel records (no buffer space)", dropped));
    auto untimed = std::count_if(records.begin(), records.end(), [](const KernelRecord& r) {
        return r.start_ns == 0 || r.end_ns < r.start_ns;
    });
    if (untimed > 0)
        throw CuptiError(0, fmt::format("CUPTI has no timestamps for {} of {} kernels (out of device memory for "
                                        "them, or the context was not synchronized before stop())",
                                        untimed, records.size()));
    std::sort(records.begin(), records.end(), kernel_less);
    return records;
}

std::vector<double> iteration_durations_us(const std::vector<KernelRecord>& records, std::string_view flush_name,
                                           std::string_view spin_name) {
    std::vector<const KernelRecord*> sorted;
    sorted.reserve(records.size());
    for (const KernelRecord& r : records) sorted.push_back(&r);
    // At equal starts the flush goes first, so a kernel that starts with it
    // belongs to the iteration the flush opens.
    std::stable_sort(sorted.begin(), sorted.end(), [&](const KernelRecord* a, const KernelRecord* b) {
        if (a->start_ns != b->start_ns) return a->start_ns < b->start_ns;
        return (a->name == flush_name) > (b->name == flush_name);
    });

    std::vector<double> durations;
    bool in_iteration = false;
    bool any = false;
    unsigned long long first_start = 0, last_end = 0;
    auto close_iteration = [&]() {
        if (!any)
            throw NoCandidateKernelError(fmt::format(
                "timed iteration {} (counting warm-ups) ran no kernel but the harness's own: the timed work "
                "enqueued nothing CUPTI saw as a kernel",
                durations.size()));
        durations.push_back(last_end > first_start ? static_cast<double>(last_end - first_start) / 1000.0 : 0.0);
    };
    for (const KernelRecord* r : sorted) {
        if (r->name == flush_name) {
            if (in_iteration) close_iteration();
            in_iteration = true;
            any = false;
            continue;
        }
        if (!in_iteration || r->name == spin_name) continue;
        first_start = any ? std::min(first_start, r->start_ns) : r->start_ns;
        last_end = any ? std::max(last_end, r->end_ns) : r->end_ns;
        any = true;
    }
    if (in_iteration) close_iteration();
    return durations;
}

namespace detail {
std::string cupti_load_error(const std::string& library) { return load({library}).error; }
} // namespace detail

} // namespace nightshift::cuda
