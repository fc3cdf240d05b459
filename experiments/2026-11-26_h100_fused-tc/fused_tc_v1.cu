// fused_tc_v1: MoE decode with gate_up and its slice of down in one block,
// on tensor cores, for every weight format: the split over I, with w_down
// prepacked so each block's slice is one contiguous run.
//
// What it computes
//   y[t,h] = bf16( sum_k w[t,k] * sum_i W_down[e,h,i] * act(g_i) * u_i ),
//   g_i = sum_h W_gate[e,i,h] x[t,h],  u_i = sum_h W_up[e,i,h] x[t,h],  e = topk_ids[t,k],
//   W as stored: bf16, or code * scale for int8_row, fp8_e4m3 (per-row float
//   scale) and int4_g128 (a float scale per 128 columns); verifier/quantize.h.
//
// Why this file
//   At B = 1 warp_decode_tc_v1 loses its time at the kernel boundary: down's
//   blocks start only when gate_up's last block ends, and then stream a third
//   of the bytes from a cold start (H100, Gemma 4, int4: ~13 us of gate_up,
//   ~6 us of down). fused_v1 removed the boundary for bf16 on CUDA cores and
//   lost 18%, with w_down read as 64-byte pieces of every row and a
//   reduction tail. Here the block that computes ITILE intermediate values
//   also applies them to w_down, whose ITILE columns it reads as one
//   contiguous run from its own layout (@packed wdp, made once by pack_down),
//   already arranged as the MMA's A fragments, and issues those loads before
//   its gate_up sums meet. Nothing waits at a boundary but a small reduction.
//
// Measured (H100, Gemma 4, B = 1, nightshift bench, tc_v1's tuned winners
//   in the same run): slower in every format. Best of 9 knob points: int4
//   25.25 us against 18.85, int8 31.15 against 22.78, fp8 28.06 against
//   21.10, bf16 39.95 against 35.98. The fewest registers win (GU_BATCH=1);
//   staging down's run by bulk copy (DN_STAGE=1) moves int4 by 0.4% and
//   costs the 8-bit formats 18-25% and bf16 33%, its bytes queued ahead of
//   gate_up's. So down's loads are not what holds it back: a block streams
//   its gate_up rows in 2-3 dependent rounds per warp, where tc_v1's small
//   blocks each take one. Kept here, not among the seeds, with its numbers
//   (experiments/README.md); nightshift bench runs it from this folder.
//
// Parallel strategy: block (pair t*K+k, tile of ITILE rows of I).
//   1. x[t] is staged in shared memory; gate_up's loads are issued first.
//   2. gate_up: MT = ITILE/16 MMA row tiles of w_gate and of w_up; the WARPS
//      warps split H in super-steps (tc_v1's decode, k permutation and MMAs,
//      16-row tiles, so no column parts): warp w takes super-steps w,
//      w+WARPS, ..., GU_BATCH of them per round of loads. The first round of
//      w_down loads is issued behind gate_up's first round.
//   3. The per-warp sums meet in shared memory in warp order; ITILE threads
//      apply the row scales and act, and write act(g)*u as bf16 to shared
//      memory (0 for rows past I).
//   4. down: the block's ITILE columns of w_down[e] for all H rows, as
//      cdiv(H,16) MMA row tiles taken by the warps in turn (DN_BATCH per
//      round of loads), the intermediate as the B operand; the scaled fp32
//      row sums go to scratch `partials`[pair*NT + tile][h].
//   5. reduce (a programmatic dependent launch): y[t,h] = bf16( sum over n =
//      k*NT + tile of w[t,k] * partials[t*K*NT + n][h] ), warp w summing n = w,
//      w+8, ... in order, then the 8 warps in order.
//
// The packed w_down (pack_down): for expert e, tile j and row tile m, lane
//   (g = lane>>2, q = lane&3) owns DB = ITILE*BITS/16 contiguous bytes: the
//   A-fragment pairs of rows h = 16m+g and 16m+g+8 at columns j*ITILE +
//   q*CPL + c, c < CPL = ITILE/4, in the MMA's register order: for k-step s,
//   (row g: c = 4s, 4s+1), (row g+8: 4s, 4s+1), (row g: 4s+2, 4s+3), (row g+8:
//   4s+2, 4s+3). Pairs go to words as the cheapest decode wants them: bf16 one
//   per word; fp8 two per word (bytes 0,1 and 2,3); int8 two per word (bytes
//   0,2 and 1,3: tc_v1's sign trick); int4 four per word (pair j in nibbles j
//   and j+4). The B operand of lane q at k-step s is then the intermediate at
//   tile columns q*CPL + 4s .. 4s+3, one 8-byte shared-memory load. Rows past
//   H and columns past I are zero codes. int4's down scales get their own
//   copy too (@packed wds, [E][cdiv(I,128)][H]), so a block's scales are one
//   run. The packed copies hold every expert: E*I*H codes (plus int4's
//   scales), as many bytes as w_down itself.
//
// Knobs
//   ITILE     rows of I per block (16, 32 or 64): also the columns of w_down
//             a block applies, and the grid (T*K*cdiv(I,ITILE) blocks).
//   WARPS     warps per block.
//   GU_BATCH  gate_up super-steps per warp per round of loads (1, 2 or 4).
//   DN_BATCH  w_down row tiles per warp per round of loads (DN_STAGE=0).
//   DN_STAGE  1: thread 0 bulk-copies the block's whole packed run and its
//             row scales to shared memory at the start (cp.async.bulk on one
//             mbarrier), and down reads them from there; 0: down's loads go
//             to registers, DN_BATCH row tiles a round, the first round
//             issued behind gate_up's first.
//
// Launch rule
//   pack_down grid=(E*cdiv(I,ITILE)*cdiv(H,16)) block=(32)       (a prepack)
//   pack_scales grid=(max(1,(BITS==4)*E*cdiv(I,128))) block=(256) (a prepack)
//   fused  grid=(T*K, cdiv(I,ITILE)) block=(32*WARPS)
//          smem=DN_STAGE*(RUN + 4*H), RUN = cdiv(H,16)*32*ITILE*BITS/16
//   reduce grid=(T, cdiv(H,128)) block=(256), pdl=1
//   Rows past I in the last tile are clamped for loading and give 0; rows
//   past H are zero codes in the packed copy and never stored. int4 needs
//   ITILE >= 32 (a lane's pairs fill whole words); every ITILE divides 128,
//   so a tile lies inside one int4 scale group.
//
// Numerics
//   Products exact (bf16 x bf16), sums in the tensor cores' fp32 accumulate
//   in a fixed order, fp32 scale multiplies, warp-order adds; the
//   intermediate rounded once to bf16 (tc_v1's INTER_SPLIT=0); the per-tile
//   partials in fp32, summed in a fixed order with w[t,k]; one
//   round-to-nearest-even at the end. Two runs are bitwise equal.
//
// parent: warp_decode_tc_v1.cu (decode, MMA and load helpers; the split over
// I and the packed w_down are new)
//
// @op moe_decode
// @formats bf16 int8_row int4_g128 fp8_e4m3
// @parent warp_decode_tc_v1.cu
// @tune ITILE 32 16 64
// @tune WARPS 8 4 16
// @tune GU_BATCH 1 2 4
// @tune DN_BATCH 4 2 8
// @tune DN_STAGE 0 1
// @constrain DN_STAGE == 0 || (H % 4 == 0 && cdiv(H,16)*32*ITILE*BITS/16 + 4*H <= 200000)
// @constrain BITS != 4 || ITILE >= 32   # int4: a lane's pairs of a k-step fill whole words
// @scratch partials f32 T*K*cdiv(I,ITILE)*H
// @packed wdp u8 E*cdiv(I,ITILE)*cdiv(H,16)*32*ITILE*BITS/16
// @packed wds f32 (BITS==4)*E*cdiv(I,128)*H
// @prepack pack_down grid=(E*cdiv(I,ITILE)*cdiv(H,16)) block=(32)
// @prepack pack_scales grid=(max(1,(BITS==4)*E*cdiv(I,128))) block=(256)
// @launch fused grid=(T*K,cdiv(I,ITILE)) block=(32*WARPS) smem=DN_STAGE*(cdiv(H,16)*32*ITILE*BITS/16+4*H)
// @launch reduce grid=(T,cdiv(H,128)) block=(256) pdl=1

#include "params.h"

// NsWeightFormat values for the preprocessor (an enum is 0 to #if).
#define FMT_BF16 0
#define FMT_INT8_ROW 1
#define FMT_INT4_G128 2
#define FMT_FP8_E4M3 3
#ifndef NS_FORMAT
#define NS_FORMAT FMT_BF16
#endif
#ifndef ITILE
#define ITILE 32
#endif
#ifndef WARPS
#define WARPS 8
#endif
#ifndef GU_BATCH
#define GU_BATCH 1
#endif
#ifndef DN_BATCH
#define DN_BATCH 4
#endif
#ifndef DN_STAGE
#define DN_STAGE 0
#endif
#if ITILE != 16 && ITILE != 32 && ITILE != 64
#error "fused_tc_v1: ITILE is 16, 32 or 64"
#endif

// Weights per 16-byte chunk, and bits per weight.
#if NS_FORMAT == FMT_BF16
#define WPC 8
#define WBITS 16
#elif NS_FORMAT == FMT_INT8_ROW || NS_FORMAT == FMT_FP8_E4M3
#define WPC 16
#define WBITS 8
#elif NS_FORMAT == FMT_INT4_G128
#define WPC 32
#define WBITS 4
#else
#error "fused_tc_v1: unknown NS_FORMAT"
#endif
#if WBITS == 4 && ITILE < 32
#error "fused_tc_v1: int4 needs ITILE >= 32"
#endif

#define KSTEPS (WPC / 4)     // gate_up: MMA k-steps per 16-byte chunk
#define SS (4 * WPC)         // gate_up: columns of one super-step (int4: 128, one scale group)
#define GROUP 128
#define MT (ITILE / 16)      // gate_up: row tiles of w_gate (and of w_up) per block
#define NT ((NS_I + ITILE - 1) / ITILE) // tiles of I per pair
#define H16 ((NS_H + 15) / 16)          // down: row tiles of w_down
#define CPL (ITILE / 4)      // down: tile columns per lane
#define DKS (ITILE / 16)     // down: MMA k-steps per row tile
#define DB (ITILE * WBITS / 16) // down: packed bytes per lane per row tile
#define DW (DB / 4)          // ... as 32-bit words
#define RUN (H16 * 32 * DB)   // down: packed bytes of one block
#define RWARPS 8             // reduce: warps per block
#define RCOLS 128            // reduce: outputs per block (4 per lane)
typedef unsigned int u32;

__device__ __forceinline__ ns_bf16 f32_to_bf16(float f)
{
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (ns_bf16)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ns_bf16)(u >> 16);
}

__device__ __forceinline__ float bf16_to_f32(ns_bf16 b) { return __uint_as_float((unsigned)b << 16); }

__device__ __forceinline__ uint4 ld_stream(const void* ptr)
{
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(ptr));
    return v;
}

__device__ __forceinline__ void mma_bf16(float (&c)[4], u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Raw element j of flat row `row` (COLS weights per row), as its bits.
template <int COLS>
__device__ __forceinline__ u32 raw_element(const void* base, size_t row, int col)
{
    const size_t flat = row * COLS + col;
#if WBITS == 16
    return ((const unsigned short*)base)[flat];
#elif WBITS == 8
    return ((const unsigned char*)base)[flat];
#else
    const u32 byte = ((const unsigned char*)base)[flat / 2];
    return (flat & 1) ? byte >> 4 : byte & 0xFu;
#endif
}

// The 16-byte chunk of weights at columns c0.. of flat row `row`; zero past
// the row's end (a zero code is a zero weight in every format).
template <int COLS>
__device__ __forceinline__ uint4 load_chunk(const void* base, size_t row, int c0)
{
    if (COLS % WPC == 0) {
        if (c0 >= COLS) return make_uint4(0, 0, 0, 0);
        return ld_stream((const unsigned char*)base + (row * COLS + c0) * WBITS / 8);
    }
    u32 w[4] = {0, 0, 0, 0};
#pragma unroll
    for (int j = 0; j < WPC; ++j) {
        const int col = c0 + j;
        if (col < COLS) w[j * WBITS / 32] |= raw_element<COLS>(base, row, col) << ((j * WBITS) % 32);
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
}

// WPC bf16 activations at columns c0.. of `row_ptr` as WPC/2 natural pairs;
// zero past COLS.
template <int COLS>
__device__ __forceinline__ void load_acts(const ns_bf16* row_ptr, int c0, u32 (&xw)[WPC / 2])
{
    if (COLS % WPC == 0) {
#pragma unroll
        for (int v = 0; v < WPC / 8; ++v) {
            const uint4 q = c0 < COLS ? *(const uint4*)(row_ptr + c0 + 8 * v) : make_uint4(0, 0, 0, 0);
            xw[4 * v + 0] = q.x; xw[4 * v + 1] = q.y; xw[4 * v + 2] = q.z; xw[4 * v + 3] = q.w;
        }
        return;
    }
#pragma unroll
    for (int j = 0; j < WPC / 2; ++j) {
        const int col = c0 + 2 * j;
        const u32 lo = col < COLS ? row_ptr[col] : 0u;
        const u32 hi = col + 1 < COLS ? row_ptr[col + 1] : 0u;
        xw[j] = lo | (hi << 16);
    }
}

__device__ __forceinline__ u32 bf16x2_fma(u32 a, u32 b, u32 c)
{
    u32 d;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}

#if NS_FORMAT == FMT_FP8_E4M3
// Two e4m3 codes (low byte first) to a bf16 pair (low half first), exactly.
__device__ __forceinline__ u32 e4m3x2_to_bf16x2(u32 two)
{
    u32 h2, d;
    float lo, hi;
    asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(h2) : "h"((unsigned short)two));
    asm("{ .reg .b16 l, h; mov.b32 {l, h}, %2; cvt.f32.f16 %0, l; cvt.f32.f16 %1, h; }"
        : "=f"(lo), "=f"(hi)
        : "r"(h2));
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));
    return d;
}
#endif

// A chunk as the A-operand pairs of its KSTEPS k-steps: p[2j] holds logical
// k (2q, 2q+1) of k-step j, p[2j+1] logical k (2q+8, 2q+9). Which columns
// those are is this function's choice; act_pairs makes the same one.
__device__ __forceinline__ void weight_pairs(uint4 v, u32 (&p)[2 * KSTEPS])
{
    const u32 w[4] = {v.x, v.y, v.z, v.w};
#if NS_FORMAT == FMT_BF16
    // k-step j: columns 4j, 4j+1 and 4j+2, 4j+3: the stored pairs.
#pragma unroll
    for (int i = 0; i < 4; ++i) p[i] = w[i];
#elif NS_FORMAT == FMT_INT8_ROW
    // Word i holds columns 4i..4i+3 (byte j = column 4i+j). k-step i: (4i,
    // 4i+2) and (4i+1, 4i+3), the bytes that already sit (or sit after one
    // shift) in the low byte of each 16-bit half. A signed byte c with sign
    // bit b7 and low bits l is l - 128*b7, and in bf16 (128 + l) - (128 + 128*b7):
    // both operands are the byte's bits under the exponent of 128.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const u32 even = w[i], odd = w[i] >> 8;
        p[2 * i] = bf16x2_fma((even & 0x00800080u) | 0x43004300u, 0xBF80BF80u, (even & 0x007F007Fu) | 0x43004300u);
        p[2 * i + 1] = bf16x2_fma((odd & 0x00800080u) | 0x43004300u, 0xBF80BF80u, (odd & 0x007F007Fu) | 0x43004300u);
    }
#elif NS_FORMAT == FMT_FP8_E4M3
    // k-step i: columns 4i, 4i+1 and 4i+2, 4i+3 (word i).
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        p[2 * i] = e4m3x2_to_bf16x2(w[i] & 0xFFFFu);
        p[2 * i + 1] = e4m3x2_to_bf16x2(w[i] >> 16);
    }
#else
    // Word i holds columns 8i..8i+7, nibble j = column 8i+j. k-step 2i:
    // (8i, 8i+4) and (8i+1, 8i+5); k-step 2i+1: (8i+2, 8i+6) and (8i+3, 8i+7).
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const u32 u = w[i] ^ 0x88888888u; // signed -> offset binary
#pragma unroll
        for (int j = 0; j < 4; ++j)
            p[4 * i + j] = bf16x2_fma(((u >> (4 * j)) & 0x000F000Fu) | 0x43004300u, 0x3F803F80u, 0xC308C308u);
    }
#endif
}

// The activations of the same columns, in weight_pairs' order.
__device__ __forceinline__ void act_pairs(const u32 (&xw)[WPC / 2], u32 (&p)[2 * KSTEPS])
{
#if NS_FORMAT == FMT_INT8_ROW
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        p[2 * i] = __byte_perm(xw[2 * i], xw[2 * i + 1], 0x5410);     // (x0, x2)
        p[2 * i + 1] = __byte_perm(xw[2 * i], xw[2 * i + 1], 0x7632); // (x1, x3)
    }
#elif NS_FORMAT == FMT_INT4_G128
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        p[4 * i + 0] = __byte_perm(xw[4 * i], xw[4 * i + 2], 0x5410);     // (x0, x4)
        p[4 * i + 1] = __byte_perm(xw[4 * i], xw[4 * i + 2], 0x7632);     // (x1, x5)
        p[4 * i + 2] = __byte_perm(xw[4 * i + 1], xw[4 * i + 3], 0x5410); // (x2, x6)
        p[4 * i + 3] = __byte_perm(xw[4 * i + 1], xw[4 * i + 3], 0x7632); // (x3, x7)
    }
#else
#pragma unroll
    for (int i = 0; i < 2 * KSTEPS; ++i) p[i] = xw[i];
#endif
}

// c += the chunk pair's product with the activations: KSTEPS MMAs.
__device__ __forceinline__ void mma_chunk(float (&c)[4], const u32 (&ra)[2 * KSTEPS], const u32 (&rb)[2 * KSTEPS],
                                          const u32 (&x)[2 * KSTEPS])
{
#pragma unroll
    for (int j = 0; j < KSTEPS; ++j) mma_bf16(c, ra[2 * j], rb[2 * j], ra[2 * j + 1], rb[2 * j + 1], x[2 * j], x[2 * j + 1]);
}

// The scale of flat row `row` for super-step s (int4: its group), or 1 where
// the format has none per group.
__device__ __forceinline__ float group_scale(const float* scales, size_t row, int groups, int s)
{
#if NS_FORMAT == FMT_INT4_G128
    return scales[row * groups + s];
#else
    return 1.0f;
#endif
}

__device__ __forceinline__ float row_scale(const float* scales, size_t row)
{
#if NS_FORMAT == FMT_INT8_ROW || NS_FORMAT == FMT_FP8_E4M3
    return scales[row];
#else
    return 1.0f;
#endif
}

__device__ __forceinline__ float activation(float g, int act)
{
    if (act == NS_ACT_GELU_TANH)
        return 0.5f * g * (1.0f + tanhf(0.7978845608f * g * (1.0f + 0.044715f * g * g)));
    return g / (1.0f + expf(-g));
}

__device__ __forceinline__ uint2 ld_stream8(const void* ptr)
{
    uint2 v;
    asm("ld.global.nc.L1::no_allocate.v2.u32 {%0,%1}, [%2];" : "=r"(v.x), "=r"(v.y) : "l"(ptr));
    return v;
}

__device__ __forceinline__ unsigned shared_address(const void* ptr)
{
    unsigned long long a;
    asm("cvta.to.shared.u64 %0, %1;" : "=l"(a) : "l"(ptr));
    return (unsigned)a;
}

// Hopper's bulk copy (TMA without a tensor map): one thread moves a whole
// run, the copy engine does the rest and counts its bytes on an mbarrier.
__device__ __forceinline__ void mbarrier_init(unsigned long long* bar, int arrivals)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(shared_address(bar)), "r"(arrivals) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

__device__ __forceinline__ void mbarrier_expect_bytes(unsigned long long* bar, unsigned bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(shared_address(bar)), "r"(bytes)
                 : "memory");
}

__device__ __forceinline__ void bulk_copy(void* dst, const void* src, unsigned bytes, unsigned long long* bar)
{
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     shared_address(dst)),
                 "l"(src), "r"(bytes), "r"(shared_address(bar))
                 : "memory");
}

__device__ __forceinline__ void mbarrier_wait(unsigned long long* bar, unsigned parity)
{
    for (;;) {
        unsigned done;
        asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                     : "=r"(done)
                     : "r"(shared_address(bar)), "r"(parity)
                     : "memory");
        if (done) return;
    }
}

// Pair i (0 .. 4*DKS-1, in the MMA's register order) of a lane's packed
// w_down words, as a bf16 pair; see "The packed w_down" above.
__device__ __forceinline__ u32 down_pair(const u32 (&w)[DW], int i)
{
#if NS_FORMAT == FMT_BF16
    return w[i];
#elif NS_FORMAT == FMT_INT8_ROW
    const u32 b = (i & 1) ? w[i >> 1] >> 8 : w[i >> 1];
    return bf16x2_fma((b & 0x00800080u) | 0x43004300u, 0xBF80BF80u, (b & 0x007F007Fu) | 0x43004300u);
#elif NS_FORMAT == FMT_FP8_E4M3
    return e4m3x2_to_bf16x2((i & 1) ? w[i >> 1] >> 16 : w[i >> 1] & 0xFFFFu);
#else
    const u32 u = w[i >> 2] ^ 0x88888888u; // signed -> offset binary
    return bf16x2_fma(((u >> (4 * (i & 3))) & 0x000F000Fu) | 0x43004300u, 0x3F803F80u, 0xC308C308u);
#endif
}

// Packed w_down: block (e, tile j, row tile m), lane (g, q) writes its DB
// bytes (layout above), code by code from the checkpoint layout.
extern "C" __global__ void pack_down(const MoeDecodeParams p)
{
    const int bid = blockIdx.x;
    const int m = bid % H16, j = (bid / H16) % NT, e = bid / (H16 * NT);
    const int lane = threadIdx.x, g = lane >> 2, q = lane & 3;
    u32 w[DW];
#pragma unroll
    for (int i = 0; i < DW; ++i) w[i] = 0;
#pragma unroll
    for (int pr = 0; pr < 4 * DKS; ++pr) {
        const int s = pr / 4, r = pr % 4;
        const int h = 16 * m + g + ((r & 1) ? 8 : 0);
        const int c = j * ITILE + q * CPL + 4 * s + ((r & 2) ? 2 : 0);
        u32 code[2];
#pragma unroll
        for (int n = 0; n < 2; ++n)
            code[n] = h < NS_H && c + n < NS_I ? raw_element<NS_I>(p.w_down, (size_t)e * NS_H + h, c + n) : 0u;
#if WBITS == 16
        w[pr] = code[0] | (code[1] << 16);
#elif NS_FORMAT == FMT_FP8_E4M3
        w[pr >> 1] |= (code[0] | (code[1] << 8)) << (16 * (pr & 1));
#elif NS_FORMAT == FMT_INT8_ROW
        w[pr >> 1] |= (code[0] << (8 * (pr & 1))) | (code[1] << (8 * (pr & 1) + 16));
#else
        w[pr >> 2] |= (code[0] << (4 * (pr & 3))) | (code[1] << (4 * (pr & 3) + 16));
#endif
    }
    u32* out = (u32*)((unsigned char*)p.scratch[1] + ((((size_t)e * NT + j) * H16 + m) * 32 + lane) * DB);
#pragma unroll
    for (int i = 0; i < DW; ++i) out[i] = w[i];
}

// int4: the down scales of group grp of expert e for every row h, as one
// run (wds[(e*GI + grp)*H + h]); nothing for the other formats.
extern "C" __global__ void pack_scales(const MoeDecodeParams p)
{
#if NS_FORMAT == FMT_INT4_G128
    constexpr int GI = (NS_I + GROUP - 1) / GROUP;
    const int e = blockIdx.x / GI, grp = blockIdx.x % GI;
    float* out = (float*)p.scratch[2] + ((size_t)e * GI + grp) * NS_H;
    for (int h = threadIdx.x; h < NS_H; h += blockDim.x) out[h] = p.down_scales[((size_t)e * NS_H + h) * GI + grp];
#endif
}

extern "C" __global__ void __launch_bounds__(32 * WARPS) fused(const MoeDecodeParams p)
{
    __shared__ __align__(16) ns_bf16 xs[NS_H];
    __shared__ float partial[2][WARPS][ITILE];
    __shared__ __align__(16) ns_bf16 inter_s[ITILE];
    constexpr int NSS = (NS_H + SS - 1) / SS;
    constexpr int GROUPS = (NS_H + GROUP - 1) / GROUP;
    const int pair = blockIdx.x, tile = blockIdx.y;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, q = lane & 3;
    const int r0 = tile * ITILE;
    const int e = p.topk_ids[pair];
    size_t row_a[MT], row_b[MT]; // A rows g and g+8 of each row tile (clamped)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
        row_a[mt] = (size_t)e * NS_I + min(r0 + 16 * mt + g, NS_I - 1);
        row_b[mt] = (size_t)e * NS_I + min(r0 + 16 * mt + g + 8, NS_I - 1);
    }

    // gate_up's loads: gate and up chunks of rows g and g+8 of every row
    // tile for GU_BATCH super-steps (zeros past the end).
    uint4 v[GU_BATCH][MT][4];
    float sc[GU_BATCH][MT][4]; // int4: group scales (gate a, gate b, up a, up b); lanes q == 0 hold the sums
    auto issue_gu = [&](int s0) {
#pragma unroll
        for (int b = 0; b < GU_BATCH; ++b) {
            const int s = s0 + b * WARPS;
            const int base = s < NSS ? s * SS + q * WPC : NS_H;
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                v[b][mt][0] = load_chunk<NS_H>(p.w_gate, row_a[mt], base);
                v[b][mt][1] = load_chunk<NS_H>(p.w_gate, row_b[mt], base);
                v[b][mt][2] = load_chunk<NS_H>(p.w_up, row_a[mt], base);
                v[b][mt][3] = load_chunk<NS_H>(p.w_up, row_b[mt], base);
#if NS_FORMAT == FMT_INT4_G128
                const bool ok = s < NSS && q == 0;
                sc[b][mt][0] = ok ? group_scale(p.gate_scales, row_a[mt], GROUPS, s) : 0.0f;
                sc[b][mt][1] = ok ? group_scale(p.gate_scales, row_b[mt], GROUPS, s) : 0.0f;
                sc[b][mt][2] = ok ? group_scale(p.up_scales, row_a[mt], GROUPS, s) : 0.0f;
                sc[b][mt][3] = ok ? group_scale(p.up_scales, row_b[mt], GROUPS, s) : 0.0f;
#endif
            }
        }
    };

    // down's loads: DN_BATCH row tiles m of this block's packed run, and the
    // row (int4: group) scales of rows 16m+g and 16m+g+8 (lanes q == 0).
    const unsigned char* run = (const unsigned char*)p.scratch[1] + (((size_t)e * NT + tile) * H16) * 32 * DB + lane * DB;
    u32 dw[DN_BATCH][DW];
    float da[DN_BATCH], db[DN_BATCH];
    auto issue_dn = [&](int m0) {
#pragma unroll
        for (int b = 0; b < DN_BATCH; ++b) {
            const int m = m0 + b * WARPS;
            const int mm = m < H16 ? m : H16 - 1;
            const unsigned char* at = run + (size_t)mm * 32 * DB;
#if DB == 8
            const uint2 u = ld_stream8(at);
            dw[b][0] = u.x; dw[b][1] = u.y;
#else
#pragma unroll
            for (int c = 0; c < DB / 16; ++c) {
                const uint4 u = ld_stream(at + 16 * c);
                dw[b][4 * c] = u.x; dw[b][4 * c + 1] = u.y; dw[b][4 * c + 2] = u.z; dw[b][4 * c + 3] = u.w;
            }
#endif
            const int ha = min(16 * mm + g, NS_H - 1), hb = min(16 * mm + g + 8, NS_H - 1);
#if NS_FORMAT == FMT_INT4_G128
            constexpr int GI = (NS_I + GROUP - 1) / GROUP;
            const float* s = (const float*)p.scratch[2] + ((size_t)e * GI + r0 / GROUP) * NS_H;
            da[b] = q == 0 ? s[ha] : 0.0f;
            db[b] = q == 0 ? s[hb] : 0.0f;
#elif NS_FORMAT == FMT_BF16
            da[b] = 1.0f;
            db[b] = 1.0f;
#else
            da[b] = q == 0 ? p.down_scales[(size_t)e * NS_H + ha] : 0.0f;
            db[b] = q == 0 ? p.down_scales[(size_t)e * NS_H + hb] : 0.0f;
#endif
        }
    };

    issue_gu(warp);
    // w_down does not depend on the intermediate: in flight from the start.
#if DN_STAGE
    extern __shared__ __align__(128) unsigned char staged[]; // [RUN] packed w_down, then [H] f32 scales
    __shared__ __align__(8) unsigned long long staged_bar;
    constexpr unsigned SCALE_BYTES = NS_FORMAT == FMT_BF16 ? 0 : 4 * NS_H;
    if (threadIdx.x == 0) {
        mbarrier_init(&staged_bar, 1);
        mbarrier_expect_bytes(&staged_bar, RUN + SCALE_BYTES);
        bulk_copy(staged, run - lane * DB, RUN, &staged_bar);
#if NS_FORMAT == FMT_INT4_G128
        constexpr int GI = (NS_I + GROUP - 1) / GROUP;
        bulk_copy(staged + RUN, (const float*)p.scratch[2] + ((size_t)e * GI + r0 / GROUP) * NS_H, SCALE_BYTES, &staged_bar);
#elif NS_FORMAT != FMT_BF16
        bulk_copy(staged + RUN, p.down_scales + (size_t)e * NS_H, SCALE_BYTES, &staged_bar);
#endif
    }
#else
    issue_dn(warp);
#endif
    const ns_bf16* xt = p.x + (size_t)(pair / NS_K) * NS_H;
    if (NS_H % 8 == 0) {
        for (int i = threadIdx.x; i < NS_H / 8; i += blockDim.x) ((uint4*)xs)[i] = ((const uint4*)xt)[i];
    } else {
        for (int i = threadIdx.x; i < NS_H; i += blockDim.x) xs[i] = xt[i];
    }
    __syncthreads();

    float cg[MT][4], cu[MT][4];  // MMA sums (int4: per super-step, then scaled into ga..ub)
    float ga[MT], gb[MT], ua[MT], ub[MT];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
        for (int i = 0; i < 4; ++i) cg[mt][i] = cu[mt][i] = 0.0f;
        ga[mt] = gb[mt] = ua[mt] = ub[mt] = 0.0f;
    }
    for (int s0 = warp; s0 < NSS; s0 += WARPS * GU_BATCH) {
        if (s0 != warp) issue_gu(s0);
#pragma unroll
        for (int b = 0; b < GU_BATCH; ++b) {
            const int s = s0 + b * WARPS;
            if (s >= NSS) break; // warp-uniform
            // B column 0 carries the token; the other columns are never read.
            u32 xw[WPC / 2], x[2 * KSTEPS];
            load_acts<NS_H>(xs, g == 0 ? s * SS + q * WPC : NS_H, xw);
            act_pairs(xw, x);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
                u32 pga[2 * KSTEPS], pgb[2 * KSTEPS], pua[2 * KSTEPS], pub[2 * KSTEPS];
                weight_pairs(v[b][mt][0], pga);
                weight_pairs(v[b][mt][1], pgb);
                weight_pairs(v[b][mt][2], pua);
                weight_pairs(v[b][mt][3], pub);
#if NS_FORMAT == FMT_INT4_G128
                float tg[4] = {0.0f, 0.0f, 0.0f, 0.0f}, tu[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                mma_chunk(tg, pga, pgb, x);
                mma_chunk(tu, pua, pub, x);
                ga[mt] = fmaf(sc[b][mt][0], tg[0], ga[mt]);
                gb[mt] = fmaf(sc[b][mt][1], tg[2], gb[mt]);
                ua[mt] = fmaf(sc[b][mt][2], tu[0], ua[mt]);
                ub[mt] = fmaf(sc[b][mt][3], tu[2], ub[mt]);
#else
                mma_chunk(cg[mt], pga, pgb, x);
                mma_chunk(cu[mt], pua, pub, x);
#endif
            }
        }
    }

    // The per-warp sums of the ITILE rows meet in shared memory (lanes q == 0
    // hold D[g, 0] and D[g+8, 0]) and are added in warp order.
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#if NS_FORMAT != FMT_INT4_G128
        ga[mt] = cg[mt][0];
        gb[mt] = cg[mt][2];
        ua[mt] = cu[mt][0];
        ub[mt] = cu[mt][2];
#endif
        if (q == 0) {
            partial[0][warp][16 * mt + g] = ga[mt];
            partial[0][warp][16 * mt + g + 8] = gb[mt];
            partial[1][warp][16 * mt + g] = ua[mt];
            partial[1][warp][16 * mt + g + 8] = ub[mt];
        }
    }
    __syncthreads();
    if (threadIdx.x < ITILE) {
        const int r = threadIdx.x, row = r0 + r;
        float value = 0.0f; // rows past I contribute nothing
        if (row < NS_I) {
            float gs = 0.0f, us = 0.0f;
#pragma unroll
            for (int w = 0; w < WARPS; ++w) {
                gs += partial[0][w][r];
                us += partial[1][w][r];
            }
            gs *= row_scale(p.gate_scales, (size_t)e * NS_I + row);
            us *= row_scale(p.up_scales, (size_t)e * NS_I + row);
            value = activation(gs, p.activation) * us;
        }
        inter_s[r] = f32_to_bf16(value);
    }
    __syncthreads();

    // down: row tiles m = warp, warp + WARPS, ...; lane q's B operand at
    // k-step s is the intermediate at tile columns q*CPL + 4s .. 4s+3.
    float* out = (float*)p.scratch[0] + ((size_t)pair * NT + tile) * NS_H;
#if DN_STAGE
    mbarrier_wait(&staged_bar, 0);
    const float* scales_s = (const float*)(staged + RUN);
    for (int m = warp; m < H16; m += WARPS) {
        const unsigned char* at = staged + ((size_t)m * 32 + lane) * DB;
        u32 w[DW];
#pragma unroll
        for (int i = 0; i < DW; i += 2) {
            const uint2 u = *(const uint2*)(at + 4 * i);
            w[i] = u.x;
            w[i + 1] = u.y;
        }
        float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int s = 0; s < DKS; ++s) {
            const uint2 bx = *(const uint2*)(inter_s + q * CPL + 4 * s);
            mma_bf16(c, down_pair(w, 4 * s), down_pair(w, 4 * s + 1), down_pair(w, 4 * s + 2), down_pair(w, 4 * s + 3),
                     bx.x, bx.y);
        }
        if (q == 0) {
            const int ha = 16 * m + g, hb = ha + 8;
#if NS_FORMAT == FMT_BF16
            if (ha < NS_H) out[ha] = c[0];
            if (hb < NS_H) out[hb] = c[2];
#else
            if (ha < NS_H) out[ha] = scales_s[ha] * c[0];
            if (hb < NS_H) out[hb] = scales_s[hb] * c[2];
#endif
        }
    }
#else
    for (int m0 = warp; m0 < H16; m0 += WARPS * DN_BATCH) {
        if (m0 != warp) issue_dn(m0);
#pragma unroll
        for (int b = 0; b < DN_BATCH; ++b) {
            const int m = m0 + b * WARPS;
            if (m >= H16) break; // warp-uniform
            float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
            for (int s = 0; s < DKS; ++s) {
                const uint2 bx = *(const uint2*)(inter_s + q * CPL + 4 * s);
                mma_bf16(c, down_pair(dw[b], 4 * s), down_pair(dw[b], 4 * s + 1), down_pair(dw[b], 4 * s + 2),
                         down_pair(dw[b], 4 * s + 3), bx.x, bx.y);
            }
            if (q == 0) {
                const int ha = 16 * m + g, hb = ha + 8;
                if (ha < NS_H) out[ha] = da[b] * c[0];
                if (hb < NS_H) out[hb] = db[b] * c[2];
            }
        }
    }
#endif
    // reduce may be scheduled now; it waits for this whole grid anyway.
    asm volatile("griddepcontrol.launch_dependents;");
}

// y[t, h] for RCOLS outputs: warp w sums partial rows n = w, w+RWARPS, ...
// (n = k*NT + tile) weighted by w[t,k], in order, four outputs a lane; then
// the warps' sums are added in warp order.
extern "C" __global__ void __launch_bounds__(32 * RWARPS) reduce(const MoeDecodeParams p)
{
    __shared__ float red[RWARPS][RCOLS];
    constexpr int N = NS_K * NT;
    const int t = blockIdx.x;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int h0 = blockIdx.y * RCOLS + 4 * lane;
    asm volatile("griddepcontrol.wait;" ::: "memory"); // fused's partials are complete and visible
    const float* part = (const float*)p.scratch[0] + (size_t)t * N * NS_H;
    float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    constexpr int UNROLL = 4; // partial rows in flight per lane
    for (int n0 = warp; n0 < N; n0 += RWARPS * UNROLL) {
        float4 r[UNROLL];
        float wk[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            const int n = n0 + u * RWARPS;
            r[u] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            wk[u] = 0.0f;
            if (n < N) {
                wk[u] = p.topk_weights[t * NS_K + n / NT];
                const float* row = part + (size_t)n * NS_H;
                if (NS_H % 4 == 0) {
                    if (h0 < NS_H) r[u] = *(const float4*)(row + h0);
                } else {
                    r[u].x = h0 < NS_H ? row[h0] : 0.0f;
                    r[u].y = h0 + 1 < NS_H ? row[h0 + 1] : 0.0f;
                    r[u].z = h0 + 2 < NS_H ? row[h0 + 2] : 0.0f;
                    r[u].w = h0 + 3 < NS_H ? row[h0 + 3] : 0.0f;
                }
            }
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            a[0] = fmaf(wk[u], r[u].x, a[0]);
            a[1] = fmaf(wk[u], r[u].y, a[1]);
            a[2] = fmaf(wk[u], r[u].z, a[2]);
            a[3] = fmaf(wk[u], r[u].w, a[3]);
        }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) red[warp][4 * lane + j] = a[j];
    __syncthreads();
    if (threadIdx.x < RCOLS) {
        const int h = blockIdx.y * RCOLS + threadIdx.x;
        if (h < NS_H) {
            float sum = 0.0f;
#pragma unroll
            for (int w = 0; w < RWARPS; ++w) sum += red[w][threadIdx.x];
            p.y[(size_t)t * NS_H + h] = f32_to_bf16(sum);
        }
    }
}
