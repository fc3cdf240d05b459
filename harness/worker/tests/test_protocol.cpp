#include "harness/worker/protocol.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace nightshift::worker {
namespace {

TEST(Protocol, Base64RoundTripsEveryLengthAndByte) {
    for (std::size_t length = 0; length < 70; ++length) {
        std::vector<char> bytes(length);
        for (std::size_t i = 0; i < length; ++i) bytes[i] = static_cast<char>((i * 37 + length) & 255);
        std::string text = base64_encode(bytes);
        EXPECT_EQ(text.size() % 4, 0u);
        EXPECT_EQ(base64_decode(text), bytes) << length;
    }
    EXPECT_EQ(base64_encode({'M', 'a', 'n'}), "TWFu");
    EXPECT_EQ(base64_encode({'M', 'a'}), "TWE=");
    EXPECT_EQ(base64_encode({'M'}), "TQ==");
}

TEST(Protocol, Base64RejectsGarbage) {
    EXPECT_THROW(base64_decode("abc"), InputError);
    EXPECT_THROW(base64_decode("ab!d"), InputError);
    EXPECT_THROW(base64_decode("TQ==TWFu"), InputError); // padding before the end
}

TEST(Protocol, EvaluateRequestRoundTrips) {
    EvaluateRequest r;
    r.id = 42;
    r.candidate.path = "kernels_seed/moe_decode/warp_decode_v1.cu";
    r.candidate.source = "// @op moe_decode\n";
    r.candidate.knobs = {{"WARPS", 8}};
    r.candidate.compiled.key = "abc";
    r.candidate.compiled.log = "ptxas info    : Compiling entry function 'down' for 'sm_90'\n"
                               "ptxas info    : Used 40 registers, used 0 barriers\n";
    r.candidate.compiled.cubin = {'\x7f', 'E', 'L', 'F', '\0', '\xff'};
    r.problem = {.model = "gemma4-26b-a4b", .batch = 8, .format = "bf16", .seed = 18446744073709551615ull,
                 .distribution = "zipf"};
    r.timing = {.warmup = 2, .repetitions = 9};
    r.time_speed_of_light = false;
    EvaluateRequest back = evaluate_request_from_json(nlohmann::json::parse(to_json(r).dump()));
    EXPECT_EQ(back.id, 42);
    EXPECT_EQ(back.candidate.source, r.candidate.source);
    EXPECT_EQ(back.candidate.knobs, r.candidate.knobs);
    EXPECT_EQ(back.candidate.compiled.cubin, r.candidate.compiled.cubin);
    ASSERT_EQ(back.candidate.compiled.entries.size(), 1u); // resources re-derived from the log
    EXPECT_EQ(back.candidate.compiled.entries[0].registers, 40);
    EXPECT_FALSE(back.baseline.has_value());
    EXPECT_EQ(back.problem.seed, r.problem.seed);
    EXPECT_EQ(back.problem.distribution, "zipf");
    EXPECT_EQ(back.timing.repetitions, 9);
    EXPECT_FALSE(back.time_speed_of_light);
}

TEST(Protocol, MalformedRequestsAreInputErrors) {
    EXPECT_THROW(evaluate_request_from_json(nlohmann::json::parse(R"({"type":"evaluate","id":1})")), InputError);
}

} // namespace
} // namespace nightshift::worker
