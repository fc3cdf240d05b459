// warp_decode_tc_v1: warp decode with the dot products on tensor cores, for
// every weight format: what is left per weight is the decode, not the multiply.
//
// What it computes
//   y[t,h] = bf16( sum_k w[t,k] * sum_i W_down[e,h,i] * act(g_i) * u_i ),
//   g_i = sum_h W_gate[e,i,h] x[t,h],  u_i = sum_h W_up[e,i,h] x[t,h],  e = topk_ids[t,k],
//   W as stored: bf16, or code * scale for int8_row, fp8_e4m3 (per-row float
//   scale) and int4_g128 (a float scale per 128 columns); verifier/quantize.h.
//
// Why this file
//   warp_decode_v2 spends ~4.5 (int8) to ~6 (int4) issued instructions per
//   weight on decode, fp32 FMA and lane bookkeeping (ncu, H100, B = 1); with
//   ~21 warps per SM the latency of that work is not hidden, so int4 runs at
//   a third of its copy-rate floor. Here a warp owns a 16-row tile and feeds
//   mma.sync.m16n8k16 (bf16 in, fp32 accumulate): int4 costs ~1.4 issued
//   instructions per weight (3 shifts, 4 lop3, 4 bf16x2 fma per 8 weights,
//   one MMA per 256), int8 ~1.75, fp8 ~2, bf16 none. One token, so only
//   column 0 of the MMA's 8 is used; the tensor cores have that to spare.
//
// Parallel strategy: warp decode's, two kernels, no gather or scatter, weights
// read straight from the checkpoint layout (no prepack):
//   gate_up: block = one (t,k) pair and a 16-row tile of I; its WARPS warps
//            split H (split over H): warp w takes super-steps w, w+WARPS, ...
//            for the gate and the up tile. The per-warp sums meet in shared
//            memory and are added in warp order; 16 threads apply act and
//            write inter.
//   down:    block = token t and a 16-row tile of H; the warps split the
//            (k, super-step over I) items the same way; each item's MMA sum
//            is scaled by w[t,k] (times the row or group scale) into fp32.
// The k permutation that makes plain 16-byte loads enough: a dot product may
// visit its columns in any order as long as the weights (A) and activations
// (B) agree. Lane (g = lane>>2, q = lane&3) loads one 16-byte chunk (WPC
// weights) of row g and one of row g+8 at columns s*SS + q*WPC.. (SS = 4*WPC,
// a "super-step"), plus the same columns of the activations, and turns them
// into the A and B register pairs of WPC/4 k-steps. Which real column goes to
// which logical k is chosen so the decode is cheapest (int4: pairs of nibbles
// j and j+4 of a word, one lop3 each); B is permuted the same way (prmt).
// For B = 1 every lane fills B with the token's activations, so all 8 output
// columns are equal and column 0 (lanes q = 0: c0 row g, c2 row g+8) is used.
//
// Decoding to bf16 pairs, all exact:
//   int8: bytes 0 and 2 (1 and 3 after a shift) of a word form a pair: the low
//         7 bits under the bf16 exponent of 128 give 128 + l, the sign bit
//         under it 128 + 128*b7, and one fma.rn.bf16x2 (x -1) subtracts them:
//         2 lop3 + 1 fma per 2 weights.
//   fp8:  cvt.rn.f16x2.e4m3x2 (every e4m3 value is an fp16 normal), each half
//         to fp32, cvt.rn.bf16x2.f32 (4 significant bits: exact).
//   int4: (word >> 4j) & 0x000F000F | 0x43004300 is the bf16 pair
//         (128 + n_j, 128 + n_{j+4}); one fma.rn.bf16x2 (x1, -136) gives the
//         signed codes. Super-steps are 128 columns: one scale group, so each
//         super-step's MMA sum is multiplied by its group's scale in fp32.
//   The row scales of int8 and fp8 multiply the fp32 sums once per row.
//
// Knobs
//   WARPS        warps per block: the split over H (gate_up) and over the
//                K*I items (down).
//   INFLIGHT     16-byte weight loads per lane issued before any is used
//                (gate_up: INFLIGHT/4 super-steps of 4 chunks, down:
//                INFLIGHT/2 items of 2 chunks).
//   OCCUPANCY    warps per SM the register allocation must leave room for
//                (__launch_bounds__ min blocks = OCCUPANCY / WARPS; 0: none):
//                with ~64-128 registers a lane, gate_up's T*K*I/TILE blocks
//                may not fit in one wave otherwise.
//   TILE         output rows per block (16, 8 or 4; see "column parts").
//   PDL          down is a programmatic dependent launch: its weight loads
//                start while gate_up runs (1: gate_up lets it in at once, 2:
//                after each block's loads; 0: an ordinary launch).
//   INTER_SPLIT  the intermediate act(g)*u is kept as two bf16 scratch arrays,
//                hi = bf16(v) and lo = bf16(v - hi), and down runs an MMA on
//                each (1): ~16 bits of v reach the sum, close to warp_decode's
//                fp32 intermediate. 0: hi only, one bf16 rounding of v.
//
// Launch rule
//   gate_up grid=(T*K, cdiv(I,16)) block=(32*WARPS)
//   down    grid=(T,   cdiv(H,16)) block=(32*WARPS)
//   Rows past I (or H) in the last tile are clamped for loading, never
//   stored. Chunks past the end of a row read as zero weights and zero
//   activations (the MMA is warp-wide, so no lane skips it). Rows whose
//   length is not a multiple of WPC (tiny shapes; int4 rows then also lose
//   16-byte alignment) are read element by element, chosen at compile time.
//
// Numerics
//   Products exact (bf16 x bf16), sums in the tensor cores' fp32 accumulate
//   in a fixed order, then fp32 scale multiplies and warp-order adds: two runs
//   are bitwise equal. The intermediate is rounded to bf16 (INTER_SPLIT=0) or
//   carried as a bf16 pair (1); one round-to-nearest-even to bf16 at the end.
//
// parent: warp_decode_v2.cu
//
// @op moe_decode
// @formats bf16 int8_row int4_g128 fp8_e4m3
// @tune TILE 8 16 4
// @tune WARPS 8 4 16
// @tune INFLIGHT 8 16 4
// @tune INTER_SPLIT 1 0
// @tune PDL 1 2 0
// @tune OCCUPANCY 0 32 48
// @scratch inter_hi bf16 T*K*I
// @scratch inter_lo bf16 T*K*I
// @launch gate_up grid=(T*K,cdiv(I,TILE)) block=(32*WARPS)
// @launch down grid=(T,cdiv(H,TILE)) block=(32*WARPS) smem=K*I*2*(1+INTER_SPLIT) pdl=PDL

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
#define WARPS 8
#endif
#ifndef INFLIGHT
#define INFLIGHT 8
#endif
#ifndef INTER_SPLIT
#define INTER_SPLIT 1
#endif
#ifndef PDL
#define PDL 1
#endif
#ifndef TILE
#define TILE 8
#endif
#ifndef OCCUPANCY
#define OCCUPANCY 0
#endif
// Blocks per SM the register allocation must allow (0: no bound).
#define MIN_BLOCKS (OCCUPANCY / WARPS > 0 ? OCCUPANCY / WARPS : 1)
#if TILE != 16 && TILE != 8 && TILE != 4
#error "warp_decode_tc_v1: TILE is 16, 8 or 4"
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
#error "warp_decode_tc_v1: unknown NS_FORMAT"
#endif

#define KSTEPS (WPC / 4) // MMA k-steps per chunk
#define SS (4 * WPC)     // columns of one part of a super-step (int4: 128, one scale group)
#define PARTS (16 / TILE) // column parts side by side in one MMA (see Roles)
#define SPAN (PARTS * SS) // columns per super-step
#define GROUP 128
#define BATCH_GU ((INFLIGHT / 4) > 0 ? (INFLIGHT / 4) : 1)
#define BATCH_DN ((INFLIGHT / 2) > 0 ? (INFLIGHT / 2) : 1)

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

// Copies n bf16 from global memory to shared memory, the whole block
// together (16-byte pieces where n allows).
__device__ __forceinline__ void stage(ns_bf16* dst, const ns_bf16* src, int n)
{
    if (n % 8 == 0) {
        constexpr int UNROLL = 4; // loads in flight per thread before the first store
        for (int i0 = threadIdx.x; i0 < n / 8; i0 += UNROLL * blockDim.x) {
            uint4 r[UNROLL];
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                const int i = i0 + u * blockDim.x;
                if (i < n / 8) r[u] = ((const uint4*)src)[i];
            }
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                const int i = i0 + u * blockDim.x;
                if (i < n / 8) ((uint4*)dst)[i] = r[u];
            }
        }
    } else {
        for (int i = threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
    }
}

// Lane roles. MMA row m (0..15) is tile row m % TILE of column part
// m / TILE; B column n carries column part n (n < PARTS), so the wanted sum
// of row m is D[m, m / TILE]. Lane (g, q) holds D[g, 2q], D[g, 2q+1],
// D[g+8, 2q], D[g+8, 2q+1] (elements 0..3), so the wanted sum of its A row g
// is its element cp_a % 2 if q == cp_a / 2, that of row g+8 its element
// 2 + cp_b % 2 if q == cp_b / 2: each row's sum is on exactly one lane.
struct Roles {
    int r_a, cp_a, r_b, cp_b; // A rows g and g+8: tile row and column part
    int xpart;                // the part this lane's B column carries
    bool b_loads;             // B column n = g < PARTS: the others are never read
    bool want_a, want_b;      // this lane holds row g's (row g+8's) wanted sum
    int ia, ib;               // ... as element ia (ib) of the accumulator
    __device__ Roles(int g, int q)
        : r_a(g % TILE), cp_a(g / TILE), r_b((g + 8) % TILE), cp_b((g + 8) / TILE), xpart(g % PARTS),
          b_loads(g < PARTS), want_a(q == cp_a / 2), want_b(q == cp_b / 2), ia(cp_a % 2), ib(2 + cp_b % 2)
    {
    }
};

// c[i] for a run-time i without local memory.
__device__ __forceinline__ float pick(const float (&c)[4], int i)
{
    return i == 0 ? c[0] : i == 1 ? c[1] : i == 2 ? c[2] : c[3];
}

extern "C" __global__ void __launch_bounds__(32 * WARPS, MIN_BLOCKS) gate_up(const MoeDecodeParams p)
{
    __shared__ float partial[2][WARPS][16];
    constexpr int NSS = (NS_H + SPAN - 1) / SPAN;
    constexpr int GROUPS = (NS_H + GROUP - 1) / GROUP;
    const int pair = blockIdx.x; // t*K + k
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, q = lane & 3;
    const Roles role(g, q);
    const int r0 = blockIdx.y * TILE;
    const int e = p.topk_ids[pair];
    const size_t row_a = (size_t)e * NS_I + min(r0 + role.r_a, NS_I - 1);
    const size_t row_b = (size_t)e * NS_I + min(r0 + role.r_b, NS_I - 1);

    // One batch of loads: gate and up chunks of A rows g and g+8 for BATCH_GU
    // super-steps (zeros past the end), and the activations of this lane's
    // B column part at the same offsets.
    const ns_bf16* xt = p.x + (size_t)(pair / NS_K) * NS_H;
    uint4 v[BATCH_GU][4];
    u32 xw[BATCH_GU][WPC / 2];
    float sc[BATCH_GU][4]; // int4: group scales of the wanted sums (gate a, gate b, up a, up b)
    auto issue = [&](int s0) {
#pragma unroll
        for (int b = 0; b < BATCH_GU; ++b) {
            const int s = s0 + b * WARPS;
            const int base = s < NSS ? s * SPAN + q * WPC : NS_H; // past the end: zeros
            const int ca = base + role.cp_a * SS, cb = base + role.cp_b * SS;
            v[b][0] = load_chunk<NS_H>(p.w_gate, row_a, ca);
            v[b][1] = load_chunk<NS_H>(p.w_gate, row_b, cb);
            v[b][2] = load_chunk<NS_H>(p.w_up, row_a, ca);
            v[b][3] = load_chunk<NS_H>(p.w_up, row_b, cb);
            load_acts<NS_H>(xt, role.b_loads ? base + role.xpart * SS : NS_H, xw[b]);
#if NS_FORMAT == FMT_INT4_G128
            // SS = 128: part cp of super-step s is group s * PARTS + cp.
            const bool ok = s < NSS;
            sc[b][0] = ok && role.want_a ? group_scale(p.gate_scales, row_a, GROUPS, s * PARTS + role.cp_a) : 0.0f;
            sc[b][1] = ok && role.want_b ? group_scale(p.gate_scales, row_b, GROUPS, s * PARTS + role.cp_b) : 0.0f;
            sc[b][2] = ok && role.want_a ? group_scale(p.up_scales, row_a, GROUPS, s * PARTS + role.cp_a) : 0.0f;
            sc[b][3] = ok && role.want_b ? group_scale(p.up_scales, row_b, GROUPS, s * PARTS + role.cp_b) : 0.0f;
#endif
        }
    };
#if PDL == 1
    // down may be scheduled now: its weight loads do not depend on this grid.
    asm volatile("griddepcontrol.launch_dependents;");
#endif

    float cg[4] = {0.0f, 0.0f, 0.0f, 0.0f}, cu[4] = {0.0f, 0.0f, 0.0f, 0.0f}; // MMA sums
    float ga = 0.0f, gb = 0.0f, ua = 0.0f, ub = 0.0f; // int4: the wanted sums, scaled per group
    for (int s0 = warp; s0 < NSS; s0 += WARPS * BATCH_GU) {
        issue(s0);
#pragma unroll
        for (int b = 0; b < BATCH_GU; ++b) {
            const int s = s0 + b * WARPS;
            if (s >= NSS) break; // warp-uniform
            u32 x[2 * KSTEPS];
            act_pairs(xw[b], x);
            u32 pga[2 * KSTEPS], pgb[2 * KSTEPS], pua[2 * KSTEPS], pub[2 * KSTEPS];
            weight_pairs(v[b][0], pga);
            weight_pairs(v[b][1], pgb);
            weight_pairs(v[b][2], pua);
            weight_pairs(v[b][3], pub);
#if NS_FORMAT == FMT_INT4_G128
            float tg[4] = {0.0f, 0.0f, 0.0f, 0.0f}, tu[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            mma_chunk(tg, pga, pgb, x);
            mma_chunk(tu, pua, pub, x);
            ga = fmaf(sc[b][0], pick(tg, role.ia), ga);
            gb = fmaf(sc[b][1], pick(tg, role.ib), gb);
            ua = fmaf(sc[b][2], pick(tu, role.ia), ua);
            ub = fmaf(sc[b][3], pick(tu, role.ib), ub);
#else
            mma_chunk(cg, pga, pgb, x);
            mma_chunk(cu, pua, pub, x);
#endif
        }
    }

#if PDL == 2
    // down may be scheduled once this block's weights are in: later than 1,
    // so its blocks do not take the slots gate_up's own later blocks need.
    asm volatile("griddepcontrol.launch_dependents;");
#endif
#if NS_FORMAT != FMT_INT4_G128
    ga = pick(cg, role.ia);
    gb = pick(cg, role.ib);
    ua = pick(cu, role.ia);
    ub = pick(cu, role.ib);
#endif
    if (role.want_a) {
        partial[0][warp][g] = ga;
        partial[1][warp][g] = ua;
    }
    if (role.want_b) {
        partial[0][warp][g + 8] = gb;
        partial[1][warp][g + 8] = ub;
    }
    __syncthreads();
    const int r = threadIdx.x;
    if (r < TILE && r0 + r < NS_I) {
        float gs = 0.0f, us = 0.0f;
#pragma unroll
        for (int w = 0; w < WARPS; ++w)
#pragma unroll
            for (int part = 0; part < PARTS; ++part) {
                gs += partial[0][w][part * TILE + r];
                us += partial[1][w][part * TILE + r];
            }
        const size_t row = (size_t)e * NS_I + r0 + r;
        gs *= row_scale(p.gate_scales, row);
        us *= row_scale(p.up_scales, row);
        const float v = activation(gs, p.activation) * us;
        const size_t at = (size_t)pair * NS_I + r0 + r;
        const ns_bf16 hi = f32_to_bf16(v);
        ((ns_bf16*)p.scratch[0])[at] = hi;
#if INTER_SPLIT
        ((ns_bf16*)p.scratch[1])[at] = f32_to_bf16(v - bf16_to_f32(hi));
#endif
    }
}

extern "C" __global__ void __launch_bounds__(32 * WARPS, MIN_BLOCKS) down(const MoeDecodeParams p)
{
    __shared__ float partial[WARPS][16];
    extern __shared__ __align__(16) ns_bf16 inter_s[]; // [1 + INTER_SPLIT][K][I]: token t's intermediate
    constexpr int NSS = (NS_I + SPAN - 1) / SPAN;
    constexpr int GROUPS = (NS_I + GROUP - 1) / GROUP;
    constexpr int ITEMS = NS_K * NSS; // (k, super-step) pairs
    const int t = blockIdx.x;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, q = lane & 3;
    const Roles role(g, q);
    const int r0 = blockIdx.y * TILE;
    const int ha = min(r0 + role.r_a, NS_H - 1), hb = min(r0 + role.r_b, NS_H - 1);

    uint4 v[BATCH_DN][2]; // A rows g and g+8 of expert e_k
    float wk[BATCH_DN], fa[BATCH_DN], fb[BATCH_DN]; // w[t,k]; the row (int4: group) scales of the wanted sums
    auto issue = [&](int i0) {
#pragma unroll
        for (int b = 0; b < BATCH_DN; ++b) {
            const int item = i0 + b * WARPS;
            const int k = item < ITEMS ? item / NSS : 0, s = item < ITEMS ? item % NSS : 0;
            const int base = item < ITEMS ? s * SPAN + q * WPC : NS_I; // past the end: zeros
            const size_t e = (size_t)p.topk_ids[t * NS_K + k];
            const size_t rowa = e * NS_H + ha, rowb = e * NS_H + hb;
            v[b][0] = load_chunk<NS_I>(p.w_down, rowa, base + role.cp_a * SS);
            v[b][1] = load_chunk<NS_I>(p.w_down, rowb, base + role.cp_b * SS);
            wk[b] = p.topk_weights[t * NS_K + k];
#if NS_FORMAT == FMT_INT4_G128
            fa[b] = role.want_a ? group_scale(p.down_scales, rowa, GROUPS, s * PARTS + role.cp_a) : 0.0f;
            fb[b] = role.want_b ? group_scale(p.down_scales, rowb, GROUPS, s * PARTS + role.cp_b) : 0.0f;
#else
            fa[b] = role.want_a ? row_scale(p.down_scales, rowa) : 0.0f;
            fb[b] = role.want_b ? row_scale(p.down_scales, rowb) : 0.0f;
#endif
        }
    };
    issue(warp); // in flight while gate_up finishes (PDL) and the intermediate is staged
#if PDL
    asm volatile("griddepcontrol.wait;" ::: "memory"); // gate_up's inter is complete and visible
#endif
    stage(inter_s, (const ns_bf16*)p.scratch[0] + (size_t)t * NS_K * NS_I, NS_K * NS_I);
#if INTER_SPLIT
    stage(inter_s + NS_K * NS_I, (const ns_bf16*)p.scratch[1] + (size_t)t * NS_K * NS_I, NS_K * NS_I);
#endif
    __syncthreads();

    float acc_a = 0.0f, acc_b = 0.0f; // the wanted sums of rows g and g+8
    for (int i0 = warp; i0 < ITEMS; i0 += WARPS * BATCH_DN) {
        if (i0 != warp) issue(i0);
#pragma unroll
        for (int b = 0; b < BATCH_DN; ++b) {
            const int item = i0 + b * WARPS;
            if (item >= ITEMS) break; // warp-uniform
            const int k = item / NSS, s = item % NSS;
            u32 aw[WPC / 2], x[2 * KSTEPS];
            u32 wa[2 * KSTEPS], wb[2 * KSTEPS];
            weight_pairs(v[b][0], wa);
            weight_pairs(v[b][1], wb);
            float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            const int xcol = role.b_loads ? s * SPAN + role.xpart * SS + q * WPC : NS_I;
            load_acts<NS_I>(inter_s + k * NS_I, xcol, aw);
            act_pairs(aw, x);
            mma_chunk(c, wa, wb, x);
#if INTER_SPLIT
            load_acts<NS_I>(inter_s + (NS_K + k) * NS_I, xcol, aw);
            act_pairs(aw, x);
            mma_chunk(c, wa, wb, x);
#endif
            acc_a = fmaf(wk[b] * fa[b], pick(c, role.ia), acc_a);
            acc_b = fmaf(wk[b] * fb[b], pick(c, role.ib), acc_b);
        }
    }

    if (role.want_a) partial[warp][g] = acc_a;
    if (role.want_b) partial[warp][g + 8] = acc_b;
    __syncthreads();
    const int r = threadIdx.x;
    if (r < TILE && r0 + r < NS_H) {
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < WARPS; ++w)
#pragma unroll
            for (int part = 0; part < PARTS; ++part) sum += partial[w][part * TILE + r];
        p.y[(size_t)t * NS_H + r0 + r] = f32_to_bf16(sum);
    }
}
