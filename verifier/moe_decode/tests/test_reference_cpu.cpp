#include "verifier/moe_decode/reference_cpu.h"

#include <cmath>
#include <map>
#include <numbers>

#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "kernels_seed/moe_decode/params.h"
#include "verifier/rng.h"

namespace nightshift::verifier::moe_decode {
namespace {

// bf16 bits of small values that bf16 holds exactly.
std::vector<uint16_t> bf16s(std::initializer_list<float> values) {
    std::vector<uint16_t> bits;
    for (float v : values) {
        bits.push_back(ns_float_to_bf16(v));
        EXPECT_EQ(ns_bf16_to_float(bits.back()), v) << "test value not exact in bf16";
    }
    return bits;
}

std::function<const ExpertWeights&(int)> from_table(const std::vector<ExpertWeights>& table) {
    return [&table](int expert) -> const ExpertWeights& { return table.at(expert); };
}

TEST(ReferenceCpuTest, ActivationsMatchTheirDefinitions) {
    // silu(1) = 1 / (1 + e^-1); gelu_tanh(1) = 0.5 (1 + tanh(sqrt(2/pi) * 1.044715)).
    EXPECT_DOUBLE_EQ(apply_activation(NS_ACT_SILU, 1.0), 0.7310585786300049);
    EXPECT_DOUBLE_EQ(apply_activation(NS_ACT_GELU_TANH, 1.0), 0.8411919906082768);
    EXPECT_EQ(apply_activation(NS_ACT_SILU, 0.0), 0.0);
    EXPECT_EQ(apply_activation(NS_ACT_GELU_TANH, 0.0), 0.0);
    // gelu_tanh(-g) = gelu_tanh(g) - g (tanh is odd).
    EXPECT_NEAR(apply_activation(NS_ACT_GELU_TANH, -1.0), 0.8411919906082768 - 1.0, 1e-15);
    EXPECT_NEAR(apply_activation(NS_ACT_SILU, -30.0), 0.0, 1e-11);
    EXPECT_THROW(apply_activation(7, 1.0), InputError);
}

// T=2, H=2, I=1, E=2, K=1, silu.
//   token 0: x = [1, 2], expert 1, weight 0.75
//     g = 0.5*1 + 0.25*2 = 1, u = 1*1 + (-1)*2 = -1, a = silu(1) * -1 = -0.7310585786300049
//     y = 0.75 * [2a, -0.5a] = [-1.0965878679450074, 0.27414696698625185]
//   token 1: x = [2, 0.5], expert 0, weight 1
//     g = 0*2 + 2*0.5 = 1, u = 2 + 0.5 = 2.5, a = 2.5 silu(1) = 1.8276464465750122
//     y = [a, a]
TEST(ReferenceCpuTest, HandCheckedSilu) {
    const Shape shape{2, 2, 1, 2, 1, NS_ACT_SILU};
    std::vector<ExpertWeights> table(2);
    table[0] = {bf16s({0.0f, 2.0f}), bf16s({1.0f, 1.0f}), bf16s({1.0f, 1.0f})};
    table[1] = {bf16s({0.5f, 0.25f}), bf16s({1.0f, -1.0f}), bf16s({2.0f, -0.5f})};
    const Routing routing{{1, 0}, {0.75f, 1.0f}};
    const std::vector<double> y = reference_cpu(shape, bf16s({1.0f, 2.0f, 2.0f, 0.5f}), routing, from_table(table));
    ASSERT_EQ(y.size(), 4u);
    EXPECT_NEAR(y[0], -1.0965878679450074, 1e-15);
    EXPECT_NEAR(y[1], 0.27414696698625185, 1e-15);
    EXPECT_NEAR(y[2], 1.8276464465750122, 1e-15);
    EXPECT_NEAR(y[3], 1.8276464465750122, 1e-15);
}

// T=1, H=2, I=2, E=2, K=2, gelu_tanh; G = gelu_tanh(1) = 0.8411919906082768,
// gelu_tanh(-1) = G - 1, gelu_tanh(0) = 0. x = [1, 2], ids [0, 1], w [0.25, 0.75].
//   expert 0: gate [[1,0],[0,0.5]] -> g = [1, 1]; up [[1,0],[0,1]] -> u = [1, 2]
//             a = [G, 2G]; down [[1,1],[0,-1]] -> [3G, -2G]
//   expert 1: gate [[-1,0],[0,0]] -> g = [-1, 0]; up [[0,0.5],[1,1]] -> u = [1, 3]
//             a = [G-1, 0]; down [[1,4],[2,8]] -> [G-1, 2(G-1)]
//   y0 = 0.25*3G + 0.75(G-1) = 1.5G - 0.75 = 0.5117879859124153
//   y1 = 0.25*(-2G) + 0.75*2(G-1) = G - 1.5 = -0.6588080093917232
TEST(ReferenceCpuTest, HandCheckedGeluTanh) {
    const Shape shape{1, 2, 2, 2, 2, NS_ACT_GELU_TANH};
    std::vector<ExpertWeights> table(2);
    table[0] = {bf16s({1, 0, 0, 0.5f}), bf16s({1, 0, 0, 1}), bf16s({1, 1, 0, -1})};
    table[1] = {bf16s({-1, 0, 0, 0}), bf16s({0, 0.5f, 1, 1}), bf16s({1, 4, 2, 8})};
    const Routing routing{{0, 1}, {0.25f, 0.75f}};
    const std::vector<double> y = reference_cpu(shape, bf16s({1, 2}), routing, from_table(table));
    ASSERT_EQ(y.size(), 2u);
    EXPECT_NEAR(y[0], 0.5117879859124153, 1e-15);
    EXPECT_NEAR(y[1], -0.6588080093917232, 1e-15);

    // The same token with the slots swapped gives the same sum.
    const Routing swapped{{1, 0}, {0.75f, 0.25f}};
    const std::vector<double> y_swapped = reference_cpu(shape, bf16s({1, 2}), swapped, from_table(table));
    EXPECT_NEAR(y_swapped[0], y[0], 1e-15);
    EXPECT_NEAR(y_swapped[1], y[1], 1e-15);
}

// A triple loop written straight from the formula, for comparison on
// generated inputs (it shares nothing with the implementation but the types).
std::vector<double> naive_reference(const Shape& s, unsigned long long seed, const std::vector<uint16_t>& x,
                                    const Routing& routing) {
    std::vector<double> y(s.T * s.H, 0.0);
    for (int t = 0; t < s.T; ++t)
        for (int k = 0; k < s.K; ++k) {
            const int e = routing.ids[t * s.K + k];
            const double w = routing.weights[t * s.K + k];
            const ExpertWeights ew = make_expert_weights(s, seed, e);
            for (int h = 0; h < s.H; ++h)
                for (int i = 0; i < s.I; ++i) {
                    double g = 0, u = 0;
                    for (int j = 0; j < s.H; ++j) {
                        g += double(ns_bf16_to_float(ew.gate[i * s.H + j])) * ns_bf16_to_float(x[t * s.H + j]);
                        u += double(ns_bf16_to_float(ew.up[i * s.H + j])) * ns_bf16_to_float(x[t * s.H + j]);
                    }
                    const double act =
                        s.activation == NS_ACT_SILU
                            ? g / (1 + std::exp(-g))
                            : 0.5 * g * (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (g + 0.044715 * g * g * g)));
                    y[t * s.H + h] += w * ns_bf16_to_float(ew.down[h * s.I + i]) * act * u;
                }
        }
    return y;
}

TEST(ReferenceCpuTest, MatchesANaiveLoopOnGeneratedInputs) {
    for (const char* name : {"tiny", "tiny-gelu"}) {
        SCOPED_TRACE(name);
        const Shape shape = make_shape(find_preset(name), 3);
        const unsigned long long seed = 2024;
        const std::vector<uint16_t> x = make_x(shape, seed, x_scale_log2());
        const Routing routing = make_routing(shape, seed, RoutingKind::uniform);
        const std::vector<double> y = reference_cpu(shape, seed, x, routing);
        const std::vector<double> expected = naive_reference(shape, seed, x, routing);
        ASSERT_EQ(y.size(), expected.size());
        double scale = 0;
        for (double v : expected)
            scale = std::max(scale, std::fabs(v));
        ASSERT_GT(scale, 1e-3); // the scales keep outputs away from zero
        for (size_t i = 0; i < y.size(); ++i)
            EXPECT_NEAR(y[i], expected[i], 1e-12 * scale) << "element " << i;
    }
}

TEST(ReferenceCpuTest, SeededOverloadMatchesExplicitWeights) {
    const Shape shape = make_shape(find_preset("tiny-gelu"), 5);
    const unsigned long long seed = 31337;
    const std::vector<uint16_t> x = make_x(shape, seed, x_scale_log2());
    const Routing routing = make_routing(shape, seed, RoutingKind::zipf);
    std::map<int, ExpertWeights> cache;
    int calls = 0;
    const std::vector<double> explicit_y = reference_cpu(shape, x, routing, [&](int e) -> const ExpertWeights& {
        ++calls;
        return cache.try_emplace(e, make_expert_weights(shape, seed, e)).first->second;
    });
    EXPECT_EQ(calls, static_cast<int>(cache.size())); // once per distinct expert
    EXPECT_EQ(reference_cpu(shape, seed, x, routing), explicit_y);
    EXPECT_NE(reference_cpu(shape, seed + 1, x, routing), explicit_y);
}

TEST(ReferenceCpuTest, RejectsInconsistentInputs) {
    const Shape shape = make_shape(find_preset("tiny"), 2);
    const std::vector<uint16_t> x = make_x(shape, 1, 0);
    Routing routing = make_routing(shape, 1, RoutingKind::uniform);
    EXPECT_THROW(reference_cpu(shape, 1, std::vector<uint16_t>(x.begin(), x.end() - 1), routing), InputError);
    Routing short_routing = routing;
    short_routing.weights.pop_back();
    EXPECT_THROW(reference_cpu(shape, 1, x, short_routing), InputError);
    routing.ids[1] = shape.E;
    EXPECT_THROW(reference_cpu(shape, 1, x, routing), InputError);
    routing.ids[1] = -1;
    EXPECT_THROW(reference_cpu(shape, 1, x, routing), InputError);

    const Shape one{1, 2, 1, 2, 1, NS_ACT_SILU};
    std::vector<ExpertWeights> table(2);
    table[0] = {bf16s({1, 1}), bf16s({1, 1}), bf16s({1})}; // down too short
    EXPECT_THROW(reference_cpu(one, bf16s({1, 1}), Routing{{0}, {1.0f}}, from_table(table)), InputError);
}

} // namespace
} // namespace nightshift::verifier::moe_decode
