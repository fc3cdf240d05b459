// Model shapes for moe_decode: the expert dimensions of real MoE checkpoints,
// so every timing is at a shape someone deploys, plus two tiny shapes that
// exist only to keep the tests fast.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace nightshift::verifier::moe_decode {

// Decode batches: one token per sequence, up to a large serving batch.
constexpr int k_max_batch = 512;

struct Preset {
    std::string name;
    int H;          // hidden size
    int I;          // expert intermediate size
    int E;          // routed experts
    int K;          // experts per token
    int activation; // NsActivation
    std::string note;
};

// The table, in a fixed order (models first, then the test shapes).
const std::vector<Preset>& presets();

// Throws InputError listing the valid names.
const Preset& find_preset(std::string_view name);

} // namespace nightshift::verifier::moe_decode
