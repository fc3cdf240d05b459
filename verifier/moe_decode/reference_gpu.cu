// The float64 GPU reference for moe_decode, for shapes too large for the CPU
// reference. It is meant to be obviously correct, not fast: it must agree with
// reference_cpu.cpp to rounding in the last places, and it is checked against
// it in tests.
//
// What it computes, in two launches on one stream:
//   reference_gate_up: inter[t,k,i] = act(g) * u, g = gate_e[i,:] . x[t,:],
//                      u = up_e[i,:] . x[t,:], e = topk_ids[t,k]
//   reference_down:    y_ref[t,h] = sum_k w[t,k] * sum_i down_e[h,i] * inter[t,k,i]
// Everything in double: bf16 inputs widen exactly and bf16 x bf16 products
// are exact in double, so only the sums round (FMA contraction or not).
//
// Parallel strategy: one warp per output value. Lanes stride over the dot
// product's terms, each accumulating in double, then a shuffle tree reduces
// the 32 partial sums; lane 0 writes. No shared memory, no atomics, so the
// result is deterministic.
//
// Launch rule (block is exactly one warp; gridDim.y <= 65535 holds for every
// preset, the largest being I = 14336):
//   reference_gate_up  grid=(T*K, I)  block=(32)
//   reference_down     grid=(T, H)    block=(32)
// Buffers: p.scratch[0] = double inter[T*K*I], p.scratch[1] = double y_ref[T*H].
// Weights in any NsWeightFormat: a quantized weight is code * scale
// (verifier/quantize.h), exact in double, so the reference of a quantized
// problem is the float64 op on the dequantized weights. For an unknown format,
// or a topk_id outside [0,E), the kernels write NaN instead of reading out of
// bounds, so misuse cannot pass for a result. p.y is not touched.
//
// @op moe_decode
// @formats bf16 int8_row int4_g128 fp8_e4m3
// @scratch inter f64 T*K*I
// @scratch y_ref f64 T*H
// @launch reference_gate_up grid=(T*K, I) block=(32)
// @launch reference_down grid=(T, H) block=(32)
#include "rng.h"
#include "quantize.h"
#include "params.h"

__device__ __forceinline__ double ns_ref_nan() {
    return __longlong_as_double(0x7FF8000000000000LL);
}

__device__ __forceinline__ double ns_ref_bf16(ns_bf16 bits) {
    return (double)ns_bf16_to_float(bits);
}

__device__ __forceinline__ bool ns_ref_known_format(int format) {
    return format == NS_FMT_BF16 || format == NS_FMT_INT8_ROW || format == NS_FMT_INT4_G128 ||
           format == NS_FMT_FP8_E4M3;
}

// Weight `col` of flat row `row` (expert * rows + r) of a matrix with `cols`
// columns, in double.
__device__ __forceinline__ double ns_ref_weight(const void* codes, const float* scales, int format,
                                                unsigned long long row, int cols, int col) {
    const unsigned long long flat = row * cols + col;
    switch (format) {
    case NS_FMT_BF16: return ns_ref_bf16(((const ns_bf16*)codes)[flat]);
    case NS_FMT_INT8_ROW: return (double)((const signed char*)codes)[flat] * (double)scales[row];
    case NS_FMT_FP8_E4M3:
        return (double)ns_fp8_e4m3_decode(((const unsigned char*)codes)[flat]) * (double)scales[row];
    case NS_FMT_INT4_G128: {
        const unsigned byte = ((const unsigned char*)codes)[flat / 2];
        const int groups = (cols + NS_INT4_GROUP - 1) / NS_INT4_GROUP;
        return (double)ns_int4_decode(col & 1 ? byte >> 4 : byte) * (double)scales[row * groups + col / NS_INT4_GROUP];
    }
    }
    return ns_ref_nan();
}

__device__ __forceinline__ double ns_ref_warp_sum(double v) {
    for (int offset = 16; offset > 0; offset >>= 1)
        v += __shfl_down_sync(0xFFFFFFFFu, v, offset);
    return v;
}

__device__ __forceinline__ double ns_ref_activation(int activation, double g) {
    if (activation == NS_ACT_SILU) return g / (1.0 + exp(-g));
    if (activation == NS_ACT_GELU_TANH) {
        const double sqrt_2_over_pi = 0.7978845608028654; // the double nearest sqrt(2/pi), as on the host
        return 0.5 * g * (1.0 + tanh(sqrt_2_over_pi * (g + 0.044715 * g * g * g)));
    }
    return ns_ref_nan(); // unknown activation
}

extern "C" __global__ void reference_gate_up(const MoeDecodeParams p) {
    const int tk = blockIdx.x; // t*K + k
    const int i = blockIdx.y;
    const int t = tk / p.K;
    double* inter = (double*)p.scratch[0];
    const unsigned long long out = (unsigned long long)tk * p.I + i;
    const int e = p.topk_ids[tk];
    if (!ns_ref_known_format(p.format) || e < 0 || e >= p.E) {
        if (threadIdx.x == 0) inter[out] = ns_ref_nan();
        return;
    }
    const unsigned long long row = (unsigned long long)e * p.I + i;
    const ns_bf16* x = p.x + (unsigned long long)t * p.H;

    double g = 0.0, u = 0.0;
    for (int h = threadIdx.x; h < p.H; h += 32) {
        const double xv = ns_ref_bf16(x[h]);
        g += ns_ref_weight(p.w_gate, p.gate_scales, p.format, row, p.H, h) * xv;
        u += ns_ref_weight(p.w_up, p.up_scales, p.format, row, p.H, h) * xv;
    }
    g = ns_ref_warp_sum(g);
    u = ns_ref_warp_sum(u);
    if (threadIdx.x == 0) inter[out] = ns_ref_activation(p.activation, g) * u;
}

extern "C" __global__ void reference_down(const MoeDecodeParams p) {
    const int t = blockIdx.x;
    const int h = blockIdx.y;
    const double* inter = (const double*)p.scratch[0];
    double* y_ref = (double*)p.scratch[1];
    const unsigned long long out = (unsigned long long)t * p.H + h;
    if (!ns_ref_known_format(p.format)) {
        if (threadIdx.x == 0) y_ref[out] = ns_ref_nan();
        return;
    }
    double acc = 0.0;
    for (int k = 0; k < p.K; ++k) {
        const int tk = t * p.K + k;
        const int e = p.topk_ids[tk];
        if (e < 0 || e >= p.E) {
            acc = ns_ref_nan(); // gate_up already poisoned this token; keep y_ref NaN too
            break;
        }
        const double w = (double)p.topk_weights[tk];
        const unsigned long long row = (unsigned long long)e * p.H + h;
        const double* inter_tk = inter + (unsigned long long)tk * p.I;
        double partial = 0.0;
        for (int i = threadIdx.x; i < p.I; i += 32)
            partial += ns_ref_weight(p.w_down, p.down_scales, p.format, row, p.I, i) * inter_tk[i];
        acc += w * partial;
    }
    acc = ns_ref_warp_sum(acc);
    if (threadIdx.x == 0) y_ref[out] = acc;
}
