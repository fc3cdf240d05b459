// warp_decode_tc_stream_v1: warp_decode_tc_v1's tensor-core dot products,
// with a persistent gate_up whose weights are streamed into shared memory by
// bulk copies through a ring of stages.
//
// What it computes
//   y[t,h] = bf16( sum_k w[t,k] * sum_i W_down[e,h,i] * act(g_i) * u_i ),
//   g_i = sum_h W_gate[e,i,h] x[t,h],  u_i = sum_h W_up[e,i,h] x[t,h],  e = topk_ids[t,k],
//   W as stored: bf16, or code * scale for int8_row, fp8_e4m3 (per-row float
//   scale) and int4_g128 (a float scale per 128 columns); verifier/quantize.h.
//
// Why this file
//   At B = 1 on an H100, tc_v1's gate_up is a grid of short blocks (one (t,k)
//   pair and TILE rows each) that start over ~10 us in about three waves;
//   each reads its expert id, issues its loads, waits, sums and exits, and
//   gate_up streams at ~1.5 TB/s. This file tests the opposite schedule, the
//   warp-decode family's persistent grid: each gate_up block owns UPB
//   consecutive units (a unit is tc_v1's block: TILE rows of gate and of up
//   for one pair), and one thread keeps the next STAGES units on their way
//   into shared memory while the block sums the current one.
//
// Measured (H100, Gemma 4, against tc_v1's tuned winners in the same run):
//   slower everywhere. B = 1: int4 20.6 against 18.9 us, int8 28.7 against
//   23.4, fp8 26.3 against 21.6, bf16 38.5 against 36.0. B = 8: int4 94.5
//   against 91.1, int8 155.5 against 130.6. A globaltimer probe per block
//   (int4, TILE=8, WARPS=8, UPB=6): the first unit lands ~3 us after the
//   start (every block's first STAGES units are requested at once); then
//   each unit takes ~1.4 us per block, ~1 us of it summing (two warps per
//   scheduler, 0.3 instructions issued per cycle, 44% of stalls at the
//   per-unit barrier), so an SM pulls ~17 GB/s, ~2 TB/s in all; down's early
//   loads (PDL) delay gate_up's first units by another ~3 us. Kept as the
//   persistent-grid starting point (bulk-copy ring, staged scales and
//   activations, two MMA chains); experiments/README.md has the numbers.
//
// Parallel strategy: warp decode's, two kernels, no gather or scatter, weights
// read straight from the checkpoint layout (no prepack):
//   gate_up: block b = units b*UPB .. b*UPB+UPB-1; unit u = (pair u / NT_I,
//            rows (u % NT_I)*TILE.. of I), so a block's rows are consecutive
//            in memory. Warp 0 reads the expert ids of the pairs the units
//            touch; thread 0 bulk-copies the activations of their tokens and
//            the first STAGES units (rows, then the rows' scales), each stage
//            counted on its own mbarrier. Per unit: wait for its stage; the
//            WARPS warps split H into super-steps as in tc_v1 (A fragments
//            from the staged rows, B from the staged activations, even and
//            odd k-steps on two accumulator chains); per-warp sums meet in
//            shared memory; one __syncthreads frees the stage, thread 0
//            refills it with unit n + STAGES, and TILE threads add the sums
//            in warp order, apply act and write the intermediate (bf16).
//   down:    tc_v1's down, unchanged but for the single bf16 intermediate:
//            block = token t and a TILE-row tile of H; its warps split the
//            (k, super-step over I) items; PDL starts its first weight loads
//            while gate_up runs.
// Lane roles, the k permutation and the decode are tc_v1's (read that file's
// header for them).
//
// Knobs
//   TILE      rows of gate (and of up) per unit and rows of H per down block
//             (16, 8 or 4: tc_v1's column parts).
//   WARPS     warps per block, in both kernels.
//   STAGES    units in shared memory at once (the one being summed and
//             STAGES - 1 on their way); fewer where STAGES stages would pass
//             180 KB (at least one).
//   UPB       units per gate_up block: few blocks of many units keep the
//             stream long; more blocks balance the SMs.
//   PADDED    1: one copy per row, rows RS = 64 mod 128 bytes apart, so the
//             two rows a quarter-warp reads (64 bytes each) fall in
//             different banks; 0: one copy per TILE rows, as stored (2-way
//             bank conflicts where a row is a multiple of 128 bytes).
//   INFLIGHT  down's 16-byte weight loads per lane issued before any is
//             used (INFLIGHT/2 items of 2 chunks), as in tc_v1.
//   PDL       down is a programmatic dependent launch (1: gate_up lets it in
//             at once, 2: once a block has issued its last copies; 0: an
//             ordinary launch).
//
// Launch rule
//   gate_up grid=(cdiv(T*K*cdiv(I,TILE),UPB)) block=(32*WARPS)
//           smem=RING*SB, SB = 2*TILE*RS + the rows' scales (rounded to 16
//           bytes), RING = min(STAGES, max(1, 180 KB / SB)), SB <= 180 KB,
//           RS = 128*cdiv(H*BITS,1024) + 64 (PADDED) or 16*cdiv(H*BITS,128)
//   down    grid=(T,cdiv(H,TILE)) block=(32*WARPS) smem=K*I*2
//   Rows past I (or H) in the last tile are clamped for loading, never
//   stored. Chunks past the end of a row read as zero weights and zero
//   activations. Where a row's bytes are not whole 16-byte chunks (H*BITS
//   not a multiple of 128) or I is not a multiple of TILE (tiny shapes), the
//   block copies each unit into its stage with plain loads, element by
//   element, before summing it; correct everywhere, not meant to win there.
//   Activations are bulk-copied where H is a multiple of 8.
//
// Numerics
//   As tc_v1 with INTER_SPLIT=0 but for the order of the MMA sums (two
//   chains, added at the end): products exact, fp32 accumulate in a fixed
//   order, fp32 scale multiplies, warp-order adds, the intermediate rounded
//   once to bf16, one round-to-nearest-even at the end. Two runs are
//   bitwise equal.
//
// parent: warp_decode_tc_v1.cu (decode, MMA, lane roles and down; gate_up's
// schedule is new)
//
// @op moe_decode
// @formats bf16 int8_row int4_g128 fp8_e4m3
// @parent warp_decode_tc_v1.cu
// @tune TILE 4 8 16
// @tune WARPS 8 4 16
// @tune STAGES 4 3 2
// @tune UPB 3 6 4 8 11
// @tune INFLIGHT 16 8 4
// @tune PDL 1 2 0
// @tune PADDED 0 1
// @constrain (2*TILE*(PADDED*(128*cdiv(H*BITS,1024)+64)+(1-PADDED)*16*cdiv(H*BITS,128))+16*cdiv(8*TILE*((BITS==4)*cdiv(H,128)+(BITS==8)),16)) <= 180*1024  # one stage in shared memory
// @scratch inter bf16 T*K*I
// @launch gate_up grid=(cdiv(T*K*cdiv(I,TILE),UPB)) block=(32*WARPS) smem=min(STAGES,max(1,184320/(2*TILE*(PADDED*(128*cdiv(H*BITS,1024)+64)+(1-PADDED)*16*cdiv(H*BITS,128))+16*cdiv(8*TILE*((BITS==4)*cdiv(H,128)+(BITS==8)),16))))*(2*TILE*(PADDED*(128*cdiv(H*BITS,1024)+64)+(1-PADDED)*16*cdiv(H*BITS,128))+16*cdiv(8*TILE*((BITS==4)*cdiv(H,128)+(BITS==8)),16))
// @launch down grid=(T,cdiv(H,TILE)) block=(32*WARPS) smem=K*I*2 pdl=PDL

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
#ifndef STAGES
#define STAGES 4
#endif
#ifndef UPB
#define UPB 3
#endif
#ifndef INFLIGHT
#define INFLIGHT 16
#endif
#ifndef PDL
#define PDL 1
#endif
#ifndef TILE
#define TILE 4
#endif
#if TILE != 16 && TILE != 8 && TILE != 4
#error "warp_decode_tc_stream_v1: TILE is 16, 8 or 4"
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
#error "warp_decode_tc_stream_v1: unknown NS_FORMAT"
#endif

#define KSTEPS (WPC / 4) // MMA k-steps per chunk
#define SS (4 * WPC)     // columns of one part of a super-step (int4: 128, one scale group)
#define PARTS (16 / TILE) // column parts side by side in one MMA (see Roles)
#define SPAN (PARTS * SS) // columns per super-step
#define GROUP 128
#define BATCH_DN ((INFLIGHT / 2) > 0 ? (INFLIGHT / 2) : 1)

typedef unsigned int u32;

__device__ __forceinline__ ns_bf16 f32_to_bf16(float f)
{
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (ns_bf16)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ns_bf16)(u >> 16);
}

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
__device__ __forceinline__ void stage_inter(ns_bf16* dst, const ns_bf16* src, int n)
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

// gate_up's stages. A unit is TILE rows of w_gate, TILE rows of w_up, then
// their scales: int4, the rows' group scales (GROUPS_H each); int8 and fp8,
// the rows' scales; bf16, none.
#define ROW_BITS (NS_H * WBITS)                               // one row as stored
#ifndef PADDED
#define PADDED 0
#endif
// A row's stride in a stage. PADDED: whole 128-byte lines plus 64 bytes, so
// the two rows a quarter-warp reads fall in different banks, one copy per
// row; otherwise the rows as stored, one copy per TILE rows.
#if PADDED
#define RS (128 * ((ROW_BITS + 1023) / 1024) + 64)
#else
#define RS (16 * ((ROW_BITS + 127) / 128))
#endif
#define NT_I ((NS_I + TILE - 1) / TILE)                       // units per (t,k) pair
#define UNITS (NS_T * NS_K * NT_I)
#define NSS_H ((NS_H + SPAN - 1) / SPAN)                      // super-steps per row
#define GROUPS_H ((NS_H + GROUP - 1) / GROUP)                 // int4 scale groups per row
#if NS_FORMAT == FMT_INT4_G128
#define SG GROUPS_H
#elif NS_FORMAT == FMT_BF16
#define SG 0
#else
#define SG 1
#endif
#define SCALES_AT (2 * TILE * RS)                             // where a stage's scales start
#define STAGE_BYTES (SCALES_AT + 16 * ((2 * TILE * SG * 4 + 15) / 16))
// Stages in the ring: STAGES, or as many as fit in 180 KB (at least one; the
// launch rule's smem expression makes the same choice), which leaves room for
// the activations' static shared memory (up to 28 KB at H = 7168).
#define STAGE_LIMIT (180 * 1024)
#define RING (STAGES * STAGE_BYTES <= STAGE_LIMIT ? STAGES : (STAGE_LIMIT / STAGE_BYTES > 0 ? STAGE_LIMIT / STAGE_BYTES : 1))
// Whole 16-byte chunks per row and whole tiles per expert: every copy is a
// bulk copy (the TILE rows' scales are then one aligned run as well).
#define BULK (ROW_BITS % 128 == 0 && NS_I % TILE == 0)
#define X_BULK (NS_H % 8 == 0)                                // activation rows are whole chunks
#define STEPS ((NSS_H + WARPS - 1) / WARPS)                   // super-steps per warp, at most
#define MAX_PAIRS ((UPB + NT_I - 1) / NT_I + 1)               // pairs one block's units touch, at most
#define MAX_TOKENS ((MAX_PAIRS + NS_K - 1) / NS_K + 1)        // tokens ..., at most
#define XH (8 * ((NS_H + 7) / 8))                             // a staged activation row (16-byte multiple)

__device__ __forceinline__ unsigned shared_address(const void* ptr)
{
    unsigned long long a;
    asm("cvta.to.shared.u64 %0, %1;" : "=l"(a) : "l"(ptr));
    return (unsigned)a;
}

// Hopper's bulk copy (TMA without a tensor map): one thread moves a whole
// row, the copy engine does the rest and counts its bytes on an mbarrier.
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

// c0 += the even k-steps of the chunk pair's product, c1 += the odd ones:
// two accumulator chains of KSTEPS/2 MMAs instead of one of KSTEPS.
__device__ __forceinline__ void mma_chunk2(float (&c0)[4], float (&c1)[4], const u32 (&ra)[2 * KSTEPS],
                                           const u32 (&rb)[2 * KSTEPS], const u32 (&x)[2 * KSTEPS])
{
#pragma unroll
    for (int j = 0; j < KSTEPS; ++j) {
        float (&c)[4] = (j % 2 == 0) ? c0 : c1;
        mma_bf16(c, ra[2 * j], rb[2 * j], ra[2 * j + 1], rb[2 * j + 1], x[2 * j], x[2 * j + 1]);
    }
}

// The chunk of WPC weights at columns c0.. of a staged row; zero past the
// row's end (a staged row is whole chunks, zero-filled where plain loads
// staged it).
__device__ __forceinline__ uint4 staged_chunk(const unsigned char* row, int c0)
{
    if (c0 >= NS_H) return make_uint4(0, 0, 0, 0);
    return *(const uint4*)(row + c0 * WBITS / 8);
}

// Stage unit u (expert e) at dst. BULK: thread 0 issues one bulk copy per row
// and one per scale run, and arms the stage's barrier. Otherwise the whole
// block writes the rows with plain loads, each 32-bit word from its
// elements, zeros past H, rows past I clamped (the caller synchronizes).
__device__ __forceinline__ void fill_stage(const MoeDecodeParams& p, int u, int e, unsigned char* dst,
                                           unsigned long long* bar)
{
    const int r0 = (u % NT_I) * TILE;
    float* scales = (float*)(dst + SCALES_AT); // [gate, up][TILE][SG]
#if BULK
    constexpr unsigned ROW_BYTES = ROW_BITS / 8;
    mbarrier_expect_bytes(bar, 2 * TILE * (ROW_BYTES + SG * 4));
    const size_t first_row = (size_t)e * NS_I + r0;
    if (PADDED) {
        for (int r = 0; r < TILE; ++r) {
            const size_t row = first_row + r;
            bulk_copy(dst + r * RS, (const unsigned char*)p.w_gate + row * ROW_BYTES, ROW_BYTES, bar);
            bulk_copy(dst + (TILE + r) * RS, (const unsigned char*)p.w_up + row * ROW_BYTES, ROW_BYTES, bar);
        }
    } else {
        bulk_copy(dst, (const unsigned char*)p.w_gate + first_row * ROW_BYTES, TILE * ROW_BYTES, bar);
        bulk_copy(dst + TILE * RS, (const unsigned char*)p.w_up + first_row * ROW_BYTES, TILE * ROW_BYTES, bar);
    }
    if (SG > 0) {
        bulk_copy(scales, p.gate_scales + first_row * SG, TILE * SG * 4, bar);
        bulk_copy(scales + TILE * SG, p.up_scales + first_row * SG, TILE * SG * 4, bar);
    }
#else
    constexpr int WORDS = 4 * ((ROW_BITS + 127) / 128); // whole chunks of the row
    constexpr int PER_WORD = 32 / WBITS; // elements per word
    for (int i = threadIdx.x; i < 2 * TILE * WORDS; i += blockDim.x) {
        const int slot = i / WORDS, word = i % WORDS; // slot: gate rows 0..TILE-1, then up rows
        const size_t row = (size_t)e * NS_I + min(r0 + slot % TILE, NS_I - 1);
        const void* base = slot < TILE ? p.w_gate : p.w_up;
        u32 bits = 0;
#pragma unroll
        for (int j = 0; j < PER_WORD; ++j) {
            const int col = word * PER_WORD + j;
            if (col < NS_H) bits |= raw_element<NS_H>(base, row, col) << (j * WBITS);
        }
        *(u32*)(dst + slot * RS + 4 * word) = bits;
    }
    for (int i = threadIdx.x; i < 2 * TILE * SG; i += blockDim.x) {
        const int slot = i / SG, grp = i % SG;
        const size_t row = (size_t)e * NS_I + min(r0 + slot % TILE, NS_I - 1);
        scales[i] = (slot < TILE ? p.gate_scales : p.up_scales)[row * SG + grp];
    }
#endif
}

extern "C" __global__ void __launch_bounds__(32 * WARPS) gate_up(const MoeDecodeParams p)
{
    extern __shared__ __align__(128) unsigned char stages[]; // [RING][STAGE_BYTES]
    __shared__ __align__(16) ns_bf16 xs[MAX_TOKENS][XH];     // activations of the tokens the units touch
    __shared__ float partial[2][2][WARPS][16];              // [unit parity][gate, up][warp][MMA row]
    __shared__ int ids_s[MAX_PAIRS];
    __shared__ __align__(8) unsigned long long full[RING]; // stage s holds its unit
    __shared__ __align__(8) unsigned long long x_bar;        // xs holds the activations

    const int u0 = blockIdx.x * UPB;
    const int units = min(UPB, UNITS - u0);
    const int pair0 = u0 / NT_I, tok0 = pair0 / NS_K;
    const int npairs = (u0 + units - 1) / NT_I - pair0 + 1;
    const int ntok = (pair0 + npairs - 1) / NS_K - tok0 + 1;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, q = lane & 3;
    const Roles role(g, q);

    // Warp 0 reads the expert ids; then thread 0 sets the activations and the
    // first STAGES units on their way.
    if (warp == 0) {
        for (int i = lane; i < npairs; i += 32) ids_s[i] = p.topk_ids[pair0 + i];
        __syncwarp();
        if (lane == 0) {
            mbarrier_init(&x_bar, 1);
            if (X_BULK) {
                mbarrier_expect_bytes(&x_bar, ntok * NS_H * 2);
                bulk_copy(xs, p.x + (size_t)tok0 * NS_H, ntok * NS_H * 2, &x_bar);
            }
            if (BULK) {
                for (int s = 0; s < RING; ++s) mbarrier_init(&full[s], 1);
                for (int n = 0; n < RING && n < units; ++n)
                    fill_stage(p, u0 + n, ids_s[(u0 + n) / NT_I - pair0], stages + n * STAGE_BYTES, &full[n]);
            }
        }
    }
#if PDL == 1
    // down may be scheduled now: its weight loads do not depend on this grid.
    asm volatile("griddepcontrol.launch_dependents;");
#endif
    if (!X_BULK)
        for (int i = threadIdx.x; i < ntok * XH; i += blockDim.x) {
            const int tk = i / XH, col = i % XH;
            xs[tk][col] = col < NS_H ? p.x[(size_t)(tok0 + tk) * NS_H + col] : (ns_bf16)0;
        }
    __syncthreads();
    if (X_BULK) mbarrier_wait(&x_bar, 0);

    for (int n = 0; n < units; ++n) { // block-uniform
        const int u = u0 + n;
        const int pair = u / NT_I, r0 = (u % NT_I) * TILE;
        unsigned char* stage = stages + (n % RING) * STAGE_BYTES;
#if BULK
        mbarrier_wait(&full[n % RING], (n / RING) & 1);
#else
        fill_stage(p, u, ids_s[pair - pair0], stage, nullptr);
        __syncthreads();
#endif
        const unsigned char* gate_a = stage + role.r_a * RS;
        const unsigned char* gate_b = stage + role.r_b * RS;
        const unsigned char* up_a = stage + (TILE + role.r_a) * RS;
        const unsigned char* up_b = stage + (TILE + role.r_b) * RS;
        const float* scales = (const float*)(stage + SCALES_AT); // [gate, up][TILE][SG]
        const ns_bf16* xt = xs[pair / NS_K - tok0];

        // Two MMA chains per matrix (even and odd k-steps), added at the end.
        float cg0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, cg1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        float cu0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, cu1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        float ga = 0.0f, gb = 0.0f, ua = 0.0f, ub = 0.0f; // int4: the wanted sums, scaled per group
#pragma unroll
        for (int j = 0; j < STEPS; ++j) {
            const int s = warp + j * WARPS;
            if (s >= NSS_H) break; // warp-uniform
            const int base = s * SPAN + q * WPC;
            const int ca = base + role.cp_a * SS, cb = base + role.cp_b * SS;
            u32 xw[WPC / 2], x[2 * KSTEPS];
            load_acts<NS_H>(xt, role.b_loads ? base + role.xpart * SS : NS_H, xw);
            act_pairs(xw, x);
            u32 pga[2 * KSTEPS], pgb[2 * KSTEPS], pua[2 * KSTEPS], pub[2 * KSTEPS];
            weight_pairs(staged_chunk(gate_a, ca), pga);
            weight_pairs(staged_chunk(gate_b, cb), pgb);
            weight_pairs(staged_chunk(up_a, ca), pua);
            weight_pairs(staged_chunk(up_b, cb), pub);
#if NS_FORMAT == FMT_INT4_G128
            // SS = 128: part cp of super-step s is group s * PARTS + cp.
            float tg0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, tg1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            float tu0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, tu1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            mma_chunk2(tg0, tg1, pga, pgb, x);
            mma_chunk2(tu0, tu1, pua, pub, x);
            const int grp_a = min(s * PARTS + role.cp_a, GROUPS_H - 1), grp_b = min(s * PARTS + role.cp_b, GROUPS_H - 1);
            ga = fmaf(scales[role.r_a * SG + grp_a], pick(tg0, role.ia) + pick(tg1, role.ia), ga);
            gb = fmaf(scales[role.r_b * SG + grp_b], pick(tg0, role.ib) + pick(tg1, role.ib), gb);
            ua = fmaf(scales[(TILE + role.r_a) * SG + grp_a], pick(tu0, role.ia) + pick(tu1, role.ia), ua);
            ub = fmaf(scales[(TILE + role.r_b) * SG + grp_b], pick(tu0, role.ib) + pick(tu1, role.ib), ub);
#else
            mma_chunk2(cg0, cg1, pga, pgb, x);
            mma_chunk2(cu0, cu1, pua, pub, x);
#endif
        }
#if NS_FORMAT != FMT_INT4_G128
        ga = pick(cg0, role.ia) + pick(cg1, role.ia);
        gb = pick(cg0, role.ib) + pick(cg1, role.ib);
        ua = pick(cu0, role.ia) + pick(cu1, role.ia);
        ub = pick(cu0, role.ib) + pick(cu1, role.ib);
#endif
        float (*part)[WARPS][16] = partial[n & 1];
        if (role.want_a) {
            part[0][warp][g] = ga;
            part[1][warp][g] = ua;
        }
        if (role.want_b) {
            part[0][warp][g + 8] = gb;
            part[1][warp][g + 8] = ub;
        }
        __syncthreads(); // every warp is done with this stage and has left its sums

        const int r = threadIdx.x;
        float gate_scale = 1.0f, up_scale = 1.0f;
#if NS_FORMAT == FMT_INT8_ROW || NS_FORMAT == FMT_FP8_E4M3
        if (r < TILE) {
            gate_scale = scales[r];
            up_scale = scales[TILE + r];
        }
#endif
        __syncwarp(); // the scales are read before thread 0 refills the stage
        if (BULK && threadIdx.x == 0 && n + RING < units)
            fill_stage(p, u + RING, ids_s[(u + RING) / NT_I - pair0], stage, &full[n % RING]);
#if PDL == 2
        // down may be scheduled once this block's last copies are issued.
        if (n + RING >= units) asm volatile("griddepcontrol.launch_dependents;");
#endif
        if (r < TILE && r0 + r < NS_I) {
            float gs = 0.0f, us = 0.0f;
#pragma unroll
            for (int w = 0; w < WARPS; ++w)
#pragma unroll
                for (int cp = 0; cp < PARTS; ++cp) {
                    gs += part[0][w][cp * TILE + r];
                    us += part[1][w][cp * TILE + r];
                }
            const float v = activation(gs * gate_scale, p.activation) * (us * up_scale);
            ((ns_bf16*)p.scratch[0])[(size_t)pair * NS_I + r0 + r] = f32_to_bf16(v);
        }
    }
}

extern "C" __global__ void __launch_bounds__(32 * WARPS) down(const MoeDecodeParams p)
{
    __shared__ float partial[WARPS][16];
    extern __shared__ __align__(16) ns_bf16 inter_s[]; // [K][I]: token t's intermediate
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
    stage_inter(inter_s, (const ns_bf16*)p.scratch[0] + (size_t)t * NS_K * NS_I, NS_K * NS_I);
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
