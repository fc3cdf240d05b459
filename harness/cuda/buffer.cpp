#include "harness/cuda/buffer.h"

#include "harness/cuda/driver_api.h"

#include <fmt/format.h>

namespace nightshift::cuda {

DeviceBuffer::DeviceBuffer(std::size_t bytes) : m_bytes(bytes) {
    // A zero-byte request still gets a real (small) allocation so the pointer
    // is valid to pass; kernels must not read it.
    NS_CU(cuMemAlloc, &m_ptr, bytes == 0 ? 16 : bytes);
}

DeviceBuffer::~DeviceBuffer() { release(); }

void DeviceBuffer::release() noexcept {
    if (m_ptr) driver().cuMemFree(m_ptr);
    m_ptr = 0;
    m_bytes = 0;
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept : m_ptr(other.m_ptr), m_bytes(other.m_bytes) {
    other.m_ptr = 0;
    other.m_bytes = 0;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
        release();
        m_ptr = other.m_ptr;
        m_bytes = other.m_bytes;
        other.m_ptr = 0;
        other.m_bytes = 0;
    }
    return *this;
}

void DeviceBuffer::upload(const void* host, std::size_t bytes) {
    if (bytes > m_bytes) throw Error(fmt::format("upload of {} bytes into a {}-byte buffer", bytes, m_bytes));
    if (bytes) NS_CU(cuMemcpyHtoD, m_ptr, host, bytes);
}

void DeviceBuffer::download(void* host, std::size_t bytes) const {
    if (bytes > m_bytes) throw Error(fmt::format("download of {} bytes from a {}-byte buffer", bytes, m_bytes));
    if (bytes) NS_CU(cuMemcpyDtoH, host, m_ptr, bytes);
}

void DeviceBuffer::fill_bytes(unsigned char value, CUstream stream) {
    if (m_bytes) NS_CU(cuMemsetD8Async, m_ptr, value, m_bytes, stream);
}

void DeviceBuffer::fill_bytes(unsigned char value, CUstream stream, std::size_t offset, std::size_t count) {
    if (offset + count > m_bytes) throw Error(fmt::format("fill of [{}, {}) in a {}-byte buffer", offset, offset + count, m_bytes));
    if (count) NS_CU(cuMemsetD8Async, m_ptr + offset, value, count, stream);
}

void DeviceBuffer::fill_u16(unsigned short value, CUstream stream) {
    if (m_bytes % 2) throw Error("fill_u16 on a buffer of odd size");
    if (m_bytes) NS_CU(cuMemsetD16Async, m_ptr, value, m_bytes / 2, stream);
}

} // namespace nightshift::cuda
