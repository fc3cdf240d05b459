// expert_centric_tc_v2: expert-centric MoE decode on tensor cores, for large
// batches, with one pass of tokens per block: an expert that holds many tokens
// is spread over blocks that read its weights together, not streamed again
// pass after pass.
//
// What it computes
//   y[t,h] = bf16( sum_k w[t,k] * sum_i w_down[e,h,i] * act(g_i) * u_i ),
//   g_i = sum_h w_gate[e,i,h] x[t,h],  u_i = sum_h w_up[e,i,h] x[t,h],  e = topk_ids[t,k],
//   with act = silu or gelu_tanh (p.activation), bf16 weights and activations.
//
// Why this file
//   expert_centric_tc_v1 does an expert with more than 8*NT tokens in passes
//   inside one block, each streaming the block's weight rows from DRAM again
//   (marked evict_first, so the L2 does not keep them). Under uniform
//   routing that is rare; under skewed routing it is the common case: on an
//   H100 at B=128 with zipf routing v1 reaches 0.57 of the floor on Gemma 4
//   and 0.67 on Phi-3.5-MoE (NT=4), against 0.90 under uniform routing.
//   Here route also writes a work list with one item per pass of each
//   expert, in expert order, and each block does one item. An expert's
//   items are neighbours in the grid, so their blocks run together and the
//   first one's weight reads fill the L2 for the others; weights of an
//   expert with more than one item are copied without a cache hint (the L2's
//   normal priority), the others' with evict_first as in v1. Every output is the same sum in the same order
//   as in v1, so the two should agree bitwise (not checked on a GPU).
//
// Status: not a seed. It faults (CUDA_ERROR_ILLEGAL_INSTRUCTION) at some
//   knob points with STAGES=6 (H100, Gemma 4, B=37): an earlier revision,
//   which read shared experts' weights under an evict_normal createpolicy,
//   at BK=128 DN_BM=128 GU_BM=32 NT=1 WARPS=4 on every seed tried (v1 is
//   fine there); this one, with plain copies instead, passes that point but
//   faults at 2 of the 36 points of a sweep around it, all at STAGES=6. The
//   cause is not found. Kept here with its numbers (experiments/README.md).
//
// Measured (H100, nightshift bench, v1 and v2 on the same inputs, two seeds,
//   NT=4, GU_BM=16, DN_BM=32, BK=128, STAGES=4, WARPS=8; the evict_normal
//   revision): zipf routing at B=128, Gemma 4 344 and 350 us against v1's
//   386 and 399 (0.67 and 0.65 of the floor against 0.60 and 0.57),
//   Phi-3.5-MoE 873 and 885 against 1004 and 1003 (0.77 and 0.76 against
//   0.67); at B=64 5-12% faster. Uniform routing: Phi-3.5-MoE within 1% at
//   B <= 64 and 2-4% faster at B=128, but Gemma 4 2.5-4% slower at B >= 32
//   (581 against 559 us at B=128), where nearly every expert has one item
//   and the grid's spare items only cost. With the grid the other way round
//   (row tile first) the zipf gain was half as large for Gemma 4 and none
//   for Phi-3.5-MoE, whose experts' weights (157 MB each) outgrow the L2
//   unless the readers run together.
//
// Parallel strategy: "swap AB". Weights are the M side of
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (16 output rows, i or h),
// tokens are the N side (8 per MMA), so an expert's few tokens fill one or a few
// 8-wide column tiles instead of padding a 16- or 64-row M tile. Four launches:
//   route    1 block: stable counting sort of the T*K (token, expert) pairs by
//            expert: offsets[E+1], sorted_pairs[slot] = t*K+k, slot_of_pair[t*K+k] = slot;
//            then the work list: items[0] = the count n, items[1+n] = (expert
//            e, pass j) for j < cdiv(count_e, 8*NT), experts in order.
//            Inside an expert the slots follow pair order (warp match + per-warp
//            counts), so the sort, and everything after it, is the same every run.
//   gate_up  block (GU_BM-row tile of I, work item (e, j)): streams GU_BM rows of w_gate[e]
//            and of w_up[e] over H, BK columns a stage, through a STAGES-deep
//            cp.async.cg ring in dynamic shared memory; the x rows of the
//            expert's tokens (gathered through sorted_pairs, no gather kernel)
//            ride in the same stage. inter[slot, i] = bf16( act(g) * u ).
//   down     block (DN_BM-row tile of H, work item (e, j)): the same over I with w_down[e]
//            and the expert's inter rows; out[slot, h] = the fp32 sum.
//   combine  y[t,h] = bf16( sum_k w[t,k] * out[slot_of_pair[t*K+k], h] ), k in order.
//   Inside a block the WARPS warps split the BK/16 k-steps of each stage (warp w
//   takes steps w, w+WARPS, ...), each for all M tiles, both matrices and all
//   active column tiles; at the end the per-warp partial sums meet in shared
//   memory and are added in warp order. Item (e, j) is the expert's tokens
//   j*8*NT .. (j+1)*8*NT-1; column tiles past the expert's count cost shared
//   memory only (their copies and MMAs are skipped). The grid's first
//   dimension is the work item, so the items of one expert at one row tile
//   are neighbours in launch order; it is the most items any routing can
//   give, E + cdiv(T*K, 8*NT), and blocks past the list's end exit at once.
//   Bytes in flight: STAGES-1 stages per block; at the defaults a stage holds
//   16 KB of weights, so 48 KB per block and, with two 102 KB blocks per SM,
//   ~96 KB per SM, well over the ~25-35 KB Little's law asks for at ~3.3 TB/s.
//   Weight copies carry an L2 evict_first policy (L2_EVICT_FIRST): they are read
//   once, and x, inter and out should stay in L2 between the launches.
//   The first stages' weight copies are issued before the block reads its token
//   list, so the latency of that dependent read hides behind them.
//
// Fragment layouts relied on (PTX ISA, mma.m16n8k16 .bf16, ldmatrix .m8n8 .b16);
// g = lane>>2 (groupID), q = lane&3 (threadID_in_group):
//   A (16x16, row-major, = weights[row][k]): 4 regs of 2 bf16 (low half = lower col):
//     reg0 = (row g,   k 2q..2q+1)   reg1 = (row g+8, k 2q..2q+1)
//     reg2 = (row g,   k 2q+8..+9)   reg3 = (row g+8, k 2q+8..+9)
//   B (16x8, "col" = stored as [n][k], = tokens[n][k]): 2 regs:
//     reg0 = (k 2q..2q+1, n g)       reg1 = (k 2q+8..2q+9, n g)
//   C/D (16x8 fp32): c0,c1 = (row g, n 2q, 2q+1), c2,c3 = (row g+8, n 2q, 2q+1)
//   ldmatrix.m8n8.x4 (no .trans): lanes 8j..8j+7 give the row addresses (16 bytes
//     each) of matrix j; register j of every lane receives matrix j's
//     (row lane>>2, cols 2*(lane&3), +1). So with lane l pointing at
//     row (l & 15), col 8*(l >> 4) of a 16x16 tile, matrices 0..3 are
//     (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15):
//     exactly A's reg0..reg3. .x2 uses lanes 0..15 only: pointing lane l at token
//     (l & 7), col 8*((l >> 3) & 1) gives B's reg0, reg1 (tokens are stored [n][k],
//     which is B's "col" layout, so no .trans).
//   Shared rows are BK+8 bf16 long: the row stride is 16 mod 128 bytes, so the 8
//   rows of one 8x8 matrix fall in 8 different 16-byte bank groups.
//
// Launch rule
//   route    grid=(1)                       block=(1024)   E <= 320 (static shared memory)
//   gate_up  grid=(E + cdiv(T*K,8*NT), cdiv(I,GU_BM))  block=(32*WARPS)  dynamic smem = max(ring, partials)
//   down     grid=(E + cdiv(T*K,8*NT), cdiv(H,DN_BM))  block=(32*WARPS)  (formulas in @launch; 104,448 B
//            each at the defaults, so two blocks per SM)
//   combine  grid=(T, cdiv(H,1024))         block=(256), 4 consecutive h per thread
//   Blocks past the work list exit before any barrier. Weight rows past I
//   or H, tokens past an expert's count and columns past H or I are zero-filled
//   in shared memory (cp.async with src-size 0) and never stored, so any H, I,
//   T and routing is handled; all-padding k-steps and M tiles skip their MMAs.
//   16-byte copies need H % 8 == 0 and I % 8 == 0 (every preset); other shapes
//   take a plain element-load path, chosen at compile time.
//
// Numerics
//   fp32 accumulation in the MMAs. act(g)*u is rounded to bf16 once (inter: it
//   is the B operand of the down MMA); each expert's down output stays fp32
//   (out), and the weighted sum over k runs in fp32 in k order with one final
//   rounding. Two bf16 roundings, one fewer than expert_centric_v1.
//
// Determinism
//   No atomics touch data. The slot order is fixed by the stable sort; every
//   output element is one column of MMAs over k-steps in a fixed order per warp,
//   then a sum over warps in warp order, then the k-ordered combine. y is
//   bitwise deterministic.
//
// Differences from the parent (expert_centric_tc_v1): the work list (route),
// one pass per block instead of a loop of passes, the grid over work items,
// and the L2 policy chosen per expert by its number of items.
//
// @op moe_decode
// @formats bf16
// @parent expert_centric_tc_v1.cu
// @tune GU_BM 32 16 64
// @tune DN_BM 64 32 128
// @tune BK 128 64 256
// @tune STAGES 4 3 6
// @tune WARPS 4 8
// @tune NT 4 2 1
// @tune L2_EVICT_FIRST 1 0
// @constrain GU_BM % 16 == 0 && DN_BM % 16 == 0 && BK % 16 == 0 && BK >= 16 * WARPS && STAGES >= 2
// @constrain max(STAGES*(2*GU_BM+8*NT)*(BK+8)*2, WARPS*2*8*NT*(GU_BM+4)*4) <= 230400  # gate_up's dynamic shared memory (227 KB less static)
// @constrain max(STAGES*(DN_BM+8*NT)*(BK+8)*2, WARPS*8*NT*(DN_BM+4)*4) <= 230400    # down's
// @scratch offsets i32 E+1
// @scratch sorted_pairs i32 T*K
// @scratch slot_of_pair i32 T*K
// @scratch inter bf16 T*K*I
// @scratch out f32 T*K*H
// @scratch items i32 1+2*(E+cdiv(T*K,8*NT))
// @launch route grid=(1) block=(1024)
// @launch gate_up grid=(E+cdiv(T*K,8*NT),cdiv(I,GU_BM)) block=(32*WARPS) smem=max(STAGES*(2*GU_BM+8*NT)*(BK+8)*2, WARPS*2*8*NT*(GU_BM+4)*4)
// @launch down grid=(E+cdiv(T*K,8*NT),cdiv(H,DN_BM)) block=(32*WARPS) smem=max(STAGES*(DN_BM+8*NT)*(BK+8)*2, WARPS*8*NT*(DN_BM+4)*4)
// @launch combine grid=(T,cdiv(H,1024)) block=(256)

#include "params.h"

#ifndef GU_BM
#define GU_BM 32 // rows of w_gate (and of w_up) per gate_up block
#endif
#ifndef DN_BM
#define DN_BM 64 // rows of w_down per down block
#endif
#ifndef BK
#define BK 128 // k columns per ring stage
#endif
#ifndef STAGES
#define STAGES 4
#endif
#ifndef WARPS
#define WARPS 4
#endif
#ifndef NT
#define NT 4 // 8-token column tiles per pass
#endif
#ifndef L2_EVICT_FIRST
#define L2_EVICT_FIRST 1
#endif

#define THREADS (32 * WARPS)
#define NTOK (8 * NT)            // tokens per pass
#define SROW (BK + 8)            // shared row in bf16: stride = 16 mod 128 bytes
#define CHUNKS (BK / 8)          // 16-byte chunks per row of a stage
#define KSTEPS (BK / 16)         // MMA k-steps per stage
#define KSW ((KSTEPS + WARPS - 1) / WARPS) // k-steps per warp per stage
#define TK (NS_T * NS_K)         // (token, expert) pairs

#if NS_E > 320
#error "expert_centric_tc_v2: route keeps 32 x E ints in static shared memory; E <= 320"
#endif
#if GU_BM % 16 != 0 || DN_BM % 16 != 0 || BK % 16 != 0
#error "expert_centric_tc_v2: GU_BM, DN_BM and BK must be multiples of 16"
#endif

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
// 1. route: stable counting sort of the pairs by expert, in one block of 1024.
extern "C" __global__ void __launch_bounds__(1024) route(const MoeDecodeParams p)
{
    __shared__ int count[NS_E];
    __shared__ int next_slot[NS_E];        // first free slot of each expert
    __shared__ int warp_first[32][NS_E];   // per chunk: count, then first slot, of (warp, expert)
    int* offsets = (int*)p.scratch[0];
    int* sorted_pairs = (int*)p.scratch[1];
    int* slot_of_pair = (int*)p.scratch[2];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

    for (int e = tid; e < NS_E; e += 1024) count[e] = 0;
    __syncthreads();
    for (int pr = tid; pr < TK; pr += 1024) atomicAdd(&count[p.topk_ids[pr]], 1); // integer: order-free
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
            if (e < NS_E) offsets[e] = next_slot[e] = carry + incl - v;
            carry += __shfl_sync(0xffffffffu, incl, 31);
        }
        if (tid == 0) offsets[NS_E] = carry;

        // The work list: cdiv(count_e, NTOK) items per expert, experts in order.
        int* items = (int*)p.scratch[5];
        int first = 0; // items before this group of 32 experts
        for (int base = 0; base < NS_E; base += 32) {
            const int e = base + tid;
            const int n = e < NS_E ? (count[e] + NTOK - 1) / NTOK : 0;
            int incl = n;
#pragma unroll
            for (int off = 1; off < 32; off <<= 1) {
                const int v = __shfl_up_sync(0xffffffffu, incl, off);
                if (tid >= off) incl += v;
            }
            for (int j = 0; j < n; ++j) {
                items[1 + 2 * (first + incl - n + j)] = e;
                items[2 + 2 * (first + incl - n + j)] = j;
            }
            first += __shfl_sync(0xffffffffu, incl, 31);
        }
        if (tid == 0) items[0] = first;
    }
    __syncthreads();

    // Chunks of 1024 pairs in pair order. A pair's slot = its expert's next free
    // slot + pairs of that expert in earlier warps of the chunk + in earlier
    // lanes of its warp: pair order inside every expert.
    for (int c0 = 0; c0 < TK; c0 += 1024) {
        for (int i = tid; i < 32 * NS_E; i += 1024) (&warp_first[0][0])[i] = 0;
        __syncthreads();
        const int pr = c0 + tid;
        const int e = pr < TK ? p.topk_ids[pr] : -1;
        const unsigned peers = __match_any_sync(0xffffffffu, e);
        const int rank = __popc(peers & ((1u << lane) - 1u));
        if (e >= 0 && rank == 0) warp_first[warp][e] = __popc(peers);
        __syncthreads();
        for (int ee = tid; ee < NS_E; ee += 1024) {
            int s = next_slot[ee];
            for (int w = 0; w < 32; ++w) {
                const int n = warp_first[w][ee];
                warp_first[w][ee] = s;
                s += n;
            }
            next_slot[ee] = s;
        }
        __syncthreads();
        if (e >= 0) {
            const int slot = warp_first[warp][e] + rank;
            sorted_pairs[slot] = pr;
            slot_of_pair[pr] = slot;
        }
        __syncthreads(); // warp_first is cleared for the next chunk
    }
}

// ---------------------------------------------------------------------------
// Shared pieces of the two streamed GEMMs.

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
// The same for weights: read once, so first in line for L2 eviction.
__device__ __forceinline__ void cp_async16_stream(void* dst, const void* src, int src_bytes, unsigned long long policy,
                                                  bool hint)
{
#if L2_EVICT_FIRST
    if (hint) {
        asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;\n" ::"r"(smem_u32(dst)), "l"(src),
                     "r"(src_bytes), "l"(policy)
                     : "memory");
        return;
    }
#endif
    (void)policy;
    (void)hint;
    cp_async16(dst, src, src_bytes);
}
__device__ __forceinline__ unsigned long long evict_first_policy()
{
    unsigned long long policy = 0;
#if L2_EVICT_FIRST
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
#endif
    return policy;
}
// This block's work item: expert e, its slots begin .. begin+n_tok-1, and
// whether its weight copies carry the evict_first hint (not where other items
// read the same weights: those copies keep the L2's normal priority).
// False past the end of the list.
struct Item {
    int e, begin, n_tok;
    bool hint;
};
__device__ __forceinline__ bool work_item(const MoeDecodeParams& p, Item& item)
{
    const int* items = (const int*)p.scratch[5];
    const int n = blockIdx.x;
    if (n >= items[0]) return false;
    item.e = items[1 + 2 * n];
    const int j = items[2 + 2 * n];
    const int* offsets = (const int*)p.scratch[0];
    const int count = offsets[item.e + 1] - offsets[item.e];
    item.begin = offsets[item.e] + j * NTOK;
    item.n_tok = min(NTOK, count - j * NTOK);
    item.hint = count <= NTOK;
    return true;
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

// 8 bf16 from a row that is not 16-byte aligned (KD % 8 != 0), zeros past KD.
template <int KD>
__device__ __forceinline__ void copy8_plain(ns_bf16* dst, const ns_bf16* row, int col, bool valid)
{
    unsigned short v[8];
#pragma unroll
    for (int c = 0; c < 8; ++c) v[c] = valid && col + c < KD ? row[col + c] : (unsigned short)0;
    *(uint4*)dst = make_uint4(v[0] | ((unsigned)v[1] << 16), v[2] | ((unsigned)v[3] << 16),
                              v[4] | ((unsigned)v[5] << 16), v[6] | ((unsigned)v[7] << 16));
}

__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const ns_bf16* p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldmatrix_x2(unsigned (&r)[2], const ns_bf16* p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(smem_u32(p)));
}
__device__ __forceinline__ void mma_bf16(float (&c)[4], const unsigned (&a)[4], const unsigned (&b)[2])
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// Dynamic shared memory of one streamed GEMM: the ring, and (aliasing it after
// the ring is drained) the per-warp partial sums [WARPS][NMAT][NTOK][BM+4]
// (+4 floats: the fragment stores of a warp hit 32 different banks).
#define RING_ELEMS(NMAT, BM) (STAGES * ((NMAT) * (BM) + NTOK) * SROW)
#define RED_STRIDE(BM) ((BM) + 4)

// The block's weight rows of stage `kt` into ring slot kt % STAGES: NMAT
// matrices x BM rows x BK columns, rows past w_rows and columns past KD zero.
template <int NMAT, int BM, int KD>
__device__ __forceinline__ void load_weights(ns_bf16* ring, const ns_bf16* const (&w)[NMAT], int w_rows, int kt,
                                             unsigned long long policy, bool hint)
{
    constexpr int ITEMS = BM * CHUNKS;
    ns_bf16* st = ring + (kt % STAGES) * ((NMAT * BM + NTOK) * SROW);
    const int k0 = kt * BK;
#pragma unroll
    for (int m = 0; m < NMAT; ++m) // outermost and unrolled: w[m] stays in registers
#pragma unroll
        for (int q = 0; q < (ITEMS + THREADS - 1) / THREADS; ++q) {
            const int it = threadIdx.x + q * THREADS;
            if (ITEMS % THREADS != 0 && it >= ITEMS) break;
            const int c = it % CHUNKS, r = it / CHUNKS;
            const int col = k0 + 8 * c;
            const bool valid = r < w_rows && col < KD;
            const ns_bf16* row = w[m] + (size_t)r * KD;
            ns_bf16* dst = st + (m * BM + r) * SROW + 8 * c;
            if constexpr (KD % 8 == 0)
                cp_async16_stream(dst, valid ? (const void*)(row + col) : (const void*)w[m], valid ? 16 : 0, policy, hint);
            else
                copy8_plain<KD>(dst, row, col, valid);
        }
}

// The pass's token rows of stage `kt`: 8*n_tiles rows (those past n_tok zero),
// each read from tok_src[j] (row length KD); rows of inactive tiles are left alone.
template <int NMAT, int BM, int KD>
__device__ __forceinline__ void load_tokens(ns_bf16* ring, const ns_bf16* const* tok_src, int n_tok, int n_tiles,
                                            int kt)
{
    constexpr int ITEMS = NTOK * CHUNKS;
    ns_bf16* st = ring + (kt % STAGES) * ((NMAT * BM + NTOK) * SROW) + NMAT * BM * SROW;
    const int k0 = kt * BK;
#pragma unroll
    for (int q = 0; q < (ITEMS + THREADS - 1) / THREADS; ++q) {
        const int it = threadIdx.x + q * THREADS;
        if (ITEMS % THREADS != 0 && it >= ITEMS) break;
        const int c = it % CHUNKS, j = it / CHUNKS;
        if (j >= 8 * n_tiles) continue;
        const int col = k0 + 8 * c;
        const bool valid = j < n_tok && col < KD;
        const ns_bf16* row = tok_src[j];
        ns_bf16* dst = st + j * SROW + 8 * c;
        if constexpr (KD % 8 == 0)
            cp_async16(dst, valid ? (const void*)(row + col) : (const void*)tok_src[0], valid ? 16 : 0);
        else
            copy8_plain<KD>(dst, row, col, valid);
    }
}

// One pass of a block: acc[m][mt][nt] = this warp's share (its k-steps) of
// sum_k W_m[mt*16 + r][k] * tok[nt*8 + n][k], then all warps' shares are left in
// `red` (shared) as [WARPS][NMAT][NTOK][RED_STRIDE(BM)] for the caller, who adds
// them in warp order. `set_tokens` fills tok_src[0..NTOK) (called while the first
// stages' weight copies are in flight; a barrier follows it).
template <int NMAT, int BM, int KD, class SetTokens>
__device__ __forceinline__ void stream_pass(ns_bf16* ring, float* red, const ns_bf16* const (&w)[NMAT], int w_rows,
                                            const ns_bf16* const* tok_src, int n_tok, SetTokens set_tokens,
                                            unsigned long long policy, bool hint)
{
    constexpr int NK = (KD + BK - 1) / BK;
    constexpr int MT = BM / 16;
    constexpr int STAGE = (NMAT * BM + NTOK) * SROW;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int n_tiles = (n_tok + 7) / 8;

    float acc[NMAT][MT][NT][4];
#pragma unroll
    for (int m = 0; m < NMAT; ++m)
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int nt = 0; nt < NT; ++nt)
#pragma unroll
                for (int c = 0; c < 4; ++c) acc[m][mt][nt][c] = 0.0f;

    // Prologue: weights of stages 0..STAGES-2 first (they need nothing but the
    // expert), then the token list, then the token rows of those stages. All of
    // it is one commit group followed by STAGES-2 empty ones, so the loop's
    // wait_group<STAGES-2> finds stages 0..STAGES-2 complete at kt = 0..STAGES-2
    // and stage kt's own group complete from kt = STAGES-1 on.
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s)
        if (s < NK) load_weights<NMAT, BM, KD>(ring, w, w_rows, s, policy, hint);
    set_tokens();
    __syncthreads();
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s)
        if (s < NK) load_tokens<NMAT, BM, KD>(ring, tok_src, n_tok, n_tiles, s);
    cp_async_commit();
#pragma unroll
    for (int s = 0; s < STAGES - 2; ++s) cp_async_commit();

    // ldmatrix lane addresses inside a stage (see the layout notes at the top).
    const int a_off = (lane & 15) * SROW + 8 * (lane >> 4);           // A: row l&15, col 8*(l>>4)
    const int b_off = (lane & 7) * SROW + 8 * ((lane >> 3) & 1);      // B: token l&7, col 8*((l>>3)&1)

#pragma unroll 1
    for (int kt = 0; kt < NK; ++kt) {
        cp_async_wait<STAGES - 2>(); // stage kt has landed (this thread's copies)...
        __syncthreads();             // ...everyone's, and slot (kt-1) % STAGES is consumed
        const int next = kt + STAGES - 1;
        if (next < NK) {
            load_weights<NMAT, BM, KD>(ring, w, w_rows, next, policy, hint);
            load_tokens<NMAT, BM, KD>(ring, tok_src, n_tok, n_tiles, next);
        }
        cp_async_commit(); // (empty groups keep the count uniform)

        const ns_bf16* st = ring + (kt % STAGES) * STAGE;
        const ns_bf16* tk = st + NMAT * BM * SROW;
#pragma unroll
        for (int qs = 0; qs < KSW; ++qs) {
            const int ks = warp + qs * WARPS;
            if (ks >= KSTEPS || kt * BK + ks * 16 >= KD) break; // warp-uniform; past KD all zeros
            unsigned b[NT][2];
#pragma unroll
            for (int nt = 0; nt < NT; ++nt)
                if (nt < n_tiles) ldmatrix_x2(b[nt], tk + nt * 8 * SROW + ks * 16 + b_off);
#pragma unroll
            for (int m = 0; m < NMAT; ++m)
#pragma unroll
                for (int mt = 0; mt < MT; ++mt) {
                    if (mt * 16 >= w_rows) continue; // an all-padding M tile (I or H tail)
                    unsigned a[4];
                    ldmatrix_x4(a, st + (m * BM + mt * 16) * SROW + ks * 16 + a_off);
#pragma unroll
                    for (int nt = 0; nt < NT; ++nt)
                        if (nt < n_tiles) mma_bf16(acc[m][mt][nt], a, b[nt]);
                }
        }
    }
    cp_async_wait<0>(); // only empty groups are left; the ring is about to be reused
    __syncthreads();

    // Partial sums to shared: c0,c1 = (row g, tokens 2q, 2q+1), c2,c3 = row g+8.
    const int g = lane >> 2, q4 = lane & 3;
#pragma unroll
    for (int m = 0; m < NMAT; ++m)
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) {
                float* r = red + ((warp * NMAT + m) * NTOK + nt * 8 + 2 * q4) * RED_STRIDE(BM) + mt * 16 + g;
                r[0] = acc[m][mt][nt][0];
                r[RED_STRIDE(BM)] = acc[m][mt][nt][1];
                r[8] = acc[m][mt][nt][2];
                r[RED_STRIDE(BM) + 8] = acc[m][mt][nt][3];
            }
    __syncthreads();
}

// Sum of the WARPS partials of (matrix m, token j, row r), in warp order.
template <int NMAT, int BM>
__device__ __forceinline__ float sum_partials(const float* red, int m, int j, int r)
{
    float s = red[(m * NTOK + j) * RED_STRIDE(BM) + r];
#pragma unroll
    for (int w = 1; w < WARPS; ++w) s += red[((w * NMAT + m) * NTOK + j) * RED_STRIDE(BM) + r];
    return s;
}

// ---------------------------------------------------------------------------
// 2. gate_up: inter[slot, i] = bf16( act(x_t . w_gate[e,i]) * (x_t . w_up[e,i]) ), t = sorted_pairs[slot] / K
extern "C" __global__ void __launch_bounds__(THREADS, 1) gate_up(const MoeDecodeParams p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ const ns_bf16* tok_src[NTOK];
    ns_bf16* ring = (ns_bf16*)smem;
    float* red = (float*)smem;

    Item item;
    if (!work_item(p, item)) return; // whole block: no barrier reached yet
    const int e = item.e, begin = item.begin, n_tok = item.n_tok;

    const int* sorted_pairs = (const int*)p.scratch[1];
    ns_bf16* inter = (ns_bf16*)p.scratch[3];
    const int i0 = blockIdx.y * GU_BM;
    const int rows = min(GU_BM, NS_I - i0);
    const ns_bf16* const w[2] = {(const ns_bf16*)p.w_gate + ((size_t)e * NS_I + i0) * NS_H,
                                 (const ns_bf16*)p.w_up + ((size_t)e * NS_I + i0) * NS_H};
    const ns_bf16* x = p.x;

    stream_pass<2, GU_BM, NS_H>(
        ring, red, w, rows, tok_src, n_tok,
        [&] {
            const int j = threadIdx.x;
            if (j < NTOK) tok_src[j] = j < n_tok ? x + (size_t)(sorted_pairs[begin + j] / NS_K) * NS_H : x;
        },
        evict_first_policy(), item.hint);
    // Consecutive threads take consecutive rows i of one token: 2-byte
    // stores that coalesce along the token's inter row.
    for (int it = threadIdx.x; it < NTOK * GU_BM; it += THREADS) {
        const int r = it % GU_BM, j = it / GU_BM;
        if (r >= rows || j >= n_tok) continue;
        const float gs = sum_partials<2, GU_BM>(red, 0, j, r);
        const float us = sum_partials<2, GU_BM>(red, 1, j, r);
        inter[(size_t)(begin + j) * NS_I + i0 + r] = f32_to_bf16(activation(gs, p.activation) * us);
    }
}

// ---------------------------------------------------------------------------
// 3. down: out[slot, h] = inter[slot] . w_down[e,h]   (fp32)
extern "C" __global__ void __launch_bounds__(THREADS, 1) down(const MoeDecodeParams p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    __shared__ const ns_bf16* tok_src[NTOK];
    ns_bf16* ring = (ns_bf16*)smem;
    float* red = (float*)smem;

    Item item;
    if (!work_item(p, item)) return; // whole block: no barrier reached yet
    const int e = item.e, begin = item.begin, n_tok = item.n_tok;

    const ns_bf16* inter = (const ns_bf16*)p.scratch[3];
    float* out = (float*)p.scratch[4];
    const int h0 = blockIdx.y * DN_BM;
    const int rows = min(DN_BM, NS_H - h0);
    const ns_bf16* const w[1] = {(const ns_bf16*)p.w_down + ((size_t)e * NS_H + h0) * NS_I};

    stream_pass<1, DN_BM, NS_I>(
        ring, red, w, rows, tok_src, n_tok,
        [&] {
            const int j = threadIdx.x;
            if (j < NTOK) tok_src[j] = inter + (size_t)(begin + min(j, n_tok - 1)) * NS_I;
        },
        evict_first_policy(), item.hint);
    for (int it = threadIdx.x; it < NTOK * DN_BM; it += THREADS) {
        const int r = it % DN_BM, j = it / DN_BM;
        if (r >= rows || j >= n_tok) continue;
        out[(size_t)(begin + j) * NS_H + h0 + r] = sum_partials<1, DN_BM>(red, 0, j, r);
    }
}

// ---------------------------------------------------------------------------
// 4. combine: y[t,h] = bf16( sum_k w[t,k] * out[slot_of_pair[t*K+k], h] ), k in order.
extern "C" __global__ void __launch_bounds__(256) combine(const MoeDecodeParams p)
{
    const int t = blockIdx.x;
    const int h = 4 * (blockIdx.y * blockDim.x + threadIdx.x);
    if (h >= NS_H) return;
    const int* slot_of_pair = (const int*)p.scratch[2];
    const float* out = (const float*)p.scratch[4];
    int slot[NS_K];
    float wk[NS_K];
#pragma unroll
    for (int k = 0; k < NS_K; ++k) {
        slot[k] = slot_of_pair[t * NS_K + k];
        wk[k] = p.topk_weights[t * NS_K + k];
    }
    ns_bf16* yt = p.y + (size_t)t * NS_H;
#if NS_H % 4 == 0
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
    for (int k = 0; k < NS_K; ++k) {
        const float4 v = *(const float4*)(out + (size_t)slot[k] * NS_H + h);
        acc.x = fmaf(wk[k], v.x, acc.x);
        acc.y = fmaf(wk[k], v.y, acc.y);
        acc.z = fmaf(wk[k], v.z, acc.z);
        acc.w = fmaf(wk[k], v.w, acc.w);
    }
    *(uint2*)(yt + h) = make_uint2(f32_to_bf16(acc.x) | ((unsigned)f32_to_bf16(acc.y) << 16),
                                   f32_to_bf16(acc.z) | ((unsigned)f32_to_bf16(acc.w) << 16));
#else
    for (int hh = h; hh < min(h + 4, NS_H); ++hh) {
        float acc = 0.0f;
#pragma unroll
        for (int k = 0; k < NS_K; ++k) acc = fmaf(wk[k], out[(size_t)slot[k] * NS_H + hh], acc);
        yt[hh] = f32_to_bf16(acc);
    }
#endif
}
