// Weight quantization that host C++ and NVRTC device code compute identically,
// bit for bit. The device quantizes a model's bf16 weights in place
// (verifier/moe_decode/generate.cu); the host quantizes any slice the same way
// for the CPU reference and for tests. Like rng.h: plain C-style names with an
// ns_ prefix, no host headers under NVRTC.
//
// The formats (NsWeightFormat in kernels_seed/moe_decode/params.h), over one
// row of a weight matrix, "cols" being the reduction dimension (H for w_gate
// and w_up, I for w_down):
//
//   int8_row   one int8 code per weight; one float scale per row:
//              scale = absmax(row) / 127, code = round(w / scale) in [-127, 127].
//   fp8_e4m3   one e4m3 byte per weight (OCP FP8, "fn": no infinities, max 448);
//              one float scale per row: scale = absmax(row) / 448,
//              code = e4m3(w / scale), round to nearest even, saturating.
//   int4_g128  one signed 4-bit code per weight, two per byte (the even column
//              in the low nibble); one float scale per group of 128 columns
//              (the last group of a row may be shorter):
//              scale = absmax(group) / 7, code = round(w / scale) in [-7, 7].
//
// A weight's value is code * scale; a row or group of zeros has scale 0 and
// codes 0. Layouts, for a matrix [E, rows, cols]: codes [E, rows, cols] bytes
// (int4: [E, rows, cols/2]); scales [E, rows] (int4: [E, rows, groups],
// groups = ceil(cols / 128)).
//
// Bit-exactness: absmax is exact; the scale and w / scale are single IEEE
// divisions (correctly rounded on both sides); rounding to an integer is
// round-to-nearest-even on both sides; the e4m3 encoder works on exponent
// bits and multiplies only by powers of two. No FMA can form.
#ifndef NIGHTSHIFT_VERIFIER_QUANTIZE_H
#define NIGHTSHIFT_VERIFIER_QUANTIZE_H

#include "rng.h"

#ifndef __CUDACC_RTC__
#include <cmath>
#endif

#define NS_INT4_GROUP 128
#define NS_INT8_MAX 127.0f
#define NS_INT4_MAX 7.0f
#define NS_FP8_E4M3_MAX 448.0f

NS_HD float ns_abs(float v) { return ns_bits_float(ns_float_bits(v) & 0x7FFFFFFFu); }

NS_HD float ns_div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}

// Round to the nearest integer, ties to even (|v| well below 2^31).
NS_HD int ns_round_even(float v) {
#if defined(__CUDA_ARCH__)
    return __float2int_rn(v);
#else
    return (int)std::nearbyintf(v); // the default rounding mode: to nearest, ties to even
#endif
}

// 2^n as a float, for n in [-126, 127].
NS_HD float ns_pow2f(int n) { return ns_bits_float((unsigned int)(n + 127) << 23); }

// The code of w under `scale` in [-limit, limit]; 0 when the scale is 0.
NS_HD int ns_quantize_int(float w, float scale, int limit) {
    if (scale == 0.0f) return 0;
    int q = ns_round_even(ns_div_rn(w, scale));
    return q > limit ? limit : (q < -limit ? -limit : q);
}

// OCP FP8 E4M3 ("fn"): 1 sign, 4 exponent (bias 7), 3 mantissa bits; no
// infinities, 0x7F/0xFF are NaN, the largest finite value 448 (0x7E),
// subnormals m * 2^-9. Round to nearest even; magnitudes >= 448 saturate to 448.
NS_HD unsigned char ns_fp8_e4m3_encode(float v) {
    const unsigned int sign = (ns_float_bits(v) >> 24) & 0x80u;
    const float a = ns_abs(v);
    if (!(a < NS_FP8_E4M3_MAX)) return (unsigned char)(sign | 0x7Eu); // saturate (NaN too: inputs are finite)
    const int exponent = (int)((ns_float_bits(a) >> 23) & 0xFFu) - 127;
    if (exponent < -6) {
        // Subnormal range: quantum 2^-9; a result of 8 is the smallest normal, code 0x08.
        return (unsigned char)(sign | (unsigned int)ns_round_even(a * ns_pow2f(9)));
    }
    int m = ns_round_even(a * ns_pow2f(3 - exponent)); // in [8, 16]
    int e = exponent;
    if (m == 16) {
        m = 8;
        ++e;
    }
    unsigned int code = ((unsigned int)(e + 7) << 3) | (unsigned int)(m - 8);
    if (code > 0x7Eu) code = 0x7Eu;
    return (unsigned char)(sign | code);
}

NS_HD float ns_fp8_e4m3_decode(unsigned char c) {
    const int e = (c >> 3) & 0xF, m = c & 7;
    const float magnitude = e == 0 ? (float)m * ns_pow2f(-9) : (float)(8 + m) * ns_pow2f(e - 10);
    return (c & 0x80) ? -magnitude : magnitude;
}

// A signed 4-bit code from its nibble (two's complement).
NS_HD int ns_int4_decode(unsigned int nibble) { return (int)((nibble & 0xFu) ^ 0x8u) - 8; }

// The scale for a row or group with absolute maximum `absmax`, by format.
NS_HD float ns_quant_scale(float absmax, float code_max) { return ns_div_rn(absmax, code_max); }

#endif
