// One GPU: its primary context (made current on the constructing thread) and
// what the harness needs to know about it.
#pragma once

#include <cuda.h>

#include <string>

namespace nightshift::cuda {

struct DeviceInfo {
    int ordinal = 0;
    std::string name;
    std::string pci_bus_id;
    int compute_major = 0;
    int compute_minor = 0;
    int sm_count = 0;
    std::size_t l2_bytes = 0;
    std::size_t persisting_l2_max_bytes = 0;
    std::size_t total_memory_bytes = 0;
    int max_threads_per_block = 0;
    int max_shared_per_block_optin = 0; // bytes a block may use after opting in
    int sm_clock_khz = 0;               // as the driver reports it; never changed by us
    int memory_clock_khz = 0;
    int memory_bus_bits = 0;
    int driver_version = 0;             // e.g. 13000

    std::string arch() const; // "sm_90"
};

// Retains device `ordinal`'s primary context for the object's life and makes
// it current. Throws NoDriverError without a driver, Error without the device.
class Device {
public:
    explicit Device(int ordinal = 0);
    ~Device();
    Device(const Device&) = delete;
    Device& operator=(const Device&) = delete;

    const DeviceInfo& info() const { return m_info; }
    void make_current() const;
    void synchronize() const;
    std::size_t free_memory_bytes() const;

private:
    CUdevice m_device = 0;
    CUcontext m_context = nullptr;
    DeviceInfo m_info;
};

int device_count();
std::string driver_version_string(int version); // 13000 -> "13.0"

} // namespace nightshift::cuda
