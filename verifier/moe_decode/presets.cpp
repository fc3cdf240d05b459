#include "verifier/moe_decode/presets.h"

#include <fmt/format.h>

#include "harness/core/error.h"
#include "kernels_seed/moe_decode/params.h"

namespace nightshift::verifier::moe_decode {

const std::vector<Preset>& presets() {
    // Only the routed experts: a shared expert (DeepSeek-V3 has one) is a
    // dense MLP every token takes, outside this op.
    static const std::vector<Preset> k_presets = {
        {"gemma4-26b-a4b", 2816, 704, 128, 8, NS_ACT_GELU_TANH, "Gemma 4 26B-A4B"},
        {"qwen3-30b-a3b", 2048, 768, 128, 8, NS_ACT_SILU, "Qwen3-30B-A3B"},
        {"qwen3.5-35b-a3b", 2048, 512, 256, 8, NS_ACT_SILU, "Qwen3.5-35B-A3B"},
        {"phi3.5-moe", 4096, 6400, 16, 2, NS_ACT_SILU, "Phi-3.5-MoE"},
        {"mixtral-8x7b", 4096, 14336, 8, 2, NS_ACT_SILU, "Mixtral 8x7B"},
        {"deepseek-v3", 7168, 2048, 256, 8, NS_ACT_SILU, "DeepSeek-V3 (routed experts only)"},
        {"gpt-oss-20b", 2880, 2880, 32, 4, NS_ACT_SILU,
         "gpt-oss-20b; the real model uses a clamped SwiGLU variant with interleaved "
         "gate/up; modelled as silu"},
        {"olmoe-1b-7b", 2048, 1024, 64, 8, NS_ACT_SILU, "OLMoE-1B-7B"},
        {"tiny", 64, 32, 8, 2, NS_ACT_SILU, "not a model: a tiny shape for tests"},
        {"tiny-gelu", 96, 48, 6, 3, NS_ACT_GELU_TANH,
         "not a model: a tiny gelu_tanh shape for tests (K odd, E not a power of two)"},
    };
    return k_presets;
}

const Preset& find_preset(std::string_view name) {
    std::string valid;
    for (const Preset& preset : presets()) {
        if (preset.name == name) return preset;
        valid += valid.empty() ? "" : ", ";
        valid += preset.name;
    }
    throw InputError(fmt::format("unknown moe_decode preset '{}'; valid presets: {}", name, valid));
}

} // namespace nightshift::verifier::moe_decode
