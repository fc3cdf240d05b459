#include "harness/cuda/driver_api.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdlib>
#include <mutex>

namespace nightshift::cuda {
namespace {

struct LoadedDriver {
    DriverApi api;
    std::string error; // empty when loading succeeded
};

LoadedDriver load() {
    LoadedDriver loaded;
    // The compute cache is switched off before the driver initializes: set
    // later, it does not hold, and NVRTC then serves a cubin it has built
    // before (the same PTX: most kernels do not use T) without running ptxas,
    // so the log has no resource report and a kernel's registers, spills and
    // module-scope variables read as none. The compiler sets it too, for
    // processes that compile before they touch the driver or never do.
    ::setenv("CUDA_CACHE_DISABLE", "1", 1);
    void* library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char* why = dlerror();
        loaded.error = fmt::format("no CUDA driver found (dlopen libcuda.so.1: {})", why ? why : "unknown");
        return loaded;
    }
    using GetProcAddress = CUresult (*)(const char*, void**, int, cuuint64_t, CUdriverProcAddressQueryResult*);
    auto get_proc = reinterpret_cast<GetProcAddress>(dlsym(library, "cuGetProcAddress_v2"));
    if (!get_proc) {
        loaded.error = "the CUDA driver is too old: it has no cuGetProcAddress_v2 (need a CUDA 12+ driver)";
        return loaded;
    }
    std::string missing;
#define NS_RESOLVE(name)                                                                          \
    {                                                                                              \
        void* pointer = nullptr;                                                                   \
        CUdriverProcAddressQueryResult status{};                                                   \
        if (get_proc(#name, &pointer, CUDA_VERSION, CU_GET_PROC_ADDRESS_DEFAULT, &status) !=      \
                CUDA_SUCCESS || !pointer)                                                          \
            missing += std::string(missing.empty() ? "" : ", ") + #name;                           \
        loaded.api.name = reinterpret_cast<decltype(loaded.api.name)>(pointer);                    \
    }
    NS_CUDA_DRIVER_FUNCTIONS(NS_RESOLVE)
#undef NS_RESOLVE
    if (!missing.empty()) {
        loaded.error = "the CUDA driver lacks functions this build needs (CUDA " +
                       std::to_string(CUDA_VERSION) + " API): " + missing;
        return loaded;
    }
    CUresult init = loaded.api.cuInit(0);
    if (init != CUDA_SUCCESS) {
        const char* name = nullptr;
        loaded.api.cuGetErrorName(init, &name);
        loaded.error = fmt::format("the CUDA driver loaded but cuInit failed: {} (no usable GPU?)",
                                   name ? name : std::to_string(init));
    }
    return loaded;
}

const LoadedDriver& loaded_driver() {
    static const LoadedDriver instance = load();
    return instance;
}

} // namespace

const DriverApi& driver() {
    const LoadedDriver& loaded = loaded_driver();
    if (!loaded.error.empty()) throw NoDriverError(loaded.error);
    return loaded.api;
}

bool driver_available(std::string* why) {
    const LoadedDriver& loaded = loaded_driver();
    if (why) *why = loaded.error;
    return loaded.error.empty();
}

std::string describe(CUresult code) {
    const LoadedDriver& loaded = loaded_driver();
    const char* name = nullptr;
    const char* text = nullptr;
    if (loaded.api.cuGetErrorName) loaded.api.cuGetErrorName(code, &name);
    if (loaded.api.cuGetErrorString) loaded.api.cuGetErrorString(code, &text);
    return fmt::format("{}: {}", name ? name : fmt::format("CUresult {}", static_cast<int>(code)),
                       text ? text : "no description");
}

void throw_driver_error(CUresult code, const char* call, const char* file, int line) {
    throw DriverError(code, fmt::format("{} failed with {} ({}:{})", call, describe(code), file, line));
}

} // namespace nightshift::cuda
