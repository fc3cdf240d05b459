// fill_bf16: synthetic bf16 tensors generated in place on the device.
//
// What it computes: out[i] = ns_rng_bf16(seed, stream, i, scale_log2) for
// i in [0, n): a bell-shaped value with std ~0.577 * 2^scale_log2 that is a
// pure function of its flat index (verifier/rng.h). The host regenerates any
// slice with the same call (problem.cpp), so the CPU reference never copies a
// multi-GB weight tensor back, and the inputs of any verification can be
// rebuilt from (seed, stream, scale) alone.
//
// Parallel strategy: a grid-stride loop, one element per thread per step.
// The (seed, stream) key is loop-invariant and hoisted, so each element is one
// 64-bit finalizer and integer rounding: far cheaper than the 2-byte store
// it feeds, so no vectorization is attempted.
//
// Launch rule: any 1-D grid and block, e.g. block=(256),
// grid=(min(cdiv(n, 256), 65536)). The values do not depend on the launch.
// Streams and scales per tensor: see verifier/moe_decode/problem.h.
//
// Exactness: integer arithmetic plus one exact float multiply by a power of
// two; it gives the host's bits with or without --fmad=false and --ftz.
#include "rng.h"
#include "params.h"

extern "C" __global__ void fill_bf16(ns_bf16* out, unsigned long long n, unsigned long long seed, unsigned int stream,
                                     int scale_log2) {
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = ns_rng_bf16(seed, stream, i, scale_log2);
}

// quantize_rows: one matrix of `rows` rows of `cols` bf16 weights (rows
// counted over all experts) into `format`, exactly as quantize.h defines it
// and bit for bit as the host's quantize_matrix (quantized.cpp).
//
// Parallel strategy: one warp per row (int8_row, fp8_e4m3) or per row and
// group of 128 columns in turn (int4_g128), grid-stride over rows: lanes
// stride the columns for the absmax, a butterfly max reduces it (max is exact
// and order-free), then every lane encodes its columns. int4 lanes own 4
// consecutive columns of a group (2 output bytes), so no byte is shared.
//
// Launch rule: block=(256), any grid, e.g. 8 blocks per SM.
#include "quantize.h"

__device__ __forceinline__ float ns_warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, offset));
    return v;
}

extern "C" __global__ void quantize_rows(const ns_bf16* w, unsigned long long rows, int cols, int format,
                                         unsigned char* codes, float* scales) {
    const int lane = threadIdx.x & 31;
    const unsigned long long warps = (unsigned long long)gridDim.x * (blockDim.x >> 5);
    for (unsigned long long r = (unsigned long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < rows;
         r += warps) {
        const ns_bf16* row = w + r * cols;
        if (format == NS_FMT_INT4_G128) {
            const int groups = (cols + NS_INT4_GROUP - 1) / NS_INT4_GROUP;
            for (int g = 0; g < groups; ++g) {
                const int c0 = g * NS_INT4_GROUP + 4 * lane;
                const int end = min(cols, (g + 1) * NS_INT4_GROUP);
                float v[4], absmax = 0.0f;
                for (int j = 0; j < 4; ++j) {
                    v[j] = c0 + j < end ? ns_bf16_to_float(row[c0 + j]) : 0.0f;
                    absmax = fmaxf(absmax, ns_abs(v[j]));
                }
                absmax = ns_warp_max(absmax);
                const float scale = ns_quant_scale(absmax, NS_INT4_MAX);
                if (lane == 0) scales[r * groups + g] = scale;
                // cols is even, so a pair starting inside the row ends inside it.
                for (int j = 0; j < 4; j += 2) {
                    if (c0 + j >= end) break;
                    const unsigned lo = (unsigned)ns_quantize_int(v[j], scale, 7) & 0xFu;
                    const unsigned hi = (unsigned)ns_quantize_int(v[j + 1], scale, 7) & 0xFu;
                    codes[(r * cols + c0 + j) / 2] = (unsigned char)(lo | (hi << 4));
                }
            }
        } else {
            float absmax = 0.0f;
            for (int c = lane; c < cols; c += 32) absmax = fmaxf(absmax, ns_abs(ns_bf16_to_float(row[c])));
            absmax = ns_warp_max(absmax);
            const bool fp8 = format == NS_FMT_FP8_E4M3;
            const float scale = ns_quant_scale(absmax, fp8 ? NS_FP8_E4M3_MAX : NS_INT8_MAX);
            if (lane == 0) scales[r] = scale;
            for (int c = lane; c < cols; c += 32) {
                const float v = ns_bf16_to_float(row[c]);
                codes[r * cols + c] = fp8 ? (scale == 0.0f ? (unsigned char)0 : ns_fp8_e4m3_encode(ns_div_rn(v, scale)))
                                          : (unsigned char)(signed char)ns_quantize_int(v, scale, 127);
            }
        }
    }
}
