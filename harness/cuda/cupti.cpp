#include "harness/cuda/cupti.h"

#include <dlfcn.h>

namespace nightshift::cuda {

std::optional<unsigned> cupti_version(std::string* why) {
    void* library = nullptr;
    for (const char* name : {"libcupti.so.13", "libcupti.so"}) {
        if ((library = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
    }
    if (!library) {
        const char* error = dlerror();
        if (why) *why = std::string("CUPTI not found: ") + (error ? error : "dlopen failed");
        return std::nullopt;
    }
    using GetVersion = int (*)(unsigned*); // CUptiResult cuptiGetVersion(uint32_t*)
    auto get_version = reinterpret_cast<GetVersion>(dlsym(library, "cuptiGetVersion"));
    unsigned version = 0;
    if (!get_version || get_version(&version) != 0) {
        if (why) *why = "CUPTI loaded but cuptiGetVersion failed";
        return std::nullopt;
    }
    return version;
}

} // namespace nightshift::cuda
