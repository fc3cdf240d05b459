// The CUDA driver API, loaded at run time. The binary never links libcuda:
// it dlopens libcuda.so.1 (as PyTorch does), so it starts on machines with no
// GPU driver and GPU commands say plainly that none was found.
//
// Every entry point is resolved with cuGetProcAddress for the CUDA version of
// the headers we compiled against, so each pointer has exactly the ABI its
// declaration in cuda.h promises.
#pragma once

#include "harness/core/error.h"

#include <cuda.h>

#include <string>

namespace nightshift::cuda {

// The driver functions the harness uses. Add one here and it is loaded.
#define NS_CUDA_DRIVER_FUNCTIONS(X) \
    X(cuInit)                       \
    X(cuDriverGetVersion)           \
    X(cuGetErrorName)               \
    X(cuGetErrorString)             \
    X(cuDeviceGet)                  \
    X(cuDeviceGetCount)             \
    X(cuDeviceGetName)              \
    X(cuDeviceGetAttribute)         \
    X(cuDeviceTotalMem)             \
    X(cuDeviceGetPCIBusId)          \
    X(cuDevicePrimaryCtxRetain)     \
    X(cuDevicePrimaryCtxRelease)    \
    X(cuCtxSetCurrent)              \
    X(cuCtxSynchronize)             \
    X(cuCtxResetPersistingL2Cache)  \
    X(cuCtxSetLimit)                \
    X(cuMemGetInfo)                 \
    X(cuMemAlloc)                   \
    X(cuMemFree)                    \
    X(cuMemcpyHtoD)                 \
    X(cuMemcpyDtoH)                 \
    X(cuMemcpyDtoDAsync)            \
    X(cuMemsetD8Async)              \
    X(cuMemsetD16Async)             \
    X(cuModuleLoadData)             \
    X(cuModuleUnload)               \
    X(cuModuleGetFunction)          \
    X(cuFuncGetAttribute)           \
    X(cuFuncSetAttribute)           \
    X(cuLaunchKernel)               \
    X(cuLaunchKernelEx)             \
    X(cuStreamCreate)               \
    X(cuStreamDestroy)              \
    X(cuStreamSynchronize)          \
    X(cuStreamQuery)                \
    X(cuEventCreate)                \
    X(cuEventDestroy)               \
    X(cuEventRecord)                \
    X(cuEventSynchronize)           \
    X(cuEventElapsedTime)

struct DriverApi {
#define NS_DECLARE_POINTER(name) decltype(&::name) name = nullptr;
    NS_CUDA_DRIVER_FUNCTIONS(NS_DECLARE_POINTER)
#undef NS_DECLARE_POINTER
};

// No usable driver on this machine (library missing, or cuInit failed).
class NoDriverError : public Error {
public:
    using Error::Error;
};

// A driver call returned an error; the message names the call, file and line.
class DriverError : public Error {
public:
    DriverError(CUresult code, const std::string& message) : Error(message), m_code(code) {}
    CUresult code() const { return m_code; }
    // The driver refused a launch's configuration (an invalid value, or more
    // resources than a block may have): nothing ran and the context is fine,
    // so it is the kernel's fault, not the GPU's.
    bool launch_refused() const {
        return m_code == CUDA_ERROR_INVALID_VALUE || m_code == CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES;
    }

private:
    CUresult m_code;
};

// Loads the driver once (thread-safe) and calls cuInit. Throws NoDriverError.
const DriverApi& driver();

// True when driver() would succeed; otherwise `why` says what is missing.
bool driver_available(std::string* why = nullptr);

// "CUDA_ERROR_X: description" for a code, even before the driver loaded.
std::string describe(CUresult code);

[[noreturn]] void throw_driver_error(CUresult code, const char* call, const char* file, int line);

} // namespace nightshift::cuda

// One check macro for the driver API family: records the call, file and line.
#define NS_CU_CHECK(call)                                                                  \
    do {                                                                                   \
        CUresult ns_cu_result_ = (call);                                                   \
        if (ns_cu_result_ != CUDA_SUCCESS)                                                 \
            ::nightshift::cuda::throw_driver_error(ns_cu_result_, #call, __FILE__, __LINE__); \
    } while (0)

// Shorthand for calling a loaded driver function: NS_CU(cuMemAlloc, &ptr, bytes).
#define NS_CU(name, ...) NS_CU_CHECK(::nightshift::cuda::driver().name(__VA_ARGS__))
