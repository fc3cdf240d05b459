#include "verifier/rng.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include <gtest/gtest.h>

namespace {

float from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

uint32_t to_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

bool is_bf16_nan(ns_bf16 b) {
    return (b & 0x7F80) == 0x7F80 && (b & 0x007F) != 0;
}

// An independent round-to-nearest-even for values exactly representable in
// double: compare the two bf16 neighbours by distance.
ns_bf16 round_by_distance(double v) {
    const ns_bf16 lower = static_cast<ns_bf16>(to_bits(static_cast<float>(v)) >> 16); // truncation toward zero
    const ns_bf16 upper = static_cast<ns_bf16>(lower + 1);                            // next magnitude up
    const double d_lower = std::fabs(v - ns_bf16_to_float(lower));
    const double d_upper = std::fabs(v - ns_bf16_to_float(upper));
    if (d_lower != d_upper) return d_lower < d_upper ? lower : upper;
    return (lower & 1) == 0 ? lower : upper;
}

} // namespace

TEST(RngTest, U64IsDeterministic) {
    for (unsigned long long i = 0; i < 1000; ++i)
        EXPECT_EQ(ns_rng_u64(42, NS_STREAM_X, i), ns_rng_u64(42, NS_STREAM_X, i));
}

// Regression pins: these numbers decide every synthetic input ever verified
// and stored. If this fails, the generator changed; that breaks replay of old
// experiments and must be a deliberate, versioned decision. The values were
// cross-checked against an independent Python transcription of rng.h.
TEST(RngTest, U64GoldenValues) {
    // Seed 0, stream 0 gives key 0 (the finalizer maps 0 to 0), so the first
    // draw is exactly splitmix64's well-known first output for seed 0.
    EXPECT_EQ(ns_rng_u64(0, 0, 0), 0xE220A8397B1DCDAFULL);
    EXPECT_EQ(ns_rng_u64(1, NS_STREAM_X, 0), 0x0E3DEAB4A6A30AFFULL);
    EXPECT_EQ(ns_rng_u64(12345, NS_STREAM_W_DOWN, 1ULL << 40), 0xED990AB8649780B6ULL);
    EXPECT_EQ(ns_rng_bf16(7, NS_STREAM_W_GATE, 99, -6), 0xBA98);
}

TEST(RngTest, StreamsSeedsAndIndicesGiveDifferentValues) {
    std::set<unsigned long long> seen;
    const unsigned int streams[] = {NS_STREAM_X, NS_STREAM_W_GATE, NS_STREAM_W_UP, NS_STREAM_W_DOWN, NS_STREAM_ROUTING};
    for (unsigned long long seed : {0ULL, 1ULL, 2ULL, 0xFFFFFFFFFFFFFFFFULL})
        for (unsigned int stream : streams)
            for (unsigned long long i = 0; i < 2000; ++i)
                seen.insert(ns_rng_u64(seed, stream, i));
    // 40000 draws of 64 bits: any collision means a structural overlap.
    EXPECT_EQ(seen.size(), 4u * 5u * 2000u);

    int same_bf16 = 0;
    for (unsigned long long i = 0; i < 10000; ++i)
        same_bf16 += ns_rng_bf16(3, NS_STREAM_W_GATE, i, 0) == ns_rng_bf16(3, NS_STREAM_W_UP, i, 0);
    EXPECT_LT(same_bf16, 500); // independent draws agree ~1.5% of the time
}

TEST(RngTest, U64BitsAreBalanced) {
    constexpr int n = 100000;
    int ones[64] = {};
    for (int i = 0; i < n; ++i) {
        const unsigned long long r = ns_rng_u64(99, NS_STREAM_ROUTING, i);
        for (int b = 0; b < 64; ++b)
            ones[b] += (r >> b) & 1;
    }
    for (int b = 0; b < 64; ++b)
        EXPECT_NEAR(ones[b], n / 2, 5 * std::sqrt(n / 4.0)) << "bit " << b; // 5 sigma
}

TEST(RngTest, Bf16HasDocumentedMeanAndStd) {
    constexpr int n = 100000;
    for (int scale_log2 : {0, -6, 3}) {
        const double expected_std = std::pow(2.0, 16) / std::sqrt(3.0) * std::pow(2.0, scale_log2 - 16);
        double sum = 0, sum_sq = 0, max_abs = 0;
        for (int i = 0; i < n; ++i) {
            const double v = ns_bf16_to_float(ns_rng_bf16(5, NS_STREAM_X, i, scale_log2));
            sum += v;
            sum_sq += v * v;
            max_abs = std::max(max_abs, std::fabs(v));
        }
        const double mean = sum / n;
        const double std_dev = std::sqrt(sum_sq / n - mean * mean);
        EXPECT_NEAR(expected_std, 0.577 * std::pow(2.0, scale_log2), 0.001 * std::pow(2.0, scale_log2));
        EXPECT_NEAR(mean, 0.0, 5 * expected_std / std::sqrt(n)) << "scale 2^" << scale_log2;
        EXPECT_NEAR(std_dev, expected_std, 0.01 * expected_std) << "scale 2^" << scale_log2;
        EXPECT_LE(max_abs, std::pow(2.0, scale_log2 + 1));
        EXPECT_GT(max_abs, 0.5 * std::pow(2.0, scale_log2)); // a bell, not a spike at zero
    }
}

// ns_rng_bf16 against a from-scratch computation of its definition: the
// centred sum of the four 16-bit lanes, times 2^(s-16) in double, rounded to
// the nearest bf16 by distance.
TEST(RngTest, Bf16MatchesItsDefinition) {
    for (int scale_log2 : {0, -7, 5, NS_RNG_MIN_SCALE_LOG2, NS_RNG_MAX_SCALE_LOG2}) {
        for (unsigned long long i = 0; i < 20000; ++i) {
            const unsigned long long r = ns_rng_u64(11, NS_STREAM_W_DOWN, i);
            long sum = 0;
            for (int lane = 0; lane < 4; ++lane)
                sum += static_cast<long>((r >> (16 * lane)) & 0xFFFF);
            const double v = std::ldexp(static_cast<double>(sum - 131070), scale_log2 - 16);
            ASSERT_EQ(ns_rng_bf16(11, NS_STREAM_W_DOWN, i, scale_log2), round_by_distance(v))
                << "index " << i << " scale 2^" << scale_log2;
        }
    }
}

TEST(RngTest, Bf16RoundsToNearestEven) {
    EXPECT_EQ(ns_float_to_bf16(1.0f), 0x3F80);
    EXPECT_EQ(ns_float_to_bf16(-2.0f), 0xC000);
    EXPECT_EQ(ns_float_to_bf16(0.0f), 0x0000);
    EXPECT_EQ(ns_float_to_bf16(-0.0f), 0x8000);
    // Exactly halfway: ties go to the even neighbour, up or down.
    EXPECT_EQ(ns_float_to_bf16(from_bits(0x3F808000)), 0x3F80);
    EXPECT_EQ(ns_float_to_bf16(from_bits(0x3F818000)), 0x3F82);
    EXPECT_EQ(ns_float_to_bf16(from_bits(0xBF808000)), 0xBF80);
    EXPECT_EQ(ns_float_to_bf16(from_bits(0xBF818000)), 0xBF82);
    // Just off halfway.
    EXPECT_EQ(ns_float_to_bf16(from_bits(0x3F808001)), 0x3F81);
    EXPECT_EQ(ns_float_to_bf16(from_bits(0x3F807FFF)), 0x3F80);
    // Carry into the exponent, and overflow to infinity.
    EXPECT_EQ(ns_float_to_bf16(from_bits(0x3FFFFFFF)), 0x4000);
    EXPECT_EQ(ns_float_to_bf16(from_bits(0x7F7FFFFF)), 0x7F80);
    EXPECT_EQ(ns_float_to_bf16(from_bits(0x7F800000)), 0x7F80);
    EXPECT_EQ(ns_float_to_bf16(from_bits(0xFF800000)), 0xFF80);
    // Subnormals round like anything else.
    EXPECT_EQ(ns_float_to_bf16(from_bits(0x00008000)), 0x0000);
    EXPECT_EQ(ns_float_to_bf16(from_bits(0x00018000)), 0x0002);
}

TEST(RngTest, Bf16KeepsNaN) {
    // Payloads that plain rounding would turn into infinity or wrap to -0.
    for (uint32_t bits : {0x7FC00000u, 0x7F800001u, 0x7F807FFFu, 0x7FFFFFFFu, 0xFF800001u, 0xFFFFFFFFu}) {
        const ns_bf16 b = ns_float_to_bf16(from_bits(bits));
        EXPECT_TRUE(is_bf16_nan(b)) << std::hex << bits << " -> " << b;
        EXPECT_EQ(b & 0x8000, (bits >> 16) & 0x8000) << std::hex << bits; // sign kept
        EXPECT_TRUE(std::isnan(ns_bf16_to_float(b)));
    }
}

TEST(RngTest, Bf16RoundTripIsExact) {
    for (uint32_t b = 0; b <= 0xFFFF; ++b) {
        const ns_bf16 bits = static_cast<ns_bf16>(b);
        const float f = ns_bf16_to_float(bits);
        EXPECT_EQ(to_bits(f), b << 16);
        if (!is_bf16_nan(bits)) {
            ASSERT_EQ(ns_float_to_bf16(f), bits) << std::hex << b;
        }
    }
}
