#include "harness/kernels/kernel_file.h"

#include "harness/core/error.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <unistd.h>

namespace nightshift::kernels {
namespace {

// Line numbers matter: the tests below name them.
const std::string k_warp_decode = R"(// Warp decode in two kernels: gate_up gives each warp ROWS_PER_WARP rows of
// gate and up for one (token, expert) pair and writes act(gate)*up to scratch;
// down reduces the intermediate over the K experts of each token.
#include "params.h"
// not an annotation: @tune NOPE 1
// @op        moe_decode
// @formats   bf16 int8_row           # weight formats this file implements
// @tune      ROWS_PER_WARP  2 1 4    # rows of I per warp
// @tune      WARPS          4 8
//@constrain I % (ROWS_PER_WARP * WARPS) == 0
// @constrain H % WARPS == 0 && WARPS <= 32
// @scratch   inter  f32  T * K * I
// @scratch   flags  u32  T
// @launch    gate_up grid=(T*K, cdiv(I, ROWS_PER_WARP*WARPS)) block=(32*WARPS)
// @launch    down    grid=( T , cdiv(H, WARPS) ) block=(32*WARPS, 1, 1) smem=WARPS * 32 * 4
// @parent    warp_decode_v1.cu
// @nondeterministic   # float atomics in down

extern "C" __global__ void gate_up(const MoeDecodeParams p) { /* x = 1; // @op nope */ }
extern "C" __global__ void down(const MoeDecodeParams p) {}
)";

const std::vector<std::string> k_shape_symbols = {"T", "H", "I", "E", "K"};
const Symbols k_shape = {{"T", 4}, {"H", 2048}, {"I", 1536}, {"E", 64}, {"K", 8}};

KernelFile warp_decode() { return parse_kernel_file("warp_decode.cu", k_warp_decode); }

Symbols merged(Symbols a, const Symbols& b) {
    a.insert(b.begin(), b.end());
    return a;
}

std::array<int64_t, 3> eval_dims(const std::array<Expression, 3>& dims, const Symbols& symbols) {
    return {dims[0].evaluate(symbols), dims[1].evaluate(symbols), dims[2].evaluate(symbols)};
}

template <typename F> std::string input_error(F&& f) {
    try {
        f();
    } catch (const InputError& e) {
        return e.what();
    }
    ADD_FAILURE() << "expected an InputError";
    return {};
}

std::string parse_error(const std::string& source) {
    return input_error([&] { parse_kernel_file("k.cu", source); });
}

TEST(KernelFile, ParsesARealisticFile) {
    const KernelFile f = warp_decode();
    EXPECT_EQ(f.path, "warp_decode.cu");
    EXPECT_EQ(f.source, k_warp_decode);
    EXPECT_EQ(f.op, "moe_decode");
    EXPECT_EQ(f.formats, (std::vector<std::string>{"bf16", "int8_row"}));

    ASSERT_EQ(f.tunes.size(), 2u);
    EXPECT_EQ(f.tunes[0].name, "ROWS_PER_WARP");
    EXPECT_EQ(f.tunes[0].values, (std::vector<int64_t>{2, 1, 4}));
    EXPECT_EQ(f.tunes[0].line, 8);
    EXPECT_EQ(f.tunes[1].name, "WARPS");
    EXPECT_EQ(f.tunes[1].values, (std::vector<int64_t>{4, 8}));
    EXPECT_EQ(f.tunes[1].line, 9);

    ASSERT_EQ(f.constraints.size(), 2u);
    EXPECT_EQ(f.constraints[0].condition.text(), "I % (ROWS_PER_WARP * WARPS) == 0");
    EXPECT_EQ(f.constraints[0].line, 10);
    EXPECT_EQ(f.constraints[1].line, 11);

    ASSERT_EQ(f.scratch.size(), 2u);
    EXPECT_EQ(f.scratch[0].name, "inter");
    EXPECT_EQ(f.scratch[0].type, ScratchType::f32);
    EXPECT_EQ(f.scratch[0].count.text(), "T * K * I");
    EXPECT_EQ(f.scratch[0].count.evaluate(k_shape), 4 * 8 * 1536);
    EXPECT_EQ(f.scratch[0].line, 12);
    EXPECT_EQ(f.scratch[1].name, "flags");
    EXPECT_EQ(f.scratch[1].type, ScratchType::u32);
    EXPECT_EQ(f.scratch[1].line, 13);

    ASSERT_EQ(f.launches.size(), 2u);
    EXPECT_EQ(f.launches[0].entry, "gate_up");
    EXPECT_EQ(f.launches[0].line, 14);
    EXPECT_EQ(f.launches[0].grid[1].text(), "cdiv(I, ROWS_PER_WARP*WARPS)");
    EXPECT_EQ(f.launches[1].entry, "down");
    EXPECT_EQ(f.launches[1].line, 15);
    EXPECT_EQ(f.launches[1].grid[0].text(), "T");
    EXPECT_EQ(f.launches[1].smem_bytes.text(), "WARPS * 32 * 4");

    EXPECT_EQ(f.parent, "warp_decode_v1.cu");
    EXPECT_TRUE(f.nondeterministic);
}

TEST(KernelFile, EvaluatesLaunchDimensionsFromKnobsAndShape) {
    const KernelFile f = warp_decode();
    const Symbols s = merged(f.default_knobs(), k_shape); // ROWS_PER_WARP=2, WARPS=4

    const Launch& gate_up = f.launches[0];
    EXPECT_EQ(eval_dims(gate_up.grid, s), (std::array<int64_t, 3>{32, 192, 1}));
    EXPECT_EQ(eval_dims(gate_up.block, s), (std::array<int64_t, 3>{128, 1, 1}));
    EXPECT_EQ(gate_up.smem_bytes.evaluate(s), 0);

    const Launch& down = f.launches[1];
    EXPECT_EQ(eval_dims(down.grid, s), (std::array<int64_t, 3>{4, 512, 1}));
    EXPECT_EQ(eval_dims(down.block, s), (std::array<int64_t, 3>{128, 1, 1}));
    EXPECT_EQ(down.smem_bytes.evaluate(s), 512);

    const Symbols wide = merged(f.resolve_knobs({{"ROWS_PER_WARP", 4}, {"WARPS", 8}}), k_shape);
    EXPECT_EQ(eval_dims(gate_up.grid, wide), (std::array<int64_t, 3>{32, 48, 1}));
    EXPECT_EQ(eval_dims(gate_up.block, wide), (std::array<int64_t, 3>{256, 1, 1}));
    EXPECT_EQ(down.smem_bytes.evaluate(wide), 1024);
}

TEST(KernelFile, LaunchArgumentsInAnyOrderWithSpaces) {
    const KernelFile f =
        parse_kernel_file("k.cu", "// @op x\n"
                                  "// @launch k smem=cdiv(H, 2) * 4 block=( 256 ) grid=(E, cdiv(T, 2), max(1, K))\n"
                                  "// @launch k grid = (1) block = (W == 4) smem = (W == 4) * 8\n");
    ASSERT_EQ(f.launches.size(), 2u); // the same entry may be launched twice
    const Symbols s = {{"H", 10}, {"E", 3}, {"T", 5}, {"K", 7}, {"W", 4}};
    const Launch& a = f.launches[0];
    EXPECT_EQ(a.smem_bytes.text(), "cdiv(H, 2) * 4");
    EXPECT_EQ(a.smem_bytes.evaluate(s), 20);
    EXPECT_EQ(eval_dims(a.block, s), (std::array<int64_t, 3>{256, 1, 1}));
    EXPECT_EQ(eval_dims(a.grid, s), (std::array<int64_t, 3>{3, 3, 7}));
    const Launch& b = f.launches[1];
    EXPECT_EQ(b.entry, "k");
    EXPECT_EQ(eval_dims(b.block, s), (std::array<int64_t, 3>{1, 1, 1}));
    EXPECT_EQ(b.smem_bytes.evaluate(s), 8);
    EXPECT_EQ(b.programmatic.evaluate(s), 0); // pdl= absent: an ordinary launch
}

TEST(KernelFile, ProgrammaticDependentLaunch) {
    const KernelFile f = parse_kernel_file("k.cu", "// @op x\n// @tune PDL 1 0\n"
                                                   "// @launch a grid=(1) block=(32)\n"
                                                   "// @launch b grid=(T) block=(32) pdl=PDL smem=K * 4\n");
    ASSERT_EQ(f.launches.size(), 2u);
    EXPECT_EQ(f.launches[1].programmatic.evaluate({{"PDL", 1}, {"T", 2}, {"K", 8}}), 1);
    EXPECT_EQ(f.launches[1].programmatic.evaluate({{"PDL", 0}, {"T", 2}, {"K", 8}}), 0);
    EXPECT_EQ(f.launches[1].smem_bytes.evaluate({{"PDL", 0}, {"T", 2}, {"K", 8}}), 32);
    EXPECT_THROW(f.check_symbols({"T"}), InputError); // smem's K is not a shape symbol here
}

TEST(KernelFile, CommentsAndLineEndings) {
    const KernelFile f = parse_kernel_file("k.cu", "  // @op  moe_decode   # the op\r\n"
                                                   "\t//@launch k grid=(1) block=(32) # one warp\r\n"
                                                   "// @parent a#b.cu\r\n"
                                                   "/// @op not_an_annotation\r\n"
                                                   "int x; // @op not_an_annotation\r\n");
    EXPECT_EQ(f.op, "moe_decode");
    ASSERT_EQ(f.launches.size(), 1u);
    EXPECT_EQ(f.launches[0].block[0].text(), "32");
    EXPECT_EQ(f.parent, "a#b.cu"); // '#' starts a comment only after a space
    EXPECT_FALSE(f.nondeterministic);
    EXPECT_TRUE(f.formats.empty());
    EXPECT_TRUE(f.tunes.empty());
}

TEST(KernelFile, KnobSpaceIsTheCartesianProductFirstKnobSlowest) {
    const KernelFile f = warp_decode();
    const std::vector<Symbols> space = f.knob_space();
    const std::vector<std::pair<int64_t, int64_t>> expected = {{2, 4}, {2, 8}, {1, 4}, {1, 8}, {4, 4}, {4, 8}};
    ASSERT_EQ(space.size(), expected.size());
    for (std::size_t i = 0; i < space.size(); ++i) {
        EXPECT_EQ(space[i].size(), 2u);
        EXPECT_EQ(space[i].at("ROWS_PER_WARP"), expected[i].first) << "at " << i;
        EXPECT_EQ(space[i].at("WARPS"), expected[i].second) << "at " << i;
    }
    EXPECT_EQ(f.default_knobs(), (Symbols{{"ROWS_PER_WARP", 2}, {"WARPS", 4}}));
}

TEST(KernelFile, KnobSpaceWithoutKnobsIsOneEmptyAssignment) {
    const KernelFile f = parse_kernel_file("k.cu", "// @op x\n// @launch k grid=(1) block=(1)\n");
    const std::vector<Symbols> space = f.knob_space();
    ASSERT_EQ(space.size(), 1u);
    EXPECT_TRUE(space[0].empty());
    EXPECT_TRUE(f.default_knobs().empty());
}

TEST(KernelFile, Satisfies) {
    const KernelFile f = warp_decode();
    EXPECT_TRUE(f.satisfies(merged({{"ROWS_PER_WARP", 4}, {"WARPS", 8}}, k_shape)));

    Symbols odd_i = k_shape;
    odd_i["I"] = 1000; // divisible by 8, not by 16
    EXPECT_FALSE(f.satisfies(merged({{"ROWS_PER_WARP", 4}, {"WARPS", 8}}, odd_i)));
    EXPECT_TRUE(f.satisfies(merged({{"ROWS_PER_WARP", 2}, {"WARPS", 4}}, odd_i)));
    int satisfied = 0;
    for (const Symbols& knobs : f.knob_space()) satisfied += f.satisfies(merged(knobs, odd_i));
    EXPECT_EQ(satisfied, 3);

    Symbols odd_h = k_shape;
    odd_h["H"] = 2044; // the second constraint fails for WARPS=8
    EXPECT_FALSE(f.satisfies(merged({{"ROWS_PER_WARP", 1}, {"WARPS", 8}}, odd_h)));
    EXPECT_TRUE(f.satisfies(merged({{"ROWS_PER_WARP", 1}, {"WARPS", 4}}, odd_h)));

    Symbols no_i = k_shape;
    no_i.erase("I");
    EXPECT_EQ(input_error([&] { f.satisfies(merged(f.default_knobs(), no_i)); }),
              "warp_decode.cu:10: unknown symbol 'I' in 'I % (ROWS_PER_WARP * WARPS) == 0'");
}

TEST(KernelFile, CheckSymbols) {
    const KernelFile f = warp_decode();
    EXPECT_NO_THROW(f.check_symbols(k_shape_symbols));
    EXPECT_EQ(input_error([&] {
                  f.check_symbols({"T", "H", "I", "E"});
              }),
              "warp_decode.cu:12: unknown symbol 'K' in 'T * K * I' (neither a knob nor a shape symbol)");
    EXPECT_EQ(
        input_error([&] {
            f.check_symbols({"T", "I", "E", "K"});
        }),
        "warp_decode.cu:11: unknown symbol 'H' in 'H % WARPS == 0 && WARPS <= 32' (neither a knob nor a shape symbol)");

    const KernelFile smem = parse_kernel_file("k.cu", "// @op x\n// @launch k grid=(1) block=(1) smem=BYTES\n");
    EXPECT_EQ(input_error([&] { smem.check_symbols(k_shape_symbols); }),
              "k.cu:2: unknown symbol 'BYTES' in 'BYTES' (neither a knob nor a shape symbol)");

    const KernelFile clash =
        parse_kernel_file("k.cu", "// @op x\n// @tune W 1\n// @tune H 1 2\n// @launch k grid=(H) block=(W)\n");
    EXPECT_EQ(input_error([&] { clash.check_symbols(k_shape_symbols); }),
              "k.cu:3: knob 'H' has the name of a shape symbol");
}

TEST(KernelFile, ResolveKnobs) {
    const KernelFile f = warp_decode();
    EXPECT_EQ(f.resolve_knobs({}), (Symbols{{"ROWS_PER_WARP", 2}, {"WARPS", 4}}));
    EXPECT_EQ(f.resolve_knobs({{"WARPS", 8}}), (Symbols{{"ROWS_PER_WARP", 2}, {"WARPS", 8}}));
    EXPECT_EQ(f.resolve_knobs({{"WARPS", 8}, {"ROWS_PER_WARP", 1}}), (Symbols{{"ROWS_PER_WARP", 1}, {"WARPS", 8}}));
    EXPECT_EQ(input_error([&] {
                  f.resolve_knobs({{"WARPS", 3}});
              }),
              "warp_decode.cu:9: knob 'WARPS' = 3 is not one of its values 4 8");
    EXPECT_EQ(input_error([&] {
                  f.resolve_knobs({{"WARPS", 4}, {"BOGUS", 1}});
              }),
              "warp_decode.cu: unknown knob 'BOGUS' (knobs: ROWS_PER_WARP WARPS)");
}

TEST(KernelFile, ScratchTypes) {
    EXPECT_EQ(scratch_type_bytes(ScratchType::f32), 4u);
    EXPECT_EQ(scratch_type_bytes(ScratchType::f64), 8u);
    EXPECT_EQ(scratch_type_bytes(ScratchType::bf16), 2u);
    EXPECT_EQ(scratch_type_bytes(ScratchType::i32), 4u);
    EXPECT_EQ(scratch_type_bytes(ScratchType::u32), 4u);
    EXPECT_EQ(scratch_type_bytes(ScratchType::u8), 1u);
    EXPECT_EQ(to_string(ScratchType::f64), "f64");
    EXPECT_EQ(to_string(ScratchType::bf16), "bf16");
    EXPECT_EQ(to_string(ScratchType::u8), "u8");
    const KernelFile f = parse_kernel_file(
        "k.cu", "// @op x\n// @launch k grid=(1) block=(1)\n"
                "// @scratch a f64 1\n// @scratch b bf16 1\n// @scratch c i32 1\n// @scratch d u8 1\n");
    ASSERT_EQ(f.scratch.size(), 4u);
    EXPECT_EQ(f.scratch[0].type, ScratchType::f64);
    EXPECT_EQ(f.scratch[1].type, ScratchType::bf16);
    EXPECT_EQ(f.scratch[2].type, ScratchType::i32);
    EXPECT_EQ(f.scratch[3].type, ScratchType::u8);
}

// Packed weights: @packed and @scratch share params.scratch[] in declaration
// order; @prepack launches parse like @launch ones and are kept apart.
TEST(KernelFile, PackedBuffersAndPrepacks) {
    const KernelFile f = parse_kernel_file("k.cu", R"(// @op moe_decode
// @tune WARPS 4 8
// @packed  wgu   bf16 E * 2 * I * H   # gate and up rows interleaved
// @scratch inter f32  T*K*I
// @packed  wd    bf16 E*I*H
// @launch  gate_up grid=(T*K, I) block=(32*WARPS)
// @prepack pack_gate_up grid=(E, 2*I) block=(256)
// @launch  down grid=(T) block=(32*WARPS)
// @prepack pack_down grid=(E, H) block=(256) smem=WARPS*4
)");
    ASSERT_EQ(f.scratch.size(), 3u);
    EXPECT_EQ(f.scratch[0].name, "wgu");
    EXPECT_TRUE(f.scratch[0].packed);
    EXPECT_EQ(f.scratch[0].type, ScratchType::bf16);
    EXPECT_EQ(f.scratch[0].line, 3);
    EXPECT_EQ(f.scratch[1].name, "inter");
    EXPECT_FALSE(f.scratch[1].packed);
    EXPECT_EQ(f.scratch[2].name, "wd");
    EXPECT_TRUE(f.scratch[2].packed);
    const Symbols symbols = merged(f.default_knobs(), k_shape);
    EXPECT_EQ(f.scratch[0].count.evaluate(symbols), 64 * 2 * 1536 * 2048);

    ASSERT_EQ(f.launches.size(), 2u);
    EXPECT_EQ(f.launches[0].entry, "gate_up");
    EXPECT_EQ(f.launches[1].entry, "down");
    ASSERT_EQ(f.prepacks.size(), 2u);
    EXPECT_EQ(f.prepacks[0].entry, "pack_gate_up");
    EXPECT_EQ(f.prepacks[0].line, 7);
    EXPECT_EQ(eval_dims(f.prepacks[0].grid, symbols), (std::array<int64_t, 3>{64, 3072, 1}));
    EXPECT_EQ(eval_dims(f.prepacks[0].block, symbols), (std::array<int64_t, 3>{256, 1, 1}));
    EXPECT_EQ(f.prepacks[1].entry, "pack_down");
    EXPECT_EQ(f.prepacks[1].smem_bytes.evaluate(symbols), 16);
    f.check_symbols(k_shape_symbols);

    // A prepack's expressions are checked like a launch's.
    const KernelFile unknown = parse_kernel_file(
        "k.cu", "// @op x\n// @launch k grid=(1) block=(1)\n// @packed w u8 E\n// @prepack p grid=(E, ROWS) block=(1)\n");
    EXPECT_EQ(input_error([&] { unknown.check_symbols(k_shape_symbols); }),
              "k.cu:4: unknown symbol 'ROWS' in 'ROWS' (neither a knob nor a shape symbol)");

    // Eight buffers of both kinds fill every slot.
    std::string eight = "// @op x\n// @launch k grid=(1) block=(1)\n// @prepack p grid=(1) block=(1)\n";
    for (int i = 0; i < 8; ++i) eight += fmt::format("// @{} b{} u8 1\n", i % 2 ? "scratch" : "packed", i);
    EXPECT_EQ(parse_kernel_file("k.cu", eight).scratch.size(), k_max_scratch);

    // A file without packed buffers has no prepacks.
    EXPECT_TRUE(warp_decode().prepacks.empty());
}

// A valid two-line file, then the lines under test from line 3 on.
std::string base(const std::string& lines) {
    return "// @op moe_decode\n// @launch k grid=(T) block=(32)\n" + lines + "\n";
}

TEST(KernelFile, ErrorsNameFileAndLine) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {base("// @tunes X 1"), "k.cu:3: unknown annotation @tunes"},
        {base("// @"), "k.cu:3: unknown annotation @"},
        {base("// @op other"), "k.cu:3: @op given twice (first at line 1)"},
        {"// @launch k grid=(1) block=(1)\n// @op\n", "k.cu:2: @op expects exactly one name"},
        {"// @launch k grid=(1) block=(1)\n\n// @op a b\n", "k.cu:3: @op expects exactly one name"},
        {base("// @formats"), "k.cu:3: @formats expects one or more formats"},
        {base("// @formats bf16 fp4"), "k.cu:3: unknown format 'fp4' (known: bf16 int8_row int4_g128 fp8_e4m3)"},
        {base("// @formats bf16 bf16"), "k.cu:3: format 'bf16' listed twice"},
        {base("// @formats bf16\n// @formats int8_row"), "k.cu:4: @formats given twice (first at line 3)"},
        {base("// @tune WARPS"), "k.cu:3: @tune expects a knob name and one or more integer values"},
        {base("// @tune WARPS 4 x8"), "k.cu:3: knob 'WARPS': 'x8' is not an integer"},
        {base("// @tune WARPS 4 8 4"), "k.cu:3: knob 'WARPS': value 4 listed twice"},
        {base("// @tune 2X 1"), "k.cu:3: knob name '2X' is not an identifier"},
        {base("// @tune min 1"), "k.cu:3: knob name 'min' is an expression function"},
        {base("// @tune NS_T 1"), "k.cu:3: knob name 'NS_T' uses the harness's reserved prefix NS_"},
        {base("// @tune W 1\n// @tune W 2"), "k.cu:4: knob 'W' already declared at line 3"},
        {base("// @constrain"), "k.cu:3: @constrain expects an expression"},
        {base("// @constrain I %  # a comment"), "k.cu:3: expression 'I %': unexpected end of expression at column 4"},
        {base("// @scratch buf f32"), "k.cu:3: @scratch expects NAME TYPE COUNT"},
        {base("// @scratch buf f16 T"), "k.cu:3: unknown scratch type 'f16' (known: f32 f64 bf16 i32 u32 u8)"},
        {base("// @scratch 1buf f32 T"), "k.cu:3: scratch name '1buf' is not an identifier"},
        {base("// @scratch buf f32 T * "), "k.cu:3: expression 'T *': unexpected end of expression at column 4"},
        {base("// @scratch buf f32 T\n// @scratch buf i32 T"), "k.cu:4: scratch 'buf' already declared at line 3"},
        {base("// @launch"), "k.cu:3: @launch expects ENTRY grid=(X[,Y[,Z]]) block=(X[,Y[,Z]]) [smem=BYTES] [pdl=EXPR]"},
        {base("// @launch grid=(1) block=(1)"),
         "k.cu:3: @launch expects ENTRY grid=(X[,Y[,Z]]) block=(X[,Y[,Z]]) [smem=BYTES] [pdl=EXPR]"},
        {base("// @launch k-2 grid=(1) block=(1)"), "k.cu:3: launch entry 'k-2' is not an identifier"},
        {base("// @launch k2 block=(32)"), "k.cu:3: @launch k2: missing grid=(...)"},
        {base("// @launch k2 grid=(1)"), "k.cu:3: @launch k2: missing block=(...)"},
        {base("// @launch k2 grid=() block=(1)"), "k.cu:3: @launch k2: grid= dimension 1 is empty"},
        {base("// @launch k2 grid=(1,,2) block=(1)"), "k.cu:3: @launch k2: grid= dimension 2 is empty"},
        {base("// @launch k2 grid=(1, 2, 3, 4) block=(1)"), "k.cu:3: @launch k2: grid= has 4 dimensions, at most 3"},
        {base("// @launch k2 grid=(1, block=(1)"), "k.cu:3: @launch k2: unbalanced parentheses in grid="},
        {base("// @launch k2 grid=1 block=(1)"), "k.cu:3: @launch k2: grid= expects (X[,Y[,Z]])"},
        {base("// @launch k2 grid=(1)block=(1)"), "k.cu:3: @launch k2: unexpected 'b' after grid=(...)"},
        {base("// @launch k2 grid=(1) block=(1) threads=(2)"),
         "k.cu:3: @launch k2: unknown argument 'threads=' (expected grid=, block=, smem= or pdl=)"},
        {base("// @launch k2 grid=(1) block=(1) 5"), "k.cu:3: @launch k2: expected grid=, block=, smem= or pdl= at '5'"},
        {base("// @launch k2 grid=(1) block=(1) pdl=1 pdl=0"), "k.cu:3: @launch k2: pdl= given twice"},
        {base("// @launch k2 grid=(1) block=(1) pdl="), "k.cu:3: @launch k2: pdl= expects an expression"},
        {"// @op x\n// @launch k grid=(1) block=(1) pdl=1\n",
         "k.cu:2: @launch k: pdl= on the first launch would let it overlap the timing's L2 flush; it belongs on a "
         "later launch of the call"},
        {base("// @launch k2 grid=(1) grid=(2) block=(1)"), "k.cu:3: @launch k2: grid= given twice"},
        {base("// @launch k2 grid=(1) block=(1) smem=4 smem=8"), "k.cu:3: @launch k2: smem= given twice"},
        {base("// @launch k2 grid=(1) block=(1) smem="), "k.cu:3: @launch k2: smem= expects an expression"},
        {base("// @launch k2 grid=(1 +) block=(1)"),
         "k.cu:3: expression '1 +': unexpected end of expression at column 4"},
        {base("// @launch k2 grid=(1) block=(cdiv(T, 2), foo(1))"),
         "k.cu:3: expression 'foo(1)': unknown function 'foo' at column 1"},
        {base("// @parent"), "k.cu:3: @parent expects exactly one file"},
        {base("// @parent a.cu b.cu"), "k.cu:3: @parent expects exactly one file"},
        {base("// @parent a.cu\n// @parent b.cu"), "k.cu:4: @parent given twice"},
        {base("// @nondeterministic yes"), "k.cu:3: @nondeterministic takes no arguments"},
        {base("// @nondeterministic\n// @nondeterministic"), "k.cu:4: @nondeterministic given twice"},
        {base("// @packed w bf16"), "k.cu:3: @packed expects NAME TYPE COUNT"},
        {base("// @packed w f16 E*I*H\n// @prepack p grid=(E) block=(32)"),
         "k.cu:3: unknown packed type 'f16' (known: f32 f64 bf16 i32 u32 u8)"},
        {base("// @packed 2w bf16 E"), "k.cu:3: packed name '2w' is not an identifier"},
        {base("// @scratch w f32 T\n// @packed w bf16 E"), "k.cu:4: scratch 'w' already declared at line 3"},
        {base("// @packed w bf16 E\n// @scratch w f32 T"), "k.cu:4: packed 'w' already declared at line 3"},
        {base("// @prepack"), "k.cu:3: @prepack expects ENTRY grid=(X[,Y[,Z]]) block=(X[,Y[,Z]]) [smem=BYTES]"},
        {base("// @prepack p grid=(E)"), "k.cu:3: @prepack p: missing block=(...)"},
        {base("// @prepack p grid=(E) block=(1) smem=4 smem=8"), "k.cu:3: @prepack p: smem= given twice"},
        {base("// @prepack p-1 grid=(E) block=(1)"), "k.cu:3: prepack entry 'p-1' is not an identifier"},
        {base("// @scratch s f32 T\n// @packed w bf16 E*I*H"), "k.cu:4: @packed w but no @prepack writes it"},
        {base("// @scratch s f32 T\n\n// @prepack pack grid=(E) block=(32)"),
         "k.cu:5: @prepack pack but no @packed buffer for it to write"},
        {base("// @scratch a f32 1\n// @packed b bf16 1\n// @scratch c f32 1\n// @packed d bf16 1\n"
              "// @scratch e f32 1\n// @packed f bf16 1\n// @scratch g f32 1\n// @packed h bf16 1\n"
              "// @scratch i f32 1\n// @prepack p grid=(1) block=(1)"),
         "k.cu:11: more than 8 @scratch and @packed buffers (params.scratch[] has 8 slots)"},
        {base("// @scratch a f32 1\n// @scratch b f32 1\n// @scratch c f32 1\n// @scratch d f32 1\n"
              "// @scratch e f32 1\n// @scratch f f32 1\n// @scratch g f32 1\n// @scratch h f32 1\n"
              "// @scratch i f32 1"),
         "k.cu:11: more than 8 @scratch and @packed buffers (params.scratch[] has 8 slots)"},
        {"", "k.cu: missing @op"},
        {"// @launch k grid=(1) block=(1)\n", "k.cu: missing @op"},
        {"// @op moe_decode\n// @tune W 1\n", "k.cu: no @launch"},
        // The first error wins, even before a missing @op is noticed.
        {"// @tune W\n", "k.cu:1: @tune expects a knob name and one or more integer values"},
    };
    for (const auto& [source, expected] : cases) {
        EXPECT_EQ(parse_error(source), expected) << "source:\n" << source;
    }
}

TEST(KernelFile, LoadReadsTheFile) {
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("nightshift_test_kernel_file_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::filesystem::path path = dir / "warp_decode.cu";
    {
        std::ofstream out(path, std::ios::binary);
        out << k_warp_decode;
    }
    const KernelFile f = load_kernel_file(path);
    EXPECT_EQ(f.path, path.string());
    EXPECT_EQ(f.source, k_warp_decode);
    EXPECT_EQ(f.launches.size(), 2u);

    EXPECT_THROW(load_kernel_file(dir / "missing.cu"), IoError);
    EXPECT_THROW(load_kernel_file(dir), IoError);
    std::filesystem::remove_all(dir);
}

TEST(KernelFile, LoadReportsParseErrorsWithThePath) {
    const std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("nightshift_test_bad_" + std::to_string(::getpid()) + ".cu");
    {
        std::ofstream out(path, std::ios::binary);
        out << "// @op x\n// @bogus\n";
    }
    EXPECT_EQ(input_error([&] { load_kernel_file(path); }), path.string() + ":2: unknown annotation @bogus");
    std::filesystem::remove(path);
}

} // namespace
} // namespace nightshift::kernels
