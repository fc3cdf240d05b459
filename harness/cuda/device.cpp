#include "harness/cuda/device.h"

#include "harness/cuda/driver_api.h"

#include <fmt/format.h>

namespace nightshift::cuda {
namespace {

int attribute(CUdevice device, CUdevice_attribute which) {
    int value = 0;
    NS_CU(cuDeviceGetAttribute, &value, which, device);
    return value;
}

} // namespace

std::string DeviceInfo::arch() const { return fmt::format("sm_{}{}", compute_major, compute_minor); }

int device_count() {
    int count = 0;
    NS_CU(cuDeviceGetCount, &count);
    return count;
}

std::string driver_version_string(int version) {
    return fmt::format("{}.{}", version / 1000, (version % 1000) / 10);
}

Device::Device(int ordinal) {
    int count = device_count();
    if (ordinal < 0 || ordinal >= count) {
        throw Error(fmt::format("GPU {} does not exist: the driver sees {} GPU(s)", ordinal, count));
    }
    NS_CU(cuDeviceGet, &m_device, ordinal);
    NS_CU(cuDevicePrimaryCtxRetain, &m_context, m_device);
    make_current();

    DeviceInfo& info = m_info;
    info.ordinal = ordinal;
    char name[256] = {};
    NS_CU(cuDeviceGetName, name, sizeof(name), m_device);
    info.name = name;
    char bus[64] = {};
    NS_CU(cuDeviceGetPCIBusId, bus, sizeof(bus), m_device);
    info.pci_bus_id = bus;
    info.compute_major = attribute(m_device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
    info.compute_minor = attribute(m_device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    info.sm_count = attribute(m_device, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
    info.l2_bytes = static_cast<std::size_t>(attribute(m_device, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE));
    info.persisting_l2_max_bytes =
        static_cast<std::size_t>(attribute(m_device, CU_DEVICE_ATTRIBUTE_MAX_PERSISTING_L2_CACHE_SIZE));
    info.max_threads_per_block = attribute(m_device, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
    info.max_shared_per_block_optin =
        attribute(m_device, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
    info.sm_clock_khz = attribute(m_device, CU_DEVICE_ATTRIBUTE_CLOCK_RATE);
    info.memory_clock_khz = attribute(m_device, CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE);
    info.memory_bus_bits = attribute(m_device, CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH);
    NS_CU(cuDeviceTotalMem, &info.total_memory_bytes, m_device);
    NS_CU(cuDriverGetVersion, &info.driver_version);
}

Device::~Device() {
    if (m_context) driver().cuDevicePrimaryCtxRelease(m_device);
}

void Device::make_current() const { NS_CU(cuCtxSetCurrent, m_context); }

void Device::synchronize() const { NS_CU(cuCtxSynchronize); }

std::size_t Device::free_memory_bytes() const {
    std::size_t free_bytes = 0, total_bytes = 0;
    NS_CU(cuMemGetInfo, &free_bytes, &total_bytes);
    return free_bytes;
}

} // namespace nightshift::cuda
