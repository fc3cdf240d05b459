// warp_decode_tc_onelaunch_v1: warp_decode_tc_v1's tensor-core dot products
// in one compute launch, with gate_up work taken from a ticket pool and each
// block's slice of w_down copied to shared memory while gate_up streams.
//
// What it computes
//   y[t,h] = bf16( sum_k w[t,k] * sum_i W_down[e,h,i] * act(g_i) * u_i ),
//   g_i = sum_h W_gate[e,i,h] x[t,h],  u_i = sum_h W_up[e,i,h] x[t,h],  e = topk_ids[t,k],
//   W as stored: bf16, or code * scale for int8_row, fp8_e4m3 (per-row float
//   scale) and int4_g128 (a float scale per 128 columns); verifier/quantize.h.
//
// Why this file
//   At B = 1 tc_v1 reaches 0.45 (int4) to 0.73 (fp8) of the copy-rate floor on
//   an H100. A clock64 probe of it showed gate_up's blocks starting over
//   ~10 us in about three waves, and down starting only after gate_up's last
//   block (PDL can issue down's first loads early, not make its blocks
//   resident), then staging the intermediate before its weights arrive. At
//   B = 1 a block's down slice is small (TILE rows of K experts: 8 x 8 x 704
//   bytes = 45 KB of int8 at Gemma 4, 23 KB of int4), so here it is fetched
//   into shared memory at the start, and nothing waits at a kernel boundary.
//
// Measured (H100, Gemma 4, B = 1, against tc_v1's tuned winners in the same
//   session): slower. int4 23.0 against 18.8 us, int8 32.2 against 23.5,
//   fp8 29.5 against 21.7; bf16 55.1 against 36.0 (another session). A
//   globaltimer probe per block (int4, TILE=8, WARPS=4): first ticket at
//   1.3 us; the two gate_up items per block done at 10.7 and 13.1 us (p50;
//   DRAM at ~2 TB/s while the down copies and the first items share it);
//   down's two rounds then take ~5 us, because all of down's decode and MMA
//   work (a third of the weights) runs after the last item with 12 warps per
//   SM, about 0.35 instructions per cycle per scheduler. tc_v1 spreads that
//   work over its own launch. Kept as the one-launch starting point
//   (tickets, bulk copies, ordered acquire/release, deterministic sums) that
//   the research loops can build on; experiments/README.md has the numbers.
//
// Parallel strategy: one block per down tile (token t, TILE rows of H).
//   1. Thread 0 waits for zero_counters (griddepcontrol.wait) and takes the
//      first gate_up ticket; the block stages the routing in shared memory
//      and issues the first item's loads (gate_up is the critical path).
//   2. Thread 0 issues one bulk copy (cp.async.bulk, counted on an mbarrier)
//      per w_down row of the tile (K experts x TILE rows, padded by 16 bytes
//      against bank conflicts); the scales follow with 4-byte cp.async.
//      Nothing waits on them yet.
//   3. gate_up items from the ticket pool until it is empty: item n is (pair
//      t*K+k = n / cdiv(I,TILE), TILE rows of I), computed as in tc_v1 (the
//      warps split H; mma.sync; per-warp sums added in warp order); act(g)*u
//      goes to the intermediate in scratch as bf16. The next ticket is
//      requested when an item starts and the next item's first loads are
//      issued before the current one is reduced; then one thread fences
//      (release) and counts the item for its pair.
//   4-5. down in rounds: warp 0 reads the counters of token t's K pairs at
//      once (relaxed, then an acquire fence) and publishes how many more are
//      complete; the block stages their intermediate (ld.global.cg) and runs
//      their down items from shared memory, two MMA chains per warp. Item
//      k*NSS + s always belongs to warp (k*NSS + s) % WARPS and each warp adds
//      its items in increasing order, so rounds do not change the sums.
//   Waiting cannot deadlock, whatever the grid size and residency: a block
//   waits only once the pool is empty, so every gate_up item is held by a
//   block that is running and that waits for nothing before finishing it.
//   Blocks that start after the pool is empty (large T) only run their down
//   tile. The counters must read zero when the launch starts, and scratch is
//   uninitialized, so a one-block zero_counters launch goes first, and decode
//   is its programmatic dependent.
//
// Differences from tc_v1: one compute launch instead of two; down's weights
//   in shared memory, fetched at the start; gate_up work from a ticket pool;
//   one TILE for both halves; the intermediate is always a single bf16 (every
//   tc_v1 winner had INTER_SPLIT=0); no PDL knob (always the dependent of
//   zero_counters); mma.sync not volatile, so independent chains interleave.
//
// Knobs
//   TILE       rows per gate_up item and per down tile (16, 8 or 4: tc_v1's
//              column parts); also sets the grid, T*cdiv(H,TILE) blocks, and
//              the shared memory, K*TILE rows of w_down per block.
//   WARPS      warps per block: the split over H (gate_up) and over the K*I
//              items (down).
//   INFLIGHT   gate_up's 16-byte weight loads per lane issued before any is
//              used (INFLIGHT/4 super-steps of 4 chunks).
//   OCCUPANCY  warps per SM the register allocation must leave room for
//              (__launch_bounds__ min blocks = OCCUPANCY / WARPS; 0: none).
//
// Launch rule
//   zero_counters grid=(1) block=(32)
//   decode grid=(T*cdiv(H,TILE)) block=(32*WARPS) smem=K*TILE*RS + K*I*2, pdl=1
//   RS = 16*cdiv(I*BITS,128) + 16 bytes per staged row (BITS: bits per stored
//   weight). Where that would pass 200 KB (at TILE=8: bf16 at Phi-3.5, I =
//   6400; bf16, int8 and fp8 at Mixtral, I = 14336), the down tile is not
//   staged: smem is only the intermediate, K*I*2, and down reads its weights
//   from global memory as it goes (correct everywhere, not meant to win
//   there). Rows past I (gate_up) or H (down) in the last tile are clamped
//   for loading, never stored. Chunks past the end of a row read as zero
//   weights and zero activations. Rows of w_down whose byte length is not a
//   multiple of 16 are staged with plain loads (tiny shapes); int4 needs I
//   even so that each row starts on a byte.
//
// Numerics
//   As tc_v1 with INTER_SPLIT=0: products exact, sums in the tensor cores' fp32
//   accumulate in a fixed order, fp32 scale multiplies, warp-order adds, the
//   intermediate rounded once to bf16, one round-to-nearest-even at the end.
//   Which block computes an item varies from call to call; what it computes
//   and the order of every sum do not, so two runs are bitwise equal.
//
// parent: warp_decode_tc_v1.cu (decode, MMA and lane-role helpers; the
// decomposition is new)
//
// @op moe_decode
// @formats bf16 int8_row int4_g128 fp8_e4m3
// @parent warp_decode_tc_v1.cu
// @tune TILE 8 16 4
// @tune WARPS 4 8 16
// @tune INFLIGHT 16 8 4
// @tune OCCUPANCY 0 16 24 32
// @constrain I % 2 == 0
// @constrain K*I*2 <= 200*1024  # the token's intermediate in shared memory
// @scratch inter bf16 T*K*I
// @scratch counters i32 1+T*K
// @launch zero_counters grid=(1) block=(32)
// @launch decode grid=(T*cdiv(H,TILE)) block=(32*WARPS) smem=(K*TILE*(16*cdiv(I*BITS,128)+16)+K*I*2<=200*1024)*K*TILE*(16*cdiv(I*BITS,128)+16)+K*I*2 pdl=1

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
#ifndef INFLIGHT
#define INFLIGHT 16
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
#error "warp_decode_tc_onelaunch_v1: TILE is 16, 8 or 4"
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
#error "warp_decode_tc_onelaunch_v1: unknown NS_FORMAT"
#endif

#define KSTEPS (WPC / 4) // MMA k-steps per chunk
#define SS (4 * WPC)     // columns of one part of a super-step (int4: 128, one scale group)
#define PARTS (16 / TILE) // column parts side by side in one MMA (see Roles)
#define SPAN (PARTS * SS) // columns per super-step
#define GROUP 128
#define BATCH_GU ((INFLIGHT / 4) > 0 ? (INFLIGHT / 4) : 1)

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
    // Not volatile: a pure function of its operands, so the compiler may
    // interleave independent accumulation chains (gate and up, two down items).
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
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


#define ROW_BYTES (NS_I * WBITS / 8)                   // one w_down row as stored
#define RS (16 * ((NS_I * WBITS + 127) / 128) + 16)    // its stride in shared memory
#define NT_I ((NS_I + TILE - 1) / TILE)                // gate_up items per (t,k) pair
#define NGU (NS_T * NS_K * NT_I)                       // gate_up items in all
// The down tile is staged in shared memory where it fits (the launch rule's
// smem expression makes the same choice).
#define STAGE_DOWN (NS_K * TILE * RS + NS_K * NS_I * 2 <= 200 * 1024)
// Every token's expert ids in shared memory (an item's first loads then wait
// for no global read), up to 4 KB of them.
#define IDS_STAGED (NS_T * NS_K <= 1024)
#if NS_FORMAT == FMT_INT4_G128
#define DGROUPS ((NS_I + GROUP - 1) / GROUP)           // scales per w_down row
#if NS_I % 2 != 0
#error "warp_decode_tc_onelaunch_v1: int4 rows of w_down must start on a byte (I even)"
#endif
#else
#define DGROUPS 1
#endif

__device__ __forceinline__ unsigned shared_address(const void* ptr)
{
    unsigned long long a;
    asm("cvta.to.shared.u64 %0, %1;" : "=l"(a) : "l"(ptr));
    return (unsigned)a;
}

// Asynchronous global -> shared copy of 4 bytes (sm_80+): nothing waits until
// cp.async.wait_all.
__device__ __forceinline__ void cp_async4(void* dst, const void* src)
{
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(shared_address(dst)), "l"(src) : "memory");
}

__device__ __forceinline__ int ld_relaxed(const int* ptr)
{
    int v;
    asm volatile("ld.relaxed.gpu.global.s32 %0, [%1];" : "=r"(v) : "l"(ptr) : "memory");
    return v;
}

// Hopper's bulk copy (TMA without a tensor map): one thread moves a whole
// row, the copy engine does the rest and counts its bytes on an mbarrier, so
// no warp stalls issuing thousands of 16-byte copies into a full queue.
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

// Copies token t's intermediate (written by other blocks of this launch) to
// shared memory through L2 only (ld.global.cg: no L1 line can be stale). All
// of a pass's loads are issued before its first store: one L2 round trip per
// pass instead of one per 16 bytes.
__device__ __forceinline__ void stage_inter(ns_bf16* dst, const ns_bf16* src, int n)
{
    constexpr int UNROLL = 8; // 16-byte loads in flight per thread
    if (NS_I % 8 == 0) {
        for (int i0 = threadIdx.x; i0 < n / 8; i0 += UNROLL * blockDim.x) {
            uint4 v[UNROLL];
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                const int i = i0 + u * blockDim.x;
                if (i < n / 8)
                    asm volatile("ld.global.cg.v4.u32 {%0,%1,%2,%3}, [%4];"
                                 : "=r"(v[u].x), "=r"(v[u].y), "=r"(v[u].z), "=r"(v[u].w)
                                 : "l"((const uint4*)src + i));
            }
#pragma unroll
            for (int u = 0; u < UNROLL; ++u) {
                const int i = i0 + u * blockDim.x;
                if (i < n / 8) ((uint4*)dst)[i] = v[u];
            }
        }
    } else {
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            unsigned short v;
            asm volatile("ld.global.cg.u16 %0, [%1];" : "=h"(v) : "l"(src + i));
            dst[i] = v;
        }
    }
}

// The chunk of WPC weights at columns c0.. of a staged w_down row; zero past
// the row's end (the staged row is zero-filled to a whole chunk).
__device__ __forceinline__ uint4 staged_chunk(const unsigned char* row, int c0)
{
    if (c0 >= NS_I) return make_uint4(0, 0, 0, 0);
    return *(const uint4*)(row + c0 * WBITS / 8);
}

// gate_up work is done in batches: one warp's loads for BATCH_GU
// super-steps of an item (gate and up chunks of A rows g and g+8, zeros past
// the end; the activations of this lane's B column part; int4: the group
// scales of the wanted sums).
struct GateUpBatch {
    uint4 v[BATCH_GU][4];
    u32 xw[BATCH_GU][WPC / 2];
    float sc[BATCH_GU][4]; // gate a, gate b, up a, up b
};

// gate_up item n: pair t*K+k = n / NT_I, rows r0.. of I, and this lane's two
// flat rows of w_gate/w_up.
struct GateUpItem {
    int pair, r0;
    size_t row_a, row_b;
    __device__ GateUpItem(int item, const int* ids, const Roles& role)
        : pair(item / NT_I), r0((item % NT_I) * TILE)
    {
        const size_t e = (size_t)ids[pair];
        row_a = e * NS_I + min(r0 + role.r_a, NS_I - 1);
        row_b = e * NS_I + min(r0 + role.r_b, NS_I - 1);
    }
};

// The per-warp sums of an item: the MMA accumulators (int4: the wanted sums,
// scaled per group as they go).
struct GateUpSums {
    float cg[4] = {0.0f, 0.0f, 0.0f, 0.0f}, cu[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    float ga = 0.0f, gb = 0.0f, ua = 0.0f, ub = 0.0f;
};

#define NSS_H ((NS_H + SPAN - 1) / SPAN) // gate_up super-steps per row (a macro: a namespace-scope
#define GROUPS_H ((NS_H + GROUP - 1) / GROUP) // constexpr would be a module-scope variable)

__device__ __forceinline__ void gate_up_issue(const MoeDecodeParams& p, const GateUpItem& it, int s0, int q,
                                              const Roles& role, GateUpBatch& L)
{
    const ns_bf16* xt = p.x + (size_t)(it.pair / NS_K) * NS_H;
#pragma unroll
    for (int b = 0; b < BATCH_GU; ++b) {
        const int s = s0 + b * WARPS;
        const int base = s < NSS_H ? s * SPAN + q * WPC : NS_H; // past the end: zeros
        const int ca = base + role.cp_a * SS, cb = base + role.cp_b * SS;
        L.v[b][0] = load_chunk<NS_H>(p.w_gate, it.row_a, ca);
        L.v[b][1] = load_chunk<NS_H>(p.w_gate, it.row_b, cb);
        L.v[b][2] = load_chunk<NS_H>(p.w_up, it.row_a, ca);
        L.v[b][3] = load_chunk<NS_H>(p.w_up, it.row_b, cb);
        load_acts<NS_H>(xt, role.b_loads ? base + role.xpart * SS : NS_H, L.xw[b]);
#if NS_FORMAT == FMT_INT4_G128
        // SS = 128: part cp of super-step s is group s * PARTS + cp.
        const bool ok = s < NSS_H;
        L.sc[b][0] = ok && role.want_a ? group_scale(p.gate_scales, it.row_a, GROUPS_H, s * PARTS + role.cp_a) : 0.0f;
        L.sc[b][1] = ok && role.want_b ? group_scale(p.gate_scales, it.row_b, GROUPS_H, s * PARTS + role.cp_b) : 0.0f;
        L.sc[b][2] = ok && role.want_a ? group_scale(p.up_scales, it.row_a, GROUPS_H, s * PARTS + role.cp_a) : 0.0f;
        L.sc[b][3] = ok && role.want_b ? group_scale(p.up_scales, it.row_b, GROUPS_H, s * PARTS + role.cp_b) : 0.0f;
#endif
    }
}

__device__ __forceinline__ void gate_up_compute(int s0, const Roles& role, const GateUpBatch& L, GateUpSums& S)
{
#pragma unroll
    for (int b = 0; b < BATCH_GU; ++b) {
        if (s0 + b * WARPS >= NSS_H) break; // warp-uniform
        u32 x[2 * KSTEPS];
        act_pairs(L.xw[b], x);
        u32 pga[2 * KSTEPS], pgb[2 * KSTEPS], pua[2 * KSTEPS], pub[2 * KSTEPS];
        weight_pairs(L.v[b][0], pga);
        weight_pairs(L.v[b][1], pgb);
        weight_pairs(L.v[b][2], pua);
        weight_pairs(L.v[b][3], pub);
#if NS_FORMAT == FMT_INT4_G128
        float tg[4] = {0.0f, 0.0f, 0.0f, 0.0f}, tu[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        mma_chunk(tg, pga, pgb, x);
        mma_chunk(tu, pua, pub, x);
        S.ga = fmaf(L.sc[b][0], pick(tg, role.ia), S.ga);
        S.gb = fmaf(L.sc[b][1], pick(tg, role.ib), S.gb);
        S.ua = fmaf(L.sc[b][2], pick(tu, role.ia), S.ua);
        S.ub = fmaf(L.sc[b][3], pick(tu, role.ib), S.ub);
#else
        mma_chunk(S.cg, pga, pgb, x);
        mma_chunk(S.cu, pua, pub, x);
#endif
    }
}

// Runs first, alone: the counters must read zero when decode takes tickets.
// decode may start at once (it waits for this grid before its first ticket).
extern "C" __global__ void zero_counters(const MoeDecodeParams p)
{
    asm volatile("griddepcontrol.launch_dependents;");
    int* counters = (int*)p.scratch[1];
    for (int i = threadIdx.x; i < 1 + NS_T * NS_K; i += blockDim.x) counters[i] = 0;
}

extern "C" __global__ void __launch_bounds__(32 * WARPS, MIN_BLOCKS) decode(const MoeDecodeParams p)
{
    extern __shared__ __align__(16) unsigned char smem[];
    unsigned char* wd_s = smem;                                          // [K][TILE][RS]: the tile's w_down rows
    ns_bf16* inter_s = (ns_bf16*)(smem + (STAGE_DOWN ? NS_K * TILE * RS : 0)); // [K][I]: token t's intermediate
    __shared__ float gu_partial[2][WARPS][16];
    __shared__ float dn_partial[WARPS][16];
    __shared__ __align__(16) float dscale_s[NS_K][TILE][DGROUPS]; // the rows' scales (int4: per group)
    __shared__ float wk_s[NS_K];
    __shared__ int ids_s[IDS_STAGED ? NS_T * NS_K : NS_K]; // every token's experts, or token t's
    __shared__ int ticket_s;
    __shared__ __align__(8) unsigned long long staged_bar; // completes when the bulk copies of w_down land
    int* counters = (int*)p.scratch[1]; // [0]: next gate_up ticket; [1 + pair]: the pair's items done
    __shared__ int ready_s[2];           // pairs of token t ready for down, by round parity

    constexpr int HT = (NS_H + TILE - 1) / TILE;
    const int t = blockIdx.x / HT;
    const int h0 = (blockIdx.x % HT) * TILE;

    // 1. The first gate_up ticket (once zero_counters has finished), the
    //    routing, and the first item's loads: gate_up is the critical path.
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, q = lane & 3;
    const Roles role(g, q);
    if (threadIdx.x == 0) {
        mbarrier_init(&staged_bar, 1);
        asm volatile("griddepcontrol.wait;" ::: "memory");
        ticket_s = atomicAdd(&counters[0], 1);
    }
    const int first = IDS_STAGED ? 0 : t * NS_K;
    for (int i = threadIdx.x; i < (IDS_STAGED ? NS_T : 1) * NS_K; i += blockDim.x) ids_s[i] = p.topk_ids[first + i];
    if (threadIdx.x < NS_K) wk_s[threadIdx.x] = p.topk_weights[t * NS_K + threadIdx.x];
    __syncthreads();
    const int* ids = IDS_STAGED ? ids_s : p.topk_ids;     // expert of pair t*K+k
    const int* e_s = IDS_STAGED ? ids_s + t * NS_K : ids_s; // token t's experts
    int item = ticket_s;
    GateUpBatch L;
    if (item < NGU) gate_up_issue(p, GateUpItem(item, ids, role), warp, q, role, L);

    // 2. The down tile's weights and scales: copies issued, not awaited.
    if (!STAGE_DOWN) {
        // Read from global memory in step 5.
    } else if (ROW_BYTES % 16 == 0) {
        // One bulk copy per row, all from thread 0 (rows are 16-byte aligned).
        if (threadIdx.x == 0) {
            mbarrier_expect_bytes(&staged_bar, NS_K * TILE * ROW_BYTES);
            for (int slot = 0; slot < NS_K * TILE; ++slot) { // slot = k * TILE + r
                const size_t row = (size_t)e_s[slot / TILE] * NS_H + min(h0 + slot % TILE, NS_H - 1);
                bulk_copy(wd_s + slot * RS, (const unsigned char*)p.w_down + row * ROW_BYTES, ROW_BYTES, &staged_bar);
            }
        }
    } else {
        constexpr int STAGED = RS - 16; // the row rounded up to whole chunks, zero-filled
        for (int i = threadIdx.x; i < NS_K * TILE * STAGED; i += blockDim.x) {
            const int slot = i / STAGED, b = i % STAGED;
            const size_t row = (size_t)e_s[slot / TILE] * NS_H + min(h0 + slot % TILE, NS_H - 1);
            wd_s[slot * RS + b] = b < ROW_BYTES ? ((const unsigned char*)p.w_down)[row * ROW_BYTES + b] : 0;
        }
    }
#if NS_FORMAT != FMT_BF16
    for (int i = threadIdx.x; i < NS_K * TILE * DGROUPS; i += blockDim.x) {
        const int slot = i / DGROUPS, grp = i % DGROUPS;
        const size_t row = (size_t)e_s[slot / TILE] * NS_H + min(h0 + slot % TILE, NS_H - 1);
        cp_async4(&dscale_s[slot / TILE][slot % TILE][grp], p.down_scales + row * DGROUPS + grp);
    }
#endif
    asm volatile("cp.async.commit_group;" ::: "memory");

    // 3. gate_up items from the pool, until it is empty. The first batch of
    //    the next item is loaded while the current one is reduced, published
    //    and counted.
    while (item < NGU) { // block-uniform
        int next = 0;
        if (threadIdx.x == 0) next = atomicAdd(&counters[0], 1); // latency hidden behind this item
        const GateUpItem it(item, ids, role);
        GateUpSums S;
        for (int s0 = warp; s0 < NSS_H; s0 += WARPS * BATCH_GU) {
            if (s0 != warp) gate_up_issue(p, it, s0, q, role, L);
            gate_up_compute(s0, role, L, S);
        }
#if NS_FORMAT != FMT_INT4_G128
        S.ga = pick(S.cg, role.ia);
        S.gb = pick(S.cg, role.ib);
        S.ua = pick(S.cu, role.ia);
        S.ub = pick(S.cu, role.ib);
#endif
        if (role.want_a) {
            gu_partial[0][warp][g] = S.ga;
            gu_partial[1][warp][g] = S.ua;
        }
        if (role.want_b) {
            gu_partial[0][warp][g + 8] = S.gb;
            gu_partial[1][warp][g + 8] = S.ub;
        }
        if (threadIdx.x == 0) ticket_s = next;
        __syncthreads();
        const int following = ticket_s;
        if (following < NGU) gate_up_issue(p, GateUpItem(following, ids, role), warp, q, role, L);
        const int r = threadIdx.x;
        if (r < TILE && it.r0 + r < NS_I) {
            float gs = 0.0f, us = 0.0f;
#pragma unroll
            for (int w = 0; w < WARPS; ++w)
#pragma unroll
                for (int part = 0; part < PARTS; ++part) {
                    gs += gu_partial[0][w][part * TILE + r];
                    us += gu_partial[1][w][part * TILE + r];
                }
            const size_t row = (size_t)ids[it.pair] * NS_I + it.r0 + r;
            gs *= row_scale(p.gate_scales, row);
            us *= row_scale(p.up_scales, row);
            ((ns_bf16*)p.scratch[0])[(size_t)it.pair * NS_I + it.r0 + r] =
                f32_to_bf16(activation(gs, p.activation) * us);
        }
        __syncthreads(); // the item's intermediate is written; gu_partial is free
        if (threadIdx.x == 0)
            asm volatile("fence.acq_rel.gpu;\n\tred.relaxed.gpu.global.add.s32 [%0], 1;" ::"l"(&counters[1 + it.pair])
                         : "memory");
        item = following;
    }

    // 4-5. down, in rounds: thread 0 waits until at least one more of token
    //    t's pairs is complete (acquire loads) and publishes how many are; the
    //    block stages their intermediate and runs their down items from shared
    //    memory, while the pairs still running in other blocks finish. Item
    //    it = k*NSS + s (k, super-step over I) always belongs to warp
    //    it % WARPS, and each warp adds its items in increasing order, so the
    //    sums do not depend on how the pairs fell into rounds.
    constexpr int NSS = (NS_I + SPAN - 1) / SPAN;
    float acc_a = 0.0f, acc_b = 0.0f; // the wanted sums of rows g and g+8
    for (int k_done = 0, round = 0; k_done < NS_K; ++round) {
        if (warp == 0) {
            // Lanes read the pairs' counters at once (relaxed), the fence makes
            // what the counted items wrote visible (acquire).
            const int* done = counters + 1 + t * NS_K;
            int k = k_done;
            for (;;) {
                for (int k0 = k; k0 < NS_K; k0 += 32) {
                    const bool ready = k0 + lane < NS_K && ld_relaxed(done + k0 + lane) >= NT_I;
                    const unsigned not_ready = __ballot_sync(0xffffffffu, !ready);
                    const int run = not_ready ? __ffs(not_ready) - 1 : 32; // ready pairs from k0 on
                    k = min(k0 + run, NS_K);
                    if (run < 32) break;
                }
                if (k > k_done) break;
                asm volatile("nanosleep.u32 32;");
            }
            asm volatile("fence.acq_rel.gpu;" ::: "memory");
            if (lane == 0) ready_s[round & 1] = k;
        }
        __syncthreads();
        const int k_end = ready_s[round & 1]; // read again only after the next round's barrier
        stage_inter(inter_s + k_done * NS_I, (const ns_bf16*)p.scratch[0] + ((size_t)t * NS_K + k_done) * NS_I,
                    (k_end - k_done) * NS_I);
        if (round == 0) { // the staged w_down and its scales
            asm volatile("cp.async.wait_all;" ::: "memory");
            if (STAGE_DOWN && ROW_BYTES % 16 == 0) mbarrier_wait(&staged_bar, 0);
        }
        __syncthreads();

        const int first_item = k_done * NSS, end_item = k_end * NSS;
        // This warp's first item of the round, two at a time: two MMA chains in flight.
        for (int it0 = first_item + ((warp - first_item) % WARPS + WARPS) % WARPS; it0 < end_item; it0 += 2 * WARPS) {
            float c[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
            u32 wa[2][2 * KSTEPS], wb[2][2 * KSTEPS], x[2][2 * KSTEPS];
#pragma unroll
            for (int u = 0; u < 2; ++u) {
                // Past the round's items: its first item again, the sum dropped below.
                const int it = it0 + u * WARPS < end_item ? it0 + u * WARPS : it0;
                const int k = it / NSS, s = it % NSS;
                const int base = s * SPAN + q * WPC;
                if (STAGE_DOWN) {
                    weight_pairs(staged_chunk(wd_s + (k * TILE + role.r_a) * RS, base + role.cp_a * SS), wa[u]);
                    weight_pairs(staged_chunk(wd_s + (k * TILE + role.r_b) * RS, base + role.cp_b * SS), wb[u]);
                } else {
                    const size_t e = (size_t)e_s[k];
                    weight_pairs(load_chunk<NS_I>(p.w_down, e * NS_H + min(h0 + role.r_a, NS_H - 1), base + role.cp_a * SS),
                                 wa[u]);
                    weight_pairs(load_chunk<NS_I>(p.w_down, e * NS_H + min(h0 + role.r_b, NS_H - 1), base + role.cp_b * SS),
                                 wb[u]);
                }
                u32 aw[WPC / 2];
                load_acts<NS_I>(inter_s + k * NS_I, role.b_loads ? s * SPAN + role.xpart * SS + q * WPC : NS_I, aw);
                act_pairs(aw, x[u]);
            }
#pragma unroll
            for (int j = 0; j < KSTEPS; ++j)
#pragma unroll
                for (int u = 0; u < 2; ++u)
                    mma_bf16(c[u], wa[u][2 * j], wb[u][2 * j], wa[u][2 * j + 1], wb[u][2 * j + 1], x[u][2 * j],
                             x[u][2 * j + 1]);
#pragma unroll
            for (int u = 0; u < 2; ++u) {
                const int it = it0 + u * WARPS;
                if (it >= end_item) break; // warp-uniform
                const int k = it / NSS, s = it % NSS;
#if NS_FORMAT == FMT_INT4_G128
                const int ga = s * PARTS + role.cp_a, gb = s * PARTS + role.cp_b; // past the row: zero chunks
                const float fa = role.want_a && ga < DGROUPS ? dscale_s[k][role.r_a][ga] : 0.0f;
                const float fb = role.want_b && gb < DGROUPS ? dscale_s[k][role.r_b][gb] : 0.0f;
#elif NS_FORMAT == FMT_BF16
                const float fa = role.want_a ? 1.0f : 0.0f, fb = role.want_b ? 1.0f : 0.0f;
#else
                const float fa = role.want_a ? dscale_s[k][role.r_a][0] : 0.0f;
                const float fb = role.want_b ? dscale_s[k][role.r_b][0] : 0.0f;
#endif
                acc_a = fmaf(wk_s[k] * fa, pick(c[u], role.ia), acc_a);
                acc_b = fmaf(wk_s[k] * fb, pick(c[u], role.ib), acc_b);
            }
        }
        k_done = k_end;
    }

    if (role.want_a) dn_partial[warp][g] = acc_a;
    if (role.want_b) dn_partial[warp][g + 8] = acc_b;
    __syncthreads();
    const int r = threadIdx.x;
    if (r < TILE && h0 + r < NS_H) {
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < WARPS; ++w)
#pragma unroll
            for (int part = 0; part < PARTS; ++part) sum += dn_partial[w][part * TILE + r];
        p.y[(size_t)t * NS_H + h0 + r] = f32_to_bf16(sum);
    }
}
