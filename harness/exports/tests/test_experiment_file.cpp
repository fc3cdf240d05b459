#include "harness/exports/experiment_file.h"

#include "harness/core/error.h"
#include "harness/query/results_db.h"
#include "harness/query/tests/sample_results.h"

#include <gtest/gtest.h>

#include <fstream>

namespace nightshift::exports {
namespace {

class ExperimentFile : public query::SampleResults {};

TEST_F(ExperimentFile, RecordCarriesWhatReplayNeeds) {
    store::Store db = query::open_results(file());
    nlohmann::json record = experiment_json(db, ids.best_b1);
    EXPECT_EQ(record["kernel"]["source"], "// warp v2\n");
    EXPECT_EQ(record["baseline"]["source"], "// expert\n");
    EXPECT_EQ(record["baseline"]["knobs"]["TILE_M"], 16);
    EXPECT_EQ(record["seeds"]["input"].get<std::uint64_t>(), 18446744073709551611ull) << "-5 as its bit pattern";
    EXPECT_EQ(record["environment"]["device"], "NVIDIA H100 80GB HBM3");
    EXPECT_EQ(record["compile_options"][0], "--gpu-architecture=sm_90");
    EXPECT_EQ(record["timing"]["median_us"], 50.0);
    EXPECT_EQ(file_name(record), fmt::format("{}_h100_gemma4-26b-a4b_b1_bf16_warp_decode_v2_e{}.json",
                                             record["experiment"]["created_at"].get<std::string>().substr(0, 10),
                                             ids.best_b1));
}

TEST_F(ExperimentFile, WrittenFileReadsBackAsTheStoreDoes) {
    store::Store db = query::open_results(file());
    auto path = write_record(experiment_json(db, ids.best_b1), file("experiments").string());
    RecordedExperiment from_file = load_recorded(path);
    RecordedExperiment from_store = load_recorded(db, ids.best_b1);
    EXPECT_EQ(from_file.kernel_source, from_store.kernel_source);
    EXPECT_EQ(from_file.compile_options, from_store.compile_options);
    EXPECT_EQ(from_file.input_seed, std::optional<std::uint64_t>(18446744073709551611ull));
    EXPECT_EQ(from_file.verification_seed, std::optional<std::uint64_t>(77));
    EXPECT_EQ(from_file.median_us, std::optional<double>(50.0));
    EXPECT_EQ(from_file.problem, (store::ProblemKey{"moe_decode", "gemma4-26b-a4b", 1, "bf16", "uniform"}));
    EXPECT_EQ(from_file.baseline_path, std::optional<std::string>("kernels_seed/moe_decode/expert_centric_v1.cu"));
    EXPECT_THROW(write_record(experiment_json(db, ids.best_b1), file("experiments").string()), IoError)
        << "never overwritten";
}

TEST_F(ExperimentFile, BadInputIsAClearError) {
    store::Store db = query::open_results(file());
    EXPECT_THROW(experiment_json(db, 12345), InputError);
    auto bad = file("bad.json");
    std::ofstream(bad) << R"({"format": "nightshift-experiment", "version": 1, "experiment": {"id": 1}})";
    try {
        load_recorded(bad);
        FAIL() << "a record without its fields must not load";
    } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find("missing field 'experiment/created_at'"), std::string::npos) << e.what();
    }
    std::ofstream(file("newer.json")) << R"({"format": "nightshift-experiment", "version": 99})";
    EXPECT_THROW(load_recorded(file("newer.json")), InputError);
    std::ofstream(file("text.json")) << "not json";
    EXPECT_THROW(load_recorded(file("text.json")), InputError);
}

} // namespace
} // namespace nightshift::exports
