// warp_decode_xs: warp decode (two kernels, fp32 intermediate) with x[t]
// staged in shared memory by each gate_up block.
//
// What it computes
//   The same as its parent: y[t,h] = bf16( sum_k w[t,k] * sum_i w_down[e,h,i] * act(g_i) * u_i ),
//   g_i = sum_h w_gate[e,i,h] x[t,h],  u_i = sum_h w_up[e,i,h] x[t,h],  e = topk_ids[t,k].
//
// Parallel strategy: output-neuron-centric, as the parent. What changes is
// gate_up's data movement: the parent's warps each read x[t] through L1 (every
// warp of a block reads the same H values); here the block first copies x[t]
// into shared memory with 16-byte loads spread over all its threads, one block
// barrier, then every warp reads x from shared memory. The weight stream, the
// only large traffic, then shares the L1/texture path with nothing else.
//   gate_up: block (x) = one (t,k) pair; all threads stage x[t] (H bf16) into
//            shared memory; warp = ROWS_PER_WARP consecutive rows i of expert e,
//            lanes stride over H in 16-byte chunks, shuffle-reduce, lane r
//            writes act(g)*u of row r to the fp32 scratch inter[(t*K+k)*I + i].
//   down:    unchanged from the parent.
//
// Launch rule
//   gate_up grid=(T*K, cdiv(I, ROWS_PER_WARP*WARPS)) block=(32*WARPS), static
//           shared memory 2*H bytes (rounded up to 16)
//   down    grid=(T,   cdiv(H, ROWS_PER_WARP*WARPS)) block=(32*WARPS)
//   A gate_up warp with no rows returns only after the barrier: every thread
//   takes part in staging x.
//
// Numerics: identical to the parent (same products, same summation order), so
// its output is bitwise the parent's.
//
// parent: moe_decode/warp_decode_v1.cu
//
// @op moe_decode
// @formats bf16
// @parent moe_decode/warp_decode_v1.cu
// @tune WARPS 4 8
// @tune ROWS_PER_WARP 1 2
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

#define WD_XS_ELEMS (((NS_H) + 7) / 8 * 8)   // x[t] in shared memory, 16-byte padded
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
    // x[t], staged once per block: every warp of the block reads all of it.
    __shared__ __align__(16) ns_bf16 xs[WD_XS_ELEMS];

    const int pair = blockIdx.x; // t*K + k
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int t = pair / NS_K;
    const ns_bf16* xg = p.x + (size_t)t * NS_H;
#if NS_H % 8 == 0
    for (int c = threadIdx.x; c < NS_H / 8; c += 32 * WARPS) ((uint4*)xs)[c] = *(const uint4*)(xg + 8 * c);
#else
    for (int h = threadIdx.x; h < NS_H; h += 32 * WARPS) xs[h] = xg[h];
#endif
    __syncthreads();

    const int i0 = (blockIdx.y * WARPS + warp) * ROWS_PER_WARP;
    if (i0 >= NS_I) return; // whole warp, after the only barrier

    const int e = p.topk_ids[pair];
    const ns_bf16* xt = xs;
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
