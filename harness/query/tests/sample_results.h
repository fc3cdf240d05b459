// A small results.db with what a night leaves behind, for the tests of the
// morning-after commands: one run on an H100, two loops, three kernels (two
// seeds and a child), problems at two batches and two weight formats, verified
// rows with timings, failures of three kinds, and findings.
#pragma once

#include "harness/store/store.h"
#include "harness/store/tests/temp_database.h"

#include <fmt/format.h>

#include <cstdint>

namespace nightshift::query {

struct SampleIds {
    std::int64_t run = 0, loop0 = 0, loop1 = 0;
    std::int64_t warp = 0, expert = 0, child = 0;     // kernels
    std::int64_t b1 = 0, b8 = 0, b1_int8 = 0;         // problems
    std::int64_t best_b1 = 0, best_b8 = 0, wrong = 0; // experiments
};

inline store::ExperimentRecord sample_row(const SampleIds& ids, std::int64_t loop, std::int64_t problem,
                                          std::int64_t kernel, std::string knobs, std::optional<double> median_us,
                                          evaluate::Status status = evaluate::Status::ok) {
    static int counter = 0;
    store::ExperimentRecord e;
    e.run_id = ids.run;
    e.loop_id = loop;
    e.problem_id = problem;
    e.kernel_id = kernel;
    e.candidate_key = fmt::format("key{}", ++counter);
    e.knobs_json = std::move(knobs);
    e.compile_options_json = R"(["--gpu-architecture=sm_90","--std=c++17","-Xptxas=-v","-I/nowhere/moe_decode","-DNS_T=1"])";
    e.status = status;
    e.seed = -5; // a seed above 2^63, stored by its bit pattern
    e.verification_seed = 77;
    e.repetitions = 50;
    e.warmup = 5;
    if (status == evaluate::Status::ok && median_us) {
        e.median_us = *median_us;
        e.min_us = *median_us * 0.98;
        e.q1_us = *median_us * 0.99;
        e.q3_us = *median_us * 1.01;
        e.cv = 0.01;
        e.samples_json = fmt::format("[{},{}]", *median_us, *median_us);
        e.copy_floor_us = 40.0;
        e.fraction_of_floor = 40.0 / *median_us;
        e.rel_l2 = 0.004;
        e.timing_method = "cupti";
        e.baseline_median_us = 100.0;
        e.speedup = 100.0 / *median_us;
    } else {
        e.message = fmt::format("failed as {}", evaluate::to_string(status));
    }
    return e;
}

class SampleResults : public store::TempDatabase {
protected:
    void SetUp() override {
        store::TempDatabase::SetUp();
        store::Store db = store::Store::open(file());
        store::RunRecord run;
        run.host = "gpu-host";
        run.device = "NVIDIA H100 80GB HBM3";
        run.driver = "580.159.04";
        run.nvrtc = "13.0";
        run.copy_gb_per_s = 3000;
        ids.run = db.begin_run(run);
        ids.loop0 = db.add_loop(ids.run, 0, "tuner", "exhaustive", "warp decode");
        ids.loop1 = db.add_loop(ids.run, 1, "tuner", "exhaustive", "expert centric");
        auto kernel = [&](std::string path, std::string source, std::string origin, std::optional<std::int64_t> parent) {
            store::KernelRecord k;
            k.path = std::move(path);
            k.source = std::move(source);
            k.origin = std::move(origin);
            k.op = "moe_decode";
            k.parent_id = parent;
            return db.kernel_id(k);
        };
        ids.warp = kernel("kernels_seed/moe_decode/warp_decode_v1.cu", "// warp\n", "seed", std::nullopt);
        ids.expert = kernel("kernels_seed/moe_decode/expert_centric_v1.cu", "// expert\n", "seed", std::nullopt);
        ids.child = kernel("kernels/warp_decode_v2.cu", "// warp v2\n", "llm", ids.warp);
        ids.b1 = db.problem_id({"moe_decode", "gemma4-26b-a4b", 1, "bf16", "uniform"});
        ids.b8 = db.problem_id({"moe_decode", "gemma4-26b-a4b", 8, "bf16", "uniform"});
        ids.b1_int8 = db.problem_id({"moe_decode", "gemma4-26b-a4b", 1, "int8_row", "uniform"});
        using evaluate::Status;
        db.add_experiment(sample_row(ids, ids.loop1, ids.b1, ids.expert, R"({"TILE_M":16})", 100.0));
        db.add_experiment(sample_row(ids, ids.loop0, ids.b1, ids.warp, R"({"WARPS":4})", 60.0));
        auto best1 = sample_row(ids, ids.loop0, ids.b1, ids.child, R"({"WARPS":8})", 50.0);
        best1.baseline_kernel_id = ids.expert;
        best1.baseline_knobs_json = R"({"TILE_M":16})";
        ids.best_b1 = db.add_experiment(best1);
        db.add_experiment(sample_row(ids, ids.loop1, ids.b8, ids.expert, R"({"TILE_M":16})", 80.0));
        ids.best_b8 = db.add_experiment(sample_row(ids, ids.loop0, ids.b8, ids.warp, R"({"WARPS":4})", 70.0));
        auto int8 = sample_row(ids, ids.loop0, ids.b1_int8, ids.warp, R"({"WARPS":4})", 35.0);
        int8.rel_l2 = 0.02;
        db.add_experiment(int8);
        ids.wrong = db.add_experiment(sample_row(ids, ids.loop0, ids.b8, ids.child, R"({"WARPS":2})", std::nullopt,
                                                 Status::wrong_answer));
        db.add_experiment(sample_row(ids, ids.loop0, ids.b8, ids.child, R"({"WARPS":1})", std::nullopt,
                                     Status::wrong_answer));
        db.add_experiment(sample_row(ids, ids.loop1, ids.b8, ids.expert, R"({"TILE_M":64})", std::nullopt,
                                     Status::compile_error));
        db.add_finding(ids.run, ids.loop0, ids.b1, "best", "warp_decode_v2 WARPS=8 is fastest at B=1", {ids.best_b1});
        db.add_finding(ids.run, std::nullopt, std::nullopt, "bandwidth", "near the copy floor", {ids.best_b1, ids.best_b8});
        db.finish_run(ids.run, "finished");
    }

    SampleIds ids;
};

} // namespace nightshift::query
