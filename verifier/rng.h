// Counter-based random numbers that host C++ and NVRTC device code compute
// identically, bit for bit. The device fills multi-GB weight tensors in place
// (verifier/moe_decode/generate.cu) and the host regenerates any slice of them
// for the CPU reference without copying anything back: both sides call the same
// pure function of (seed, stream, index).
//
// Plain C-style names with an ns_ prefix and no namespace, like params.h,
// because this header is compiled by NVRTC with no host headers at all.
//
// Bit-exactness rules followed here: integer arithmetic for everything that
// decides a value; the only float operations are an int->float conversion and
// one multiply by a power of two, both exact for the documented ranges, so
// neither FMA contraction, flush-to-zero nor the rounding mode can change a bit.
#ifndef NIGHTSHIFT_VERIFIER_RNG_H
#define NIGHTSHIFT_VERIFIER_RNG_H

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define NS_HD __host__ __device__ __forceinline__
#else
#define NS_HD inline
#endif

#ifndef __CUDACC_RTC__
#include <cstring>
#endif

// Same typedef as kernels_seed/moe_decode/params.h (a repeated identical
// typedef is legal C++), so this header does not depend on an op.
typedef unsigned short ns_bf16;

// One stream per tensor, so that two tensors of one problem never share
// random numbers even at equal flat indices. Values are persisted (they decide
// every synthetic input ever verified): never renumber.
enum NsRngStream {
    NS_STREAM_X = 1,
    NS_STREAM_W_GATE = 2,
    NS_STREAM_W_UP = 3,
    NS_STREAM_W_DOWN = 4,
    NS_STREAM_ROUTING = 5
};

// The splitmix64 output function (Steele, Lea, Flood 2014, constants from
// Stafford's "Mix13" variant as used by java.util.SplittableRandom): a
// bijection on 64 bits with full avalanche.
NS_HD unsigned long long ns_rng_fmix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// 64 random bits for element `index` of `stream` under `seed`.
// The key depends on (seed, stream) only, so in a grid-stride loop the
// compiler hoists it and each element costs one finalizer. The element then
// follows splitmix64 exactly: finalize(key + (index + 1) * gamma), where gamma
// 0x9E3779B97F4A7C15 = 2^64 / golden ratio (odd, so index -> state is a
// bijection). The stream is first multiplied by another odd constant with
// well-spread bits, 0xD1B54A32D192ED03, and finalized, so small stream ids
// 1..5 give unrelated keys; xor-ing the seed into that and finalizing again
// keeps seed -> key one-to-one for a fixed stream. The result for seed 0,
// stream 0 is plain splitmix64 seeded with 0 (its key is 0), a handy check.
NS_HD unsigned long long ns_rng_u64(unsigned long long seed, unsigned int stream, unsigned long long index) {
    const unsigned long long key =
        ns_rng_fmix64(seed ^ ns_rng_fmix64((unsigned long long)stream * 0xD1B54A32D192ED03ULL));
    return ns_rng_fmix64(key + (index + 1ULL) * 0x9E3779B97F4A7C15ULL);
}

NS_HD unsigned int ns_float_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    unsigned int u;
    std::memcpy(&u, &f, sizeof u);
    return u;
#endif
}

NS_HD float ns_bits_float(unsigned int u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
#endif
}

// bf16 is the top half of a float, so widening is exact.
NS_HD float ns_bf16_to_float(ns_bf16 bits) {
    return ns_bits_float((unsigned int)bits << 16);
}

// Round to nearest, ties to even, on the bits: adding 0x7FFF plus the lowest
// kept bit carries into the kept half exactly when the dropped half is above
// one half, or equal to it with an odd kept half. Overflow rounds to infinity
// as IEEE requires. NaN is handled first because the same addition would turn
// a NaN with a small payload into infinity (or a large one into -0); its sign
// is kept and the quiet bit set.
NS_HD ns_bf16 ns_float_to_bf16(float f) {
    const unsigned int u = ns_float_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (ns_bf16)((u >> 16) | 0x0040u);
    const unsigned int rounding = 0x7FFFu + ((u >> 16) & 1u);
    return (ns_bf16)((u + rounding) >> 16);
}

// A bell-shaped bf16 for element `index`: the sum of the four 16-bit lanes of
// ns_rng_u64, centred, scaled by 2^(scale_log2 - 16), rounded to bf16.
//
// The sum of four uniforms on {0..65535} has mean 131070 and variance
// 4 * (65536^2 - 1) / 12 ~= 2^32 / 3; subtracting 131070 (not 2^17) makes the
// integer exactly symmetric about zero, in [-131070, 131070], so the mean is
// exactly 0. The standard deviation is 2^16 / sqrt(3), so after scaling it is
// about 0.577 * 2^scale_log2 (bf16 rounding changes it by well under 0.1%),
// and |value| <= 2^(scale_log2 + 1). Four uniforms give a smooth, bounded
// (Irwin-Hall) bell: no outliers to blow up a reference, no log/sqrt/cos
// whose last bit could differ between the host libm and the device.
//
// Exactness: |v| < 2^17 converts to float exactly; the scale is a power of two
// assembled from exponent bits, so the product is exact whenever it is a
// normal float, which holds for scale_log2 in [NS_RNG_MIN_SCALE_LOG2,
// NS_RNG_MAX_SCALE_LOG2] (at 127 the largest values would round up to
// infinity). Outside that range the exponent field is clamped, so the result
// stays deterministic but is no longer v * 2^(scale_log2-16); host callers
// validate the range instead.
#define NS_RNG_MIN_SCALE_LOG2 (-110)
#define NS_RNG_MAX_SCALE_LOG2 126

NS_HD ns_bf16 ns_rng_bf16(unsigned long long seed, unsigned int stream, unsigned long long index, int scale_log2) {
    const unsigned long long r = ns_rng_u64(seed, stream, index);
    const int sum =
        (int)(r & 0xFFFFu) + (int)((r >> 16) & 0xFFFFu) + (int)((r >> 32) & 0xFFFFu) + (int)((r >> 48) & 0xFFFFu);
    const int centred = sum - 131070;
    int biased_exponent = scale_log2 - 16 + 127;
    biased_exponent = biased_exponent < 1 ? 1 : (biased_exponent > 254 ? 254 : biased_exponent);
    const float scale = ns_bits_float((unsigned int)biased_exponent << 23);
    return ns_float_to_bf16((float)centred * scale);
}

#endif
