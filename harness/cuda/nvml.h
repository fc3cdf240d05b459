// NVML, loaded at run time (libnvidia-ml.so.1, as the driver is): the clocks
// a GPU runs at right now and why it is held below its maximum. Read only:
// nothing here sets a clock, a limit or a mode.
#pragma once

#include <optional>
#include <string>

namespace nightshift::cuda {

struct ClockSample {
    int sm_mhz = 0;
    int memory_mhz = 0;
    unsigned long long reasons = 0; // NVML clock-event ("throttle") reasons, a bitmask
};

// NVML's clock-event reason bits (nvml.h, nvmlClocksEventReason*).
namespace clock_reason {
inline constexpr unsigned long long gpu_idle = 0x1;
inline constexpr unsigned long long applications_clocks_setting = 0x2;
inline constexpr unsigned long long sw_power_cap = 0x4;
inline constexpr unsigned long long hw_slowdown = 0x8;
inline constexpr unsigned long long sync_boost = 0x10;
inline constexpr unsigned long long sw_thermal_slowdown = 0x20;
inline constexpr unsigned long long hw_thermal_slowdown = 0x40;
inline constexpr unsigned long long hw_power_brake_slowdown = 0x80;
inline constexpr unsigned long long display_clock_setting = 0x100;
} // namespace clock_reason

// True when the reasons say the GPU slowed itself down (power cap, thermal or
// hardware slowdown, power brake); idle and clock settings are not throttling.
bool throttled(unsigned long long reasons);
// "sw_power_cap, hw_slowdown" (empty for 0).
std::string describe_clock_reasons(unsigned long long reasons);

// One GPU, by PCI bus id (as the CUDA driver reports it). Without NVML, or
// without that GPU in it, sample() returns nullopt and why_unavailable() says
// why; nothing throws.
class ClockReader {
public:
    explicit ClockReader(const std::string& pci_bus_id);
    std::optional<ClockSample> sample() const;
    const std::string& why_unavailable() const { return m_why; }

private:
    void* m_device = nullptr; // nvmlDevice_t
    std::string m_why;
};

} // namespace nightshift::cuda
