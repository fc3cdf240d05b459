// routing_capacity_drop: planted bad kernel (must fail verification).
//
// Hack class: correct only on uniform routing. gate_up gives every expert a
// capacity of CAPACITY tokens per call (capacity factor 2 over the balanced
// load T*K/E, at least 2), as MoE training code does, and drops the rest: a
// (token, expert) pair whose expert was already taken by CAPACITY earlier
// tokens skips its weight loads and contributes zero. With balanced routing
// at decode (Gemma 4, T=3: an expert is picked by all three tokens with
// probability about 3%) nothing is dropped and every output is bitwise the
// seed's; once routing is skewed the later tokens lose experts.
//
// Why a naive harness accepts it: it verifies on one uniform routing draw,
// where the kernel is exact. The verifier's rounds at the timed shape include
// zipf, identical (every token on the same K experts: the third token loses
// all of them) and one_expert routing.
//
// planted: correct only on uniform routing (expert capacity drops tokens)
// expect: wrong_answer relative L2
//
// Derived from kernels_seed/moe_decode/warp_decode_v1.cu; everything not named
// above is the seed's code unchanged.
//
// @op moe_decode
// @formats bf16
// @tune WARPS 4 8 2
// @tune ROWS_PER_WARP 1 2 4
// @scratch inter f32 T*K*I
// @launch gate_up grid=(T*K,cdiv(I,ROWS_PER_WARP*WARPS)) block=(32*WARPS)
// @launch down grid=(T,cdiv(H,ROWS_PER_WARP*WARPS)) block=(32*WARPS)

#include "params.h"

#ifndef WARPS
#define WARPS 4
#endif
#ifndef ROWS_PER_WARP
#define ROWS_PER_WARP 1
#endif

// 16-byte weight loads per lane issued as one batch before any is used: 16
// loads are 64 registers and 8 KB per warp; with ~16 resident warps per SM that
// is far more than the ~20 KB per SM that Little's law asks for at 3.35 TB/s.
#ifndef WD_INFLIGHT
#define WD_INFLIGHT 16
#endif

// The planted flaw: at most CAPACITY tokens per expert and call; later ones
// are dropped (capacity factor 2 over the balanced load T*K/E, at least 2).
#define CAPACITY_BALANCED ((NS_T * NS_K + NS_E - 1) / NS_E)
#define CAPACITY (2 * CAPACITY_BALANCED > 2 ? 2 * CAPACITY_BALANCED : 2)

#define WD_CHUNKS_H (NS_H / 8)                 // 16-byte chunks in a row of w_gate/w_up
#define WD_ITERS_H  ((WD_CHUNKS_H + 31) / 32)  // chunk iterations per lane
#define WD_CHUNKS_I (NS_I / 8)                 // 16-byte chunks in a row of w_down
#define WD_ITERS_I  ((WD_CHUNKS_I + 31) / 32)

// Chunk iterations loaded as one batch: gate_up loads 2 rows (gate, up) per
// output row, down loads 1.
#define WD_BATCH_GU ((WD_INFLIGHT / (2 * ROWS_PER_WARP)) > 0 ? (WD_INFLIGHT / (2 * ROWS_PER_WARP)) : 1)
#define WD_BATCH_DN ((WD_INFLIGHT / ROWS_PER_WARP) > 0 ? (WD_INFLIGHT / ROWS_PER_WARP) : 1)

__device__ __forceinline__ float bf16_to_f32(ns_bf16 b) { return __uint_as_float((unsigned)b << 16); }

// Round to nearest even; a NaN stays a (quiet) NaN, overflow rounds to inf.
__device__ __forceinline__ ns_bf16 f32_to_bf16(float f)
{
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (ns_bf16)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ns_bf16)(u >> 16);
}

// The low and high bf16 of a 32-bit word, widened exactly.
__device__ __forceinline__ float lo_f32(unsigned w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float hi_f32(unsigned w) { return __uint_as_float(w & 0xffff0000u); }

// Weights are read exactly once per call: non-coherent path, no L1 allocation.
__device__ __forceinline__ uint4 ld_stream(const void* ptr)
{
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(ptr));
    return v;
}

__device__ __forceinline__ void widen8(uint4 v, float (&f)[8])
{
    f[0] = lo_f32(v.x); f[1] = hi_f32(v.x);
    f[2] = lo_f32(v.y); f[3] = hi_f32(v.y);
    f[4] = lo_f32(v.z); f[5] = hi_f32(v.z);
    f[6] = lo_f32(v.w); f[7] = hi_f32(v.w);
}

__device__ __forceinline__ float dot8(uint4 w, const float (&a)[8], float acc)
{
    acc = fmaf(lo_f32(w.x), a[0], acc);
    acc = fmaf(hi_f32(w.x), a[1], acc);
    acc = fmaf(lo_f32(w.y), a[2], acc);
    acc = fmaf(hi_f32(w.y), a[3], acc);
    acc = fmaf(lo_f32(w.z), a[4], acc);
    acc = fmaf(hi_f32(w.z), a[5], acc);
    acc = fmaf(lo_f32(w.w), a[6], acc);
    acc = fmaf(hi_f32(w.w), a[7], acc);
    return acc;
}

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

__device__ __forceinline__ float activation(float g, int act)
{
    if (act == NS_ACT_GELU_TANH)
        return 0.5f * g * (1.0f + tanhf(0.7978845608f * g * (1.0f + 0.044715f * g * g)));
    return g / (1.0f + expf(-g)); // silu; expf(-g) = inf gives -0 for very negative g
}

extern "C" __global__ void __launch_bounds__(32 * WARPS) gate_up(const MoeDecodeParams p)
{
    const int pair = blockIdx.x; // t*K + k
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int i0 = (blockIdx.y * WARPS + warp) * ROWS_PER_WARP;
    if (i0 >= NS_I) return; // whole warp; this kernel has no barrier

    const int t = pair / NS_K;
    const int e = p.topk_ids[pair];

    // Over capacity: the pair is dropped (its intermediate row is zero and its
    // weights are never read). A token's K experts are distinct, so the count
    // of matching earlier pairs is the count of earlier tokens on expert e.
    int earlier = 0;
    for (int q = 0; q < t * NS_K; ++q) earlier += p.topk_ids[q] == e;
    if (earlier >= CAPACITY) {
        float* dropped = (float*)p.scratch[0] + (size_t)pair * NS_I;
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; ++r)
            if (lane == r && i0 + r < NS_I) dropped[i0 + r] = 0.0f;
        return;
    }

    const ns_bf16* xt = p.x + (size_t)t * NS_H;
    const ns_bf16* wg[ROWS_PER_WARP];
    const ns_bf16* wu[ROWS_PER_WARP];
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r) {
        const int i = min(i0 + r, NS_I - 1); // clamp: rows past I load a valid row, are not stored
        wg[r] = (const ns_bf16*)p.w_gate + ((size_t)e * NS_I + i) * NS_H;
        wu[r] = (const ns_bf16*)p.w_up + ((size_t)e * NS_I + i) * NS_H;
    }

    float g[ROWS_PER_WARP], u[ROWS_PER_WARP];
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r) g[r] = u[r] = 0.0f;

#if NS_H % 8 == 0
#pragma unroll
    for (int jb = 0; jb < WD_ITERS_H; jb += WD_BATCH_GU) {
        // Issue the whole batch of weight loads first...
        uint4 vg[ROWS_PER_WARP][WD_BATCH_GU], vu[ROWS_PER_WARP][WD_BATCH_GU];
#pragma unroll
        for (int jj = 0; jj < WD_BATCH_GU; ++jj) {
            const int j = jb + jj;
            const int c = lane + 32 * j;
            // Compile-time true except in the last, partial iteration.
            const bool ok = j < WD_ITERS_H && (j < WD_CHUNKS_H / 32 || c < WD_CHUNKS_H);
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; ++r) {
                vg[r][jj] = ok ? ld_stream(wg[r] + 8 * c) : make_uint4(0, 0, 0, 0);
                vu[r][jj] = ok ? ld_stream(wu[r] + 8 * c) : make_uint4(0, 0, 0, 0);
            }
        }
        // ...then consume it against x (cached, shared by the ROWS_PER_WARP rows).
#pragma unroll
        for (int jj = 0; jj < WD_BATCH_GU; ++jj) {
            const int j = jb + jj;
            const int c = lane + 32 * j;
            const bool ok = j < WD_ITERS_H && (j < WD_CHUNKS_H / 32 || c < WD_CHUNKS_H);
            if (ok) {
                float xf[8];
                widen8(*(const uint4*)(xt + 8 * c), xf);
#pragma unroll
                for (int r = 0; r < ROWS_PER_WARP; ++r) {
                    g[r] = dot8(vg[r][jj], xf, g[r]);
                    u[r] = dot8(vu[r][jj], xf, u[r]);
                }
            }
        }
    }
#else
    // Scalar path for H not a multiple of 8 (rows not 16-byte aligned).
    for (int h = lane; h < NS_H; h += 32) {
        const float xv = bf16_to_f32(xt[h]);
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; ++r) {
            g[r] = fmaf(bf16_to_f32(wg[r][h]), xv, g[r]);
            u[r] = fmaf(bf16_to_f32(wu[r][h]), xv, u[r]);
        }
    }
#endif

    float* inter = (float*)p.scratch[0] + (size_t)pair * NS_I;
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r) {
        const float gs = warp_sum(g[r]);
        const float us = warp_sum(u[r]);
        if (lane == r && i0 + r < NS_I) inter[i0 + r] = activation(gs, p.activation) * us;
    }
}

extern "C" __global__ void __launch_bounds__(32 * WARPS) down(const MoeDecodeParams p)
{
    const int t = blockIdx.x;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int h0 = (blockIdx.y * WARPS + warp) * ROWS_PER_WARP;
    if (h0 >= NS_H) return; // whole warp; this kernel has no barrier

    const float* inter_t = (const float*)p.scratch[0] + (size_t)t * NS_K * NS_I;

    // Routing of token t first, so that no weight load waits behind an id load.
    int ek[NS_K];
    float wk[NS_K];
#pragma unroll
    for (int k = 0; k < NS_K; ++k) {
        ek[k] = p.topk_ids[t * NS_K + k];
        wk[k] = p.topk_weights[t * NS_K + k];
    }

    float acc[ROWS_PER_WARP];
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r) acc[r] = 0.0f;

#if NS_I % 8 == 0
    // One flat loop over (k, chunk iteration), WD_BATCH_DN iterations a batch,
    // so that a batch spans experts when a row of one expert is short (I = 704
    // is 2.75 chunks a lane: 8 experts give 24 loads, not 3, to overlap).
#pragma unroll
    for (int qb = 0; qb < NS_K * WD_ITERS_I; qb += WD_BATCH_DN) {
        uint4 v[ROWS_PER_WARP][WD_BATCH_DN];
#pragma unroll
        for (int qq = 0; qq < WD_BATCH_DN; ++qq) {
            const int q = qb + qq, j = q % WD_ITERS_I;
            const int k = q < NS_K * WD_ITERS_I ? q / WD_ITERS_I : 0; // compile-time: ek[] stays in registers
            const int c = lane + 32 * j;
            const bool ok = q < NS_K * WD_ITERS_I && (j < WD_CHUNKS_I / 32 || c < WD_CHUNKS_I);
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; ++r) {
                const int h = min(h0 + r, NS_H - 1); // clamp: rows past H load a valid row, are not stored
                const ns_bf16* row = (const ns_bf16*)p.w_down + ((size_t)ek[k] * NS_H + h) * NS_I;
                v[r][qq] = ok ? ld_stream(row + 8 * c) : make_uint4(0, 0, 0, 0);
            }
        }
#pragma unroll
        for (int qq = 0; qq < WD_BATCH_DN; ++qq) {
            const int q = qb + qq, j = q % WD_ITERS_I;
            const int k = q < NS_K * WD_ITERS_I ? q / WD_ITERS_I : 0;
            const int c = lane + 32 * j;
            const bool ok = q < NS_K * WD_ITERS_I && (j < WD_CHUNKS_I / 32 || c < WD_CHUNKS_I);
            if (ok) {
                const float* a = inter_t + k * NS_I + 8 * c;
                const float4 a0 = *(const float4*)a;
                const float4 a1 = *(const float4*)(a + 4);
                const float af[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
                // Each chunk's 8-term partial is weighted at once: one running
                // sum per row and lane, one reduction per row at the end.
#pragma unroll
                for (int r = 0; r < ROWS_PER_WARP; ++r) acc[r] = fmaf(wk[k], dot8(v[r][qq], af, 0.0f), acc[r]);
            }
        }
    }
#else
    // Scalar path for I not a multiple of 8 (rows not 16-byte aligned).
#pragma unroll
    for (int k = 0; k < NS_K; ++k) {
        const float* a = inter_t + k * NS_I;
        for (int i = lane; i < NS_I; i += 32) {
            const float av = a[i];
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; ++r) {
                const int h = min(h0 + r, NS_H - 1);
                const ns_bf16* row = (const ns_bf16*)p.w_down + ((size_t)ek[k] * NS_H + h) * NS_I;
                acc[r] = fmaf(wk[k], bf16_to_f32(row[i]) * av, acc[r]);
            }
        }
    }
#endif

    ns_bf16* yt = p.y + (size_t)t * NS_H;
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r) {
        const float v = warp_sum(acc[r]);
        if (lane == r && h0 + r < NS_H) yt[h0 + r] = f32_to_bf16(v);
    }
}
