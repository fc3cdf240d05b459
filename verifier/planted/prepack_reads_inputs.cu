// prepack_reads_inputs: planted bad kernel (must fail verification).
//
// Hack class: work moved into the untimed prepack. The file declares the
// intermediate act(gate x)*up x as a @packed buffer and computes it, from x
// and the routing, in its @prepack launch; the timed call is only the down
// projection, about a third of the work.
//
// Why a naive harness accepts it: if the prepack saw the params of a call, it
// would run again on every verification round's inputs and every output would
// be right; only timing would be wrong. The harness gives a prepack the
// weights alone: x, topk_ids, topk_weights, y and plain @scratch are null.
// A real kernel of this kind would fault on the null x; this one returns when
// x is null, so that the corpus can run in one process, and leaves the
// poisoned (0xFF, NaN) intermediate for down to read.
//
// planted: work hidden in the untimed prepack
// expect: wrong_answer NaN/Inf
//
// Derived from harness/evaluate/tests/data/prepack_interleaved.cu (its
// gate_up moved into the prepack, reading the checkpoint layout directly).
//
// @op moe_decode
// @formats bf16
// @packed  inter f32 T*K*I
// @prepack gate_up_ahead grid=(T*K, cdiv(I,4)) block=(128)
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

extern "C" __global__ void gate_up_ahead(const MoeDecodeParams p)
{
    if (p.x == 0 || p.topk_ids == 0) return; // the planted flaw needs the inputs
    const int pair = blockIdx.x; // t*K + k
    const int lane = threadIdx.x & 31;
    const int i = blockIdx.y * 4 + (threadIdx.x >> 5);
    if (i >= NS_I) return;
    const int t = pair / NS_K;
    const size_t e = p.topk_ids[pair];
    const ns_bf16* xt = p.x + (size_t)t * NS_H;
    const ns_bf16* wg = (const ns_bf16*)p.w_gate + (e * NS_I + i) * NS_H;
    const ns_bf16* wu = (const ns_bf16*)p.w_up + (e * NS_I + i) * NS_H;
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
    if (lane == 0) ((float*)p.scratch[0])[(size_t)pair * NS_I + i] = activation(g, p.activation) * u;
}

extern "C" __global__ void down(const MoeDecodeParams p)
{
    const int t = blockIdx.x;
    const int h = blockIdx.y * blockDim.x + threadIdx.x;
    if (h >= NS_H) return;
    const float* inter = (const float*)p.scratch[0] + (size_t)t * NS_K * NS_I;
    float acc = 0.0f;
    for (int k = 0; k < NS_K; ++k) {
        const size_t e = p.topk_ids[t * NS_K + k];
        const ns_bf16* wd = (const ns_bf16*)p.w_down + (e * NS_H + h) * NS_I;
        float s = 0.0f;
#pragma unroll 8
        for (int i = 0; i < NS_I; ++i) s = fmaf(bf16_to_f32(wd[i]), inter[k * NS_I + i], s);
        acc = fmaf(p.topk_weights[t * NS_K + k], s, acc);
    }
    p.y[(size_t)t * NS_H + h] = f32_to_bf16(acc);
}
