#include "verifier/moe_decode/presets.h"

#include <set>
#include <string>

#include <gtest/gtest.h>

#include "harness/core/error.h"
#include "kernels_seed/moe_decode/params.h"

namespace nightshift::verifier::moe_decode {
namespace {

struct Expected {
    const char* name;
    int H, I, E, K, activation;
};

TEST(PresetsTest, TableHasTheModelShapes) {
    const Expected expected[] = {
        {"gemma4-26b-a4b", 2816, 704, 128, 8, NS_ACT_GELU_TANH},
        {"qwen3-30b-a3b", 2048, 768, 128, 8, NS_ACT_SILU},
        {"qwen3.5-35b-a3b", 2048, 512, 256, 8, NS_ACT_SILU},
        {"phi3.5-moe", 4096, 6400, 16, 2, NS_ACT_SILU},
        {"mixtral-8x7b", 4096, 14336, 8, 2, NS_ACT_SILU},
        {"deepseek-v3", 7168, 2048, 256, 8, NS_ACT_SILU},
        {"gpt-oss-20b", 2880, 2880, 32, 4, NS_ACT_SILU},
        {"olmoe-1b-7b", 2048, 1024, 64, 8, NS_ACT_SILU},
        {"tiny", 64, 32, 8, 2, NS_ACT_SILU},
        {"tiny-gelu", 96, 48, 6, 3, NS_ACT_GELU_TANH},
    };
    ASSERT_EQ(presets().size(), std::size(expected));
    for (const Expected& e : expected) {
        SCOPED_TRACE(e.name);
        const Preset& p = find_preset(e.name);
        EXPECT_EQ(p.name, e.name);
        EXPECT_EQ(p.H, e.H);
        EXPECT_EQ(p.I, e.I);
        EXPECT_EQ(p.E, e.E);
        EXPECT_EQ(p.K, e.K);
        EXPECT_EQ(p.activation, e.activation);
        EXPECT_FALSE(p.note.empty());
    }
    EXPECT_EQ(k_max_batch, 512);
}

TEST(PresetsTest, NamesAreUniqueAndShapesSane) {
    std::set<std::string> names;
    for (const Preset& p : presets()) {
        EXPECT_TRUE(names.insert(p.name).second) << p.name;
        EXPECT_GT(p.H, 0);
        EXPECT_GT(p.I, 0);
        EXPECT_GE(p.E, p.K);
        EXPECT_GT(p.K, 0);
    }
}

TEST(PresetsTest, TinyPresetsSayTheyAreNotModels) {
    for (const char* name : {"tiny", "tiny-gelu"}) {
        const Preset& p = find_preset(name);
        EXPECT_NE(p.note.find("not a model"), std::string::npos) << name;
        EXPECT_NE(p.note.find("test"), std::string::npos) << name;
    }
    EXPECT_EQ(find_preset("mixtral-8x7b").note.find("not a model"), std::string::npos);
}

TEST(PresetsTest, GptOssNoteExplainsTheModelledActivation) {
    EXPECT_NE(find_preset("gpt-oss-20b").note.find("clamped SwiGLU"), std::string::npos);
}

TEST(PresetsTest, UnknownNameListsValidOnes) {
    try {
        find_preset("mixtral-8x22b");
        FAIL() << "expected InputError";
    } catch (const InputError& error) {
        const std::string message = error.what();
        EXPECT_NE(message.find("mixtral-8x22b"), std::string::npos) << message;
        for (const Preset& p : presets())
            EXPECT_NE(message.find(p.name), std::string::npos) << message;
    }
    EXPECT_THROW(find_preset(""), InputError);
    EXPECT_THROW(find_preset("Tiny"), InputError); // names are exact
}

} // namespace
} // namespace nightshift::verifier::moe_decode
