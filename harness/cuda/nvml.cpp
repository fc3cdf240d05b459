#include "harness/cuda/nvml.h"

#include <fmt/format.h>

#include <dlfcn.h>

#include <mutex>
#include <vector>

namespace nightshift::cuda {
namespace {

// The few NVML entry points used, with their C signatures (nvml.h is not a
// build dependency; these have been stable since NVML 2).
using NvmlReturn = int; // nvmlReturn_t, 0 = NVML_SUCCESS
using NvmlDevice = void*;
constexpr unsigned k_clock_sm = 1, k_clock_memory = 2; // nvmlClockType_t

struct Nvml {
    NvmlReturn (*init)() = nullptr;
    NvmlReturn (*device_by_pci_bus_id)(const char*, NvmlDevice*) = nullptr;
    NvmlReturn (*clock_info)(NvmlDevice, unsigned, unsigned*) = nullptr;
    NvmlReturn (*clock_reasons)(NvmlDevice, unsigned long long*) = nullptr;
    std::string error; // empty when loaded and initialized
};

const Nvml& nvml() {
    static Nvml loaded;
    static std::once_flag once;
    std::call_once(once, [] {
        void* library = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!library) {
            const char* why = dlerror();
            loaded.error = fmt::format("NVML not found (dlopen libnvidia-ml.so.1: {})", why ? why : "unknown");
            return;
        }
        auto symbol = [&](const char* name) { return dlsym(library, name); };
        loaded.init = reinterpret_cast<NvmlReturn (*)()>(symbol("nvmlInit_v2"));
        loaded.device_by_pci_bus_id =
            reinterpret_cast<NvmlReturn (*)(const char*, NvmlDevice*)>(symbol("nvmlDeviceGetHandleByPciBusId_v2"));
        loaded.clock_info = reinterpret_cast<NvmlReturn (*)(NvmlDevice, unsigned, unsigned*)>(
            symbol("nvmlDeviceGetClockInfo"));
        // Renamed in newer drivers; the old name stays as an alias in older ones.
        void* reasons = symbol("nvmlDeviceGetCurrentClocksEventReasons");
        if (!reasons) reasons = symbol("nvmlDeviceGetCurrentClocksThrottleReasons");
        loaded.clock_reasons = reinterpret_cast<NvmlReturn (*)(NvmlDevice, unsigned long long*)>(reasons);
        if (!loaded.init || !loaded.device_by_pci_bus_id || !loaded.clock_info || !loaded.clock_reasons) {
            loaded.error = "NVML lacks a function nightshift reads (init, device by PCI id, clocks, clock reasons)";
            return;
        }
        if (NvmlReturn r = loaded.init(); r != 0) loaded.error = fmt::format("nvmlInit_v2 failed (NVML error {})", r);
    });
    return loaded;
}

} // namespace

bool throttled(unsigned long long reasons) {
    using namespace clock_reason;
    return (reasons & (sw_power_cap | hw_slowdown | sw_thermal_slowdown | hw_thermal_slowdown |
                       hw_power_brake_slowdown)) != 0;
}

std::string describe_clock_reasons(unsigned long long reasons) {
    using namespace clock_reason;
    static const std::vector<std::pair<unsigned long long, const char*>> k_names = {
        {gpu_idle, "gpu_idle"},
        {applications_clocks_setting, "applications_clocks_setting"},
        {sw_power_cap, "sw_power_cap"},
        {hw_slowdown, "hw_slowdown"},
        {sync_boost, "sync_boost"},
        {sw_thermal_slowdown, "sw_thermal_slowdown"},
        {hw_thermal_slowdown, "hw_thermal_slowdown"},
        {hw_power_brake_slowdown, "hw_power_brake_slowdown"},
        {display_clock_setting, "display_clock_setting"}};
    std::string text;
    unsigned long long known = 0;
    for (const auto& [bit, name] : k_names) {
        known |= bit;
        if (reasons & bit) text += (text.empty() ? "" : ", ") + std::string(name);
    }
    if (reasons & ~known) text += fmt::format("{}other 0x{:x}", text.empty() ? "" : ", ", reasons & ~known);
    return text;
}

ClockReader::ClockReader(const std::string& pci_bus_id) {
    const Nvml& api = nvml();
    if (!api.error.empty()) {
        m_why = api.error;
        return;
    }
    NvmlDevice device = nullptr;
    if (NvmlReturn r = api.device_by_pci_bus_id(pci_bus_id.c_str(), &device); r != 0) {
        m_why = fmt::format("NVML has no GPU at PCI bus id {} (NVML error {})", pci_bus_id, r);
        return;
    }
    m_device = device;
}

std::optional<ClockSample> ClockReader::sample() const {
    if (!m_device) return std::nullopt;
    const Nvml& api = nvml();
    unsigned sm = 0, memory = 0;
    ClockSample s;
    if (api.clock_info(m_device, k_clock_sm, &sm) != 0 || api.clock_info(m_device, k_clock_memory, &memory) != 0 ||
        api.clock_reasons(m_device, &s.reasons) != 0) {
        return std::nullopt;
    }
    s.sm_mhz = static_cast<int>(sm);
    s.memory_mhz = static_cast<int>(memory);
    return s;
}

} // namespace nightshift::cuda
