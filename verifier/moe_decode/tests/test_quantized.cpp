#include "verifier/moe_decode/quantized.h"

#include "harness/core/error.h"
#include "kernels_seed/moe_decode/params.h"
#include "verifier/moe_decode/presets.h"
#include "verifier/moe_decode/spec.h"
#include "verifier/quantize.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace nightshift::verifier::moe_decode {
namespace {

std::uint16_t to_bf16(float f) { return ns_float_to_bf16(f); }

TEST(QuantizeTest, Fp8DecodesEveryFiniteCodeAndEncodesItBack) {
    for (int c = 0; c < 256; ++c) {
        if ((c & 0x7F) == 0x7F) continue; // NaN codes
        float v = ns_fp8_e4m3_decode(static_cast<unsigned char>(c));
        EXPECT_EQ(ns_fp8_e4m3_encode(v), c) << "code " << c << " value " << v;
    }
    EXPECT_EQ(ns_fp8_e4m3_decode(0x7E), 448.0f);
    EXPECT_EQ(ns_fp8_e4m3_decode(0x01), std::ldexp(1.0f, -9)); // smallest subnormal
    EXPECT_EQ(ns_fp8_e4m3_decode(0x08), std::ldexp(1.0f, -6)); // smallest normal
    EXPECT_EQ(ns_fp8_e4m3_decode(0xB8), -1.0f);
}

TEST(QuantizeTest, Fp8RoundsToNearestEvenAndSaturates) {
    EXPECT_EQ(ns_fp8_e4m3_encode(1000.0f), 0x7E);
    EXPECT_EQ(ns_fp8_e4m3_encode(-1e30f), 0xFE);
    // 1 + 1/16 lies halfway between 1 (mantissa 0, even) and 1.125: rounds to 1.
    EXPECT_EQ(ns_fp8_e4m3_decode(ns_fp8_e4m3_encode(1.0625f)), 1.0f);
    // 1.125 + 1/16 lies between 1.125 (odd) and 1.25 (even): rounds to 1.25.
    EXPECT_EQ(ns_fp8_e4m3_decode(ns_fp8_e4m3_encode(1.1875f)), 1.25f);
    // Half the smallest subnormal rounds to 0 (even); 1.5 quanta round to 2.
    EXPECT_EQ(ns_fp8_e4m3_encode(std::ldexp(1.0f, -10)), 0);
    EXPECT_EQ(ns_fp8_e4m3_encode(std::ldexp(3.0f, -10)), 2);
    // 15.5/16 of the largest binade rounds up into the next exponent.
    EXPECT_EQ(ns_fp8_e4m3_decode(ns_fp8_e4m3_encode(1.97f)), 2.0f);
}

TEST(QuantizeTest, Int4NibblesAreTwosComplement) {
    for (unsigned n = 0; n < 16; ++n) EXPECT_EQ(ns_int4_decode(n), n < 8 ? static_cast<int>(n) : static_cast<int>(n) - 16);
    EXPECT_EQ(ns_int4_decode(0xF3), 3); // only the low nibble counts
}

// Every weight is within half a quantum of its value (int8, int4), or within
// fp8's relative spacing; the scales are absmax / code max.
TEST(QuantizeTest, QuantizedMatricesStayWithinHalfAQuantum) {
    std::mt19937 rng(12345);
    std::normal_distribution<float> normal(0.0f, 0.05f);
    const int rows = 7, cols = 300; // 300: int4's last group has 44 columns
    std::vector<std::uint16_t> w(static_cast<std::size_t>(rows) * cols);
    for (auto& v : w) v = to_bf16(normal(rng));
    for (int r = 0; r < cols; ++r) w[static_cast<std::size_t>(3) * cols + r] = 0; // a row of zeros
    for (const char* name : {"int8_row", "int4_g128", "fp8_e4m3"}) {
        const int format = weight_format(name);
        QuantizedMatrix q = quantize_matrix(w, rows, cols, format);
        ASSERT_EQ(q.scales.size(), static_cast<std::size_t>(rows * scale_groups(format, cols))) << name;
        std::vector<double> deq = dequantize_matrix(q, rows, cols, format);
        for (int r = 0; r < rows; ++r) {
            for (int c = 0; c < cols; ++c) {
                const std::size_t flat = static_cast<std::size_t>(r) * cols + c;
                const int g = format == NS_FMT_INT4_G128 ? c / 128 : 0;
                const double scale = q.scales[static_cast<std::size_t>(r) * scale_groups(format, cols) + g];
                const double value = ns_bf16_to_float(w[flat]);
                const double bound = format == NS_FMT_FP8_E4M3 ? std::max(std::abs(value) / 16, scale * std::ldexp(1.0, -10))
                                                              : scale / 2;
                // w / scale is rounded once in float before rounding to an integer: 127 * 2^-24 of a quantum more.
                ASSERT_LE(std::abs(deq[flat] - value), bound + scale * 1e-5) << name << " at " << r << "," << c;
                if (r == 3) ASSERT_EQ(deq[flat], 0.0) << name;
            }
        }
        EXPECT_EQ(q.scales[3 * static_cast<std::size_t>(scale_groups(format, cols))], 0.0f) << name;
    }
}

TEST(QuantizeTest, FormatNamesAndBytes) {
    EXPECT_EQ(weight_format("bf16"), NS_FMT_BF16);
    EXPECT_EQ(weight_format("int4_g128"), NS_FMT_INT4_G128);
    EXPECT_EQ(weight_format_name(NS_FMT_FP8_E4M3), "fp8_e4m3");
    try {
        weight_format("int3");
        FAIL() << "int3 accepted";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("int8_row"), std::string::npos) << e.what();
    }
    Shape s = make_shape(find_preset("gemma4-26b-a4b"), 1, "int4_g128");
    EXPECT_EQ(s.format, NS_FMT_INT4_G128);
    // 3 matrices of 704 x 2816 at half a byte, plus a float per 128 weights (I = 704 has 6 groups, the last of 64).
    EXPECT_DOUBLE_EQ(expert_bytes(s), 3 * 704.0 * 2816 / 2 + 4.0 * (2 * 704 * 22 + 2816 * 6));
    s.format = NS_FMT_INT8_ROW;
    EXPECT_DOUBLE_EQ(expert_bytes(s), 3 * 704.0 * 2816 + 4.0 * (2 * 704 + 2816));
    s.format = NS_FMT_BF16;
    EXPECT_DOUBLE_EQ(expert_bytes(s), 3 * 704.0 * 2816 * 2);
    EXPECT_EQ(weight_bits(NS_FMT_BF16), 16);
    EXPECT_EQ(weight_bits(NS_FMT_INT8_ROW), 8);
    EXPECT_EQ(weight_bits(NS_FMT_FP8_E4M3), 8);
    EXPECT_EQ(weight_bits(NS_FMT_INT4_G128), 4);
    EXPECT_THROW(weight_bits(7), InputError);
    // Kernel files size shared memory with BITS, one of the op's shape symbols.
    s.format = NS_FMT_INT4_G128;
    EXPECT_EQ(shape_symbols(s).at("BITS"), 4);
    EXPECT_EQ(shape_symbols(s).size(), shape_symbol_names().size());
    EXPECT_THROW(quantize_matrix(std::vector<std::uint16_t>(6), 2, 3, NS_FMT_INT4_G128), InputError); // odd columns
    EXPECT_THROW(quantize_matrix(std::vector<std::uint16_t>(6), 2, 3, NS_FMT_BF16), InputError);
}

} // namespace
} // namespace nightshift::verifier::moe_decode
