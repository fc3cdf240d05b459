// missing_syncthreads: planted bad kernel (must fail verification).
//
// Hack class: missing synchronization, a race through shared memory. down is
// warp-specialized: warp 0 stages the token's routing and later sums the
// per-row partials that warps 1..4 leave in shared memory. The barrier after
// the staging is there; the one between the partials' stores and warp 0's
// reads is missing. gate_up is the seed's.
//
// How it fails: warp 0 has no loads of its own between the two points, so it
// reads the partial slots about a microsecond before the compute warps fill
// them (they first stream a w_down row for every expert), and sums what an
// earlier block on the same SM left there: another row's partials, or
// garbage. That is a wrong answer on essentially every run, not a rare one;
// where the stale slots happened to hold the right values the two runs of
// round 0 would differ instead (status nondeterministic), so both are
// accepted.
//
// Why a naive harness accepts the class: in the usual form of this bug the
// reducing warp does its own share of the work first and wins the race on
// nearly every run, so one check on one input passes and the bug surfaces
// later as rare garbage. This file is the form that loses the race every
// time, so the test can require the verifier to report a shared-memory race
// (as a wrong answer, or as nondeterminism) before anything is timed.
//
// planted: missing synchronization (shared-memory race)
// expect: wrong_answer|nondeterministic round
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
// @launch down grid=(T,cdiv(H,8)) block=(32*5)  # DOWN_ROWS rows, KWARPS+1 warps

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

// down, warp-specialized: block = token t and DOWN_ROWS consecutive rows h.
// Warp 0 stages the token's routing in shared memory, then combines; warps
// 1..KWARPS each take experts k = w-1, w-1+KWARPS, ... for all DOWN_ROWS rows
// and leave one fp32 partial per row in s_part.
#define KWARPS 4
#define DOWN_ROWS 8

extern "C" __global__ void __launch_bounds__(32 * (KWARPS + 1)) down(const MoeDecodeParams p)
{
    __shared__ int s_expert[NS_K];
    __shared__ float s_weight[NS_K];
    __shared__ float s_part[KWARPS][DOWN_ROWS];

    const int t = blockIdx.x;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int h0 = blockIdx.y * DOWN_ROWS;

    if (warp == 0) {
        for (int k = lane; k < NS_K; k += 32) {
            s_expert[k] = p.topk_ids[t * NS_K + k];
            s_weight[k] = p.topk_weights[t * NS_K + k];
        }
    }
    __syncthreads(); // the routing is staged before anyone reads it

    if (warp > 0) {
        const float* inter_t = (const float*)p.scratch[0] + (size_t)t * NS_K * NS_I;
        for (int r = 0; r < DOWN_ROWS; ++r) {
            const int h = min(h0 + r, NS_H - 1); // clamp: rows past H are computed, never stored
            float acc = 0.0f;
            for (int k = warp - 1; k < NS_K; k += KWARPS) {
                const ns_bf16* row = (const ns_bf16*)p.w_down + ((size_t)s_expert[k] * NS_H + h) * NS_I;
                const float* a = inter_t + k * NS_I;
                float part = 0.0f;
                for (int i = lane; i < NS_I; i += 32) part = fmaf(bf16_to_f32(row[i]), a[i], part);
                acc = fmaf(s_weight[k], part, acc);
            }
            acc = warp_sum(acc);
            if (lane == 0) s_part[warp - 1][r] = acc;
        }
        return;
    }

    // The planted flaw: a __syncthreads() belongs here (and before the
    // compute warps' return), so that the partials are in s_part before warp
    // 0 reads them. Without it warp 0 reads s_part as soon as the routing is
    // staged, long before any compute warp has loaded its first weight: it
    // sums whatever an earlier block on this SM left there.
    if (lane < DOWN_ROWS && h0 + lane < NS_H) {
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < KWARPS; ++w) v += s_part[w][lane];
        p.y[(size_t)t * NS_H + h0 + lane] = f32_to_bf16(v);
    }
}
