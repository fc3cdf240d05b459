#include "harness/cuda/cupti.h"
#include "harness/cuda/driver_api.h"

#include <cupti_result.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace nightshift::cuda {
namespace {

constexpr const char* k_flush = "nightshift_l2_flush";
constexpr const char* k_spin = "nightshift_spin";

KernelRecord kernel(std::string name, unsigned long long start_ns, unsigned long long end_ns, unsigned stream = 7) {
    static unsigned correlation = 0;
    return KernelRecord{.name = std::move(name),
                        .start_ns = start_ns,
                        .end_ns = end_ns,
                        .stream_id = stream,
                        .correlation_id = ++correlation};
}

// CI has neither CUPTI nor a driver; a developer machine may have CUPTI (it
// ships with the toolkit) but no driver. Either way the answers must agree
// and say why.
TEST(CuptiLoader, AvailabilityIsConsistentAndExplained) {
    std::string why;
    bool available = cupti_available(&why);
    std::string again;
    EXPECT_EQ(cupti_available(&again), available);
    EXPECT_EQ(again, why);
    std::string version_why;
    auto version = cupti_version(&version_why);
    if (available) {
        EXPECT_TRUE(why.empty()) << why;
        ASSERT_TRUE(version.has_value()) << version_why;
        EXPECT_GT(*version, 0u);
    } else {
        EXPECT_FALSE(why.empty());
        EXPECT_NE(why.find("CUPTI"), std::string::npos) << why;
        EXPECT_FALSE(version.has_value());
        EXPECT_EQ(version_why, why);
    }
}

TEST(CuptiLoader, ExplainsAMissingLibraryAndMissingFunctions) {
    std::string missing = detail::cupti_load_error("/nonexistent/libcupti.so.13");
    EXPECT_NE(missing.find("CUPTI not found"), std::string::npos) << missing;
    EXPECT_NE(missing.find("/nonexistent/libcupti.so.13"), std::string::npos) << missing;

    // A real library that is not CUPTI: every function it lacks is named.
    std::string wrong = detail::cupti_load_error("libm.so.6");
    EXPECT_NE(wrong.find("libm.so.6"), std::string::npos) << wrong;
    EXPECT_NE(wrong.find("cuptiActivityEnable"), std::string::npos) << wrong;
    EXPECT_NE(wrong.find("cuptiActivityGetNextRecord"), std::string::npos) << wrong;
}

TEST(CuptiKernelActivity, WithoutCuptiOrDriverThrowsATypedError) {
    if (cupti_available() && driver_available()) GTEST_SKIP() << "CUPTI and a driver are here: see CuptiGpu";
    for (int attempt = 0; attempt < 2; ++attempt) { // a failed construction claims nothing
        try {
            KernelActivity activity;
            FAIL() << "a KernelActivity was made without CUPTI or a driver";
        } catch (const CuptiError& e) {
            std::string message = e.what();
            EXPECT_EQ(message.find("another KernelActivity"), std::string::npos) << message;
            EXPECT_TRUE(message.find("CUPTI") != std::string::npos || message.find("driver") != std::string::npos)
                << message;
            EXPECT_EQ(e.code(), 0);
        }
    }
}

CUptiResult failing_call() { return CUPTI_ERROR_INVALID_PARAMETER; }
CUptiResult succeeding_call() { return CUPTI_SUCCESS; }

TEST(CuptiCheck, NamesTheCallTheResultTheFileAndLine) {
    EXPECT_NO_THROW(NS_CUPTI_CHECK(succeeding_call()));
    try {
        NS_CUPTI_CHECK(failing_call());
        FAIL() << "no throw";
    } catch (const CuptiError& e) {
        std::string message = e.what();
        EXPECT_EQ(e.code(), CUPTI_ERROR_INVALID_PARAMETER);
        EXPECT_NE(message.find("failing_call()"), std::string::npos) << message;
        EXPECT_NE(message.find("test_cupti.cpp:"), std::string::npos) << message;
        if (cupti_available())
            EXPECT_NE(message.find("CUPTI_ERROR_INVALID_PARAMETER"), std::string::npos) << message;
        else
            EXPECT_NE(message.find("CUptiResult 1"), std::string::npos) << message;
    }
    static_assert(std::is_base_of_v<Error, CuptiError>);
    static_assert(std::is_base_of_v<Error, NoCandidateKernelError>);
}

// The spin, then iterations of flush + work, as Timer::time enqueues them.
TEST(CuptiIterations, KernelsOnTwoStreamsInOneIterationSpanBoth) {
    std::vector<KernelRecord> records = {
        kernel(k_spin, 0, 300'000, 1),
        kernel(k_flush, 300'000, 340'000, 1),
        kernel("gemm", 341'000, 351'000, 1),
        kernel("side", 345'000, 362'500, 2), // forked onto a second stream, ends last
        kernel(k_flush, 370'000, 410'000, 1),
        kernel("gemm", 411'000, 421'000, 1),
        kernel("side", 412'000, 419'000, 2),
    };
    auto durations = iteration_durations_us(records, k_flush, k_spin);
    ASSERT_EQ(durations.size(), 2u);
    EXPECT_DOUBLE_EQ(durations[0], 21.5); // 341,000 .. 362,500 ns
    EXPECT_DOUBLE_EQ(durations[1], 10.0); // the main stream's kernel ends last
}

TEST(CuptiIterations, OverlappingKernelsCountFromEarliestStartToLatestEnd) {
    std::vector<KernelRecord> records = {
        kernel(k_flush, 1'000, 2'000),
        kernel("long", 2'500, 9'500, 1),
        kernel("inside", 3'000, 4'000, 2), // starts last, ends early: not the iteration's end
        kernel("short", 2'600, 2'700, 3),
    };
    auto durations = iteration_durations_us(records, k_flush, k_spin);
    ASSERT_EQ(durations.size(), 1u);
    EXPECT_DOUBLE_EQ(durations[0], 7.0);
}

TEST(CuptiIterations, AnIterationWithoutACandidateKernelIsAnError) {
    std::vector<KernelRecord> records = {
        kernel(k_flush, 1'000, 2'000),
        kernel("work", 2'100, 2'300),
        kernel(k_flush, 3'000, 4'000),
        kernel(k_spin, 4'100, 4'200), // harness kernels never stand in for the work
        kernel(k_flush, 5'000, 6'000),
        kernel("work", 6'100, 6'300),
    };
    try {
        iteration_durations_us(records, k_flush, k_spin);
        FAIL() << "an empty iteration was timed";
    } catch (const NoCandidateKernelError& e) {
        EXPECT_NE(std::string(e.what()).find("iteration 1"), std::string::npos) << e.what();
    }
    // The last iteration empty too.
    records.pop_back();
    records.erase(records.begin() + 3);
    records.erase(records.begin() + 2);
    EXPECT_THROW(iteration_durations_us(records, k_flush, k_spin), NoCandidateKernelError);
}

TEST(CuptiIterations, RecordsInAnyOrderGiveTheSameDurations) {
    std::vector<KernelRecord> records;
    for (unsigned long long i = 0; i < 20; ++i) {
        unsigned long long base = 1'000'000 + i * 100'000;
        records.push_back(kernel(k_flush, base, base + 40'000));
        records.push_back(kernel("a", base + 41'000, base + 41'000 + 1'000 * (i + 1), 1));
        records.push_back(kernel("b", base + 42'000, base + 45'000, 2));
    }
    records.push_back(kernel(k_spin, 0, 900'000));
    auto expected = iteration_durations_us(records, k_flush, k_spin);
    ASSERT_EQ(expected.size(), 20u);
    EXPECT_DOUBLE_EQ(expected[0], 4.0);  // b ends last
    EXPECT_DOUBLE_EQ(expected[9], 10.0); // a runs 10 µs
    std::mt19937 random(1234);
    for (int round = 0; round < 5; ++round) {
        std::shuffle(records.begin(), records.end(), random);
        EXPECT_EQ(iteration_durations_us(records, k_flush, k_spin), expected);
    }
}

TEST(CuptiIterations, KernelsBeforeTheFirstFlushBelongToNoIteration) {
    EXPECT_TRUE(iteration_durations_us({}, k_flush, k_spin).empty());
    EXPECT_TRUE(iteration_durations_us({kernel(k_spin, 0, 10), kernel("early", 20, 30)}, k_flush, k_spin).empty());
    std::vector<KernelRecord> records = {
        kernel("early", 0, 50'000),
        kernel(k_flush, 10'000, 20'000),
        kernel("work", 21'000, 23'000),
    };
    auto durations = iteration_durations_us(records, k_flush, k_spin);
    ASSERT_EQ(durations.size(), 1u);
    EXPECT_DOUBLE_EQ(durations[0], 2.0);
}

TEST(CuptiIterations, AKernelStartingWithTheFlushBelongsToTheIterationItOpens) {
    std::vector<KernelRecord> records = {
        kernel(k_flush, 1'000, 2'000),
        kernel("work", 2'000, 3'000),
        kernel("work", 5'000, 6'000), // listed before the flush that starts with it
        kernel(k_flush, 5'000, 5'500),
        kernel("work", 5'600, 6'500),
    };
    auto durations = iteration_durations_us(records, k_flush, k_spin);
    ASSERT_EQ(durations.size(), 2u);
    EXPECT_DOUBLE_EQ(durations[0], 1.0);
    EXPECT_DOUBLE_EQ(durations[1], 1.5);
}

} // namespace
} // namespace nightshift::cuda
