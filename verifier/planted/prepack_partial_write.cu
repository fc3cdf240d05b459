// prepack_partial_write: planted bad kernel (must fail verification).
//
// Hack class: a packed weight layout left partly unwritten. The prepack that
// interleaves gate and up rows copies every row but its last 8 columns (a
// tail loop forgotten); the timed gate_up reads those columns anyway. Every
// value it does write is the honest copy.
//
// Why a naive harness accepts it: freshly allocated device memory is often
// zero, and a buffer reused from the previous binding holds the right weights
// when the weights did not change, so the output is close or even exact. The
// harness fills every @packed buffer with 0xFF bytes (bf16 NaN) before each
// prepack, so the unwritten columns reach every output as NaN.
//
// planted: packed weights partly unwritten
// expect: wrong_answer NaN/Inf
//
// Derived from harness/evaluate/tests/data/prepack_interleaved.cu; everything
// not named above is that file's code unchanged.
//
// @op moe_decode
// @formats bf16
// @packed  wgu   bf16 E*2*I*H
// @scratch inter f32  T*K*I
// @packed  wdt   bf16 E*I*H
// @prepack pack_gate_up grid=(E*I) block=(128)
// @prepack pack_down grid=(E*H) block=(128)
// @launch  gate_up grid=(T*K, cdiv(I,4)) block=(128)
// @launch  down grid=(T, cdiv(H,128)) block=(128)

#include "params.h"

__device__ __forceinline__ float bf16_to_f32(ns_bf16 b) { return __uint_as_float((unsigned)b << 16); }

__device__ __forceinline__ ns_bf16 f32_to_bf16(float f)
{
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (ns_bf16)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ns_bf16)(u >> 16);
}

__device__ __forceinline__ float activation(float g, int act)
{
    if (act == NS_ACT_GELU_TANH)
        return 0.5f * g * (1.0f + tanhf(0.7978845608f * g * (1.0f + 0.044715f * g * g)));
    return g / (1.0f + expf(-g));
}

// True when the params hold weights and packed buffers only, as a prepack's must.
__device__ __forceinline__ bool weights_only(const MoeDecodeParams& p)
{
    return p.x == 0 && p.topk_ids == 0 && p.topk_weights == 0 && p.y == 0 && p.scratch[0] != 0 &&
           p.scratch[1] == 0 && p.scratch[2] != 0 && p.w_gate != 0 && p.w_up != 0 && p.w_down != 0;
}

extern "C" __global__ void pack_gate_up(const MoeDecodeParams p)
{
    if (!weights_only(p)) return;
    const size_t row = blockIdx.x; // e*I + i
    const size_t e = row / NS_I, i = row % NS_I;
    const ns_bf16* gate = (const ns_bf16*)p.w_gate + row * NS_H;
    const ns_bf16* up = (const ns_bf16*)p.w_up + row * NS_H;
    ns_bf16* out = (ns_bf16*)p.scratch[0] + (e * 2 * NS_I + 2 * i) * NS_H;
    for (int h = threadIdx.x; h < NS_H - 8; h += blockDim.x) { // the planted flaw: the last 8 columns
        out[h] = gate[h];
        out[NS_H + h] = up[h];
    }
}

extern "C" __global__ void pack_down(const MoeDecodeParams p)
{
    if (!weights_only(p)) return;
    const size_t row = blockIdx.x; // e*H + h
    const size_t e = row / NS_H, h = row % NS_H;
    const ns_bf16* in = (const ns_bf16*)p.w_down + row * NS_I;
    ns_bf16* out = (ns_bf16*)p.scratch[2] + e * NS_I * NS_H + h;
    for (int i = threadIdx.x; i < NS_I; i += blockDim.x) out[(size_t)i * NS_H] = in[i];
}

extern "C" __global__ void gate_up(const MoeDecodeParams p)
{
    const int pair = blockIdx.x; // t*K + k
    const int lane = threadIdx.x & 31;
    const int i = blockIdx.y * 4 + (threadIdx.x >> 5);
    if (i >= NS_I) return;
    const int t = pair / NS_K;
    const size_t e = p.topk_ids[pair];
    const ns_bf16* xt = p.x + (size_t)t * NS_H;
    const ns_bf16* wg = (const ns_bf16*)p.scratch[0] + (e * 2 * NS_I + 2 * i) * NS_H;
    const ns_bf16* wu = wg + NS_H;
    float g = 0.0f, u = 0.0f;
    for (int h = lane; h < NS_H; h += 32) {
        const float xv = bf16_to_f32(xt[h]);
        g = fmaf(bf16_to_f32(wg[h]), xv, g);
        u = fmaf(bf16_to_f32(wu[h]), xv, u);
    }
    for (int off = 16; off > 0; off >>= 1) {
        g += __shfl_xor_sync(0xffffffffu, g, off);
        u += __shfl_xor_sync(0xffffffffu, u, off);
    }
    if (lane == 0) ((float*)p.scratch[1])[(size_t)pair * NS_I + i] = activation(g, p.activation) * u;
}

extern "C" __global__ void down(const MoeDecodeParams p)
{
    const int t = blockIdx.x;
    const int h = blockIdx.y * blockDim.x + threadIdx.x;
    if (h >= NS_H) return;
    const float* inter = (const float*)p.scratch[1] + (size_t)t * NS_K * NS_I;
    float acc = 0.0f;
    for (int k = 0; k < NS_K; ++k) {
        const size_t e = p.topk_ids[t * NS_K + k];
        const ns_bf16* wd = (const ns_bf16*)p.scratch[2] + e * NS_I * NS_H + h;
        float s = 0.0f;
#pragma unroll 8
        for (int i = 0; i < NS_I; ++i) s = fmaf(bf16_to_f32(wd[(size_t)i * NS_H]), inter[k * NS_I + i], s);
        acc = fmaf(p.topk_weights[t * NS_K + k], s, acc);
    }
    p.y[(size_t)t * NS_H + h] = f32_to_bf16(acc);
}
