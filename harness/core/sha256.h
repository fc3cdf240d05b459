// SHA-256 of bytes, as lowercase hex. Names kernels (source hashes) and keys
// the compile cache, so it must be a real cryptographic hash, not a fast one.
#pragma once

#include <string>
#include <string_view>

namespace nightshift {

class Sha256 {
public:
    Sha256();
    Sha256& update(std::string_view bytes);
    std::string hex_digest(); // finishes the hash; the object is spent afterwards

private:
    void compress(const unsigned char* block);
    unsigned int m_state[8];
    unsigned char m_buffer[64];
    unsigned long long m_length = 0; // bytes hashed so far
    std::size_t m_buffered = 0;
};

std::string sha256_hex(std::string_view bytes);

} // namespace nightshift
