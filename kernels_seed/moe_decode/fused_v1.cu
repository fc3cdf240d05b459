// fused_v1: MoE decode in one compute launch: gate_up's intermediate stays on
// chip, each block applies its slice of w_down, and the partial outputs are
// reduced inside the same launch in a fixed order.
//
// What it computes
//   y[t,h] = bf16( sum_k w[t,k] * sum_i w_down[e,h,i] * act(g_i) * u_i ),
//   g_i = sum_h w_gate[e,i,h] x[t,h],  u_i = sum_h w_up[e,i,h] x[t,h],  e = topk_ids[t,k],
//   with act = silu or gelu_tanh (p.activation), bf16 weights and activations.
//
// Parallel strategy: block (x, y) = (pair t*K+k, I-tile of ITILE rows).
//   1. x[t] is staged once in shared memory (bf16, exact), so the ITILE rows
//      of the tile do not re-read it from global memory (re-reading the
//      activations per intermediate row is what made earlier fused attempts
//      slow).
//   2. gate_up: warp = ITILE/WARPS rows of the tile; lanes stride over H in
//      16-byte chunks of w_gate and w_up (as warp_decode_v1), fp32 sums, shuffle
//      reduction; act(g)*u of the tile's rows goes to shared memory (fp32).
//   3. down: the block multiplies its ITILE columns of w_down[e] (an ITILE*2
//      byte contiguous piece of every row h) by the tile of the intermediate,
//      for all H rows. A row's piece is ITILE/8 16-byte chunks read by that
//      many adjacent lanes, so a warp load covers 32*8/ITILE consecutive rows;
//      each lane's 8 intermediate values are fixed, kept in registers. The
//      first batch of w_down loads is issued before the barrier that publishes
//      the intermediate, since the weights do not depend on it.
//      The row partials (fp32) go to the scratch `partials`[pair*NT+tile][h].
//   4. reduction over the N = K*NT partials of token t, deterministic: after a
//      __threadfence each block takes a ticket from the per-token counter. The
//      blocks holding the last RG tickets become the reducers of token t, one
//      per group of H/RG consecutive outputs; a reducer that is not the last
//      arriver waits (acquire loads, nanosleep) until the counter reads N, then
//      sums its outputs' N partials in a fixed order (each thread a strided
//      subset of the partials, then a fixed-order combine in shared memory),
//      weighted by w[t,k], rounds to bf16 and writes y. Which block reduces
//      a group varies from call to call; the order of the sum does not, so
//      two runs are bitwise equal. The reduction is spread over RG blocks
//      instead of falling on the one last block (at Gemma 4, T=1, ITILE=32 a
//      token has 176 partial rows, 2 MB: one block would take ~10 us).
//      Waiting cannot deadlock: only blocks that have finished their own
//      partials wait, at most T*(RG-1) of them at once, and RG is capped so
//      that this stays below the number of SMs (one resident block each
//      always fits), so the blocks they wait for always find a slot.
//   The counters must read 0 when the fused launch starts, and scratch is
//   uninitialized device memory (nothing zeroes it between calls either), so a
//   one-block launch zero_counters runs first, on the same stream. The design
//   is therefore one fused compute kernel plus a memset-like launch: the same
//   launch count as the two-kernel warp decode, but nothing heavy waits on a
//   kernel boundary: down streams while gate_up of other tiles still streams.
//
// Why it can win or lose against warp_decode (two kernels)
//   Same weight bytes (every weight read once per (t,k) pair), no gate_up ->
//   down drain-and-refill at the kernel boundary. Extra: the partials, T*K*NT*H
//   fp32 written and read once (Gemma 4, T=1: 2 MB at ITILE=32, 1 MB at 64,
//   against 95 MB of weights; meant to stay in L2, hence CACHE_HINT=2 marks
//   the weights evict_first), one fence and atomic per block, and a reduction
//   tail of ~N*H/RG*4 bytes per reducer after the last block arrives. The
//   grid is small at T=1 (K*NT = 176 blocks at ITILE=32), so all blocks are
//   resident at once and each must keep many loads in flight.
//
// Knobs
//   ITILE       intermediate rows per block (also the w_down piece: ITILE*2
//               bytes, >= 32 so a piece is a whole sector; 32 and 64 are two or
//               four sectors).
//   WARPS       warps per block.
//   INFLIGHT    16-byte weight loads per lane issued before any is used.
//   RG          reducer blocks per token (capped by the SM bound above and N).
//   CACHE_HINT  0: ld.global.nc.L1::no_allocate; 2: plus L2::evict_first, so
//               the streamed weights do not push the partials out of L2.
//
// Launch rule
//   zero_counters grid=(1) block=(32)
//   fused grid=(T*K, cdiv(I,ITILE)) block=(32*WARPS); NT = cdiv(I,ITILE).
//   Rows past I in the last tile are clamped for loading and contribute 0;
//   their w_down columns are never read. Rows h past H are clamped, not stored.
//
// Numerics
//   bf16 -> fp32 exactly, products and sums in fp32, the intermediate in fp32
//   (shared memory), the per-tile partials in fp32 (scratch), one
//   round-to-nearest-even to bf16 at the end. Every sum has a fixed order.
//
// Alignment: the 16-byte paths need H % 8 == 0 (gate_up, x staging) and
// I % 8 == 0 (down); the reduction's float4 path needs H % 4 == 0. Other shapes
// take scalar paths chosen at compile time.
//
// parent: warp_decode_v1.cu (load and decode helpers; the decomposition is new)
//
// @op moe_decode
// @formats bf16
// @tune ITILE 32 64 16
// @tune WARPS 8 4
// @tune INFLIGHT 16 8
// @tune RG 16 32 8
// @tune CACHE_HINT 2 0
// @constrain ITILE % WARPS == 0
// @scratch partials f32 T*K*cdiv(I,ITILE)*H
// @scratch counters i32 T
// @launch zero_counters grid=(1) block=(32)
// @launch fused grid=(T*K,cdiv(I,ITILE)) block=(32*WARPS)

#include "params.h"

#ifndef ITILE
#define ITILE 32
#endif
#ifndef WARPS
#define WARPS 8
#endif
#ifndef INFLIGHT
#define INFLIGHT 16
#endif
#ifndef RG
#define RG 16
#endif
#ifndef CACHE_HINT
#define CACHE_HINT 2
#endif

#if ITILE % 8 != 0 || ITILE > 256 || ITILE % WARPS != 0
#error "fused_v1: ITILE must be a multiple of 8 and of WARPS, at most 256"
#endif

#define NTHREADS (32 * WARPS)
#define NT ((NS_I + ITILE - 1) / ITILE) // I-tiles
#define NPART (NS_K * NT)               // partial rows per token

// Reducers per token: at most RG, at most NPART, and T*(groups-1) waiting
// blocks below the SM count of any H100/H200 part (114 or more): 96 / T.
#define RG_SM_CAP ((96 / NS_T) > 1 ? (96 / NS_T) : 1)
#define RG_A (RG < RG_SM_CAP ? RG : RG_SM_CAP)
#define NGROUPS (RG_A < NPART ? RG_A : NPART)

// Reduction vector width and outputs per group (a multiple of the width).
#if NS_H % 4 == 0
#define RV 4
#else
#define RV 1
#endif
#define GROUP_H ((((NS_H + NGROUPS - 1) / NGROUPS) + RV - 1) / RV * RV)
#define GROUP_COLS (GROUP_H / RV)
#define RED_CB (GROUP_COLS < NTHREADS ? GROUP_COLS : NTHREADS) // columns per pass
#define RED_PS (NTHREADS / RED_CB)                            // partial subsets per column

// gate_up: rows per warp, rows per pass (sharing each x chunk), chunk layout.
#define ROWS_PER_WARP (ITILE / WARPS)
#define RPP (ROWS_PER_WARP % 2 == 0 ? 2 : 1)
#define CHUNKS_H (NS_H / 8)
#define ITERS_H ((CHUNKS_H + 31) / 32)
#define BATCH_GU ((INFLIGHT / (2 * RPP)) > 0 ? (INFLIGHT / (2 * RPP)) : 1)
#define XCH ((CHUNKS_H + NTHREADS - 1) / NTHREADS) // x chunks staged per thread

// down: chunks per row piece, rows per warp load, steps over H per warp.
#define CPR (ITILE / 8)
#define RPL (32 / CPR)
#define DN_STEPS ((NS_H + WARPS * RPL - 1) / (WARPS * RPL))
#define BATCH_DN (INFLIGHT < DN_STEPS ? INFLIGHT : DN_STEPS)

__device__ __forceinline__ float bf16_to_f32(ns_bf16 b) { return __uint_as_float((unsigned)b << 16); }

// Round to nearest even; a NaN stays a (quiet) NaN, overflow rounds to inf.
__device__ __forceinline__ ns_bf16 f32_to_bf16(float f)
{
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (ns_bf16)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ns_bf16)(u >> 16);
}

__device__ __forceinline__ float lo_f32(unsigned w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float hi_f32(unsigned w) { return __uint_as_float(w & 0xffff0000u); }

// Weights are read exactly once per (t,k): non-coherent path, no L1 allocation.
__device__ __forceinline__ uint4 ld_stream(const void* ptr)
{
    uint4 v;
#if CACHE_HINT == 2
    unsigned long long policy;
    asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
    asm("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0,%1,%2,%3}, [%4], %5;"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(ptr), "l"(policy));
#else
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(ptr));
#endif
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

__device__ __forceinline__ int ld_acquire(const int* p)
{
    int v;
    asm volatile("ld.acquire.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

// The per-token arrival counters must read 0 when `fused` starts: scratch is
// not initialized by anyone else, and a counter is not reset in `fused` itself
// (the zeroing here makes that unnecessary and survives an aborted call).
extern "C" __global__ void zero_counters(const MoeDecodeParams p)
{
    int* counters = (int*)p.scratch[1];
    for (int t = threadIdx.x; t < NS_T; t += blockDim.x) counters[t] = 0;
}

extern "C" __global__ void __launch_bounds__(NTHREADS) fused(const MoeDecodeParams p)
{
    __shared__ __align__(16) ns_bf16 s_x[(NS_H + 7) / 8 * 8];
    __shared__ __align__(16) float s_inter[ITILE];
    __shared__ __align__(16) float s_red[NTHREADS * RV];
    __shared__ int s_ticket;

    const int pair = blockIdx.x; // t*K + k
    const int tile = blockIdx.y;
    const int tid = threadIdx.x;
    const int warp = tid >> 5;
    const int lane = tid & 31;
    const int t = pair / NS_K;
    const int e = p.topk_ids[pair];
    const int i0 = tile * ITILE;
    const ns_bf16* xt = p.x + (size_t)t * NS_H;

    // ---- 1. stage x[t] --------------------------------------------------------
    // Loaded to registers here, stored to shared memory only after the first
    // batch of weight loads is issued: a shared store that waited on the x load
    // would hold back every weight load of the block.
#if NS_H % 8 == 0
    uint4 xs[XCH];
#pragma unroll
    for (int q = 0; q < XCH; ++q) {
        const int c = tid + q * NTHREADS;
        xs[q] = c < CHUNKS_H ? ((const uint4*)xt)[c] : make_uint4(0, 0, 0, 0);
    }
#else
    for (int h = tid; h < NS_H; h += NTHREADS) s_x[h] = xt[h];
    __syncthreads();
#endif

    // ---- 2. gate_up for the tile's rows ---------------------------------------
#pragma unroll 1
    for (int rp = 0; rp < ROWS_PER_WARP; rp += RPP) {
        const int ib = warp * ROWS_PER_WARP + rp; // row within the tile
        const ns_bf16* wg[RPP];
        const ns_bf16* wu[RPP];
#pragma unroll
        for (int r = 0; r < RPP; ++r) {
            const int i = min(i0 + ib + r, NS_I - 1); // clamp: rows past I load a valid row, store 0
            wg[r] = (const ns_bf16*)p.w_gate + ((size_t)e * NS_I + i) * NS_H;
            wu[r] = (const ns_bf16*)p.w_up + ((size_t)e * NS_I + i) * NS_H;
        }
        float g[RPP], u[RPP];
#pragma unroll
        for (int r = 0; r < RPP; ++r) g[r] = u[r] = 0.0f;

#if NS_H % 8 == 0
#pragma unroll
        for (int jb = 0; jb < ITERS_H; jb += BATCH_GU) {
            uint4 vg[RPP][BATCH_GU], vu[RPP][BATCH_GU];
#pragma unroll
            for (int jj = 0; jj < BATCH_GU; ++jj) {
                const int j = jb + jj;
                const int c = lane + 32 * j;
                const bool ok = j < ITERS_H && (j < CHUNKS_H / 32 || c < CHUNKS_H);
#pragma unroll
                for (int r = 0; r < RPP; ++r) {
                    vg[r][jj] = ok ? ld_stream(wg[r] + 8 * c) : make_uint4(0, 0, 0, 0);
                    vu[r][jj] = ok ? ld_stream(wu[r] + 8 * c) : make_uint4(0, 0, 0, 0);
                }
            }
            if (rp == 0 && jb == 0) { // block-uniform
#pragma unroll
                for (int q = 0; q < XCH; ++q) {
                    const int c = tid + q * NTHREADS;
                    if (c < CHUNKS_H) ((uint4*)s_x)[c] = xs[q];
                }
                __syncthreads();
            }
#pragma unroll
            for (int jj = 0; jj < BATCH_GU; ++jj) {
                const int j = jb + jj;
                const int c = lane + 32 * j;
                const bool ok = j < ITERS_H && (j < CHUNKS_H / 32 || c < CHUNKS_H);
                if (ok) {
                    float xf[8];
                    widen8(((const uint4*)s_x)[c], xf);
#pragma unroll
                    for (int r = 0; r < RPP; ++r) {
                        g[r] = dot8(vg[r][jj], xf, g[r]);
                        u[r] = dot8(vu[r][jj], xf, u[r]);
                    }
                }
            }
        }
#else
        for (int h = lane; h < NS_H; h += 32) {
            const float xv = bf16_to_f32(s_x[h]);
#pragma unroll
            for (int r = 0; r < RPP; ++r) {
                g[r] = fmaf(bf16_to_f32(wg[r][h]), xv, g[r]);
                u[r] = fmaf(bf16_to_f32(wu[r][h]), xv, u[r]);
            }
        }
#endif
#pragma unroll
        for (int r = 0; r < RPP; ++r) {
            const float gs = warp_sum(g[r]);
            const float us = warp_sum(u[r]);
            if (lane == r) s_inter[ib + r] = i0 + ib + r < NS_I ? activation(gs, p.activation) * us : 0.0f;
        }
    }

    // ---- 3. down: partial[h] = sum_{i in tile} w_down[e,h,i] inter[i] ----------
    float* part_row = (float*)p.scratch[0] + ((size_t)pair * NT + tile) * NS_H;
#if NS_I % 8 == 0
    const int c = lane % CPR;      // chunk of the row piece
    const int rl = lane / CPR;     // row within the warp load
    const bool chunk_ok = i0 + 8 * c < NS_I; // false only in the last tile
    const int hw = warp * RPL + rl;          // row of step 0
    const ns_bf16* wd = (const ns_bf16*)p.w_down + ((size_t)e * NS_H + hw) * NS_I + i0 + 8 * c;
    const size_t step = (size_t)WARPS * RPL * NS_I;

    uint4 v[BATCH_DN];
    // The first batch does not depend on the intermediate: issue it before the barrier.
#pragma unroll
    for (int jj = 0; jj < BATCH_DN; ++jj) {
        const bool ok = chunk_ok && hw + jj * WARPS * RPL < NS_H;
        v[jj] = ok ? ld_stream(wd + jj * step) : make_uint4(0, 0, 0, 0);
    }
    __syncthreads();
    float a[8];
    {
        const float4 a0 = *(const float4*)(s_inter + 8 * c);
        const float4 a1 = *(const float4*)(s_inter + 8 * c + 4);
        a[0] = a0.x; a[1] = a0.y; a[2] = a0.z; a[3] = a0.w;
        a[4] = a1.x; a[5] = a1.y; a[6] = a1.z; a[7] = a1.w;
    }
#pragma unroll
    for (int jb = 0; jb < DN_STEPS; jb += BATCH_DN) {
        if (jb > 0) {
#pragma unroll
            for (int jj = 0; jj < BATCH_DN; ++jj) {
                const int j = jb + jj;
                const bool ok = j < DN_STEPS && chunk_ok && hw + j * WARPS * RPL < NS_H;
                v[jj] = ok ? ld_stream(wd + j * step) : make_uint4(0, 0, 0, 0);
            }
        }
#pragma unroll
        for (int jj = 0; jj < BATCH_DN; ++jj) {
            const int j = jb + jj;
            if (j < DN_STEPS) { // compile-time
                float s = dot8(v[jj], a, 0.0f);
#pragma unroll
                for (int off = CPR / 2; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
                const int h = hw + j * WARPS * RPL;
                if (c == 0 && h < NS_H) part_row[h] = s;
            }
        }
    }
#else
    __syncthreads();
    // Scalar path for I not a multiple of 8: a thread per row h.
    for (int h = tid; h < NS_H; h += NTHREADS) {
        const ns_bf16* row = (const ns_bf16*)p.w_down + ((size_t)e * NS_H + h) * NS_I;
        float s = 0.0f;
        for (int i = 0; i < ITILE && i0 + i < NS_I; ++i) s = fmaf(bf16_to_f32(row[i0 + i]), s_inter[i], s);
        part_row[h] = s;
    }
#endif

    // ---- 4. arrival; the last NGROUPS arrivers of token t reduce it -----------
    __threadfence(); // this thread's partials are visible device-wide before the ticket
    __syncthreads();
    int* counter = (int*)p.scratch[1] + t;
    if (tid == 0) s_ticket = atomicAdd(counter, 1);
    __syncthreads();
    const int ticket = s_ticket;
    if (ticket < NPART - NGROUPS) return; // whole block
    const int group = ticket - (NPART - NGROUPS);
    if (ticket != NPART - 1) {
        if (tid == 0) {
            while (ld_acquire(counter) < NPART) __nanosleep(128);
        }
        __syncthreads();
    }
    __threadfence(); // order this thread's partial reads after the arrivals seen above

    const float* parts = (const float*)p.scratch[0] + (size_t)t * NPART * NS_H;
    const float* wt = p.topk_weights + t * NS_K;
    const int col = tid % RED_CB;
    const int ps = tid / RED_CB;
    const int h_begin = group * GROUP_H;
    const int h_end = min(NS_H, h_begin + GROUP_H);
#pragma unroll 1
    for (int c0 = 0; c0 < GROUP_COLS; c0 += RED_CB) {
        const int h = h_begin + (c0 + col) * RV;
        const bool live = ps < RED_PS && c0 + col < GROUP_COLS && h < h_end;
        float acc[RV];
#pragma unroll
        for (int q = 0; q < RV; ++q) acc[q] = 0.0f;
        if (live) {
#pragma unroll 8
            for (int pr = ps; pr < NPART; pr += RED_PS) {
                const float wk = __ldg(wt + pr / NT);
#if RV == 4
                const float4 v4 = __ldcg((const float4*)(parts + (size_t)pr * NS_H + h));
                acc[0] = fmaf(wk, v4.x, acc[0]);
                acc[1] = fmaf(wk, v4.y, acc[1]);
                acc[2] = fmaf(wk, v4.z, acc[2]);
                acc[3] = fmaf(wk, v4.w, acc[3]);
#else
                acc[0] = fmaf(wk, __ldcg(parts + (size_t)pr * NS_H + h), acc[0]);
#endif
            }
        }
#pragma unroll
        for (int q = 0; q < RV; ++q) s_red[tid * RV + q] = acc[q];
        __syncthreads();
        if (ps == 0 && live) {
            float sum[RV];
#pragma unroll
            for (int q = 0; q < RV; ++q) sum[q] = 0.0f;
            for (int s = 0; s < RED_PS; ++s) {
#pragma unroll
                for (int q = 0; q < RV; ++q) sum[q] += s_red[(s * RED_CB + col) * RV + q];
            }
            ns_bf16* yt = p.y + (size_t)t * NS_H + h;
#if RV == 4
            const unsigned lo = (unsigned)f32_to_bf16(sum[0]) | ((unsigned)f32_to_bf16(sum[1]) << 16);
            const unsigned hi = (unsigned)f32_to_bf16(sum[2]) | ((unsigned)f32_to_bf16(sum[3]) << 16);
            *(uint2*)yt = make_uint2(lo, hi);
#else
            yt[0] = f32_to_bf16(sum[0]);
#endif
        }
        __syncthreads();
    }
}
