#include "harness/research/plan.h"

#include "harness/core/error.h"
#include "harness/core/paths.h"
#include "harness/core/sha256.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace nightshift::research {
namespace {
namespace fs = std::filesystem;

// Line numbers matter: the tests below name them.
//  1 +++
//  2 title
//  ...
// 11 +++ (closing)
const std::string k_minimal = R"(+++
title    = "minimal"
op       = "moe_decode"
models   = ["gemma4-26b-a4b"]
batches  = [1, 8]
baseline = "moe_decode/expert_centric_v1.cu"

[[directions]]
name    = "only"
kernels = ["moe_decode/warp_decode_v1.cu"]
+++
# Question

Body text.
)";

const std::string k_full = R"(+++
title        = "full"
op           = "moe_decode"
models       = ["gemma4-26b-a4b", "qwen3-30b-a3b"]
batches      = [1, 2, 4]
formats      = ["bf16", "int8_row"]
distribution = "zipf"
baseline     = "moe_decode/expert_centric_v1.cu"
seeds        = ["moe_decode/warp_decode_v1.cu", "mine.cu"]
agent        = "replay"

[tuner]
strategy    = "evolutionary"
population  = 16
mutation    = 0.25
elitist     = true
note        = "text"

[budget]
minutes     = 90
experiments = 500

[stop]
fraction_of_floor = 1

[accuracy]
max_rel_l2        = 5e-3
max_error_vs_seed = 1.5

[timing]
repetitions = 50
warmup      = 0

[[directions]]
name       = "first"
hypothesis = "h1"
done_when  = "d1"
kernels    = ["moe_decode/warp_decode_v1.cu"]
batches    = [1]

[directions.knobs]
WARPS         = [8, 4]
ROWS_PER_WARP = [2]

[[directions]]
name    = "second"
kernels = ["moe_decode/expert_centric_v1.cu", "moe_decode/warp_decode_v1.cu"]
knobs   = { TILE_M = [16] }
+++
body
)";

// k_minimal with its line `line` (1-based) replaced by `text` (which may hold
// several lines; later lines move down).
std::string with_line(int line, const std::string& text) {
    std::string out;
    std::size_t begin = 0;
    for (int n = 1; begin < k_minimal.size(); ++n) {
        const std::size_t end = k_minimal.find('\n', begin);
        out += n == line ? text : k_minimal.substr(begin, end - begin);
        out += '\n';
        begin = end + 1;
    }
    return out;
}

// k_minimal with `toml` inserted before the closing +++ (its first line is line 11).
std::string with_tail(const std::string& toml) { return with_line(11, toml + "\n+++"); }

template <typename F> std::string input_error(F&& f) {
    try {
        f();
    } catch (const InputError& e) {
        return e.what();
    }
    ADD_FAILURE() << "expected an InputError";
    return {};
}

std::string parse_error(const std::string& text) {
    return input_error([&] { parse_plan("p.md", text); });
}

// A scratch folder, removed at the end of the test.
class TempDir {
public:
    TempDir() {
        static int counter = 0;
        m_path = fs::temp_directory_path() /
                 ("nightshift_test_plan_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::create_directories(m_path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(m_path, ec);
    }
    const fs::path& path() const { return m_path; }
    fs::path write(const std::string& name, const std::string& text) const {
        const fs::path file = m_path / name;
        std::ofstream(file, std::ios::binary) << text;
        return file;
    }

private:
    fs::path m_path;
};

const std::string k_tiny_kernel = "// @op moe_decode\n"
                                  "// @tune WARPS 4 8\n"
                                  "// @launch k grid=(1) block=(32*WARPS)\n"
                                  "extern \"C\" __global__ void k() {}\n";

// ---------------------------------------------------------------------------

TEST(PlanParse, MinimalPlanTakesTheDefaults) {
    const Plan plan = parse_plan("p.md", k_minimal);
    EXPECT_EQ(plan.path, "p.md");
    EXPECT_EQ(plan.title, "minimal");
    EXPECT_EQ(plan.op, "moe_decode");
    EXPECT_EQ(plan.models, std::vector<std::string>{"gemma4-26b-a4b"});
    EXPECT_EQ(plan.batches, (std::vector<int>{1, 8}));
    EXPECT_EQ(plan.formats, std::vector<std::string>{"bf16"});
    EXPECT_EQ(plan.distribution, "uniform");
    EXPECT_EQ(plan.baseline, "moe_decode/expert_centric_v1.cu");
    EXPECT_TRUE(plan.seeds.empty());
    EXPECT_EQ(plan.agent, "tuner");
    EXPECT_EQ(plan.strategy, "exhaustive");
    EXPECT_TRUE(plan.strategy_options.empty());
    EXPECT_FALSE(plan.budget_hours);
    EXPECT_FALSE(plan.budget_minutes);
    EXPECT_FALSE(plan.budget_experiments);
    EXPECT_DOUBLE_EQ(plan.stop_fraction_of_floor, 0.95);
    EXPECT_DOUBLE_EQ(plan.max_rel_l2, 1e-2);
    EXPECT_DOUBLE_EQ(plan.max_error_vs_seed, 2.0);
    EXPECT_EQ(plan.repetitions, 30);
    EXPECT_EQ(plan.warmup, 3);
    ASSERT_EQ(plan.directions.size(), 1u);
    const Direction& d = plan.directions[0];
    EXPECT_EQ(d.name, "only");
    EXPECT_EQ(d.hypothesis, "");
    EXPECT_EQ(d.done_when, "");
    EXPECT_EQ(d.kernels, std::vector<std::string>{"moe_decode/warp_decode_v1.cu"});
    EXPECT_TRUE(d.knobs.empty());
    EXPECT_TRUE(d.batches.empty());
    EXPECT_EQ(d.line, 8);
}

TEST(PlanParse, FullPlanReadsEveryField) {
    const Plan plan = parse_plan("plans/full.md", k_full);
    EXPECT_EQ(plan.models, (std::vector<std::string>{"gemma4-26b-a4b", "qwen3-30b-a3b"}));
    EXPECT_EQ(plan.batches, (std::vector<int>{1, 2, 4}));
    EXPECT_EQ(plan.formats, (std::vector<std::string>{"bf16", "int8_row"}));
    EXPECT_EQ(plan.distribution, "zipf");
    EXPECT_EQ(plan.seeds, (std::vector<std::string>{"moe_decode/warp_decode_v1.cu", "mine.cu"}));
    EXPECT_EQ(plan.agent, "replay");
    EXPECT_EQ(plan.strategy, "evolutionary");
    const std::map<std::string, std::string, std::less<>> options = {
        {"elitist", "true"}, {"mutation", "0.25"}, {"note", "text"}, {"population", "16"}};
    EXPECT_EQ(plan.strategy_options, options);
    EXPECT_FALSE(plan.budget_hours);
    ASSERT_TRUE(plan.budget_minutes);
    EXPECT_DOUBLE_EQ(*plan.budget_minutes, 90.0);
    ASSERT_TRUE(plan.budget_experiments);
    EXPECT_EQ(*plan.budget_experiments, 500);
    EXPECT_DOUBLE_EQ(plan.stop_fraction_of_floor, 1.0); // an integer is a number too
    EXPECT_DOUBLE_EQ(plan.max_rel_l2, 5e-3);
    EXPECT_DOUBLE_EQ(plan.max_error_vs_seed, 1.5);
    EXPECT_EQ(plan.repetitions, 50);
    EXPECT_EQ(plan.warmup, 0);
    ASSERT_EQ(plan.directions.size(), 2u);
    EXPECT_EQ(plan.directions[0].name, "first");
    EXPECT_EQ(plan.directions[0].hypothesis, "h1");
    EXPECT_EQ(plan.directions[0].done_when, "d1");
    EXPECT_EQ(plan.directions[0].batches, std::vector<int>{1});
    EXPECT_EQ(plan.directions[0].line, 34);
    EXPECT_EQ(plan.directions[1].name, "second");
    EXPECT_EQ(plan.directions[1].kernels,
              (std::vector<std::string>{"moe_decode/expert_centric_v1.cu", "moe_decode/warp_decode_v1.cu"}));
    EXPECT_TRUE(plan.directions[1].batches.empty());
    EXPECT_EQ(plan.directions[1].line, 45);
}

TEST(PlanParse, KnobSubspacesKeepTheirValuesInOrder) {
    const Plan plan = parse_plan("p.md", k_full);
    const std::map<std::string, std::vector<int64_t>, std::less<>> first = {{"ROWS_PER_WARP", {2}}, {"WARPS", {8, 4}}};
    EXPECT_EQ(plan.directions[0].knobs, first);
    const std::map<std::string, std::vector<int64_t>, std::less<>> second = {{"TILE_M", {16}}};
    EXPECT_EQ(plan.directions[1].knobs, second); // the inline-table spelling
    EXPECT_EQ(plan.line_of("directions[0].knobs.WARPS"), 42);
    EXPECT_EQ(plan.line_of("directions[1].knobs.TILE_M"), 48);
}

TEST(PlanParse, RecordsTheLineOfEveryField) {
    const Plan plan = parse_plan("p.md", k_full);
    EXPECT_EQ(plan.line_of("title"), 2);
    EXPECT_EQ(plan.line_of("baseline"), 8);
    EXPECT_EQ(plan.line_of("seeds[1]"), 9);
    EXPECT_EQ(plan.line_of("budget.experiments"), 21);
    EXPECT_EQ(plan.line_of("directions[1]"), 45);
    EXPECT_EQ(plan.line_of("directions[1].kernels[1]"), 47);
    EXPECT_EQ(plan.line_of("no.such.field"), 0);
}

TEST(PlanParse, SplitsFrontMatterAndBodyVerbatim) {
    const Plan plan = parse_plan("p.md", k_minimal);
    const std::size_t open = k_minimal.find('\n') + 1;
    const std::size_t close = k_minimal.find("\n+++\n", open) + 1;
    EXPECT_EQ(plan.front_matter, k_minimal.substr(open, close - open));
    EXPECT_TRUE(plan.front_matter.starts_with("title    = \"minimal\"\n"));
    EXPECT_TRUE(plan.front_matter.ends_with("kernels = [\"moe_decode/warp_decode_v1.cu\"]\n"));
    EXPECT_EQ(plan.body, "# Question\n\nBody text.\n");
}

TEST(PlanParse, BodyMayBeEmptyAndDelimitersMayEndInCrOrBlanks) {
    std::string text = k_minimal.substr(0, k_minimal.find("\n+++\n") + 1) + "+++"; // no newline, no body
    EXPECT_EQ(parse_plan("p.md", text).body, "");
    std::string crlf = k_minimal;
    crlf.replace(0, 4, "+++ \r\n");
    const std::size_t close = crlf.find("\n+++\n");
    crlf.replace(close, 5, "\n+++\t\r\n");
    const Plan plan = parse_plan("p.md", crlf);
    EXPECT_EQ(plan.body, "# Question\n\nBody text.\n");
    EXPECT_EQ(plan.title, "minimal");
}

TEST(PlanParse, AByteOrderMarkIsSkipped) {
    const Plan plan = parse_plan("p.md", "\xEF\xBB\xBF" + k_minimal);
    EXPECT_EQ(plan.title, "minimal");
    EXPECT_EQ(parse_error("\xEF\xBB\xBF" + with_line(5, "batches = [0]")),
              "p.md:5: field 'batches': batch 0 is outside 1..512");
}

TEST(PlanParse, HashIsTheSha256OfTheWholeFileAndStable) {
    const Plan a = parse_plan("a.md", k_minimal);
    const Plan b = parse_plan("elsewhere/b.md", k_minimal);
    EXPECT_EQ(a.hash, sha256_hex(k_minimal));
    EXPECT_EQ(a.hash.size(), 64u);
    EXPECT_EQ(a.hash, b.hash); // the path is not part of the identity
    std::string edited = k_minimal;
    edited.back() = ' '; // one byte of the body
    EXPECT_NE(parse_plan("a.md", edited).hash, a.hash);
}

TEST(PlanParse, LoadPlanReadsTheFile) {
    TempDir dir;
    const fs::path file = dir.write("plan.md", k_minimal);
    const Plan plan = load_plan(file);
    EXPECT_EQ(plan.path, file.string());
    EXPECT_EQ(plan.hash, sha256_hex(k_minimal));
    EXPECT_THROW(load_plan(dir.path() / "missing.md"), IoError);
    const fs::path bad = dir.write("bad.md", with_line(5, "batches = \"8\""));
    EXPECT_EQ(input_error([&] { load_plan(bad); }),
              bad.string() + ":5: field 'batches': expected an array of batch sizes (integers), got a string");
}

// ---------------------------------------------------------------------------

struct ErrorCase {
    std::string text;
    std::string expected; // the whole message
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.expected; }

class PlanErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(PlanErrors, NameFileLineAndField) { EXPECT_EQ(parse_error(GetParam().text), GetParam().expected); }

const std::string k_top_known = "title, op, models, batches, formats, distribution, baseline, seeds, agent, tuner, "
                                "budget, stop, accuracy, timing, directions";
const std::string k_direction_known = "name, hypothesis, done_when, kernels, knobs, batches";

INSTANTIATE_TEST_SUITE_P(
    Plan, PlanErrors,
    ::testing::Values(
        // Structure.
        ErrorCase{"title = \"x\"\n+++\n",
                  "p.md:1: a plan must start with a '+++' line that opens its TOML front matter"},
        ErrorCase{"", "p.md:1: a plan must start with a '+++' line that opens its TOML front matter"},
        ErrorCase{" +++\ntitle = \"x\"\n+++\n",
                  "p.md:1: a plan must start with a '+++' line that opens its TOML front matter"},
        ErrorCase{"+++\ntitle = \"x\"\n", "p.md:1: the front matter opened here is never closed by a '+++' line"},
        ErrorCase{"+++", "p.md:1: the front matter opened here is never closed by a '+++' line"},
        ErrorCase{"+++\ntitle = \"x\"\n++++\n", "p.md:1: the front matter opened here is never closed by a '+++' line"},
        // Required fields: the top level's line is the opening +++.
        ErrorCase{with_line(2, ""), "p.md:1: field 'title': missing; required: a string"},
        ErrorCase{with_line(3, ""), "p.md:1: field 'op': missing; required: an identifier such as \"moe_decode\""},
        ErrorCase{with_line(4, ""), "p.md:1: field 'models': missing; required: a non-empty array of model names"},
        ErrorCase{with_line(5, ""), "p.md:1: field 'batches': missing; required: a non-empty array of batch sizes"},
        ErrorCase{with_line(6, ""),
                  "p.md:1: field 'baseline': missing; required: a kernel file such as \"moe_decode/x.cu\""},
        ErrorCase{with_line(8, "[no_directions]\n"), // unknown key first: typos are found before what they hide
                  "p.md:8: field 'no_directions': unknown key; known keys at the top level: " + k_top_known},
        ErrorCase{with_line(8, "+++"), // lines 9.. are body now
                  "p.md:1: field 'directions': missing; required: one or more [[directions]] tables"},
        // Values and types.
        ErrorCase{with_line(2, "title = \"\""), "p.md:2: field 'title': must not be empty"},
        ErrorCase{with_line(2, "title = 3"), "p.md:2: field 'title': expected a string, got an integer"},
        ErrorCase{with_line(3, "op = \"moe decode\""),
                  "p.md:3: field 'op': 'moe decode' is not an identifier (letters, digits, _)"},
        ErrorCase{with_line(3, "op = \"9moe\""),
                  "p.md:3: field 'op': '9moe' is not an identifier (letters, digits, _)"},
        ErrorCase{with_line(4, "models = []"), "p.md:4: field 'models': must not be empty"},
        ErrorCase{with_line(4, "models = \"gemma\""),
                  "p.md:4: field 'models': expected an array of strings, got a string"},
        ErrorCase{with_line(4, "models = [\"a\",\n  \"\"]"), "p.md:5: field 'models[1]': must not be empty"},
        ErrorCase{with_line(4, "models = [\"a\", 7]"),
                  "p.md:4: field 'models': expected an array of strings, but element 1 is an integer"},
        ErrorCase{with_line(4, "models = [\"a\", \"a\"]"), "p.md:4: field 'models': 'a' listed twice"},
        ErrorCase{with_line(5, "batches = \"8\""),
                  "p.md:5: field 'batches': expected an array of batch sizes (integers), got a string"},
        ErrorCase{with_line(5, "batches = 8"),
                  "p.md:5: field 'batches': expected an array of batch sizes (integers), got an integer"},
        ErrorCase{with_line(5, "batches = []"), "p.md:5: field 'batches': must not be empty"},
        ErrorCase{with_line(5, "batches = [\n  1,\n  513,\n]"), "p.md:7: field 'batches': batch 513 is outside 1..512"},
        ErrorCase{with_line(5, "batches = [512, -1]"), "p.md:5: field 'batches': batch -1 is outside 1..512"},
        ErrorCase{with_line(5, "batches = [4, 4]"), "p.md:5: field 'batches': batch 4 listed twice"},
        ErrorCase{with_line(5, "batches = [1, 2.5]"),
                  "p.md:5: field 'batches': expected an array of batch sizes (integers), but element 1 is a float"},
        ErrorCase{with_line(6, "baseline = [\"a.cu\"]"), "p.md:6: field 'baseline': expected a string, got an array"},
        ErrorCase{with_line(6, "baseline = \"a.cu\"\nseeds = [\"b.cu\", \"b.cu\"]"),
                  "p.md:7: field 'seeds': 'b.cu' listed twice"},
        ErrorCase{with_line(6, "baseline = \"a.cu\"\nformats = [\"bf16\", \"fp4\"]"),
                  "p.md:7: field 'formats': unknown format 'fp4' (known: bf16, int8_row, int4_g128, fp8_e4m3)"},
        ErrorCase{with_line(6, "baseline = \"a.cu\"\nformats = []"), "p.md:7: field 'formats': must not be empty"},
        ErrorCase{with_line(6, "baseline = \"a.cu\"\nagent = \"gpt\""),
                  "p.md:7: field 'agent': unknown agent 'gpt' (known: tuner, openai, anthropic, replay)"},
        ErrorCase{with_line(6, "baseline = \"a.cu\"\ndistribution = \"normal\""),
                  "p.md:7: field 'distribution': unknown distribution 'normal' (known: uniform, zipf, identical)"},
        // Unknown keys, with a suggestion when one is close.
        ErrorCase{with_line(5, "batchs = [1]"),
                  "p.md:5: field 'batchs': unknown key (did you mean 'batches'?); known keys at the top level: " +
                      k_top_known},
        ErrorCase{with_tail("[budget]\nhours = 1\nhourz = 2"),
                  "p.md:13: field 'budget.hourz': unknown key (did you mean 'hours'?); known keys in [budget]: "
                  "hours, minutes, experiments"},
        ErrorCase{with_tail("[stop]\nfraction = 0.9"),
                  "p.md:12: field 'stop.fraction': unknown key; known keys in [stop]: fraction_of_floor"},
        ErrorCase{with_tail("[accuracy]\nmax_rel_l2_vs_fp64 = 0.01"),
                  "p.md:12: field 'accuracy.max_rel_l2_vs_fp64': unknown key; known keys in [accuracy]: "
                  "max_rel_l2, max_error_vs_seed"},
        ErrorCase{with_tail("[timing]\nrepetition = 5"),
                  "p.md:12: field 'timing.repetition': unknown key (did you mean 'repetitions'?); known keys in "
                  "[timing]: repetitions, warmup"},
        ErrorCase{with_line(10, "kernels = [\"a.cu\"]\nhypotesis = \"h\""),
                  "p.md:11: field 'directions[0].hypotesis': unknown key (did you mean 'hypothesis'?); known keys "
                  "in [[directions]]: " +
                      k_direction_known},
        // Budget, stop, accuracy, timing.
        ErrorCase{with_tail("[budget]"),
                  "p.md:11: field 'budget': needs hours, minutes or experiments (leave [budget] out for no limit)"},
        ErrorCase{with_line(6, "baseline = \"a.cu\"\nbudget = 8"),
                  "p.md:7: field 'budget': expected a table, got an integer"},
        ErrorCase{with_tail("budget = 8"), // after [[directions]], a key belongs to the direction
                  "p.md:11: field 'directions[0].budget': unknown key; known keys in [[directions]]: " +
                      k_direction_known},
        ErrorCase{with_tail("[budget]\nhours = 0"), "p.md:12: field 'budget.hours': must be positive, got 0"},
        ErrorCase{with_tail("[budget]\nhours = \"8\""),
                  "p.md:12: field 'budget.hours': expected a number, got a string"},
        ErrorCase{with_tail("[budget]\nhours = inf"), "p.md:12: field 'budget.hours': must be finite"},
        ErrorCase{with_tail("[budget]\nhours = 1\nminutes = 30"),
                  "p.md:13: field 'budget.minutes': give hours or minutes, not both (hours at line 12)"},
        ErrorCase{with_tail("[budget]\nexperiments = 0"),
                  "p.md:12: field 'budget.experiments': must be positive, got 0"},
        ErrorCase{with_tail("[budget]\nexperiments = 1.5"),
                  "p.md:12: field 'budget.experiments': expected an integer, got a float"},
        ErrorCase{with_tail("[stop]\nfraction_of_floor = 0"),
                  "p.md:12: field 'stop.fraction_of_floor': must be in (0, 1], got 0"},
        ErrorCase{with_tail("[stop]\nfraction_of_floor = 1.05"),
                  "p.md:12: field 'stop.fraction_of_floor': must be in (0, 1], got 1.05"},
        ErrorCase{with_tail("[accuracy]\nmax_rel_l2 = -1e-3"),
                  "p.md:12: field 'accuracy.max_rel_l2': must be positive, got -0.001"},
        ErrorCase{
            with_tail("[accuracy]\nmax_error_vs_seed = 0.5"),
            "p.md:12: field 'accuracy.max_error_vs_seed': must be at least 1 (the seed itself must pass), got 0.5"},
        ErrorCase{with_tail("[timing]\nrepetitions = 0"),
                  "p.md:12: field 'timing.repetitions': 0 is outside 1..100000"},
        ErrorCase{with_tail("[timing]\nwarmup = -1"), "p.md:12: field 'timing.warmup': -1 is outside 0..100000"},
        // The tuner's table.
        ErrorCase{with_tail("[tuner]\nstrategy = \"\""), "p.md:12: field 'tuner.strategy': must not be empty"},
        ErrorCase{with_tail("[tuner]\nstrategy = \"succ halving\""),
                  "p.md:12: field 'tuner.strategy': 'succ halving' is not an identifier"},
        ErrorCase{with_tail("[tuner]\nstrategy = \"random\"\nsizes = [1, 2]"),
                  "p.md:13: field 'tuner.sizes': strategy options are scalars (string, integer, float, boolean), got "
                  "an array"},
        // Directions.
        ErrorCase{with_line(8, "directions = []\n+++"), "p.md:8: field 'directions': needs at least one direction"},
        ErrorCase{with_line(8, "directions = [\"tune\"]\n+++"),
                  "p.md:8: field 'directions[0]': expected a [[directions]] table, got a string"},
        ErrorCase{with_line(9, ""), "p.md:8: field 'directions[0].name': missing; required: a string"},
        ErrorCase{with_line(10, ""),
                  "p.md:8: field 'directions[0].kernels': missing; required: a non-empty array of kernel files"},
        ErrorCase{with_line(10, "kernels = []"), "p.md:10: field 'directions[0].kernels': must not be empty"},
        ErrorCase{with_line(10, "kernels = \"a.cu\""),
                  "p.md:10: field 'directions[0].kernels': expected an array of strings, got a string"},
        ErrorCase{with_tail("\n[[directions]]\nname = \"only\"\nkernels = [\"a.cu\"]"),
                  "p.md:13: field 'directions[1].name': 'only' already names the direction at line 8"},
        ErrorCase{with_tail("\n[[directions]]\nkernels = [\"a.cu\"]"),
                  "p.md:12: field 'directions[1].name': missing; required: a string"},
        ErrorCase{with_tail("hypothesis = 3"),
                  "p.md:11: field 'directions[0].hypothesis': expected a string, got an integer"},
        ErrorCase{with_tail("batches = [1024]"),
                  "p.md:11: field 'directions[0].batches': batch 1024 is outside 1..512"},
        ErrorCase{with_tail("knobs = [4, 8]"), "p.md:11: field 'directions[0].knobs': expected a table, got an array"},
        ErrorCase{with_tail("[directions.knobs]\nWARPS = []"),
                  "p.md:12: field 'directions[0].knobs.WARPS': needs at least one value"},
        ErrorCase{
            with_tail("[directions.knobs]\nWARPS = 4"),
            "p.md:12: field 'directions[0].knobs.WARPS': expected an array of integer knob values, got an integer"},
        ErrorCase{with_tail("[directions.knobs]\nWARPS = [4,\n  \"8\"]"),
                  "p.md:13: field 'directions[0].knobs.WARPS': knob values are integers, but element 1 is a string"},
        ErrorCase{with_tail("[directions.knobs]\nWARPS = [4, 8, 4]"),
                  "p.md:12: field 'directions[0].knobs.WARPS': value 4 listed twice"},
        ErrorCase{
            with_tail("[directions.knobs]\n\"ROWS PER WARP\" = [1]"),
            "p.md:12: field 'directions[0].knobs.ROWS PER WARP': knob name 'ROWS PER WARP' is not an identifier"}));

TEST(PlanSyntax, TomlErrorsNameTheFileLine) {
    // toml++ writes the description; the file line is ours (TOML line + 1).
    const std::string bare = parse_error(with_line(3, "op = moe_decode"));
    EXPECT_TRUE(bare.starts_with("p.md:3: TOML syntax error at column ")) << bare;
    const std::string twice = parse_error(with_line(3, "op = \"a\"\ntitle = \"b\""));
    EXPECT_TRUE(twice.starts_with("p.md:4: TOML syntax error at column ")) << twice;
    EXPECT_NE(twice.find("title"), std::string::npos) << twice;
}

// ---------------------------------------------------------------------------

TEST(PlanKernels, ResolvesSeedsFirstThenThePlansFolder) {
    const fs::path root = project_root();
    TempDir dir;
    dir.write("local.cu", k_tiny_kernel);
    fs::create_directories(dir.path() / "moe_decode");
    dir.write("moe_decode/warp_decode_v1.cu", k_tiny_kernel); // shadowed by the seed of that name
    const Plan plan = parse_plan((dir.path() / "plan.md").string(), k_minimal);
    EXPECT_EQ(resolve_kernel(plan, "moe_decode/warp_decode_v1.cu", root, 10),
              root / "kernels_seed" / "moe_decode" / "warp_decode_v1.cu");
    EXPECT_EQ(resolve_kernel(plan, "local.cu", root, 10), dir.path() / "local.cu");
    EXPECT_EQ(input_error([&] { resolve_kernel(plan, "moe_decode/nope.cu", root, 10); }),
              plan.path + ":10: kernel 'moe_decode/nope.cu': not found (looked for " +
                  (root / "kernels_seed" / "moe_decode" / "nope.cu").string() + " and " +
                  (dir.path() / "moe_decode" / "nope.cu").string() + ")");
    // A folder is not a kernel.
    EXPECT_NE(input_error([&] { resolve_kernel(plan, "moe_decode", root, 3); }).find(":3: kernel 'moe_decode'"),
              std::string::npos);
}

TEST(PlanKernels, ChecksKnobSubspacesAgainstTheKernelFiles) {
    const fs::path root = project_root();
    TempDir dir;
    dir.write("local.cu", k_tiny_kernel);
    dir.write("other_op.cu", "// @op softmax\n// @launch k grid=(1) block=(32)\n");
    const std::string plan_path = (dir.path() / "plan.md").string();

    const Plan good = parse_plan(plan_path, with_tail("[directions.knobs]\nWARPS = [8, 2]"));
    const std::vector<fs::path> files = check_plan_kernels(good, root);
    ASSERT_EQ(files.size(), 2u);
    EXPECT_EQ(files[0], root / "kernels_seed" / "moe_decode" / "expert_centric_v1.cu");
    EXPECT_EQ(files[1], root / "kernels_seed" / "moe_decode" / "warp_decode_v1.cu");

    const Plan unknown_knob = parse_plan(plan_path, with_tail("[directions.knobs]\nWARPZ = [8]"));
    const std::string e1 = input_error([&] { check_plan_kernels(unknown_knob, root); });
    EXPECT_TRUE(e1.starts_with(plan_path + ":12: field 'directions[0].knobs.WARPZ': no kernel of this direction "
                                           "declares knob 'WARPZ' (their knobs: WARPS, ROWS_PER_WARP"))
        << e1;

    const Plan undeclared_value =
        parse_plan(plan_path, with_line(10, "kernels = [\"local.cu\"]\n[directions.knobs]\nWARPS = [4, 16]"));
    EXPECT_EQ(input_error([&] { check_plan_kernels(undeclared_value, root); }),
              plan_path + ":12: field 'directions[0].knobs.WARPS': value 16 is not declared by " +
                  (dir.path() / "local.cu").string() + ":2 (@tune WARPS 4 8)");

    const Plan wrong_op = parse_plan(plan_path, with_line(6, "baseline = \"other_op.cu\""));
    EXPECT_EQ(input_error([&] { check_plan_kernels(wrong_op, root); }),
              plan_path + ":6: field 'baseline': kernel 'other_op.cu' implements op 'softmax', the plan's op is "
                          "'moe_decode'");

    const Plan missing =
        parse_plan(plan_path, with_line(10, "kernels = [\"moe_decode/warp_decode_v1.cu\",\n  \"gone.cu\"]"));
    const std::string e2 = input_error([&] { check_plan_kernels(missing, root); });
    EXPECT_TRUE(e2.starts_with(plan_path + ":11: kernel 'gone.cu': not found")) << e2;
}

// ---------------------------------------------------------------------------

std::vector<fs::path> plan_files() {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(project_root() / "plans")) {
        if (entry.path().extension() == ".md" && entry.path().filename() != "README.md") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    return files;
}

TEST(PlanFiles, EveryPlanParsesAndItsKernelsCheckOut) {
    const std::vector<fs::path> files = plan_files();
    EXPECT_GE(files.size(), 3u); // the template and at least two real plans
    for (const fs::path& file : files) {
        SCOPED_TRACE(file.string());
        try {
            const Plan plan = load_plan(file);
            check_plan_kernels(plan, project_root());
            EXPECT_FALSE(plan.title.empty());
            EXPECT_NE(plan.body.find("\n# Journal\n"), std::string::npos) << "no '# Journal' heading";
            EXPECT_NE(plan.body.find("# Question"), std::string::npos) << "no '# Question' heading";
        } catch (const Error& e) {
            ADD_FAILURE() << e.what();
        }
    }
}

TEST(PlanFiles, WarpDecodeGemma4) {
    const Plan plan = load_plan(project_root() / "plans" / "warp-decode-gemma4.md");
    EXPECT_EQ(plan.op, "moe_decode");
    EXPECT_EQ(plan.models, std::vector<std::string>{"gemma4-26b-a4b"});
    EXPECT_EQ(plan.batches, (std::vector<int>{1, 2, 4, 8, 16, 32, 64, 128}));
    EXPECT_EQ(plan.baseline, "moe_decode/expert_centric_v1.cu");
    EXPECT_EQ(plan.seeds, std::vector<std::string>{"moe_decode/warp_decode_v1.cu"});
    ASSERT_EQ(plan.directions.size(), 3u);
    const std::map<std::string, std::vector<int64_t>, std::less<>> pair = {{"ROWS_PER_WARP", {1, 2, 4}},
                                                                           {"WARPS", {2, 4, 8}}};
    EXPECT_EQ(plan.directions[0].knobs, pair);
    const std::map<std::string, std::vector<int64_t>, std::less<>> baseline = {{"TILE_M", {16, 32}},
                                                                               {"TILE_N", {64, 128}}};
    EXPECT_EQ(plan.directions[1].knobs, baseline);
    EXPECT_EQ(plan.directions[1].kernels, std::vector<std::string>{"moe_decode/expert_centric_v1.cu"});
    EXPECT_EQ(plan.directions[2].kernels.size(), 2u);
}

TEST(PlanFiles, BandwidthWallTimesBf16AndSaysQuantizationIsNext) {
    const Plan plan = load_plan(project_root() / "plans" / "bandwidth-wall.md");
    EXPECT_EQ(plan.formats, std::vector<std::string>{"bf16"});
    EXPECT_EQ(plan.batches, (std::vector<int>{1, 2, 4, 8}));
    bool named = false;
    for (const Direction& d : plan.directions) {
        named = named || (d.hypothesis.find("int8_row") != std::string::npos &&
                          d.hypothesis.find("int4_g128") != std::string::npos &&
                          d.hypothesis.find("fp8_e4m3") != std::string::npos);
    }
    EXPECT_TRUE(named) << "a direction's hypothesis names the quantized formats as the next step";
    EXPECT_NE(plan.body.find("Not built yet"), std::string::npos);
}

} // namespace
} // namespace nightshift::research
