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
//   cores yet: a later version adds them). A stage holds TILE_K columns of
//   TILE_M activation rows and of TILE_N rows of each weight matrix, as bf16, in
//   rows padded by 16 bytes; STAGES stages form a cp.async ring, so STAGES-1
//   stages of loads are in flight while one is consumed (at decode the GEMMs are
//   memory-bound: bytes in flight decide the speed). Each of the 256 threads
//   owns a TILE_M/16 x TILE_N/16 register tile, rows ty*RM+i and columns tx+16j,
//   and reads its operands 8 k at a time with 16-byte shared loads (conflict-free
//   thanks to the padding; the rows of a warp's two ty are broadcasts).
//   Blocks of experts with no pairs exit at once; weights of an expert are read
//   once per TILE_M rows of its slots (at decode: once). Threads whose register
//   tile holds only padding rows (past the expert's count) load but skip the
//   math: at decode an expert has one or two rows, and converting and
//   multiplying 16 rows of zeros made the gate/up GEMM compute-bound (4x slower
//   at Gemma 4, T=1, on an H200).
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
// @tune TILE_N 32 64 128
// @tune TILE_K 64 32
// @tune STAGES 4 3 2
// @constrain TILE_M % 16 == 0 && TILE_N % 16 == 0 && TILE_K % 8 == 0
// @constrain STAGES * (TILE_M + 2 * TILE_N) * (TILE_K + 8) * 2 <= 49152  # gemm_gate_up's static shared memory
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
#define TILE_N 32
#endif
#ifndef TILE_K
#define TILE_K 64
#endif
#ifndef STAGES
#define STAGES 4
#endif
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
// m = ty*RM + i and columns n = tx + 16*j, where A is `a_rows` rows of the sorted
// activations and B_b is `b_rows` weight rows, both with row length KD. Rows
// past a_rows / b_rows and columns past KD are zero-filled.

#define RM (TILE_M / 16)            // rows of the register tile
#define RN (TILE_N / 16)            // columns of the register tile
#define SROW (TILE_K + 8)           // shared row in bf16: +16 bytes spreads 8 rows over all banks
#define CHUNKS (TILE_K / 8)         // 16-byte chunks per row of a stage

__device__ __forceinline__ unsigned smem_u32(const void* ptr)
{
    return (unsigned)__cvta_generic_to_shared(ptr);
}

// 16 bytes global -> shared, bypassing L1; src_bytes = 0 writes zeros.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src), "r"(src_bytes)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

__device__ __forceinline__ void widen8(uint4 v, float (&f)[8])
{
    f[0] = __uint_as_float(v.x << 16), f[1] = __uint_as_float(v.x & 0xffff0000u);
    f[2] = __uint_as_float(v.y << 16), f[3] = __uint_as_float(v.y & 0xffff0000u);
    f[4] = __uint_as_float(v.z << 16), f[5] = __uint_as_float(v.z & 0xffff0000u);
    f[6] = __uint_as_float(v.w << 16), f[7] = __uint_as_float(v.w & 0xffff0000u);
}

// Copy ROWS x TILE_K bf16 (row length KD, the first `valid_rows` rows real, the
// rest zeros) from column k0 into a stage at `st`. Consecutive threads take consecutive 16-byte
// chunks of a row, so a warp reads whole 64- or 128-byte row segments.
template <int ROWS, int KD>
__device__ __forceinline__ void load_rows(ns_bf16* st, const ns_bf16* src0, int valid_rows, int k0)
{
    constexpr int ITEMS = ROWS * CHUNKS;
#pragma unroll
    for (int q = 0; q < (ITEMS + GEMM_THREADS - 1) / GEMM_THREADS; ++q) {
        const int it = threadIdx.x + q * GEMM_THREADS;
        if (ITEMS % GEMM_THREADS != 0 && it >= ITEMS) break;
        const int row = it / CHUNKS, col = k0 + 8 * (it % CHUNKS);
        const ns_bf16* src = src0 + (size_t)row * KD + col;
        const bool valid = row < valid_rows && col < KD;
        ns_bf16* dst = st + row * SROW + 8 * (it % CHUNKS);
        if constexpr (KD % 8 == 0) {
            cp_async16(dst, valid ? (const void*)src : (const void*)src0, valid ? 16 : 0);
        } else {
            // Rows not 16-byte aligned: plain element loads, bounds per element.
            unsigned short e[8];
#pragma unroll
            for (int c = 0; c < 8; ++c) e[c] = valid && col + c < KD ? src[c] : (unsigned short)0;
            *(uint4*)dst = make_uint4(e[0] | ((unsigned)e[1] << 16), e[2] | ((unsigned)e[3] << 16),
                                      e[4] | ((unsigned)e[5] << 16), e[6] | ((unsigned)e[7] << 16));
        }
    }
}

// One stage: TILE_M rows of A, then TILE_N rows of each B_b.
template <int NB, int KD>
__device__ __forceinline__ void load_stage(ns_bf16* st, const ns_bf16* a, int a_rows, const ns_bf16* const (&b)[NB],
                                           int b_rows, int k0)
{
    load_rows<TILE_M, KD>(st, a, a_rows, k0);
#pragma unroll
    for (int bi = 0; bi < NB; ++bi) load_rows<TILE_N, KD>(st + (TILE_M + bi * TILE_N) * SROW, b[bi], b_rows, k0);
}

template <int NB, int KD>
__device__ __forceinline__ void gemm_tile(const ns_bf16* a, int a_rows, const ns_bf16* const (&b)[NB], int b_rows,
                                          ns_bf16* smem, float (&acc)[NB][RM][RN])
{
    constexpr int STAGE = (TILE_M + NB * TILE_N) * SROW; // bf16 per stage
    constexpr int NK = (KD + TILE_K - 1) / TILE_K;
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

#pragma unroll
    for (int bi = 0; bi < NB; ++bi)
#pragma unroll
        for (int i = 0; i < RM; ++i)
#pragma unroll
            for (int j = 0; j < RN; ++j) acc[bi][i][j] = 0.0f;

    __syncthreads(); // the ring may still be read by the previous m-tile
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < NK) load_stage<NB, KD>(smem + s * STAGE, a, a_rows, b, b_rows, s * TILE_K);
        cp_async_commit(); // (empty groups keep the count uniform)
    }

#pragma unroll 1
    for (int kt = 0; kt < NK; ++kt) {
        cp_async_wait<STAGES - 2>(); // stage kt has landed (for this thread)...
        __syncthreads();             // ...for all threads, and stage kt-1 is consumed
        const int next = kt + STAGES - 1;
        if (next < NK) load_stage<NB, KD>(smem + (next % STAGES) * STAGE, a, a_rows, b, b_rows, next * TILE_K);
        cp_async_commit();

        // Threads whose rows all lie past the expert's count skip the math: at
        // decode an expert has a row or two, and converting and multiplying the
        // zero padding rows would make this CUDA-core GEMM compute-bound.
        if (ty * RM >= a_rows) continue;
        const ns_bf16* As = smem + (kt % STAGES) * STAGE;
        const ns_bf16* Bs = As + TILE_M * SROW;
#pragma unroll
        for (int kc = 0; kc < CHUNKS; ++kc) {
            float af[RM][8];
#pragma unroll
            for (int i = 0; i < RM; ++i) widen8(*(const uint4*)(As + (ty * RM + i) * SROW + 8 * kc), af[i]);
#pragma unroll
            for (int bi = 0; bi < NB; ++bi)
#pragma unroll
                for (int j = 0; j < RN; ++j) {
                    float bf[8];
                    widen8(*(const uint4*)(Bs + (bi * TILE_N + tx + 16 * j) * SROW + 8 * kc), bf);
#pragma unroll
                    for (int i = 0; i < RM; ++i)
#pragma unroll
                        for (int c = 0; c < 8; ++c) acc[bi][i][j] = fmaf(af[i][c], bf[c], acc[bi][i][j]);
                }
        }
    }
    cp_async_wait<0>();
}

// ---------------------------------------------------------------------------
// 3. gemm_gate_up: inter_sorted[slot, i] = bf16( act(x_sorted[slot] . w_gate[e,i]) * (x_sorted[slot] . w_up[e,i]) )
extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 2) gemm_gate_up(const MoeDecodeParams p)
{
    __shared__ __align__(16) ns_bf16 smem[STAGES * (TILE_M + 2 * TILE_N) * SROW];
    const int e = blockIdx.y;
    const int* offsets = (const int*)p.scratch[0];
    const int begin = offsets[e], count = offsets[e + 1] - begin;
    if (count == 0) return; // whole block: no barrier reached yet

    const int n0 = blockIdx.x * TILE_N;
    const ns_bf16* const b[2] = {(const ns_bf16*)p.w_gate + ((size_t)e * NS_I + n0) * NS_H,
                                 (const ns_bf16*)p.w_up + ((size_t)e * NS_I + n0) * NS_H};
    const int b_rows = min(TILE_N, NS_I - n0);
    const ns_bf16* x_sorted = (const ns_bf16*)p.scratch[3];
    ns_bf16* inter_sorted = (ns_bf16*)p.scratch[4];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

    for (int m0 = 0; m0 < count; m0 += TILE_M) {
        float acc[2][RM][RN];
        gemm_tile<2, NS_H>(x_sorted + (size_t)(begin + m0) * NS_H, min(TILE_M, count - m0), b, b_rows, smem, acc);
#pragma unroll
        for (int i = 0; i < RM; ++i) {
            const int m = m0 + ty * RM + i;
            if (m >= count) continue;
            ns_bf16* row = inter_sorted + (size_t)(begin + m) * NS_I;
#pragma unroll
            for (int j = 0; j < RN; ++j) {
                const int n = n0 + tx + 16 * j;
                if (n < NS_I) row[n] = f32_to_bf16(activation(acc[0][i][j], p.activation) * acc[1][i][j]);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 4. gemm_down: out_sorted[slot, h] = bf16( inter_sorted[slot] . w_down[e,h] )
extern "C" __global__ void __launch_bounds__(GEMM_THREADS, 2) gemm_down(const MoeDecodeParams p)
{
    __shared__ __align__(16) ns_bf16 smem[STAGES * (TILE_M + TILE_N) * SROW];
    const int e = blockIdx.y;
    const int* offsets = (const int*)p.scratch[0];
    const int begin = offsets[e], count = offsets[e + 1] - begin;
    if (count == 0) return; // whole block: no barrier reached yet

    const int n0 = blockIdx.x * TILE_N;
    const ns_bf16* const b[1] = {(const ns_bf16*)p.w_down + ((size_t)e * NS_H + n0) * NS_I};
    const int b_rows = min(TILE_N, NS_H - n0);
    const ns_bf16* inter_sorted = (const ns_bf16*)p.scratch[4];
    ns_bf16* out_sorted = (ns_bf16*)p.scratch[5];
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

    for (int m0 = 0; m0 < count; m0 += TILE_M) {
        float acc[1][RM][RN];
        gemm_tile<1, NS_I>(inter_sorted + (size_t)(begin + m0) * NS_I, min(TILE_M, count - m0), b, b_rows, smem, acc);
#pragma unroll
        for (int i = 0; i < RM; ++i) {
            const int m = m0 + ty * RM + i;
            if (m >= count) continue;
            ns_bf16* row = out_sorted + (size_t)(begin + m) * NS_H;
#pragma unroll
            for (int j = 0; j < RN; ++j) {
                const int n = n0 + tx + 16 * j;
                if (n < NS_H) row[n] = f32_to_bf16(acc[0][i][j]);
            }
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
