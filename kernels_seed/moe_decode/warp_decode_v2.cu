// warp_decode_v2: warp decode for every weight format, with its load and
// intermediate choices as knobs.
//
// What it computes
//   y[t,h] = bf16( sum_k w[t,k] * sum_i W_down[e,h,i] * act(g_i) * u_i ),
//   g_i = sum_h W_gate[e,i,h] x[t,h],  u_i = sum_h W_up[e,i,h] x[t,h],  e = topk_ids[t,k],
//   where W is the weight as stored: bf16, or code * scale for int8_row,
//   fp8_e4m3 (per-row float scale) and int4_g128 (a float scale per 128
//   columns); see verifier/quantize.h for the formats and layouts.
//
// Parallel strategy: as warp_decode_v1 (its parent): one warp per output row,
// two kernels, no gather or scatter, weights read straight from the checkpoint
// layout, many independent 16-byte loads in flight. What changes is the unit of
// work: a lane reads 16-byte "chunks" of a weight row, 8 bf16, 16 int8/fp8 or
// 32 int4 weights, and widens them against the same number of activations.
//   gate_up: block (x) = one (t,k) pair, warp = ROWS_PER_WARP rows i of expert e.
//   down:    block (x) = token t, warp = ROWS_PER_WARP rows h; for every k the
//            lanes stride over I; each chunk's partial is weighted by w[t,k]
//            (times the row scale of expert e for quantized weights).
// Decoding, all exact and without int-to-float conversion instructions:
//   int8: byte ^ 0x80 placed in the mantissa of 2^23 (one byte permute), minus
//         2^23 + 128 (one add).
//   fp8:  the 7 magnitude bits moved under the float exponent field, sign on
//         top: that float is the value times 2^-120 (normal and subnormal codes
//         alike); sums run on those and the row's scale carries the 2^120. The
//         sums stay far above the float denormal range only without flush to
//         zero: do not compile this file with --use_fast_math / -ftz=true.
//   int4: nibble ^ 8 in the mantissa of 2^23, minus 2^23 + 8. A chunk of 32
//         lies inside one 128-column group, so each chunk's partial is
//         multiplied by its group's scale.
//
// Knobs
//   WARPS, ROWS_PER_WARP  block shape and rows per warp (as v1).
//   INFLIGHT              16-byte loads per lane issued before any is used.
//   CACHE_HINT            how weight loads treat the caches: 0 ld.global.nc with
//                         L1::no_allocate (v1); 1 the same plus L2::256B
//                         prefetch; 2 L2::evict_first through a createpolicy
//                         cache policy (weights are read once: keep x and inter in L2).
//   INTER_BF16            the intermediate act(g)*u stored as fp32 (0, v1) or
//                         rounded to bf16 (1): half the bytes the down kernel
//                         reads per weight from L1, one more rounding.
//
// Launch rule
//   gate_up grid=(T*K, cdiv(I, ROWS_PER_WARP*WARPS)) block=(32*WARPS)
//   down    grid=(T,   cdiv(H, ROWS_PER_WARP*WARPS)) block=(32*WARPS)
//   Rows past I (or H) in the last block are clamped for loading, never stored.
//
// Numerics
//   Products and sums in fp32 in a fixed order (lane strides, then a butterfly
//   shuffle): two runs are bitwise equal. The intermediate is fp32 unless
//   INTER_BF16; one round-to-nearest-even to bf16 at the end.
//
// Alignment: the chunked path needs the row length (H for gate/up, I for
// down) to be a multiple of the weights per chunk (8, 16 or 32); other shapes
// take a scalar path, chosen at compile time.
//
// parent: warp_decode_v1.cu
//
// @op moe_decode
// @formats bf16 int8_row int4_g128 fp8_e4m3
// @tune WARPS 4 8
// @tune ROWS_PER_WARP 1 2 4
// @tune INFLIGHT 16 8
// @tune CACHE_HINT 0 1 2
// @tune INTER_BF16 0 1
// @scratch inter f32 T*K*I
// @launch gate_up grid=(T*K,cdiv(I,ROWS_PER_WARP*WARPS)) block=(32*WARPS)
// @launch down grid=(T,cdiv(H,ROWS_PER_WARP*WARPS)) block=(32*WARPS)

#include "params.h"

// NsWeightFormat values for the preprocessor (an enum is 0 to #if).
#define FMT_BF16 0
#define FMT_INT8_ROW 1
#define FMT_INT4_G128 2
#define FMT_FP8_E4M3 3
#ifndef NS_FORMAT
#define NS_FORMAT FMT_BF16
#endif
#ifndef WARPS
#define WARPS 4
#endif
#ifndef ROWS_PER_WARP
#define ROWS_PER_WARP 1
#endif
#ifndef INFLIGHT
#define INFLIGHT 16
#endif
#ifndef CACHE_HINT
#define CACHE_HINT 0
#endif
#ifndef INTER_BF16
#define INTER_BF16 0
#endif

// Weights per 16-byte chunk.
#if NS_FORMAT == FMT_BF16
#define WPC 8
#elif NS_FORMAT == FMT_INT8_ROW || NS_FORMAT == FMT_FP8_E4M3
#define WPC 16
#elif NS_FORMAT == FMT_INT4_G128
#define WPC 32
#else
#error "warp_decode_v2: unknown NS_FORMAT"
#endif

#define GROUP 128 // int4_g128's scale group, in columns
#define CHUNKS_H (NS_H / WPC)
#define ITERS_H ((CHUNKS_H + 31) / 32)
#define CHUNKS_I (NS_I / WPC)
#define ITERS_I ((CHUNKS_I + 31) / 32)
#define BATCH_GU ((INFLIGHT / (2 * ROWS_PER_WARP)) > 0 ? (INFLIGHT / (2 * ROWS_PER_WARP)) : 1)
#define BATCH_DN ((INFLIGHT / ROWS_PER_WARP) > 0 ? (INFLIGHT / ROWS_PER_WARP) : 1)

#if INTER_BF16
typedef ns_bf16 inter_t;
#else
typedef float inter_t;
#endif

__device__ __forceinline__ float bf16_to_f32(ns_bf16 b) { return __uint_as_float((unsigned)b << 16); }

__device__ __forceinline__ ns_bf16 f32_to_bf16(float f)
{
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (ns_bf16)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ns_bf16)(u >> 16);
}

__device__ __forceinline__ float lo_f32(unsigned w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float hi_f32(unsigned w) { return __uint_as_float(w & 0xffff0000u); }

__device__ __forceinline__ uint4 ld_stream(const void* ptr)
{
    uint4 v;
#if CACHE_HINT == 1
    asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(ptr));
#elif CACHE_HINT == 2
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

// WPC activations starting at p, widened to fp32.
__device__ __forceinline__ void load_acts(const ns_bf16* p, float (&a)[WPC])
{
#pragma unroll
    for (int q = 0; q < WPC / 8; ++q) {
        const uint4 v = *(const uint4*)(p + 8 * q);
        a[8 * q + 0] = lo_f32(v.x); a[8 * q + 1] = hi_f32(v.x);
        a[8 * q + 2] = lo_f32(v.y); a[8 * q + 3] = hi_f32(v.y);
        a[8 * q + 4] = lo_f32(v.z); a[8 * q + 5] = hi_f32(v.z);
        a[8 * q + 6] = lo_f32(v.w); a[8 * q + 7] = hi_f32(v.w);
    }
}

__device__ __forceinline__ void load_acts(const float* p, float (&a)[WPC])
{
#pragma unroll
    for (int q = 0; q < WPC / 4; ++q) {
        const float4 v = *(const float4*)(p + 4 * q);
        a[4 * q + 0] = v.x; a[4 * q + 1] = v.y; a[4 * q + 2] = v.z; a[4 * q + 3] = v.w;
    }
}

// The 32-bit word `w` of a chunk, decoded to its WPC/4 weights (in the
// format's raw units: code, or value * 2^-120 for fp8).
__device__ __forceinline__ void decode_word(unsigned w, float* f)
{
#if NS_FORMAT == FMT_BF16
    f[0] = lo_f32(w);
    f[1] = hi_f32(w);
#elif NS_FORMAT == FMT_INT8_ROW
    const unsigned u = w ^ 0x80808080u; // signed -> offset binary
    f[0] = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7650)) - 8388736.0f; // 2^23 + 128
    f[1] = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7651)) - 8388736.0f;
    f[2] = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7652)) - 8388736.0f;
    f[3] = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7653)) - 8388736.0f;
#elif NS_FORMAT == FMT_FP8_E4M3
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        const unsigned c = (w >> (8 * j)) & 0xFFu;
        f[j] = __uint_as_float(((c & 0x7Fu) << 20) | ((c & 0x80u) << 24));
    }
#else // int4: even column in the low nibble
    const unsigned u = w ^ 0x88888888u;
#pragma unroll
    for (int j = 0; j < 8; ++j) f[j] = __uint_as_float(0x4B000000u | ((u >> (4 * j)) & 0xFu)) - 8388616.0f; // 2^23 + 8
#endif
}

// sum over the chunk of weight * activation, in raw units.
__device__ __forceinline__ float chunk_dot(uint4 w, const float (&a)[WPC])
{
    const unsigned words[4] = {w.x, w.y, w.z, w.w};
    float acc = 0.0f;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
        float f[WPC / 4];
        decode_word(words[q], f);
#pragma unroll
        for (int j = 0; j < WPC / 4; ++j) acc = fmaf(f[j], a[q * (WPC / 4) + j], acc);
    }
    return acc;
}

// The factor that turns a raw sum of row `row` (flat over experts) into its value,
// for per-row formats; 1 for bf16 and int4 (whose scales apply per chunk).
__device__ __forceinline__ float row_factor(const float* scales, size_t row)
{
#if NS_FORMAT == FMT_INT8_ROW
    return scales[row];
#elif NS_FORMAT == FMT_FP8_E4M3
    return scales[row] * 0x1p120f;
#else
    return 1.0f;
#endif
}

// The value of weight `col` of flat row `row` of a matrix with `cols` columns
// (the scalar path for shapes the chunked path does not cover).
__device__ __forceinline__ float weight_at(const void* codes, const float* scales, size_t row, int cols, int col)
{
    const size_t flat = row * cols + col;
#if NS_FORMAT == FMT_BF16
    return bf16_to_f32(((const ns_bf16*)codes)[flat]);
#elif NS_FORMAT == FMT_INT8_ROW
    return (float)((const signed char*)codes)[flat] * scales[row];
#elif NS_FORMAT == FMT_FP8_E4M3
    const unsigned c = ((const unsigned char*)codes)[flat];
    return __uint_as_float(((c & 0x7Fu) << 20) | ((c & 0x80u) << 24)) * 0x1p120f * scales[row];
#else
    const unsigned byte = ((const unsigned char*)codes)[flat / 2];
    const int code = (int)(((col & 1 ? byte >> 4 : byte) & 0xFu) ^ 0x8u) - 8;
    return (float)code * scales[row * ((cols + GROUP - 1) / GROUP) + col / GROUP];
#endif
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
    return g / (1.0f + expf(-g));
}

// Byte address of chunk c of flat row `row` in a matrix with `cols` columns.
__device__ __forceinline__ const unsigned char* chunk_ptr(const void* base, size_t row, int cols, int c)
{
    return (const unsigned char*)base + (row * cols / WPC + c) * 16;
}

extern "C" __global__ void __launch_bounds__(32 * WARPS) gate_up(const MoeDecodeParams p)
{
    const int pair = blockIdx.x; // t*K + k
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int i0 = (blockIdx.y * WARPS + warp) * ROWS_PER_WARP;
    if (i0 >= NS_I) return;

    const int t = pair / NS_K;
    const int e = p.topk_ids[pair];
    const ns_bf16* xt = p.x + (size_t)t * NS_H;
    size_t row[ROWS_PER_WARP];
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r) row[r] = (size_t)e * NS_I + min(i0 + r, NS_I - 1);

    float g[ROWS_PER_WARP], u[ROWS_PER_WARP];
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r) g[r] = u[r] = 0.0f;

#if NS_H % WPC == 0
#pragma unroll
    for (int jb = 0; jb < ITERS_H; jb += BATCH_GU) {
        uint4 vg[ROWS_PER_WARP][BATCH_GU], vu[ROWS_PER_WARP][BATCH_GU];
#pragma unroll
        for (int jj = 0; jj < BATCH_GU; ++jj) {
            const int j = jb + jj;
            const int c = lane + 32 * j;
            const bool ok = j < ITERS_H && (j < CHUNKS_H / 32 || c < CHUNKS_H);
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; ++r) {
                vg[r][jj] = ok ? ld_stream(chunk_ptr(p.w_gate, row[r], NS_H, c)) : make_uint4(0, 0, 0, 0);
                vu[r][jj] = ok ? ld_stream(chunk_ptr(p.w_up, row[r], NS_H, c)) : make_uint4(0, 0, 0, 0);
            }
        }
#pragma unroll
        for (int jj = 0; jj < BATCH_GU; ++jj) {
            const int j = jb + jj;
            const int c = lane + 32 * j;
            const bool ok = j < ITERS_H && (j < CHUNKS_H / 32 || c < CHUNKS_H);
            if (ok) {
                float xf[WPC];
                load_acts(xt + WPC * c, xf);
#pragma unroll
                for (int r = 0; r < ROWS_PER_WARP; ++r) {
#if NS_FORMAT == FMT_INT4_G128
                    const size_t s = row[r] * ((NS_H + GROUP - 1) / GROUP) + (WPC * c) / GROUP;
                    g[r] = fmaf(p.gate_scales[s], chunk_dot(vg[r][jj], xf), g[r]);
                    u[r] = fmaf(p.up_scales[s], chunk_dot(vu[r][jj], xf), u[r]);
#else
                    g[r] += chunk_dot(vg[r][jj], xf);
                    u[r] += chunk_dot(vu[r][jj], xf);
#endif
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r) {
        g[r] *= row_factor(p.gate_scales, row[r]);
        u[r] *= row_factor(p.up_scales, row[r]);
    }
#else
    for (int h = lane; h < NS_H; h += 32) {
        const float xv = bf16_to_f32(xt[h]);
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; ++r) {
            g[r] = fmaf(weight_at(p.w_gate, p.gate_scales, row[r], NS_H, h), xv, g[r]);
            u[r] = fmaf(weight_at(p.w_up, p.up_scales, row[r], NS_H, h), xv, u[r]);
        }
    }
#endif

    inter_t* inter = (inter_t*)p.scratch[0] + (size_t)pair * NS_I;
#pragma unroll
    for (int r = 0; r < ROWS_PER_WARP; ++r) {
        const float gs = warp_sum(g[r]);
        const float us = warp_sum(u[r]);
        if (lane == r && i0 + r < NS_I) {
            const float v = activation(gs, p.activation) * us;
#if INTER_BF16
            inter[i0 + r] = f32_to_bf16(v);
#else
            inter[i0 + r] = v;
#endif
        }
    }
}

extern "C" __global__ void __launch_bounds__(32 * WARPS) down(const MoeDecodeParams p)
{
    const int t = blockIdx.x;
    const int warp = threadIdx.x >> 5;
    const int lane = threadIdx.x & 31;
    const int h0 = (blockIdx.y * WARPS + warp) * ROWS_PER_WARP;
    if (h0 >= NS_H) return;

    const inter_t* inter_t_base = (const inter_t*)p.scratch[0] + (size_t)t * NS_K * NS_I;

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

#if NS_I % WPC == 0
    // Per-row formats: the routing weight and the row's scale as one factor.
    float factor[NS_K][ROWS_PER_WARP];
#pragma unroll
    for (int k = 0; k < NS_K; ++k)
#pragma unroll
        for (int r = 0; r < ROWS_PER_WARP; ++r)
            factor[k][r] = wk[k] * row_factor(p.down_scales, (size_t)ek[k] * NS_H + min(h0 + r, NS_H - 1));

#pragma unroll
    for (int qb = 0; qb < NS_K * ITERS_I; qb += BATCH_DN) {
        uint4 v[ROWS_PER_WARP][BATCH_DN];
#pragma unroll
        for (int qq = 0; qq < BATCH_DN; ++qq) {
            const int q = qb + qq, j = q % ITERS_I;
            const int k = q < NS_K * ITERS_I ? q / ITERS_I : 0;
            const int c = lane + 32 * j;
            const bool ok = q < NS_K * ITERS_I && (j < CHUNKS_I / 32 || c < CHUNKS_I);
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; ++r) {
                const size_t row = (size_t)ek[k] * NS_H + min(h0 + r, NS_H - 1);
                v[r][qq] = ok ? ld_stream(chunk_ptr(p.w_down, row, NS_I, c)) : make_uint4(0, 0, 0, 0);
            }
        }
#pragma unroll
        for (int qq = 0; qq < BATCH_DN; ++qq) {
            const int q = qb + qq, j = q % ITERS_I;
            const int k = q < NS_K * ITERS_I ? q / ITERS_I : 0;
            const int c = lane + 32 * j;
            const bool ok = q < NS_K * ITERS_I && (j < CHUNKS_I / 32 || c < CHUNKS_I);
            if (ok) {
                float af[WPC];
                load_acts(inter_t_base + k * NS_I + WPC * c, af);
#pragma unroll
                for (int r = 0; r < ROWS_PER_WARP; ++r) {
#if NS_FORMAT == FMT_INT4_G128
                    const size_t row = (size_t)ek[k] * NS_H + min(h0 + r, NS_H - 1);
                    const float s = p.down_scales[row * ((NS_I + GROUP - 1) / GROUP) + (WPC * c) / GROUP];
                    acc[r] = fmaf(wk[k] * s, chunk_dot(v[r][qq], af), acc[r]);
#else
                    acc[r] = fmaf(factor[k][r], chunk_dot(v[r][qq], af), acc[r]);
#endif
                }
            }
        }
    }
#else
#pragma unroll
    for (int k = 0; k < NS_K; ++k) {
        const inter_t* a = inter_t_base + k * NS_I;
        for (int i = lane; i < NS_I; i += 32) {
#if INTER_BF16
            const float av = bf16_to_f32(a[i]);
#else
            const float av = a[i];
#endif
#pragma unroll
            for (int r = 0; r < ROWS_PER_WARP; ++r) {
                const size_t row = (size_t)ek[k] * NS_H + min(h0 + r, NS_H - 1);
                acc[r] = fmaf(wk[k], weight_at(p.w_down, p.down_scales, row, NS_I, i) * av, acc[r]);
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
