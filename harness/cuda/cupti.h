// CUPTI, loaded at run time like the driver: the binary never links
// libcupti; it dlopens libcupti.so.13 and resolves every function it calls
// with dlsym, so it starts (and every CPU test passes) where CUPTI is absent.
//
// What the harness takes from CUPTI is kernel durations from activity
// records: the GPU's own start and end timestamps of every kernel, on every
// stream, with no host-side gap in them (events around a launch include the
// launch gaps between a candidate's kernels; these do not).
//
// CUPTI's headers stay inside cupti.cpp: this header carries no CUPTI type,
// so code outside harness/cuda sees only KernelRecord and KernelActivity.
#pragma once

#include "harness/core/error.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nightshift::cuda {

// A CUPTI call failed, CUPTI is missing, or its records cannot be trusted.
// code() is the CUptiResult of a failed call, 0 (CUPTI_SUCCESS) when the
// error did not come from a call (library missing, no driver, dropped records).
class CuptiError : public Error {
public:
    CuptiError(int code, const std::string& message) : Error(message), m_code(code) {}
    int code() const { return m_code; }

private:
    int m_code;
};

// A timed iteration in which no kernel but the harness's own ran: the work
// being timed enqueued nothing CUPTI saw. Not a CUPTI failure.
class NoCandidateKernelError : public Error {
public:
    using Error::Error;
};

// CUPTI's API version number, or nullopt with `why` filled when it is missing.
std::optional<unsigned> cupti_version(std::string* why = nullptr);

// True when libcupti loaded and has every function this build calls;
// otherwise `why` says what is missing. Needs neither a driver nor a GPU to
// answer (KernelActivity also needs the driver).
bool cupti_available(std::string* why = nullptr);

// "CUPTI_ERROR_X" (CUPTI's own text), even before CUPTI loaded ("CUptiResult N").
std::string describe_cupti_result(int code);

[[noreturn]] void throw_cupti_error(int code, const char* call, const char* file, int line);

// One kernel execution as CUPTI recorded it. Timestamps are the GPU's, in ns.
struct KernelRecord {
    std::string name; // the entry's name as launched (extern "C" names unmangled)
    unsigned long long start_ns = 0, end_ns = 0;
    unsigned stream_id = 0;
    unsigned correlation_id = 0;
};

// Collects CONCURRENT_KERNEL activity records between start() and stop():
// every kernel on every stream of the process, and grids launched from the
// device where CUPTI reports them (its CDP_KERNEL records, which
// CONCURRENT_KERNEL switches on). One collector at a time per process.
// CONCURRENT_KERNEL (not KERNEL) leaves concurrent kernels concurrent.
class KernelActivity {
public:
    // Throws CuptiError if CUPTI or the driver is unavailable, or another
    // collector is alive in this process.
    KernelActivity();
    ~KernelActivity(); // disables the activity kind if still enabled
    KernelActivity(const KernelActivity&) = delete;
    KernelActivity& operator=(const KernelActivity&) = delete;

    // Enables CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL and clears earlier records.
    void start();

    // Synchronizing the context (cuCtxSynchronize) first is the caller's job.
    // Flushes every buffer (forced), disables the kind and returns the records
    // sorted by start. Throws CuptiError when records were dropped, could not
    // be read, or carry no timestamps (CUPTI ran out of device memory).
    std::vector<KernelRecord> stop();

private:
    bool m_enabled = false;
};

// Splits the records of a timed run into iterations and returns each
// iteration's duration in µs. Every launch of `flush_name` opens an iteration:
// the records that start after the k-th flush and before the (k+1)-th belong
// to iteration k. Harness kernels (`flush_name`, `spin_name`) never count; an
// iteration's duration is (latest end - earliest start) of the others, over
// all streams. Records may come in any order. Kernels before the first flush
// belong to no iteration and are ignored; no flush at all gives an empty
// result. Throws NoCandidateKernelError for an iteration without a kernel of
// its own.
std::vector<double> iteration_durations_us(const std::vector<KernelRecord>& records, std::string_view flush_name,
                                           std::string_view spin_name);

namespace detail {
// Loads CUPTI from `library` alone (a test hook for the loader's
// explanations; the process-wide CUPTI is untouched). Empty when usable,
// otherwise why not.
std::string cupti_load_error(const std::string& library);
} // namespace detail

} // namespace nightshift::cuda

// One check macro for the CUPTI family: records the call, file and line.
// (CUPTI_SUCCESS is 0; cupti.cpp asserts it.)
#define NS_CUPTI_CHECK(call)                                                                      \
    do {                                                                                          \
        int ns_cupti_result_ = static_cast<int>(call);                                            \
        if (ns_cupti_result_ != 0)                                                                \
            ::nightshift::cuda::throw_cupti_error(ns_cupti_result_, #call, __FILE__, __LINE__);   \
    } while (0)
