// A results.db with one run and one loop, to which a test adds experiments of
// real kernel files (their source read from the tree): the night an export
// is made from.
#pragma once

#include "harness/core/paths.h"
#include "harness/query/tests/sample_results.h"

#include <string>

namespace nightshift::exports::testing {

class ExportNight : public store::TempDatabase {
protected:
    static constexpr const char* k_model = "gemma4-26b-a4b";

    void SetUp() override {
        store::TempDatabase::SetUp();
        store::Store db = store::Store::open(file());
        m_ids.run = db.begin_run({});
        m_ids.loop0 = db.add_loop(m_ids.run, 0, "tuner", "exhaustive", "");
    }

    // A verified experiment of the file at `path` (relative to the tree) on
    // k_model at `batch` and `format`, with `knobs` (JSON) and `median_us`.
    std::int64_t add(int batch, const std::string& format, const std::string& path, std::string knobs,
                     double median_us) {
        store::Store db = store::Store::open(file());
        store::KernelRecord k;
        k.path = path;
        k.source = read_text_file(project_root() / path);
        k.origin = "seed";
        const std::int64_t kernel = db.kernel_id(k);
        const std::int64_t problem = db.problem_id({"moe_decode", k_model, batch, format, "uniform"});
        return db.add_experiment(query::sample_row(m_ids, m_ids.loop0, problem, kernel, std::move(knobs), median_us));
    }

private:
    query::SampleIds m_ids;
};

} // namespace nightshift::exports::testing
