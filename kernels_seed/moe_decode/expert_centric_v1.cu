// expert_centric_v1: the standard expert-centric MoE path (the baseline).
//
// What it computes
//   y[t,h] = bf16( sum_k w[t,k] * sum_i w_down[e,h,i] * act(g_i) * u_i ),
//   g_i = sum_h w_gate[e,i,h] x[t,h],  u_i = sum_h w_up[e,i,h] x[t,h],  e = topk_ids[t,k],
//   with act = silu or gelu_tanh (p.activation), bf16 weights and activations.
//
// Parallel strategy: what serving engines do (vLLM fused_moe with
// moe_align_block_size): sort the T*K (token, expert) pairs by expert, so that
// each expert's rows form one contiguous block, then run one dense GEMM per
// expert over its block and scatter-combine at the end. Five launches:
//   route        1 block: count pairs per expert (shared-memory atomics), exclusive
//                scan to offsets[E+1], then give every pair a slot in its expert's
//                range: sorted_pairs[slot] = t*K+k, slot_of_pair[t*K+k] = slot.
//   gather       x_sorted[slot,:] = x[t,:] (16-byte copies).
//   gemm_gate_up block (n-tile, expert): for each TILE_M-row tile of the expert's
//                slots, G = X_tile * Wg^T and U = X_tile * Wu^T over H in
//                TILE_K-wide steps, then inter_sorted = bf16(act(G) * U).
//   gemm_down    block (n-tile, expert): out_sorted = bf16(inter_sorted * Wd^T) over I.
//   combine      y[t,h] = bf16( sum_k w[t,k] * out_sorted[slot_of_pair[t*K+k], h] ).
//   The GEMMs are classic shared-memory tiled GEMMs on CUDA cores (no tensor
//   cores yet: a later version adds them). A tile of TILE_K columns of the
//   activation rows and of TILE_N weight rows is staged in shared memory as fp32,
//   k-major, so each thread reads its TILE_M/16 x TILE_N/16 register tile's
//   operands as float2/float4 (conflict-free, broadcast across the warp). The
//   next tile's global loads are issued into registers before the current tile
//   is consumed, so one tile of loads is in flight during the FMAs.
//   Blocks of experts with no pairs exit at once; weights of an expert are read
//   once per TILE_M rows of its slots (at decode: once).
//
// Launch rule
//   route        grid=(1)                    block=(1024)
//   gather       grid=(T*K)                  block=(128)
//   gemm_gate_up grid=(cdiv(I,TILE_N), E)    block=(256)
//   gemm_down    grid=(cdiv(H,TILE_N), E)    block=(256)
//   combine      grid=(T, cdiv(H,256))       block=(256)
//   Rows past an expert's count and columns past H or I are zero-filled on load
//   and never stored, so any H, I and any routing (all pairs on one expert too)
//   is handled; 16-byte loads need H % 8 == 0 and I % 8 == 0 (else a scalar path).
//
// Numerics
//   fp32 accumulation in every GEMM. As in the standard path, activations are
//   bf16 between stages: act(g)*u is rounded to bf16 (inter_sorted), each expert's
//   down output is rounded to bf16 (out_sorted), and the weighted sum over k is
//   done in fp32 in k order and rounded once more. Three bf16 roundings in all,
//   against one in warp decode: this file's error is the honest reference level.
//
// Determinism
//   The order of slots inside one expert depends on the order in which the
//   shared-memory atomics of route are served, so it may change between runs. It
//   does not change y: every slot's row is computed on its own (a row's sums run
//   over k in the same order whatever its position in a tile) and combine reads
//   the pairs back in k order. y is bitwise deterministic.
//
// parent: none (seed)
//
// @op moe_decode
// @formats bf16
// @tune TILE_M 16 32
// @tune TILE_N 64 32 128
// @constrain TILE_M % 16 == 0 && TILE_N % 16 == 0
// @scratch offsets i32 E+1
// @scratch sorted_pairs i32 T*K
// @scratch slot_of_pair i32 T*K
// @scratch x_sorted bf16 T*K*H
// @scratch inter_sorted bf16 T*K*I
// @scratch out_sorted bf16 T*K*H
// @launch route grid=(1) block=(1024)
// @launch gather grid=(T*K) block=(128)
// @launch gemm_gate_up grid=(cdiv(I,TILE_N),E) block=(256)
// @launch gemm_down grid=(cdiv(H,TILE_N),E) block=(256)
// @launch combine grid=(T,cdiv(H,256)) block=(256)

#include "params.h"

#ifndef TILE_M
#define TILE_M 16
#endif
#ifndef TILE_N
#define TILE_N 64
#endif
#define TILE_K 32 // columns of the reduction dimension per shared-memory stage
#define GEMM_THREADS 256

#define EC_TK (NS_T * NS_K) // (token, expert) pairs = rows of the sorted buffers

__device__ __forceinline__ float bf16_to_f32(ns_bf16 b) { return __uint_as_float((unsigned)b << 16); }

// Round to nearest even; a NaN stays a (quiet) NaN, overflow rounds to inf.
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
    return g / (1.0f + expf(-g)); // silu; expf(-g) = inf gives -0 for very negative g
}

// ---------------------------------------------------------------------------
// 1. route: counting sort of the pairs by expert, in one block.
extern "C" __global__ void __launch_bounds__(1024) route(const MoeDecodeParams p)
{
    __shared__ int count[NS_E];
    __shared__ int offset[NS_E + 1];
    __shared__ int cursor[NS_E];
    int* offsets = (int*)p.scratch[0];
    int* sorted_pairs = (int*)p.scratch[1];
    int* slot_of_pair = (int*)p.scratch[2];
    const int tid = threadIdx.x;

    for (int e = tid; e < NS_E; e += blockDim.x) count[e] = 0, cursor[e] = 0;
    __syncthreads();
    for (int pr = tid; pr < EC_TK; pr += blockDim.x) atomicAdd(&count[p.topk_ids[pr]], 1);
    __syncthreads();

    // Exclusive scan by warp 0, 32 experts at a time, carrying the running total.
    if (tid < 32) {
        int carry = 0;
        for (int base = 0; base < NS_E; base += 32) {
            const int e = base + tid;
            const int v = e < NS_E ? count[e] : 0;
            int incl = v;
#pragma unroll
            for (int off = 1; off < 32; off <<= 1) {
                const int n = __shfl_up_sync(0xffffffffu, incl, off);
                if (tid >= off) incl += n;
            }
            if (e < NS_E) offset[e] = carry + incl - v;
            carry += __shfl_sync(0xffffffffu, incl, 31);
        }
        if (tid == 0) offset[NS_E] = carry;
    }
    __syncthreads();

    for (int e = tid; e <= NS_E; e += blockDim.x) offsets[e] = offset[e];
    // The slot order inside an expert follows the atomics' order and may vary
    // from run to run; y does not (see Determinism above).
    for (int pr = tid; pr < EC_TK; pr += blockDim.x) {
        const int e = p.topk_ids[pr];
        const int slot = offset[e] + atomicAdd(&cursor[e], 1);
        sorted_pairs[slot] = pr;
        slot_of_pair[pr] = slot;
    }
}

// ---------------------------------------------------------------------------
// 2. gather: one block per slot copies its token's activation row.
extern "C" __global__ void __launch_bounds__(128) gather(const MoeDecodeParams p)
{
    const int slot = blockIdx.x;
    const int t = ((const int*)p.scratch[1])[slot] / NS_K;
    const ns_bf16* src = p.x + (size_t)t * NS_H;
    ns_bf16* dst = (ns_bf16*)p.scratch[3] + (size_t)slot * NS_H;
#if NS_H % 8 == 0
    for (int c = threadIdx.x; c < NS_H / 8; c += blockDim.x)
        ((uint4*)dst)[c] = ((const uint4*)src)[c];
#else
    for (int h = threadIdx.x; h < NS_H; h += blockDim.x) dst[h] = src[h];
#endif
}

// ---------------------------------------------------------------------------
// The tiled GEMM shared by gemm_gate_up (NB = 2 weight matrices) and gemm_down
// (NB = 1): acc[b][i][j] = sum_kd A[m][kd] * B_b[n][kd] for the thread's rows
// m = ty*RM + i and columns n = (j/RV)*16*RV + tx*RV + j%RV, where A is
// `a_rows` rows of the sorted activations and B_b is `b_rows` weight rows, both
// with row length KD. Columns come in groups of RV (up to 4) consecutive ones so
// that 8 consecutive threads read 8 consecutive float4 of a shared-memory row:
// no bank conflict, and the rows of ty and ty+1 in one warp are broadcasts.

#define RM (TILE_M / 16) // rows of the register tile
#define RN (TILE_N / 16) // columns of the register tile
#define RV (RN < 4 ? RN : 4) // consecutive columns per group
#define CHUNKS_PER_ROW (TILE_K / 8) // 16-byte chunks per row of a stage
#define A_ITEMS ((TILE_M * CHUNKS_PER_ROW + GEMM_THREADS - 1) / GEMM_THREADS)
#define B_ITEMS ((TILE_N * CHUNKS_PER_ROW + GEMM_THREADS - 1) / GEMM_THREADS)

// 8 bf16 of row `row` (of `rows`) from column `col` (of KD), zero outside.
template <int KD, bool WEIGHT>
__device__ __forceinline__ uint4 load8(const ns_bf16* base, int row, int rows, int col)
{
    uint4 v = make_uint4(0, 0, 0, 0);
    if (row >= rows) return v;
    const ns_bf16* ptr = base + (size_t)row * KD + col;
    if (KD % 8 == 0) {
        if (col < KD) v = WEIGHT ? __ldg((const uint4*)ptr) : *(const uint4*)ptr;
    } else {
        unsigned short s[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) s[j] = col + j < KD ? ptr[j] : (unsigned short)0;
        v.x = s[0] | ((unsigned)s[1] << 16);
        v.y = s[2] | ((unsigned)s[3] << 16);
        v.z = s[4] | ((unsigned)s[5] << 16);
        v.w = s[6] | ((unsigned)s[7] << 16);
    }
    return v;
}

// Store 8 bf16 (columns kc..kc+7 of a row r) k-major as fp32: tile[kc+j][r].
template <int LD>
__device__ __forceinline__ void store8_kmajor(float* tile, int r, int kc, uint4 v)
{
    tile[(kc + 0) * LD + r] = __uint_as_float(v.x << 16);
    tile[(kc + 1) * LD + r] = __uint_as_float(v.x & 0xffff0000u);
    tile[(kc + 2) * LD + r] = __uint_as_float(v.y << 16);
    tile[(kc + 3) * LD + r] = __uint_as_float(v.y & 0xffff0000u);
    tile[(kc + 4) * LD + r] = __uint_as_float(v.z << 16);
    tile[(kc + 5) * LD + r] = __uint_as_float(v.z & 0xffff0000u);
    tile[(kc + 6) * LD + r] = __uint_as_float(v.w << 16);
    tile[(kc + 7) * LD + r] = __uint_as_float(v.w & 0xffff0000u);
}

// Item `it` of a stage -> (row, chunk). Two consecutive threads read one full
// 32-byte sector of a row; a warp covers 16 rows x 2 chunks, so the k-major
// stores collide at most 2-way in a bank.
__device__ __forceinline__ void item_coords(int it, int rows_in_tile, int& row, int& chunk)
{
    chunk = (it & 1) + 2 * (it / (2 * rows_in_tile));
    row = (it >> 1) % rows_in_tile;
}

__device__ __forceinline__ void read_frag(const float* src, float* dst, int n)
{
    // n is a compile-time constant after inlining: 16-byte reads where possible.
    if (n % 4 == 0) {
#pragma unroll
        for (int q = 0; q < n / 4; ++q) {
            const float4 v = ((const float4*)src)[q];
            dst[4 * q] = v.x, dst[4 * q + 1] = v.y, dst[4 * q + 2] = v.z, dst[4 * q + 3] = v.w;
        }
    } else if (n % 2 == 0) {
#pragma unroll
        for (int q = 0; q < n / 2; ++q) {
            const float2 v = ((const float2*)src)[q];
            dst[2 * q] = v.x, dst[2 * q + 1] = v.y;
        }
    } else {
#pragma unroll
        for (int q = 0; q < n; ++q) dst[q] = src[q];
    }
}

template <int NB, int KD>
__device__ __forceinline__ void gemm_tile(const ns_bf16* a, int a_rows, const ns_bf16* const* b, int b_rows,
                                          float* As, float* Bs, float (&acc)[NB][RM][RN])
{
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;

#pragma unroll
    for (int bi = 0; bi < NB; ++bi)
#pragma unroll
        for (int i = 0; i < RM; ++i)
#pragma unroll
            for (int j = 0; j < RN; ++j) acc[bi][i][j] = 0.0f;

    uint4 ra[A_ITEMS], rb[NB][B_ITEMS];
    auto load_stage = [&](int k0) {
#pragma unroll
        for (int q = 0; q < A_ITEMS; ++q) {
            const int it = tid + q * GEMM_THREADS;
            int row, ch;
            item_coords(it, TILE_M, row, ch);
            ra[q] = it < TILE_M * CHUNKS_PER_ROW ? load8<KD, false>(a, row, a_rows, k0 + 8 * ch)
                                                 : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int bi = 0; bi < NB; ++bi)
#pragma unroll
            for (int q = 0; q < B_ITEMS; ++q) {
                const int it = tid + q * GEMM_THREADS;
                int row, ch;
                item_coords(it, TILE_N, row, ch);
                rb[bi][q] = it < TILE_N * CHUNKS_PER_ROW ? load8<KD, true>(b[bi], row, b_rows, k0 + 8 * ch)
                                                         : make_uint4(0, 0, 0, 0);
            }
    };

    load_stage(0);
    for (int k0 = 0; k0 < KD; k0 += TILE_K) {
        __syncthreads(); // the previous stage has been consumed
#pragma unroll
        for (int q = 0; q < A_ITEMS; ++q) {
            const int it = tid + q * GEMM_THREADS;
            if (it < TILE_M * CHUNKS_PER_ROW) {
                int row, ch;
                item_coords(it, TILE_M, row, ch);
                store8_kmajor<TILE_M>(As, row, 8 * ch, ra[q]);
            }
        }
#pragma unroll
        for (int bi = 0; bi < NB; ++bi)
#pragma unroll
            for (int q = 0; q < B_ITEMS; ++q) {
                const int it = tid + q * GEMM_THREADS;
                if (it < TILE_N * CHUNKS_PER_ROW) {
                    int row, ch;
                    item_coords(it, TILE_N, row, ch);
                    store8_kmajor<TILE_N>(Bs + bi * TILE_K * TILE_N, row, 8 * ch, rb[bi][q]);
                }
            }
        __syncthreads();
        if (k0 + TILE_K < KD) load_stage(k0 + TILE_K); // in flight during the FMAs below

#pragma unroll 8
        for (int kk = 0; kk < TILE_K; ++kk) {
            float af[RM], bf[NB][RN];
            read_frag(As + kk * TILE_M + ty * RM, af, RM);
#pragma unroll
            for (int bi = 0; bi < NB; ++bi)
#pragma unroll
                for (int g = 0; g < RN / RV; ++g)
                    read_frag(Bs + (bi * TILE_K + kk) * TILE_N + g * 16 * RV + tx * RV, bf[bi] + g * RV, RV);
#pragma unroll
            for (int bi = 0; bi < NB; ++bi)
#pragma unroll
                for (int i = 0; i < RM; ++i)
#pragma unroll
                    for (int j = 0; j < RN; ++j) acc[bi][i][j] = fmaf(af[i], bf[bi][j], acc[bi][i][j]);
        }
    }
}

// Store one row's RN results, columns n0 + g*16*RV + c for group g, c < RV:
// RV consecutive bf16 per group in one store when they are all inside N.
template <int N>
__device__ __forceinline__ void store_row(ns_bf16* dst, int n0, const float (&v)[RN])
{
#pragma unroll
    for (int g = 0; g < RN / RV; ++g) {
        const int n = n0 + g * 16 * RV;
        const float* w = v + g * RV;
        if constexpr (N % RV == 0 && RV == 4) {
            if (n < N)
                *(uint2*)(dst + n) = make_uint2(f32_to_bf16(w[0]) | ((unsigned)f32_to_bf16(w[1]) << 16),
                                                f32_to_bf16(w[2]) | ((unsigned)f32_to_bf16(w[3]) << 16));
        } else if constexpr (N % RV == 0 && RV == 2) {
            if (n < N) *(unsigned*)(dst + n) = f32_to_bf16(w[0]) | ((unsigned)f32_to_bf16(w[1]) << 16);
        } else {
#pragma unroll
            for (int c = 0; c < RV; ++c)
                if (n + c < N) dst[n + c] = f32_to_bf16(w[c]);
        }
    }
}

// ---------------------------------------------------------------------------
// 3. gemm_gate_up: inter_sorted[slot, i] = bf16( act(x_sorted[slot] . w_gate[e,i]) * (x_sorted[slot] . w_up[e,i]) )
extern "C" __global__ void __launch_bounds__(GEMM_THREADS) gemm_gate_up(const MoeDecodeParams p)
{
    __shared__ __align__(16) float As[TILE_K * TILE_M];
    __shared__ __align__(16) float Bs[2 * TILE_K * TILE_N];
    const int e = blockIdx.y;
    const int* offsets = (const int*)p.scratch[0];
    const int begin = offsets[e], count = offsets[e + 1] - begin;
    if (count == 0) return; // whole block: no barrier reached yet

    const int n0 = blockIdx.x * TILE_N;
    const ns_bf16* b[2] = {(const ns_bf16*)p.w_gate + ((size_t)e * NS_I + n0) * NS_H,
                           (const ns_bf16*)p.w_up + ((size_t)e * NS_I + n0) * NS_H};
    const int b_rows = min(TILE_N, NS_I - n0);
    const ns_bf16* x_sorted = (const ns_bf16*)p.scratch[3];
    ns_bf16* inter_sorted = (ns_bf16*)p.scratch[4];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

    for (int m0 = 0; m0 < count; m0 += TILE_M) {
        float acc[2][RM][RN];
        gemm_tile<2, NS_H>(x_sorted + (size_t)(begin + m0) * NS_H, min(TILE_M, count - m0), b, b_rows, As, Bs, acc);
#pragma unroll
        for (int i = 0; i < RM; ++i) {
            const int m = m0 + ty * RM + i;
            if (m < count) {
                float v[RN];
#pragma unroll
                for (int j = 0; j < RN; ++j) v[j] = activation(acc[0][i][j], p.activation) * acc[1][i][j];
                store_row<NS_I>(inter_sorted + (size_t)(begin + m) * NS_I, n0 + tx * RV, v);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 4. gemm_down: out_sorted[slot, h] = bf16( inter_sorted[slot] . w_down[e,h] )
extern "C" __global__ void __launch_bounds__(GEMM_THREADS) gemm_down(const MoeDecodeParams p)
{
    __shared__ __align__(16) float As[TILE_K * TILE_M];
    __shared__ __align__(16) float Bs[TILE_K * TILE_N];
    const int e = blockIdx.y;
    const int* offsets = (const int*)p.scratch[0];
    const int begin = offsets[e], count = offsets[e + 1] - begin;
    if (count == 0) return; // whole block: no barrier reached yet

    const int n0 = blockIdx.x * TILE_N;
    const ns_bf16* b[1] = {(const ns_bf16*)p.w_down + ((size_t)e * NS_H + n0) * NS_I};
    const int b_rows = min(TILE_N, NS_H - n0);
    const ns_bf16* inter_sorted = (const ns_bf16*)p.scratch[4];
    ns_bf16* out_sorted = (ns_bf16*)p.scratch[5];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

    for (int m0 = 0; m0 < count; m0 += TILE_M) {
        float acc[1][RM][RN];
        gemm_tile<1, NS_I>(inter_sorted + (size_t)(begin + m0) * NS_I, min(TILE_M, count - m0), b, b_rows, As, Bs, acc);
#pragma unroll
        for (int i = 0; i < RM; ++i) {
            const int m = m0 + ty * RM + i;
            if (m < count) store_row<NS_H>(out_sorted + (size_t)(begin + m) * NS_H, n0 + tx * RV, acc[0][i]);
        }
    }
}

// ---------------------------------------------------------------------------
// 5. combine: y[t,h] = bf16( sum_k w[t,k] * out_sorted[slot_of_pair[t*K+k], h] ), k in order.
extern "C" __global__ void __launch_bounds__(256) combine(const MoeDecodeParams p)
{
    const int t = blockIdx.x;
    const int h = blockIdx.y * blockDim.x + threadIdx.x;
    if (h >= NS_H) return;
    const int* slot_of_pair = (const int*)p.scratch[2];
    const ns_bf16* out_sorted = (const ns_bf16*)p.scratch[5];
    float acc = 0.0f;
#pragma unroll
    for (int k = 0; k < NS_K; ++k) {
        const int slot = slot_of_pair[t * NS_K + k];
        acc = fmaf(p.topk_weights[t * NS_K + k], bf16_to_f32(out_sorted[(size_t)slot * NS_H + h]), acc);
    }
    p.y[(size_t)t * NS_H + h] = f32_to_bf16(acc);
}
