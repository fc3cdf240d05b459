#include "verifier/moe_decode/problem.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <set>

#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "kernels_seed/moe_decode/params.h"
#include "verifier/rng.h"

namespace nightshift::verifier::moe_decode {
namespace {

constexpr RoutingKind k_all_kinds[] = {RoutingKind::uniform, RoutingKind::zipf, RoutingKind::identical};

// Largest number of tokens any single expert receives.
int busiest_expert_load(const Shape& shape, const Routing& routing) {
    std::vector<int> load(shape.E, 0);
    for (int32_t id : routing.ids)
        ++load[id];
    return *std::max_element(load.begin(), load.end());
}

TEST(ProblemTest, MakeShapeCopiesThePresetAndChecksT) {
    const Preset& preset = find_preset("deepseek-v3");
    const Shape shape = make_shape(preset, 7);
    EXPECT_EQ(shape.T, 7);
    EXPECT_EQ(shape.H, 7168);
    EXPECT_EQ(shape.I, 2048);
    EXPECT_EQ(shape.E, 256);
    EXPECT_EQ(shape.K, 8);
    EXPECT_EQ(shape.activation, NS_ACT_SILU);
    EXPECT_EQ(make_shape(preset, 1).T, 1);
    EXPECT_EQ(make_shape(preset, k_max_batch).T, k_max_batch);
    EXPECT_THROW(make_shape(preset, 0), InputError);
    EXPECT_THROW(make_shape(preset, -1), InputError);
    EXPECT_THROW(make_shape(preset, k_max_batch + 1), InputError);
}

TEST(ProblemTest, RoutingKindNamesRoundTrip) {
    for (RoutingKind kind : k_all_kinds)
        EXPECT_EQ(parse_routing_kind(to_string(kind)), kind);
    EXPECT_EQ(to_string(RoutingKind::zipf), "zipf");
    EXPECT_EQ(static_cast<int>(RoutingKind::uniform), 0); // persisted values
    EXPECT_EQ(static_cast<int>(RoutingKind::zipf), 1);
    EXPECT_EQ(static_cast<int>(RoutingKind::identical), 2);
    EXPECT_THROW(parse_routing_kind("Zipf"), InputError);
    EXPECT_THROW(parse_routing_kind(""), InputError);
}

TEST(ProblemTest, ScalesFollowSqrtOfTheDotLength) {
    EXPECT_EQ(x_scale_log2(), 0);
    // -round(log2(sqrt(n))): 2048 -> -round(5.5) = -6, 512 -> -round(4.5) = -5,
    // 704 -> -round(4.73) = -5, 14336 -> -round(6.91) = -7, 64 -> -3.
    EXPECT_EQ(gate_up_scale_log2(make_shape(find_preset("qwen3-30b-a3b"), 1)), -6);
    EXPECT_EQ(down_scale_log2(make_shape(find_preset("qwen3.5-35b-a3b"), 1)), -5);
    EXPECT_EQ(down_scale_log2(make_shape(find_preset("gemma4-26b-a4b"), 1)), -5);
    EXPECT_EQ(down_scale_log2(make_shape(find_preset("mixtral-8x7b"), 1)), -7);
    EXPECT_EQ(gate_up_scale_log2(make_shape(find_preset("deepseek-v3"), 1)), -6);
    EXPECT_EQ(gate_up_scale_log2(make_shape(find_preset("tiny"), 1)), -3);
    EXPECT_EQ(down_scale_log2(make_shape(find_preset("tiny"), 1)), -3); // sqrt(32): -round(2.5)
}

TEST(ProblemTest, RoutingIsValidForEveryKind) {
    for (const char* name : {"tiny", "tiny-gelu", "qwen3-30b-a3b", "deepseek-v3", "mixtral-8x7b"}) {
        for (RoutingKind kind : k_all_kinds) {
            SCOPED_TRACE(std::string(name) + " " + to_string(kind));
            const Shape shape = make_shape(find_preset(name), 67);
            const Routing routing = make_routing(shape, 1234, kind);
            ASSERT_EQ(routing.ids.size(), static_cast<size_t>(shape.T * shape.K));
            ASSERT_EQ(routing.weights.size(), routing.ids.size());
            for (int t = 0; t < shape.T; ++t) {
                std::set<int> ids;
                double sum = 0;
                for (int k = 0; k < shape.K; ++k) {
                    const int id = routing.ids[t * shape.K + k];
                    const float w = routing.weights[t * shape.K + k];
                    EXPECT_GE(id, 0);
                    EXPECT_LT(id, shape.E);
                    ids.insert(id);
                    EXPECT_GT(w, 0.0f);
                    EXPECT_TRUE(std::isfinite(w));
                    if (k > 0) {
                        EXPECT_LE(w, routing.weights[t * shape.K + k - 1]) << "weights not descending";
                    }
                    sum += w;
                }
                EXPECT_EQ(ids.size(), static_cast<size_t>(shape.K)) << "token " << t;
                EXPECT_NEAR(sum, 1.0, 1e-6) << "token " << t;
            }
        }
    }
}

TEST(ProblemTest, RoutingIsDeterministicAndSeeded) {
    const Shape shape = make_shape(find_preset("qwen3-30b-a3b"), 16);
    for (RoutingKind kind : k_all_kinds) {
        const Routing a = make_routing(shape, 77, kind);
        const Routing b = make_routing(shape, 77, kind);
        const Routing c = make_routing(shape, 78, kind);
        EXPECT_EQ(a.ids, b.ids);
        EXPECT_EQ(a.weights, b.weights);
        EXPECT_NE(a.weights, c.weights) << to_string(kind);
    }
}

TEST(ProblemTest, UniformRoutingPicksTheLargestSoftmaxProbabilities) {
    // Recompute token 0's logits with the documented recipe and check the
    // chosen set and weights against an independent softmax.
    const Shape shape = make_shape(find_preset("tiny-gelu"), 1);
    const unsigned long long seed = 5;
    std::vector<double> logits(shape.E);
    for (int e = 0; e < shape.E; ++e) {
        const unsigned long long r = ns_rng_u64(seed, NS_STREAM_ROUTING, e);
        const double u1 = (static_cast<double>(r >> 32) + 0.5) / 4294967296.0;
        const double u2 = static_cast<double>(r & 0xFFFFFFFFULL) / 4294967296.0;
        logits[e] = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    }
    std::vector<int> order(shape.E);
    for (int e = 0; e < shape.E; ++e)
        order[e] = e;
    std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
    double top_sum = 0;
    for (int k = 0; k < shape.K; ++k)
        top_sum += std::exp(logits[order[k]]);
    const Routing routing = make_routing(shape, seed, RoutingKind::uniform);
    for (int k = 0; k < shape.K; ++k) {
        EXPECT_EQ(routing.ids[k], order[k]);
        EXPECT_NEAR(routing.weights[k], std::exp(logits[order[k]]) / top_sum, 1e-6);
    }
}

TEST(ProblemTest, ZipfRoutingConcentratesOnFewExperts) {
    const Shape shape = make_shape(find_preset("qwen3-30b-a3b"), k_max_batch);
    const int uniform_max = busiest_expert_load(shape, make_routing(shape, 9, RoutingKind::uniform));
    const int zipf_max = busiest_expert_load(shape, make_routing(shape, 9, RoutingKind::zipf));
    // Uniform: 512*8/128 = 32 tokens per expert on average.
    EXPECT_LT(uniform_max, 80);
    EXPECT_GT(zipf_max, 4 * uniform_max);
    EXPECT_GT(zipf_max, k_max_batch * 3 / 4);

    // The distinct experts a zipf batch touches are far fewer, too.
    std::set<int> zipf_experts, uniform_experts;
    for (int32_t id : make_routing(shape, 9, RoutingKind::zipf).ids)
        zipf_experts.insert(id);
    for (int32_t id : make_routing(shape, 9, RoutingKind::uniform).ids)
        uniform_experts.insert(id);
    EXPECT_LT(zipf_experts.size(), uniform_experts.size());
}

TEST(ProblemTest, IdenticalRoutingSharesTheExpertSetButNotTheWeights) {
    const Shape shape = make_shape(find_preset("deepseek-v3"), 64);
    const Routing routing = make_routing(shape, 3, RoutingKind::identical);
    std::set<int> first(routing.ids.begin(), routing.ids.begin() + shape.K);
    std::set<std::vector<float>> weight_rows;
    for (int t = 0; t < shape.T; ++t) {
        const auto row = routing.ids.begin() + t * shape.K;
        EXPECT_EQ(std::set<int>(row, row + shape.K), first) << "token " << t;
        const auto weights = routing.weights.begin() + t * shape.K;
        weight_rows.insert(std::vector<float>(weights, weights + shape.K));
    }
    EXPECT_EQ(weight_rows.size(), static_cast<size_t>(shape.T)); // every token has its own weights
    EXPECT_EQ(busiest_expert_load(shape, routing), shape.T);
}

TEST(ProblemTest, MakeXFollowsTheFlatIndex) {
    const Shape shape = make_shape(find_preset("tiny"), 3);
    const std::vector<uint16_t> x = make_x(shape, 21, -2);
    ASSERT_EQ(x.size(), static_cast<size_t>(3 * 64));
    for (int t = 0; t < 3; ++t)
        for (int h = 0; h < 64; ++h)
            EXPECT_EQ(x[t * 64 + h], ns_rng_bf16(21, NS_STREAM_X, t * 64 + h, -2));
    EXPECT_NE(make_x(shape, 22, -2), x);
    EXPECT_THROW(make_x(shape, 21, 200), InputError);
}

TEST(ProblemTest, ExpertWeightsAreSlicesOfTheFullTensors) {
    for (const char* name : {"tiny", "tiny-gelu"}) {
        SCOPED_TRACE(name);
        const Shape shape = make_shape(find_preset(name), 1);
        const unsigned long long seed = 0xC0FFEE;
        const size_t per_expert = static_cast<size_t>(shape.I) * shape.H;
        // What fill_bf16 writes over the whole [E,I,H] / [E,H,I] tensors.
        std::vector<uint16_t> gate(shape.E * per_expert), up(gate.size()), down(gate.size());
        for (size_t i = 0; i < gate.size(); ++i) {
            gate[i] = ns_rng_bf16(seed, NS_STREAM_W_GATE, i, gate_up_scale_log2(shape));
            up[i] = ns_rng_bf16(seed, NS_STREAM_W_UP, i, gate_up_scale_log2(shape));
            down[i] = ns_rng_bf16(seed, NS_STREAM_W_DOWN, i, down_scale_log2(shape));
        }
        for (int e = 0; e < shape.E; ++e) {
            const ExpertWeights w = make_expert_weights(shape, seed, e);
            ASSERT_EQ(w.gate.size(), per_expert);
            ASSERT_EQ(w.up.size(), per_expert);
            ASSERT_EQ(w.down.size(), per_expert);
            // gate/up [e][i][h], down [e][h][i], indexed by coordinates.
            for (int i = 0; i < shape.I; ++i)
                for (int h = 0; h < shape.H; ++h) {
                    const size_t full_gate_up = (static_cast<size_t>(e) * shape.I + i) * shape.H + h;
                    const size_t full_down = (static_cast<size_t>(e) * shape.H + h) * shape.I + i;
                    ASSERT_EQ(w.gate[i * shape.H + h], gate[full_gate_up]) << e << " " << i << " " << h;
                    ASSERT_EQ(w.up[i * shape.H + h], up[full_gate_up]) << e << " " << i << " " << h;
                    ASSERT_EQ(w.down[h * shape.I + i], down[full_down]) << e << " " << i << " " << h;
                }
        }
        EXPECT_NE(make_expert_weights(shape, seed, 0).gate, make_expert_weights(shape, seed, 1).gate);
        EXPECT_NE(make_expert_weights(shape, seed, 0).gate, make_expert_weights(shape, seed, 0).up);
        EXPECT_THROW(make_expert_weights(shape, seed, shape.E), InputError);
        EXPECT_THROW(make_expert_weights(shape, seed, -1), InputError);
    }
}

} // namespace
} // namespace nightshift::verifier::moe_decode
