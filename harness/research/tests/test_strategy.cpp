#include "harness/research/strategy.h"

#include "harness/core/error.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace nightshift::research {
namespace {

using kernels::Symbols;
using Space = std::vector<Symbols>;
// A synthetic evaluation: median µs, or nullopt for a failure.
using Cost = std::function<std::optional<double>(const Symbols& knobs, int repetitions)>;

// The cartesian product, first knob slowest, as KernelFile::knob_space builds it;
// `keep` plays the part of @constrain.
Space product(const std::vector<std::pair<std::string, std::vector<int64_t>>>& knobs,
              const std::function<bool(const Symbols&)>& keep = nullptr) {
    Space space{Symbols{}};
    for (const auto& [name, values] : knobs) {
        Space grown;
        for (const Symbols& partial : space) {
            for (int64_t value : values) {
                Symbols point = partial;
                point[name] = value;
                grown.push_back(point);
            }
        }
        space = std::move(grown);
    }
    if (keep) std::erase_if(space, [&](const Symbols& p) { return !keep(p); });
    return space;
}

int64_t position(const std::vector<int64_t>& values, int64_t value) {
    return std::find(values.begin(), values.end(), value) - values.begin();
}

// Timing noise that shrinks with repetitions, deterministic per (point, repetitions).
double noise(const Symbols& knobs, int repetitions) {
    uint64_t h = 1469598103934665603ull ^ static_cast<uint64_t>(repetitions);
    for (const auto& [name, value] : knobs) h = (h ^ static_cast<uint64_t>(value + 7919)) * 1099511628211ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    const double u = static_cast<double>(h % 2001) / 1000.0 - 1.0; // [-1, 1]
    return 1.0 + 0.03 * u / std::sqrt(static_cast<double>(std::max(repetitions, 1)));
}

// The small problem: 4 x 3 x 5 = 60 points, a bowl with its minimum at
// A=4 B=32 C=3 (10 µs; every other point is at least 13 µs), 7 failing points.
const std::vector<int64_t> k_a = {1, 2, 4, 8}, k_b = {16, 32, 64}, k_c = {0, 1, 2, 3, 4};
const Symbols k_small_best = {{"A", 4}, {"B", 32}, {"C", 3}};
constexpr double k_small_best_us = 10.0;

Space small_space() { return product({{"A", k_a}, {"B", k_b}, {"C", k_c}}); }

bool small_fails(const Symbols& p) {
    return (p.at("A") == 8 && p.at("B") == 16) || (p.at("A") == 4 && p.at("B") == 32 && p.at("C") == 4) ||
           (p.at("A") == 1 && p.at("B") == 64 && p.at("C") == 0);
}

double small_bowl(const Symbols& p) {
    const double da = static_cast<double>(position(k_a, p.at("A")) - 2);
    const double db = static_cast<double>(position(k_b, p.at("B")) - 1);
    const double dc = static_cast<double>(position(k_c, p.at("C")) - 3);
    return k_small_best_us * (1 + 0.5 * da * da + 0.8 * db * db + 0.3 * dc * dc);
}

std::optional<double> small_cost(const Symbols& p, int repetitions) {
    if (small_fails(p)) return std::nullopt;
    return small_bowl(p) * noise(p, repetitions);
}

// The large problem: 10 x 10 x 10 minus a constraint (X and Y both large),
// X declared default-first and out of order as kernel files do. Minimum at
// X=512 Y=4 Z=7 (5 µs); only 7 points are within 10% of it.
const std::vector<int64_t> k_x = {64, 8, 16, 32, 128, 256, 512, 1024, 2048, 4096}; // ascending: 8 .. 4096
const std::vector<int64_t> k_x_sorted = {8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
const std::vector<int64_t> k_y = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, k_z = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
constexpr double k_large_best_us = 5.0;

Space large_space() {
    return product({{"X", k_x}, {"Y", k_y}, {"Z", k_z}}, [](const Symbols& p) {
        return position(k_x_sorted, p.at("X")) + position(k_y, p.at("Y")) <= 14; // @constrain
    });
}

double large_bowl(const Symbols& p) {
    const double dx = static_cast<double>(position(k_x_sorted, p.at("X")) - 6);
    const double dy = static_cast<double>(position(k_y, p.at("Y")) - 3);
    const double dz = static_cast<double>(position(k_z, p.at("Z")) - 7);
    return k_large_best_us * (1 + 0.06 * (dx * dx + dy * dy + dz * dz));
}

std::optional<double> large_cost(const Symbols& p, int repetitions) {
    if (p.at("Z") == 0 && p.at("X") >= 1024) return std::nullopt; // e.g. too much shared memory
    return large_bowl(p) * noise(p, repetitions);
}

struct SearchRun {
    std::vector<Proposal> proposals;
    std::vector<Trial> history; // the initial history, then one trial per proposal
    bool finished = false;      // next() returned nullopt before the limit
};

// Drives a strategy, feeding back every proposal's trial, and checks the
// contract on each proposal: inside the space, never a point that failed,
// never one already evaluated at the requested repetitions or more.
SearchRun drive(Strategy& strategy, const Space& space, const Cost& cost, std::vector<Trial> history = {},
                uint64_t seed = 1, int limit = 200) {
    std::mt19937_64 rng(seed);
    SearchRun run{{}, std::move(history), false};
    const std::set<Symbols> points(space.begin(), space.end());
    for (int i = 0; i < limit; ++i) {
        const std::optional<Proposal> proposal = strategy.next(space, run.history, rng);
        if (!proposal) {
            run.finished = true;
            break;
        }
        SCOPED_TRACE(testing::Message() << strategy.name() << " proposal #" << i);
        if (!points.contains(proposal->knobs)) {
            ADD_FAILURE() << "proposed a point outside the space";
            break;
        }
        if (proposal->repetitions < 1) {
            ADD_FAILURE() << "proposed " << proposal->repetitions << " repetitions";
            break;
        }
        for (const Trial& trial : run.history) {
            if (trial.knobs != proposal->knobs) continue;
            if (!trial.median_us) ADD_FAILURE() << "re-proposed a point that failed";
            if (trial.repetitions >= proposal->repetitions) {
                ADD_FAILURE() << "re-proposed a point at " << proposal->repetitions
                              << " repetitions, already evaluated at " << trial.repetitions;
            }
        }
        if (testing::Test::HasFailure()) break;
        run.proposals.push_back(*proposal);
        run.history.push_back(
            Trial{proposal->knobs, cost(proposal->knobs, proposal->repetitions), proposal->repetitions});
    }
    return run;
}

// The fastest successful trial of a run (its own and others').
std::optional<Trial> best_trial(const std::vector<Trial>& history) {
    std::optional<Trial> best;
    for (const Trial& trial : history) {
        if (trial.median_us && (!best || *trial.median_us < *best->median_us)) best = trial;
    }
    return best;
}

std::unique_ptr<Strategy> make(std::string_view name, const StrategyOptions& options = {}) {
    return make_strategy(name, options);
}

// The message of the InputError `f` throws; fails the test when it throws nothing.
template <typename F> std::string input_error(F&& f) {
    try {
        f();
    } catch (const InputError& e) {
        return e.what();
    }
    ADD_FAILURE() << "expected an InputError";
    return {};
}

// ---------------------------------------------------------------------------
// The contract, for every registered strategy.

std::vector<std::string> registered_names() {
    std::vector<std::string> names;
    for (const StrategyInfo& info : strategies()) names.push_back(info.name);
    return names;
}

class StrategyContract : public testing::TestWithParam<std::string> {};

TEST_P(StrategyContract, StaysInSpaceNeverRepeatsAndTerminates) {
    const auto strategy = make(GetParam());
    EXPECT_EQ(strategy->name(), GetParam());
    const SearchRun run = drive(*strategy, small_space(), small_cost);
    EXPECT_TRUE(run.finished) << "still proposing after 200 proposals";
    EXPECT_GE(run.proposals.size(), 10u);
    // Once finished, it stays finished.
    std::mt19937_64 rng(3);
    EXPECT_FALSE(strategy->next(small_space(), run.history, rng).has_value());
}

TEST_P(StrategyContract, SkipsTrialsFromOtherLoops) {
    const Space space = small_space();
    std::vector<Trial> others;
    for (std::size_t i = 0; i < space.size(); i += 5) others.push_back({space[i], small_cost(space[i], 1000), 1000});
    others.push_back({k_small_best, small_cost(k_small_best, 1000), 1000});
    others.push_back({space[1], std::nullopt, 0}); // compile errors: no timing at all
    others.push_back({space[2], std::nullopt, 0});
    others.push_back({space[3], small_cost(space[3], 2), 2});       // a cheap screen: may be re-timed, at more
    others.push_back({{{"A", 3}, {"B", 32}, {"C", 3}}, 1.0, 1000}); // a point the space no longer has
    const std::size_t prefilled = others.size();

    const auto strategy = make(GetParam());
    const SearchRun run = drive(*strategy, space, small_cost, others); // drive() rejects any re-proposal
    EXPECT_TRUE(run.finished);
    EXPECT_EQ(run.history.size(), prefilled + run.proposals.size());
    for (const Proposal& p : run.proposals) EXPECT_NE(p.knobs, k_small_best) << "the optimum was already timed";
}

TEST_P(StrategyContract, SameSeedSameSearch) {
    const SearchRun first = drive(*make(GetParam()), large_space(), large_cost, {}, 42, 60);
    const SearchRun second = drive(*make(GetParam()), large_space(), large_cost, {}, 42, 60);
    ASSERT_EQ(first.proposals.size(), second.proposals.size());
    for (std::size_t i = 0; i < first.proposals.size(); ++i) {
        EXPECT_EQ(first.proposals[i].knobs, second.proposals[i].knobs) << i;
        EXPECT_EQ(first.proposals[i].repetitions, second.proposals[i].repetitions) << i;
    }
}

TEST_P(StrategyContract, EmptySpaceFinishesAtOnce) {
    std::mt19937_64 rng(1);
    EXPECT_FALSE(make(GetParam())->next({}, {}, rng).has_value());
}

TEST_P(StrategyContract, KnobFreeSpaceFinishes) {
    const SearchRun run = drive(*make(GetParam()), Space{Symbols{}}, [](const Symbols&, int) { return 3.0; });
    EXPECT_TRUE(run.finished);
    EXPECT_GE(run.proposals.size(), 1u);
}

TEST_P(StrategyContract, EverythingFailingFinishes) {
    const SearchRun run = drive(*make(GetParam()), small_space(), [](const Symbols&, int) { return std::nullopt; });
    EXPECT_TRUE(run.finished);
}

TEST_P(StrategyContract, DefaultsParseWhenGivenExplicitly) {
    for (const StrategyInfo& info : strategies()) {
        if (info.name != GetParam()) continue;
        StrategyOptions options;
        for (const StrategyOption& option : info.options) options[option.name] = option.default_value;
        EXPECT_EQ(make(info.name, options)->name(), info.name);
        EXPECT_FALSE(info.options.empty());
    }
}

INSTANTIATE_TEST_SUITE_P(Strategy, StrategyContract, testing::ValuesIn(registered_names()),
                         [](const testing::TestParamInfo<std::string>& info) { return info.param; });

// ---------------------------------------------------------------------------
// Each strategy's own promise.

TEST(StrategyExhaustive, CoversEveryPointOnceInSpaceOrder) {
    const Space space = small_space();
    const SearchRun run = drive(*make("exhaustive"), space, small_cost);
    EXPECT_TRUE(run.finished);
    ASSERT_EQ(run.proposals.size(), space.size());
    for (std::size_t i = 0; i < space.size(); ++i) {
        EXPECT_EQ(run.proposals[i].knobs, space[i]);
        EXPECT_EQ(run.proposals[i].repetitions, 30);
    }
    EXPECT_EQ(best_trial(run.history)->knobs, k_small_best);
}

TEST(StrategyExhaustive, RetimesOnlyWhatOthersTimedWithFewerRepetitions) {
    const Space space = small_space();
    const std::vector<Trial> others = {{space[0], 20.0, 7}, {space[1], 20.0, 6}, {space[2], std::nullopt, 0}};
    const SearchRun run = drive(*make("exhaustive", {{"repetitions", "7"}}), space, small_cost, others);
    ASSERT_EQ(run.proposals.size(), space.size() - 2); // space[1] is re-timed: 6 < 7
    EXPECT_EQ(run.proposals[0].knobs, space[1]);
    EXPECT_EQ(run.proposals[0].repetitions, 7);
    EXPECT_EQ(run.proposals[1].knobs, space[3]);
}

TEST(StrategyRandom, RespectsSamples) {
    const SearchRun run = drive(*make("random", {{"samples", "10"}, {"repetitions", "12"}}), small_space(), small_cost);
    EXPECT_TRUE(run.finished);
    ASSERT_EQ(run.proposals.size(), 10u);
    std::set<Symbols> distinct;
    for (const Proposal& p : run.proposals) {
        distinct.insert(p.knobs);
        EXPECT_EQ(p.repetitions, 12);
    }
    EXPECT_EQ(distinct.size(), 10u);
    // Not simply the start of the space.
    EXPECT_NE(run.proposals[0].knobs, small_space()[0]);
}

TEST(StrategyRandom, StopsWhenTheSpaceIsUsedUp) {
    const SearchRun run = drive(*make("random", {{"samples", "1000"}}), small_space(), small_cost);
    EXPECT_TRUE(run.finished);
    EXPECT_EQ(run.proposals.size(), small_space().size());
}

TEST(StrategySuccessiveHalving, RungsGrowAndConfirmTheTrueMinimum) {
    const Space space = small_space();
    const SearchRun run = drive(*make("successive_halving"), space, small_cost);
    ASSERT_TRUE(run.finished);
    std::map<int, int> per_rung; // repetitions -> proposals
    for (std::size_t i = 0; i < run.proposals.size(); ++i) {
        ++per_rung[run.proposals[i].repetitions];
        if (i > 0) {
            EXPECT_GE(run.proposals[i].repetitions, run.proposals[i - 1].repetitions) << i;
        }
    }
    const int failing = static_cast<int>(std::count_if(space.begin(), space.end(), small_fails));
    const int rung1 = (static_cast<int>(space.size()) - failing) / 3; // 53 successes -> 17
    const std::map<int, int> expected = {{5, static_cast<int>(space.size())}, {15, rung1}, {45, rung1 / 3}};
    EXPECT_EQ(per_rung, expected);

    std::optional<Trial> confirmed;
    for (const Trial& trial : run.history) {
        if (trial.repetitions == 45 && trial.median_us && (!confirmed || *trial.median_us < *confirmed->median_us)) {
            confirmed = trial;
        }
    }
    ASSERT_TRUE(confirmed.has_value());
    EXPECT_EQ(confirmed->knobs, k_small_best);
}

TEST(StrategySuccessiveHalving, ResumesFromHistoryAlone) {
    // The rungs live in the history, not in the object: a fresh strategy
    // handed a partial history continues exactly where the first one was.
    const Space space = small_space();
    const SearchRun whole = drive(*make("successive_halving"), space, small_cost);
    ASSERT_TRUE(whole.finished);
    for (std::size_t cut :
         {std::size_t{1}, std::size_t{37}, space.size(), space.size() + 5, whole.proposals.size() - 1}) {
        SCOPED_TRACE(testing::Message() << "resumed after " << cut);
        const std::vector<Trial> partial(whole.history.begin(),
                                         whole.history.begin() + static_cast<std::ptrdiff_t>(cut));
        const SearchRun rest = drive(*make("successive_halving"), space, small_cost, partial, 99);
        EXPECT_TRUE(rest.finished);
        ASSERT_EQ(cut + rest.proposals.size(), whole.proposals.size());
        for (std::size_t i = 0; i < rest.proposals.size(); ++i) {
            EXPECT_EQ(rest.proposals[i].knobs, whole.proposals[cut + i].knobs);
            EXPECT_EQ(rest.proposals[i].repetitions, whole.proposals[cut + i].repetitions);
        }
    }
}

TEST(StrategySuccessiveHalving, InitialScreensThatManyRandomPoints) {
    const SearchRun run = drive(*make("successive_halving", {{"initial", "12"}}), large_space(), large_cost, {}, 5);
    ASSERT_TRUE(run.finished);
    std::map<int, int> per_rung;
    for (const Proposal& p : run.proposals) ++per_rung[p.repetitions];
    const auto screened_ok = std::count_if(run.history.begin(), run.history.end(),
                                           [](const Trial& t) { return t.repetitions == 5 && t.median_us; });
    EXPECT_GE(screened_ok, 6); // the seed screens a few failing points, not only those
    EXPECT_EQ(per_rung[5], 12);
    EXPECT_EQ(per_rung[15], screened_ok / 3);
    EXPECT_EQ(per_rung[45], 1); // a single survivor goes straight to the confirmation
    EXPECT_EQ(per_rung.size(), 3u);
}

TEST(StrategySuccessiveHalving, WarmStartScreensCountAsRungZero) {
    // Another loop screened the whole space at 10 repetitions: nothing is
    // re-screened, the search starts at rung 1.
    const Space space = small_space();
    std::vector<Trial> others;
    for (const Symbols& point : space) others.push_back({point, small_cost(point, 10), 10});
    const SearchRun run = drive(*make("successive_halving"), space, small_cost, others);
    ASSERT_TRUE(run.finished);
    ASSERT_FALSE(run.proposals.empty());
    EXPECT_EQ(run.proposals.front().repetitions, 15);
    EXPECT_EQ(run.proposals.front().knobs, k_small_best);
}

TEST(StrategySuccessiveHalving, PointFailingAtALaterRungIsDroppedNotRetried) {
    // The optimum passes the screen but fails when timed longer (a flaky
    // wrong answer): it must not come back, and the runner-up is confirmed.
    const Cost flaky = [](const Symbols& p, int repetitions) -> std::optional<double> {
        if (p == k_small_best && repetitions >= 15) return std::nullopt;
        return small_cost(p, repetitions);
    };
    const SearchRun run = drive(*make("successive_halving"), small_space(), flaky);
    ASSERT_TRUE(run.finished);
    int optimum_proposals = 0;
    for (const Proposal& p : run.proposals) optimum_proposals += p.knobs == k_small_best;
    EXPECT_EQ(optimum_proposals, 2); // screened at 5, failed at 15
    const Trial last = run.history.back();
    EXPECT_EQ(last.repetitions, 45);
}

TEST(StrategySuccessiveHalving, SingleSurvivorGoesStraightToMaxRepetitions) {
    const Space space = product({{"A", {1, 2, 4, 8}}});
    const SearchRun run = drive(*make("successive_halving", {{"max_repetitions", "100"}}), space,
                                [](const Symbols& p, int) { return 10.0 + static_cast<double>(p.at("A")); });
    ASSERT_TRUE(run.finished);
    ASSERT_EQ(run.proposals.size(), 5u); // 4 screens, then the fastest at 100
    EXPECT_EQ(run.proposals.back().repetitions, 100);
    EXPECT_EQ(run.proposals.back().knobs, (Symbols{{"A", 1}}));
}

TEST(StrategyEvolutionary, FindsNearOptimumWithinBudget) {
    const Space space = large_space();
    const SearchRun run = drive(*make("evolutionary"), space, large_cost, {}, 2024);
    EXPECT_TRUE(run.finished);
    EXPECT_LE(run.proposals.size(), 80u); // population 8 x generations 10
    const auto best = best_trial(run.history);
    ASSERT_TRUE(best.has_value());
    EXPECT_LE(large_bowl(best->knobs), 1.1 * k_large_best_us) << "best found " << large_bowl(best->knobs) << " µs";
}

TEST(StrategyEvolutionary, SeedsThePopulationFromHistory) {
    // Eight points from another loop in a corner (indices 0..1 of every
    // knob): the first child is a neighbour of theirs, not a random point.
    const Space space = large_space();
    std::vector<Trial> others;
    for (int64_t x : {8, 16}) {
        for (int64_t y : {1, 2}) {
            for (int64_t z : {0, 1}) {
                const Symbols p = {{"X", x}, {"Y", y}, {"Z", z}};
                others.push_back({p, large_cost(p, 30), 30});
            }
        }
    }
    for (uint64_t seed : {1, 2, 3, 4, 5}) {
        std::mt19937_64 rng(seed);
        const auto proposal = make("evolutionary")->next(space, others, rng);
        ASSERT_TRUE(proposal.has_value());
        EXPECT_LE(position(k_x_sorted, proposal->knobs.at("X")), 2) << seed;
        EXPECT_LE(position(k_y, proposal->knobs.at("Y")), 2) << seed;
        EXPECT_LE(position(k_z, proposal->knobs.at("Z")), 2) << seed;
    }
}

TEST(StrategyEvolutionary, BudgetIsPopulationTimesGenerations) {
    const SearchRun run =
        drive(*make("evolutionary", {{"population", "4"}, {"generations", "3"}}), large_space(), large_cost, {}, 8);
    EXPECT_TRUE(run.finished);
    EXPECT_EQ(run.proposals.size(), 12u);
}

TEST(StrategySurrogate, FindsNearOptimumWithinBudget) {
    const Space space = large_space();
    const SearchRun run = drive(*make("surrogate"), space, large_cost, {}, 2024);
    EXPECT_TRUE(run.finished);
    EXPECT_LE(run.proposals.size(), 64u);
    const auto best = best_trial(run.history);
    ASSERT_TRUE(best.has_value());
    EXPECT_LE(large_bowl(best->knobs), 1.1 * k_large_best_us) << "best found " << large_bowl(best->knobs) << " µs";
}

TEST(StrategySurrogate, ModelFindsWhatTheWarmStartMissed) {
    // Twenty scattered points from another loop, none within 30% of the
    // optimum. With exploration off every proposal comes from the model; 8 of
    // them reach the 7 points within 10% (8 random picks would about 6% of the time).
    const Space space = large_space();
    std::vector<Trial> others;
    for (std::size_t i = 0; i < space.size() && others.size() < 20; i += 37) {
        if (large_bowl(space[i]) > 1.3 * k_large_best_us) others.push_back({space[i], large_cost(space[i], 30), 30});
    }
    ASSERT_EQ(others.size(), 20u);
    const SearchRun run = drive(*make("surrogate", {{"explore", "0"}, {"samples", "8"}}), space, large_cost, others);
    EXPECT_TRUE(run.finished);
    ASSERT_EQ(run.proposals.size(), 8u);
    const auto best = best_trial({run.history.begin() + 20, run.history.end()});
    ASSERT_TRUE(best.has_value());
    EXPECT_LE(large_bowl(best->knobs), 1.1 * k_large_best_us) << "best found " << large_bowl(best->knobs) << " µs";
}

TEST(StrategySurrogate, RespectsSamples) {
    const SearchRun run = drive(*make("surrogate", {{"samples", "6"}}), small_space(), small_cost);
    EXPECT_TRUE(run.finished);
    EXPECT_EQ(run.proposals.size(), 6u);
}

// ---------------------------------------------------------------------------
// The registry.

TEST(StrategyRegistry, NamesUniqueOptionsDocumented) {
    const std::vector<std::string> expected = {"exhaustive", "random", "successive_halving", "evolutionary",
                                               "surrogate"};
    EXPECT_EQ(registered_names(), expected);
    for (const StrategyInfo& info : strategies()) {
        EXPECT_FALSE(info.description.empty()) << info.name;
        std::set<std::string> keys;
        for (const StrategyOption& option : info.options) {
            EXPECT_TRUE(keys.insert(option.name).second) << info.name << " repeats " << option.name;
            EXPECT_FALSE(option.description.empty()) << info.name << "." << option.name;
            EXPECT_FALSE(option.default_value.empty()) << info.name << "." << option.name;
        }
    }
}

TEST(StrategyRegistry, UnknownNameListsTheKnownOnes) {
    const std::string message = input_error([] { make("anneal"); });
    EXPECT_NE(message.find("'anneal'"), std::string::npos) << message;
    for (const std::string& name : registered_names()) EXPECT_NE(message.find(name), std::string::npos) << message;
}

TEST(StrategyRegistry, UnknownOptionKeyListsTheValidKeys) {
    const std::string message = input_error([] { make("successive_halving", {{"reps", "5"}}); });
    EXPECT_NE(message.find("'reps'"), std::string::npos) << message;
    for (const char* key : {"screen_repetitions", "eta", "max_repetitions", "initial"}) {
        EXPECT_NE(message.find(key), std::string::npos) << message;
    }
}

TEST(StrategyRegistry, BadValuesNameTheRequirement) {
    struct Case {
        const char* strategy;
        const char* key;
        const char* value;
        const char* requirement;
    };
    const Case cases[] = {
        {"exhaustive", "repetitions", "abc", "an integer in [1, 1000000]"},
        {"exhaustive", "repetitions", "12x", "an integer in [1, 1000000]"},
        {"exhaustive", "repetitions", "", "an integer in [1, 1000000]"},
        {"exhaustive", "repetitions", " 5", "an integer in [1, 1000000]"},
        {"exhaustive", "repetitions", "0", "an integer in [1, 1000000]"},
        {"exhaustive", "repetitions", "-3", "an integer in [1, 1000000]"},
        {"exhaustive", "repetitions", "99999999999999999999", "an integer in [1, 1000000]"},
        {"random", "samples", "1.5", "an integer >= 1"},
        {"successive_halving", "eta", "1", "an integer >= 2"},
        {"successive_halving", "eta", "0", "an integer >= 2"},
        {"successive_halving", "initial", "some", "'all' or an integer >= 1"},
        {"successive_halving", "initial", "0", "'all' or an integer >= 1"},
        {"successive_halving", "max_repetitions", "4", "at least screen_repetitions (5)"},
        {"evolutionary", "population", "0", "an integer"},
        {"evolutionary", "generations", "ten", "an integer"},
        {"surrogate", "explore", "1.5", "a number in [0, 1]"},
        {"surrogate", "explore", "nan", "a number in [0, 1]"},
        {"surrogate", "explore", "-0.1", "a number in [0, 1]"},
        {"surrogate", "warmup", "-1", "an integer >= 0"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(testing::Message() << c.strategy << " " << c.key << "='" << c.value << "'");
        const std::string message = input_error([&] { make(c.strategy, {{c.key, c.value}}); });
        EXPECT_NE(message.find(c.strategy), std::string::npos) << message;
        EXPECT_NE(message.find(std::string("'") + c.key + "'"), std::string::npos) << message;
        EXPECT_NE(message.find(std::string("got '") + c.value + "'"), std::string::npos) << message;
        EXPECT_NE(message.find(c.requirement), std::string::npos) << message;
    }
    // Edges that are fine.
    EXPECT_NO_THROW(make("successive_halving", {{"eta", "2"}, {"screen_repetitions", "45"}, {"initial", "1"}}));
    EXPECT_NO_THROW(make("surrogate", {{"explore", "1"}, {"warmup", "0"}}));
}

TEST(StrategyRegistry, HelpListsEveryStrategyAndOptionWithDefault) {
    const std::string help = strategies_help();
    for (const StrategyInfo& info : strategies()) {
        EXPECT_NE(help.find(info.name), std::string::npos) << info.name;
        EXPECT_NE(help.find(info.description), std::string::npos) << info.name;
        for (const StrategyOption& option : info.options) {
            EXPECT_NE(help.find(option.name + "=" + option.default_value), std::string::npos) << option.name;
            EXPECT_NE(help.find(option.description), std::string::npos) << option.name;
        }
    }
}

} // namespace
} // namespace nightshift::research
