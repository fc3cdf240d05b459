// One moe_decode problem: its shape, its routing and its synthetic inputs.
//
// Inputs are never stored: x and every expert weight are pure functions of
// (seed, stream, flat index) through ns_rng_bf16 (verifier/rng.h). The device
// fills the full tensors with generate.cu's fill_bf16, and the host
// regenerates only the slices the CPU reference needs. For the two to agree,
// the device must be given the same streams and scales as the host uses:
//
//   x       [T,H]    NS_STREAM_X       x_scale_log2()
//   w_gate  [E,I,H]  NS_STREAM_W_GATE  gate_up_scale_log2(shape)
//   w_up    [E,I,H]  NS_STREAM_W_UP    gate_up_scale_log2(shape)
//   w_down  [E,H,I]  NS_STREAM_W_DOWN  down_scale_log2(shape)
//
// Routing is small ([T,K]) and generated on the host only, then uploaded.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "verifier/moe_decode/presets.h"

namespace nightshift::verifier::moe_decode {

struct Shape {
    int T, H, I, E, K;
    int activation; // NsActivation
    int format = 0; // NsWeightFormat of the expert weights (0: bf16)
};

// Throws InputError if T is outside 1..k_max_batch, or the format is unknown
// (see weight_format in quantized.h).
Shape make_shape(const Preset& preset, int T, std::string_view format = "bf16");

// Values are persisted with every verification: never renumber.
enum class RoutingKind {
    // Softmax top-K of standard-normal logits: experts evenly loaded.
    uniform = 0,
    // Logits plus a Zipf bias -s*ln(rank+1), s = 1.2, with expert ranks from
    // a seeded permutation: a few experts take most tokens (real routers
    // are skewed, and per-expert kernels then see ragged groups).
    zipf = 1,
    // Every token routed to the same K experts, each with its own weights:
    // the extreme of skew, and the case where dedup across tokens pays most.
    identical = 2,
    // One expert, chosen by the seed, is every token's top-1: the heaviest
    // load one expert can get while the other K-1 still matter.
    one_expert = 3,
};

std::string to_string(RoutingKind kind);
// Throws InputError listing the valid names.
RoutingKind parse_routing_kind(std::string_view name);

struct Routing {
    std::vector<int32_t> ids;   // [T,K], distinct per token, by descending weight
    std::vector<float> weights; // [T,K], positive, each row sums to 1 (in double, before rounding to float)
};

// Deterministic in (shape.T, shape.E, shape.K, seed, kind). Logits come from
// ns_rng_u64 on NS_STREAM_ROUTING at index t*E + e through Box-Muller (host
// libm, which is fine: routing is generated on the host only).
Routing make_routing(const Shape& shape, unsigned long long seed, RoutingKind kind);

// Scales (as powers of two) that keep every stage near unit size: x has
// std ~0.58, each gate/up row dots H terms so its weights are scaled by
// ~1/sqrt(H), and down by ~1/sqrt(I). Powers of two keep generation exact.
int x_scale_log2();
int gate_up_scale_log2(const Shape& shape);
int down_scale_log2(const Shape& shape);

// x [T,H] exactly as fill_bf16(x, T*H, seed, NS_STREAM_X, scale_log2) writes it.
std::vector<uint16_t> make_x(const Shape& shape, unsigned long long seed, int scale_log2);

// One expert's weights: gate and up [I,H], down [H,I].
struct ExpertWeights {
    std::vector<uint16_t> gate, up, down;
};

// Bit for bit the slice [expert] of the full tensors that fill_bf16 writes
// (same flat indices into [E,I,H] and [E,H,I], the streams and scales above).
// Throws InputError if expert is outside [0,E).
ExpertWeights make_expert_weights(const Shape& shape, unsigned long long seed, int expert);

} // namespace nightshift::verifier::moe_decode
