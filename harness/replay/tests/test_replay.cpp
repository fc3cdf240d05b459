#include "harness/replay/replay.h"

#include <gtest/gtest.h>

namespace nightshift::replay {
namespace {

exports::RecordedExperiment recorded_ok() {
    exports::RecordedExperiment r;
    r.status = "ok";
    r.kernel_path = "kernels_seed/moe_decode/warp_decode_v1.cu";
    r.kernel_source = "// k\n";
    r.compile_options = {"--gpu-architecture=sm_90", "--std=c++17", "-Xptxas=-v", "-I/nowhere/a", "-I/nowhere/b",
                         "-I/tmp", "-DNS_T=8", "-DWARPS=4"};
    r.median_us = 100;
    r.cv = 0.01;
    r.speedup = 2.0;
    r.speedup_noise = 0.02;
    r.device = "NVIDIA H100 80GB HBM3";
    r.driver = "580.159.04";
    r.nvrtc = "13.0";
    return r;
}

evaluate::Evaluation now_ok(double median_us, double speedup = 0) {
    evaluate::Evaluation e;
    e.status = evaluate::Status::ok;
    e.timing.median_us = median_us;
    e.timing.cv = 0.01;
    e.speedup = speedup;
    return e;
}

TEST(Replay, RequestKeepsTheRecordedOptionsAndSaysWhatChanged) {
    RebuiltRequest same = rebuild_request(recorded_ok(), "sm_90", "/params");
    EXPECT_EQ(same.request.arch, "sm_90");
    EXPECT_EQ(same.request.options, (std::vector<std::string>{"-DNS_T=8", "-DWARPS=4"}));
    ASSERT_EQ(same.request.include_dirs.size(), 2u) << "two missing folders become one params folder";
    EXPECT_EQ(same.request.include_dirs[0], "/params");
    EXPECT_EQ(same.request.include_dirs[1], "/tmp");
    EXPECT_EQ(same.notes.size(), 2u);
    RebuiltRequest other = rebuild_request(recorded_ok(), "sm_100", "/params");
    EXPECT_EQ(other.request.arch, "sm_100");
    EXPECT_NE(other.notes.front().find("instead of the recorded sm_90"), std::string::npos) << other.notes.front();
}

TEST(Replay, EnvironmentChangesAreNamed) {
    EXPECT_TRUE(environment_changes(recorded_ok(), {"NVIDIA H100 80GB HBM3", "580.159.04", "13.0"}).empty());
    auto changes = environment_changes(recorded_ok(), {"NVIDIA H200", "580.159.04", "13.1"});
    ASSERT_EQ(changes.size(), 2u);
    EXPECT_EQ(changes[0], "GPU: recorded 'NVIDIA H100 80GB HBM3', now 'NVIDIA H200'");
    EXPECT_EQ(changes[1], "NVRTC: recorded '13.0', now '13.1'");
}

TEST(Replay, VerdictFollowsTheDrift) {
    auto r = recorded_ok();
    Judgement same = judge(r, now_ok(103), now_ok(101), false);
    EXPECT_EQ(same.verdict, Verdict::reproduced);
    EXPECT_NEAR(*same.drift.change, 0.03, 1e-12);
    Judgement slower = judge(r, now_ok(120), now_ok(119), false);
    EXPECT_EQ(slower.verdict, Verdict::drifted);
    EXPECT_NE(slower.text.find("+20.0%"), std::string::npos) << slower.text;
    EXPECT_NE(slower.text.find("worse"), std::string::npos) << slower.text;
    // Another GPU: microseconds differ, the speedup against the baseline holds.
    Judgement moved = judge(r, now_ok(70, 1.98), now_ok(70, 1.97), true);
    EXPECT_TRUE(moved.drift.judged_by_speedup);
    EXPECT_EQ(moved.verdict, Verdict::reproduced) << moved.text;
}

TEST(Replay, AFailureNowIsSaidWhicheverSeedsFoundIt) {
    auto r = recorded_ok();
    evaluate::Evaluation wrong;
    wrong.status = evaluate::Status::wrong_answer;
    wrong.message = "max error 3.1";
    Judgement j = judge(r, now_ok(100), wrong, false);
    EXPECT_EQ(j.verdict, Verdict::fails_now);
    EXPECT_NE(j.text.find("fresh seeds: wrong_answer: max error 3.1"), std::string::npos) << j.text;
    // A row recorded as a failure is reproduced by failing the same way.
    r.status = "wrong_answer";
    EXPECT_EQ(judge(r, wrong, wrong, false).verdict, Verdict::reproduced);
    EXPECT_EQ(judge(r, now_ok(90), now_ok(90), false).verdict, Verdict::drifted);
}

} // namespace
} // namespace nightshift::replay
