#include "verifier/moe_decode/problem.h"
#include "verifier/moe_decode/quantized.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>

#include <fmt/format.h>

#include "harness/core/error.h"
#include "kernels_seed/moe_decode/params.h"
#include "verifier/rng.h"

namespace nightshift::verifier::moe_decode {

namespace {

// Zipf exponent of the skewed routing: with s = 1.2 the top-ranked expert's
// logit leads the median one of 128 by ~5 standard deviations of the noise,
// so it is in nearly every token's top K.
constexpr double k_zipf_exponent = 1.2;

// The permutation that ranks experts for zipf routing draws from the routing
// stream far above the logits' indices (t*E + e < 2^17), so the two never
// share a random number.
constexpr unsigned long long k_permutation_index_base = 1ULL << 62;

void check_shape(const Shape& shape) {
    if (shape.T < 1 || shape.T > k_max_batch)
        throw InputError(fmt::format("moe_decode batch T={} is outside 1..{}", shape.T, k_max_batch));
    if (shape.H < 1 || shape.I < 1 || shape.E < 1 || shape.K < 1 || shape.K > shape.E)
        throw InputError(fmt::format("moe_decode shape H={} I={} E={} K={} needs positive sizes and K <= E", shape.H,
                                     shape.I, shape.E, shape.K));
    if (shape.activation != NS_ACT_SILU && shape.activation != NS_ACT_GELU_TANH)
        throw InputError(fmt::format("moe_decode activation {} is not silu or gelu_tanh", shape.activation));
}

void check_scale(int scale_log2) {
    if (scale_log2 < NS_RNG_MIN_SCALE_LOG2 || scale_log2 > NS_RNG_MAX_SCALE_LOG2)
        throw InputError(fmt::format("scale 2^{} is outside the exact range of ns_rng_bf16 (2^{}..2^{})", scale_log2,
                                     NS_RNG_MIN_SCALE_LOG2, NS_RNG_MAX_SCALE_LOG2));
}

// Box-Muller on the two 32-bit halves of one draw. The +0.5 keeps u1 in
// (0,1) so the log is finite; 32 bits each are plenty for routing logits.
double standard_normal(unsigned long long seed, unsigned long long index) {
    const unsigned long long r = ns_rng_u64(seed, NS_STREAM_ROUTING, index);
    const double u1 = (static_cast<double>(r >> 32) + 0.5) * 0x1p-32;
    const double u2 = static_cast<double>(r & 0xFFFFFFFFULL) * 0x1p-32;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

std::vector<double> token_logits(const Shape& shape, unsigned long long seed, int t) {
    std::vector<double> logits(shape.E);
    for (int e = 0; e < shape.E; ++e)
        logits[e] = standard_normal(seed, static_cast<unsigned long long>(t) * shape.E + e);
    return logits;
}

// rank[e] of every expert under a seeded Fisher-Yates shuffle.
std::vector<int> expert_ranks(const Shape& shape, unsigned long long seed) {
    std::vector<int> order(shape.E);
    std::iota(order.begin(), order.end(), 0);
    for (int j = shape.E - 1; j > 0; --j) {
        // Modulo bias is below 2^-50 for E <= 2^14: irrelevant here.
        const unsigned long long r = ns_rng_u64(seed, NS_STREAM_ROUTING, k_permutation_index_base + j);
        std::swap(order[j], order[static_cast<int>(r % static_cast<unsigned long long>(j + 1))]);
    }
    std::vector<int> rank(shape.E);
    for (int position = 0; position < shape.E; ++position)
        rank[order[position]] = position;
    return rank;
}

std::vector<double> softmax(const std::vector<double>& logits) {
    const double max = *std::max_element(logits.begin(), logits.end());
    std::vector<double> p(logits.size());
    double sum = 0.0;
    for (size_t e = 0; e < logits.size(); ++e) {
        p[e] = std::exp(logits[e] - max);
        sum += p[e];
    }
    for (double& v : p)
        v /= sum;
    return p;
}

// Descending probability, ties to the lower expert index, so the order is a
// total order and the routing is reproducible.
auto by_probability(const std::vector<double>& p) {
    return [&p](int a, int b) { return p[a] != p[b] ? p[a] > p[b] : a < b; };
}

std::vector<int> top_k(const std::vector<double>& p, int K) {
    std::vector<int> experts(p.size());
    std::iota(experts.begin(), experts.end(), 0);
    std::partial_sort(experts.begin(), experts.begin() + K, experts.end(), by_probability(p));
    experts.resize(K);
    return experts;
}

} // namespace

Shape make_shape(const Preset& preset, int T, std::string_view format) {
    if (T < 1 || T > k_max_batch)
        throw InputError(
            fmt::format("moe_decode batch T={} is outside 1..{} (preset {})", T, k_max_batch, preset.name));
    Shape shape{T, preset.H, preset.I, preset.E, preset.K, preset.activation, weight_format(format)};
    check_shape(shape);
    return shape;
}

std::string to_string(RoutingKind kind) {
    switch (kind) {
    case RoutingKind::uniform:
        return "uniform";
    case RoutingKind::zipf:
        return "zipf";
    case RoutingKind::identical:
        return "identical";
    case RoutingKind::one_expert:
        return "one_expert";
    }
    return fmt::format("RoutingKind({})", static_cast<int>(kind));
}

RoutingKind parse_routing_kind(std::string_view name) {
    for (RoutingKind kind : {RoutingKind::uniform, RoutingKind::zipf, RoutingKind::identical, RoutingKind::one_expert})
        if (to_string(kind) == name) return kind;
    throw InputError(fmt::format("unknown routing '{}'; valid: uniform, zipf, identical, one_expert", name));
}

Routing make_routing(const Shape& shape, unsigned long long seed, RoutingKind kind) {
    check_shape(shape);
    std::vector<double> bias(shape.E, 0.0);
    if (kind == RoutingKind::zipf) {
        const std::vector<int> rank = expert_ranks(shape, seed);
        for (int e = 0; e < shape.E; ++e)
            bias[e] = -k_zipf_exponent * std::log(static_cast<double>(rank[e] + 1));
    }
    // identical: token 0 picks the experts; every token then weighs that same
    // set by its own probabilities.
    std::vector<int> shared_experts;
    if (kind == RoutingKind::identical) shared_experts = top_k(softmax(token_logits(shape, seed, 0)), shape.K);

    Routing routing;
    routing.ids.resize(static_cast<size_t>(shape.T) * shape.K);
    routing.weights.resize(routing.ids.size());
    for (int t = 0; t < shape.T; ++t) {
        std::vector<double> logits = token_logits(shape, seed, t);
        for (int e = 0; e < shape.E; ++e)
            logits[e] += bias[e];
        if (kind == RoutingKind::one_expert) {
            // One expert (chosen by the seed) is every token's top-1, just
            // ahead of the token's own best, so the other K-1 still weigh in.
            int hot = static_cast<int>(ns_rng_u64(seed, NS_STREAM_ROUTING, ~0ull) % static_cast<unsigned>(shape.E));
            logits[hot] = *std::max_element(logits.begin(), logits.end()) + 0.5;
        }
        const std::vector<double> p = softmax(logits);
        std::vector<int> chosen;
        if (kind == RoutingKind::identical) {
            chosen = shared_experts;
            std::sort(chosen.begin(), chosen.end(), by_probability(p));
        } else {
            chosen = top_k(p, shape.K);
        }
        double sum = 0.0;
        for (int e : chosen)
            sum += p[e];
        for (int k = 0; k < shape.K; ++k) {
            const size_t slot = static_cast<size_t>(t) * shape.K + k;
            routing.ids[slot] = chosen[k];
            routing.weights[slot] = static_cast<float>(p[chosen[k]] / sum);
        }
    }
    return routing;
}

int x_scale_log2() {
    return 0;
}

int gate_up_scale_log2(const Shape& shape) {
    return -static_cast<int>(std::lround(0.5 * std::log2(static_cast<double>(shape.H))));
}

int down_scale_log2(const Shape& shape) {
    return -static_cast<int>(std::lround(0.5 * std::log2(static_cast<double>(shape.I))));
}

std::vector<uint16_t> make_x(const Shape& shape, unsigned long long seed, int scale_log2) {
    check_shape(shape);
    check_scale(scale_log2);
    std::vector<uint16_t> x(static_cast<size_t>(shape.T) * shape.H);
    for (size_t i = 0; i < x.size(); ++i)
        x[i] = ns_rng_bf16(seed, NS_STREAM_X, i, scale_log2);
    return x;
}

ExpertWeights make_expert_weights(const Shape& shape, unsigned long long seed, int expert) {
    check_shape(shape);
    if (expert < 0 || expert >= shape.E) throw InputError(fmt::format("expert {} is outside [0,{})", expert, shape.E));
    const int gate_up_scale = gate_up_scale_log2(shape);
    const int down_scale = down_scale_log2(shape);
    check_scale(gate_up_scale);
    check_scale(down_scale);

    // One expert's slice is contiguous in both layouts: it starts at
    // expert * I * H in [E,I,H] and in [E,H,I] alike.
    const size_t count = static_cast<size_t>(shape.I) * shape.H;
    const unsigned long long base = static_cast<unsigned long long>(expert) * count;
    ExpertWeights weights;
    weights.gate.resize(count);
    weights.up.resize(count);
    weights.down.resize(count);
    for (size_t i = 0; i < count; ++i) {
        weights.gate[i] = ns_rng_bf16(seed, NS_STREAM_W_GATE, base + i, gate_up_scale);
        weights.up[i] = ns_rng_bf16(seed, NS_STREAM_W_UP, base + i, gate_up_scale);
        weights.down[i] = ns_rng_bf16(seed, NS_STREAM_W_DOWN, base + i, down_scale);
    }
    return weights;
}

} // namespace nightshift::verifier::moe_decode
