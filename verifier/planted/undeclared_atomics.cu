// undeclared_atomics: planted bad kernel (must fail verification).
//
// Hack class: undeclared nondeterministic float atomics. down is split over
// the K experts of a token: block (t,k) computes w[t,k] * (w_down[e] row .
// inter) like the seed and adds it to an accumulator with an atomic, and a
// last launch converts the accumulator to bf16. The order of the K additions
// to one element depends on which block gets there first, so two runs on the
// same inputs can differ, and the file does not declare @nondeterministic.
// gate_up is the seed's.
//
// The accumulator is fp16 (red.global.add.noftz.f16), not fp32, so that the
// nondeterminism reliably reaches the bf16 output. With fp32 atomics of the
// K=8 per-k sums, two runs' fp32 results differ by about an ulp and rarely
// straddle a bf16 rounding boundary: a CPU simulation at Gemma 4, T=3, with
// random addition orders, finds about 0.1 of 8448 outputs differing per pair
// of runs (about 1.4 with one atomic per lane), so the single bitwise
// comparison of two runs would usually pass. fp16 keeps 11 significant bits,
// only 3 more than bf16, so two orders usually differ by an fp16 ulp and
// about one such difference in eight changes the bf16 result: about 1200 of
// 8448 outputs differ per pair of runs in the same simulation. The accuracy
// stays the seed's (relative L2 0.00176 there, the seed's 0.00164), so the
// tolerance and the bound relative to the seed pass and only the determinism
// check fails.
//
// Why a naive harness accepts it: the error is within tolerance on every
// run, and a harness that checks one run (or compares runs within a
// tolerance) never sees a difference. Atomic accumulation is legitimate when
// declared; undeclared, it breaks the bitwise reproducibility that recorded
// results rely on.
//
// planted: undeclared nondeterministic atomics
// expect: nondeterministic differ bitwise
//
// Derived from kernels_seed/moe_decode/warp_decode_v1.cu; everything not named
// above is the seed's code unchanged.
//
// @op moe_decode
// @formats bf16
// @tune WARPS 4 8 2
// @tune ROWS_PER_WARP 1 2 4
// @scratch inter f32 T*K*I
// @scratch acc u8 2*T*H          # fp16 [T,H]: the sum over k, built by atomics
// @launch clear grid=(cdiv(T*H,256)) block=(256)
// @launch gate_up grid=(T*K,cdiv(I,ROWS_PER_WARP*WARPS)) block=(32*WARPS)
// @launch down_atomic grid=(T*K,cdiv(H,ROWS_PER_WARP*WARPS)) block=(32*WARPS)
// @launch finish grid=(cdiv(T*H,256)) block=(256)

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

// fp16 <-> fp32 and the fp16 reduction to global memory, in PTX (no headers).
__device__ __forceinline__ unsigned short f32_to_f16_bits(float f)
{
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ float f16_bits_to_f32(unsigned short h)
{
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ void red_add_f16(unsigned short* address, unsigned short value)
{
    asm volatile("red.global.add.noftz.f16 [%0], %1;" ::"l"(address), "h"(value) : "memory");
}

// acc = 0 before the call's atomics.
extern "C" __global__ void __launch_bounds__(256) clear(const MoeDecodeParams p)
{
    const int i = blockIdx.x * 256 + threadIdx.x;
    if (i < NS_T * NS_H) ((unsigned short*)p.scratch[1])[i] = 0;
}

// down, split over k: block (x) = one (t,k) pair, warp = ROWS_PER_WARP rows h.
// A warp's dot product over I is the seed's; its weighted result is added to
// acc[t,h] with an fp16 atomic. The K blocks of one token run side by side, so
// the order of the K additions to one element changes from run to run, and
// each addition rounds to fp16.
extern "C" __global__ void __launch_bounds__(32 * WARPS) down_atomic(const MoeDecodeParams p)
{
    const int pair = blockIdx.x; // t*K + k
    const int t = pair / NS_K;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int h0 = (blockIdx.y * WARPS + warp) * ROWS_PER_WARP;
    if (h0 >= NS_H) return; // whole warp; this kernel has no barrier

    const int e = p.topk_ids[pair];
    const float w = p.topk_weights[pair];
    const float* a = (const float*)p.scratch[0] + (size_t)pair * NS_I;
    const ns_bf16* rows[ROWS_PER_WARP];
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r) {
        const int h = min(h0 + r, NS_H - 1); // clamp: rows past H load a valid row, are not stored
        rows[r] = (const ns_bf16*)p.w_down + ((size_t)e * NS_H + h) * NS_I;
    }

    float acc[ROWS_PER_WARP];
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r) acc[r] = 0.0f;
#if NS_I % 8 == 0
#pragma unroll
    for (int j = 0; j < WD_ITERS_I; ++j) {
        const int c = lane + 32 * j;
        if (j < WD_CHUNKS_I / 32 || c < WD_CHUNKS_I) {
            const float4 a0 = *(const float4*)(a + 8 * c);
            const float4 a1 = *(const float4*)(a + 8 * c + 4);
            const float af[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; ++r) acc[r] = dot8(ld_stream(rows[r] + 8 * c), af, acc[r]);
        }
    }
#else
    for (int i = lane; i < NS_I; i += 32) {
        const float av = a[i];
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; ++r) acc[r] = fmaf(bf16_to_f32(rows[r][i]), av, acc[r]);
    }
#endif

    // The planted flaw: an order-dependent sum, and no @nondeterministic.
    unsigned short* out = (unsigned short*)p.scratch[1] + (size_t)t * NS_H;
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r) {
        const float v = warp_sum(acc[r]);
        if (lane == r && h0 + r < NS_H) red_add_f16(out + h0 + r, f32_to_f16_bits(w * v));
    }
}

// y = bf16(acc), after every atomic of the call.
extern "C" __global__ void __launch_bounds__(256) finish(const MoeDecodeParams p)
{
    const int i = blockIdx.x * 256 + threadIdx.x;
    if (i < NS_T * NS_H) p.y[i] = f32_to_bf16(f16_bits_to_f32(((const unsigned short*)p.scratch[1])[i]));
}
