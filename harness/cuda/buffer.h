// Device memory owned by an object. Copies are synchronous unless they take a
// stream; sizes are checked so a short host vector is an error, not a
// silent partial copy.
#pragma once

#include <cuda.h>

#include <cstddef>
#include <vector>

namespace nightshift::cuda {

class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(std::size_t bytes);
    ~DeviceBuffer();
    DeviceBuffer(DeviceBuffer&& other) noexcept;
    DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    CUdeviceptr ptr() const { return m_ptr; }
    std::size_t bytes() const { return m_bytes; }
    // A raw pointer value for a params struct shared with device code.
    template <typename T> T* as() const { return reinterpret_cast<T*>(m_ptr); }

    void upload(const void* host, std::size_t bytes);
    void download(void* host, std::size_t bytes) const;
    template <typename T> void upload(const std::vector<T>& host) { upload(host.data(), host.size() * sizeof(T)); }
    template <typename T> std::vector<T> download() const {
        std::vector<T> host(m_bytes / sizeof(T));
        download(host.data(), host.size() * sizeof(T));
        return host;
    }
    void fill_bytes(unsigned char value, CUstream stream);
    // Fills `count` bytes from `offset` on.
    void fill_bytes(unsigned char value, CUstream stream, std::size_t offset, std::size_t count);
    void fill_u16(unsigned short value, CUstream stream); // bytes must be even

private:
    void release() noexcept;
    CUdeviceptr m_ptr = 0;
    std::size_t m_bytes = 0;
};

} // namespace nightshift::cuda
