// The planted corpus: every verifier/planted/*.cu with an `// expect:` line is
// a moe_decode kernel that hides one hack class (see the comment that opens
// each file) and must be caught by the evaluator for its own reason. The two
// lines the tests read are plain comments, not annotations:
//
//   // planted: <hack class>
//   // expect: <status>[|<status>...] <substring>
//
// The status is one of the Status names (the result must be one of those
// listed); the substring, the rest of the line, must occur (case-sensitive)
// in the evaluation's message, or for compile_error in its message or NVRTC
// log. Files without an expect line (hang_forever.cu, illegal_address.cu)
// take the process down or never return; `run` exercises them, not this file.
//
// PlantedCorpusGpuFiles.EveryFileIsWellFormed needs no GPU (NVRTC only). The evaluations, one test
// per file, skip where no GPU exists. Each evaluates its file on its own
// fresh problem at gemma4-26b-a4b T=3 with quick timing, so the order the
// tests run in does not matter.
#include "harness/evaluate/evaluate.h"

#include "harness/core/paths.h"
#include "harness/cuda/tests/gpu_test_support.h"
#include "harness/evaluate/tests/gpu_harness.h"
#include "verifier/moe_decode/presets.h"
#include "verifier/moe_decode/spec.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace nightshift::evaluate {
namespace {
namespace md = verifier::moe_decode;
using testing::gpu_device;
using testing::test_compiler;

constexpr const char* k_model = "gemma4-26b-a4b";
constexpr int k_batch = 3;
constexpr std::size_t k_min_corpus = 12;

struct Expectation {
    std::filesystem::path path;
    std::string planted;               // the hack class, from `// planted:`
    std::string expect_text;           // the expect line after "expect:", as written
    std::vector<std::string> statuses; // as written; parse_status() checks them
    std::string substring;
    int line = 0;                      // of the expect line, 1-based
};

std::string trim(const std::string& text) {
    auto begin = text.find_first_not_of(" \t\r");
    if (begin == std::string::npos) return {};
    auto end = text.find_last_not_of(" \t\r");
    return text.substr(begin, end - begin + 1);
}

// The value of a `// key: value` comment line, if `line` is one.
std::optional<std::string> comment_field(const std::string& line, const std::string& key) {
    std::string text = trim(line);
    if (text.rfind("//", 0) != 0) return std::nullopt;
    text = trim(text.substr(2));
    std::string prefix = key + ":";
    if (text.rfind(prefix, 0) != 0) return std::nullopt;
    return trim(text.substr(prefix.size()));
}

std::optional<Status> parse_status(const std::string& name) {
    for (int value = 0; value < 64; ++value) {
        auto status = static_cast<Status>(value);
        if (to_string(status) == name) return status;
    }
    return std::nullopt;
}

// The files of verifier/planted/ that carry an expect line, sorted by name.
// A malformed expect line still yields an entry (empty statuses or substring)
// so that EveryFileIsWellFormed reports it.
std::vector<Expectation> planted_corpus() {
    std::vector<Expectation> corpus;
    auto dir = project_root() / "verifier" / "planted";
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (entry.path().extension() == ".cu") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& path : files) {
        std::istringstream source(read_text_file(path));
        Expectation e;
        e.path = path;
        std::string line;
        for (int number = 1; std::getline(source, line); ++number) {
            if (auto planted = comment_field(line, "planted"); planted && e.planted.empty()) e.planted = *planted;
            auto expect = comment_field(line, "expect");
            if (!expect || e.line != 0) continue;
            e.line = number;
            e.expect_text = *expect;
            auto space = expect->find_first_of(" \t");
            std::string statuses = expect->substr(0, space);
            e.substring = space == std::string::npos ? "" : trim(expect->substr(space));
            std::size_t start = 0;
            while (start <= statuses.size()) {
                auto bar = statuses.find('|', start);
                if (bar == std::string::npos) bar = statuses.size();
                e.statuses.push_back(statuses.substr(start, bar - start));
                start = bar + 1;
            }
        }
        if (e.line != 0) corpus.push_back(std::move(e));
    }
    return corpus;
}

// For INSTANTIATE_TEST_SUITE_P: a missing tree must not abort registration;
// EveryFileIsWellFormed then fails on the corpus size.
std::vector<Expectation> planted_corpus_or_empty() {
    try {
        return planted_corpus();
    } catch (const std::exception&) {
        return {};
    }
}

std::string test_name(const ::testing::TestParamInfo<Expectation>& info) {
    std::string name = info.param.path.stem().string();
    for (char& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    }
    return name;
}

bool status_expected(const Expectation& e, Status status) {
    return std::any_of(e.statuses.begin(), e.statuses.end(),
                       [&](const std::string& name) { return parse_status(name) == status; });
}

// Every file with an expect line: the line is well formed, the file parses
// as a moe_decode kernel file, and it compiles (or, for compile_error, fails
// to compile with the substring in NVRTC's log) at the timed shape and at the
// held-out preset. No GPU needed.
TEST(PlantedCorpusGpuFiles, EveryFileIsWellFormed) {
    auto corpus = planted_corpus();
    EXPECT_GE(corpus.size(), k_min_corpus) << "the planted corpus has too few files with an expect line";
    for (const auto& e : corpus) {
        SCOPED_TRACE(fmt::format("{}:{}", e.path.string(), e.line));
        EXPECT_FALSE(e.planted.empty()) << "no `// planted: <class>` line";
        EXPECT_FALSE(e.substring.empty()) << "the expect line has no substring";
        ASSERT_FALSE(e.statuses.empty());
        bool compile_error_expected = false;
        for (const auto& name : e.statuses) {
            auto status = parse_status(name);
            EXPECT_TRUE(status.has_value()) << "unknown status '" << name << "'";
            EXPECT_TRUE(status != Status::ok) << "a planted kernel must fail";
            compile_error_expected = compile_error_expected || status == Status::compile_error;
        }
        kernels::KernelFile file = kernels::load_kernel_file(e.path);
        EXPECT_EQ(file.op, "moe_decode");
        file.check_symbols(md::shape_symbol_names());
        if (status_expected(e, Status::nondeterministic)) {
            EXPECT_FALSE(file.nondeterministic) << "expects nondeterministic but declares @nondeterministic";
        }
        for (auto [model, batch] : {std::pair{k_model, k_batch}, std::pair{"tiny-gelu", 5}}) {
            md::Shape shape = md::make_shape(md::find_preset(model), batch);
            auto result = test_compiler().compile(compile_request(file, file.default_knobs(),
                                                                  md::compile_defines(shape), "sm_90",
                                                                  md::params_dir()));
            if (compile_error_expected && e.statuses.size() == 1) {
                EXPECT_FALSE(result.ok) << model << ": expected a compile error";
                EXPECT_NE(result.log.find(e.substring), std::string::npos)
                    << model << ": '" << e.substring << "' not in the NVRTC log:\n" << result.log;
            } else if (!compile_error_expected) {
                EXPECT_TRUE(result.ok) << model << ": does not compile:\n" << result.log;
            }
        }
    }
}

using testing::fresh_seed;

using testing::GpuHarness;
GpuHarness& harness() { return testing::gpu_harness(); }

std::string one_line(std::string text, std::size_t most) {
    std::replace(text.begin(), text.end(), '\n', ' ');
    if (text.size() > most) text = text.substr(0, most - 3) + "...";
    return text;
}

class PlantedCorpusGpu : public ::testing::TestWithParam<Expectation> {};

TEST_P(PlantedCorpusGpu, IsCaughtForItsReason) {
    NS_REQUIRE_GPU();
    const Expectation& e = GetParam();
    auto file = kernels::load_kernel_file(e.path);
    unsigned long long seed = fresh_seed();
    auto problem = harness().spec.make_problem({.model = k_model, .batch = k_batch, .seed = seed});

    Evaluation result;
    try {
        result = harness().evaluator.evaluate(file, {}, *problem, harness().spec, harness().quick);
    } catch (const std::exception& error) {
        FAIL() << e.path.filename().string() << " (" << problem->label() << ", seed " << seed
               << "): the evaluation threw instead of returning a status: " << error.what();
    }

    std::string name = e.path.filename().string();
    std::string verdict(to_string(result.status));
    if (result.status == Status::ok) verdict += fmt::format(" {:.2f} us", result.median_us());
    fmt::print("planted  {:<34} expect {:<62} got {:<17} {}\n", name, e.expect_text, verdict,
               one_line(result.message, 110));

    EXPECT_TRUE(status_expected(e, result.status))
        << name << " (" << e.planted << ") on " << problem->label() << " seed " << seed << ": expected "
        << e.expect_text << ", got " << verdict << ": " << result.message;
    std::string searched = result.message;
    if (result.status == Status::compile_error) searched += "\n" + result.log;
    EXPECT_NE(searched.find(e.substring), std::string::npos)
        << name << ": '" << e.substring << "' is not in the message: " << result.message
        << (result.status == Status::compile_error ? "\nlog:\n" + result.log : "");
}

INSTANTIATE_TEST_SUITE_P(, PlantedCorpusGpu, ::testing::ValuesIn(planted_corpus_or_empty()), test_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(PlantedCorpusGpu);

} // namespace
} // namespace nightshift::evaluate
