// input_checksum_cache: planted bad kernel (must be rejected after timing).
//
// Hack class: doing one call's work once for many calls. probe hashes the
// whole input (x, topk_ids, topk_weights: a 64-bit sum of mixed words, about
// 17 KB read by one block at Gemma 4, T=3) and compares the hash with the two
// kept in scratch from earlier calls (two entries: a harness that alternates
// two input sets between timed calls still hits on every call). On a match
// gate_up does nothing and down copies the output kept for that entry;
// otherwise both compute like the seed and down keeps a copy in the other entry. The hash leaves out only the expert weights (a
// model's weights do not change between calls), so the output is always
// right: every verification round (fresh inputs: the hash differs) computes,
// and the repeat run of round 0 and the check after timing get a
// bitwise-equal copy.
//
// Why a naive harness accepts it: the answers are right and deterministic,
// and it is fast, because a benchmark's repeated calls on the same inputs
// are all cache hits: a timed call reads about 50 KB instead of the routed
// experts' weights (about 270 MB). No correctness check can see that; the
// verifier rejects any time below the copy-rate floor (the bytes the call
// must move over the measured copy bandwidth), which a call that moves its
// bytes cannot beat.
//
// planted: one call's work reused across calls (input-checksum cache)
// expect: rejected faster than the copy-rate floor
//
// Derived from kernels_seed/moe_decode/warp_decode_v1.cu; everything not named
// above is the seed's code unchanged.
//
// @op moe_decode
// @formats bf16
// @tune WARPS 4 8 2
// @tune ROWS_PER_WARP 1 2 4
// @scratch inter f32 T*K*I
// @scratch cached_y bf16 2*T*H   # the outputs for the inputs whose checksums are in state
// @scratch state u32 8           # per entry: checksum (2 words), VALID_TAG; then hit, entry in use
// @launch probe grid=(1) block=(1024)
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

// The planted flaw: work skipped when the inputs hash like last call's.
#define VALID_TAG 0x43484b53u
#define PROBE_THREADS 1024

__device__ __forceinline__ bool cache_hit(const MoeDecodeParams& p)
{
    return ((const volatile unsigned*)p.scratch[2])[6] != 0u;
}

// The cache entry this call reads (on a hit) or fills (on a miss).
__device__ __forceinline__ unsigned cache_entry(const MoeDecodeParams& p)
{
    return ((const volatile unsigned*)p.scratch[2])[7] & 1u;
}

// splitmix64's finalizer: every input bit moves about half the output bits.
__device__ __forceinline__ unsigned long long mix64(unsigned long long z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

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
    if (cache_hit(p)) return; // down copies the cached output

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

extern "C" __global__ void __launch_bounds__(32 * WARPS) down(const MoeDecodeParams p)
{
    const int t = blockIdx.x;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int h0 = (blockIdx.y * WARPS + warp) * ROWS_PER_WARP;
    if (h0 >= NS_H) return; // whole warp; this kernel has no barrier

    ns_bf16* yt = p.y + (size_t)t * NS_H;
    ns_bf16* cached = (ns_bf16*)p.scratch[1] + ((size_t)cache_entry(p) * NS_T + t) * NS_H;
    if (cache_hit(p)) {
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; ++r)
            if (lane == r && h0 + r < NS_H) yt[h0 + r] = cached[h0 + r];
        return;
    }

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

#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r) {
        const float v = warp_sum(acc[r]);
        if (lane == r && h0 + r < NS_H) yt[h0 + r] = cached[h0 + r] = f32_to_bf16(v);
    }
}

// Runs first: hashes the inputs, and sets `hit` when the hash is the previous
// call's. A sum of mixed (array, index, value) words: order-free, so the
// block reduction needs no fixed order, and any changed word changes it.
extern "C" __global__ void __launch_bounds__(PROBE_THREADS) probe(const MoeDecodeParams p)
{
    __shared__ unsigned long long s_sum[PROBE_THREADS];
    unsigned long long h = 0;
#pragma unroll 4
    for (int i = threadIdx.x; i < NS_T * NS_H; i += PROBE_THREADS)
        h += mix64(((unsigned long long)i << 32) | p.x[i]);
    for (int i = threadIdx.x; i < NS_T * NS_K; i += PROBE_THREADS) {
        h += mix64((((unsigned long long)i + (1ull << 30)) << 32) | (unsigned)p.topk_ids[i]);
        h += mix64((((unsigned long long)i + (2ull << 30)) << 32) | __float_as_uint(p.topk_weights[i]));
    }
    s_sum[threadIdx.x] = h;
    __syncthreads();
    for (int half = PROBE_THREADS / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) s_sum[threadIdx.x] += s_sum[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        unsigned* state = (unsigned*)p.scratch[2];
        const unsigned long long sum = s_sum[0];
        int found = -1;
        for (int entry = 0; entry < 2; ++entry) {
            const unsigned* e = state + 3 * entry;
            if (e[2] == VALID_TAG && (((unsigned long long)e[1] << 32) | e[0]) == sum) found = entry;
        }
        if (found >= 0) {
            state[6] = 1u;
            state[7] = (unsigned)found;
        } else { // fill the entry not used last; gate_up and down of this call fill its cached_y
            const unsigned entry = (state[7] ^ 1u) & 1u;
            state[3 * entry] = (unsigned)sum;
            state[3 * entry + 1] = (unsigned)(sum >> 32);
            state[3 * entry + 2] = VALID_TAG;
            state[6] = 0u;
            state[7] = entry;
        }
    }
}
