#include "harness/research/plan.h"

#include "harness/core/error.h"
#include "harness/core/paths.h"
#include "harness/core/sha256.h"
#include "harness/kernels/kernel_file.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

// toml++ header-only: Debian's shared library is missing on the GPU machine,
// and the header is slow to compile, so it stays in this one file.
#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <initializer_list>
#include <set>
#include <utility>

namespace nightshift::research {
namespace fs = std::filesystem;
namespace {

constexpr std::array<std::string_view, 4> k_formats = {"bf16", "int8_row", "int4_g128", "fp8_e4m3"};
constexpr std::array<std::string_view, 4> k_agents = {"tuner", "openai", "anthropic", "replay"};
constexpr std::array<std::string_view, 3> k_distributions = {"uniform", "zipf", "identical"};

constexpr std::array<std::string_view, 15> k_top_keys = {
    "title", "op",    "models", "batches", "formats",  "distribution", "baseline",  "seeds",
    "agent", "tuner", "budget", "stop",    "accuracy", "timing",       "directions"};
constexpr std::array<std::string_view, 3> k_budget_keys = {"hours", "minutes", "experiments"};
// [agent]: what each key holds (ranges are checked here too, so a plan fails at
// its line; harness/agents/agent_config.cpp documents what the keys mean).
enum class AgentValue { text, number, count, positive_count };
struct AgentKey {
    std::string_view name;
    AgentValue kind;
};
constexpr std::array<AgentKey, 19> k_agent_table = {{{"name", AgentValue::text},
                                                     {"base_url", AgentValue::text},
                                                     {"model", AgentValue::text},
                                                     {"api_key_env", AgentValue::text},
                                                     {"temperature", AgentValue::number},
                                                     {"max_tokens", AgentValue::positive_count},
                                                     {"max_tokens_field", AgentValue::text},
                                                     {"max_calls", AgentValue::positive_count},
                                                     {"max_total_tokens", AgentValue::positive_count},
                                                     {"max_cost_usd", AgentValue::number},
                                                     {"price_in_per_mtok", AgentValue::number},
                                                     {"price_out_per_mtok", AgentValue::number},
                                                     {"concurrency", AgentValue::positive_count},
                                                     {"timeout_s", AgentValue::number},
                                                     {"retries", AgentValue::count},
                                                     {"rounds", AgentValue::positive_count},
                                                     {"prompt_attempts", AgentValue::positive_count},
                                                     {"replay_db", AgentValue::text},
                                                     {"replay_run", AgentValue::positive_count}}};
constexpr std::array<std::string_view, k_agent_table.size()> k_agent_keys = [] {
    std::array<std::string_view, k_agent_table.size()> names{};
    for (std::size_t i = 0; i < k_agent_table.size(); ++i) names[i] = k_agent_table[i].name;
    return names;
}();
constexpr std::array<std::string_view, 1> k_stop_keys = {"fraction_of_floor"};
constexpr std::array<std::string_view, 2> k_accuracy_keys = {"max_rel_l2", "max_error_vs_seed"};
constexpr std::array<std::string_view, 2> k_timing_keys = {"repetitions", "warmup"};
constexpr std::array<std::string_view, 6> k_direction_keys = {"name",    "hypothesis", "done_when",
                                                              "kernels", "knobs",      "batches"};

constexpr int k_max_batch = 512;
constexpr int64_t k_max_repetitions = 100000;

template <std::size_t N> std::string join(const std::array<std::string_view, N>& items) {
    std::string out;
    for (std::string_view item : items) {
        if (!out.empty()) out += ", ";
        out += item;
    }
    return out;
}

template <std::size_t N> bool contains(const std::array<std::string_view, N>& items, std::string_view item) {
    return std::find(items.begin(), items.end(), item) != items.end();
}

bool is_identifier(std::string_view s) {
    if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string_view type_name(const toml::node& node) {
    switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
    }
}

std::string child(std::string_view parent, std::string_view key) {
    return parent.empty() ? std::string(key) : fmt::format("{}.{}", parent, key);
}
std::string element(std::string_view parent, std::size_t index) { return fmt::format("{}[{}]", parent, index); }

// The front matter's place in the file.
struct Split {
    std::string_view toml;
    std::string_view body;
};

// A line is a delimiter when it is "+++" up to trailing blanks (and a CR).
bool is_delimiter(std::string_view line) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    return line == "+++";
}

Split split_front_matter(const std::string& path, std::string_view text) {
    if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3); // a UTF-8 byte order mark
    std::size_t end = text.find('\n');
    if (!is_delimiter(text.substr(0, end)))
        throw InputError(
            fmt::format("{}:1: a plan must start with a '+++' line that opens its TOML front matter", path));
    if (end == std::string_view::npos)
        throw InputError(fmt::format("{}:1: the front matter opened here is never closed by a '+++' line", path));
    const std::size_t toml_begin = end + 1;
    for (std::size_t begin = toml_begin; begin < text.size(); begin = end + 1) {
        end = text.find('\n', begin);
        if (is_delimiter(text.substr(begin, end == std::string_view::npos ? end : end - begin))) {
            return {text.substr(toml_begin, begin - toml_begin),
                    end == std::string_view::npos ? std::string_view() : text.substr(end + 1)};
        }
        if (end == std::string_view::npos) break;
    }
    throw InputError(fmt::format("{}:1: the front matter opened here is never closed by a '+++' line", path));
}

// Reads the TOML tree into a Plan. Every error names the file line (the TOML's
// line + 1, for the opening +++) and the field by its path.
class Reader {
public:
    explicit Reader(Plan& plan) : m_plan(plan) {}

    void read(const toml::table& root) {
        check_keys(root, "", k_top_keys, 1);

        m_plan.title = nonempty_string(required(root, "title", "", 1, "a string"), "title");
        const std::string op_field = "op";
        const toml::node& op = required(root, "op", "", 1, "an identifier such as \"moe_decode\"");
        m_plan.op = nonempty_string(op, op_field);
        if (!is_identifier(m_plan.op))
            fail(line(op), op_field, fmt::format("'{}' is not an identifier (letters, digits, _)", m_plan.op));
        m_plan.models =
            string_list(required(root, "models", "", 1, "a non-empty array of model names"), "models", true);
        m_plan.batches = batch_list(required(root, "batches", "", 1, "a non-empty array of batch sizes"), "batches");
        if (const toml::node* formats = root.get("formats")) {
            m_plan.formats = string_list(*formats, "formats", true);
            for (std::size_t i = 0; i < m_plan.formats.size(); ++i)
                check_choice(formats->as_array()->at(i), "formats", m_plan.formats[i], k_formats, "format");
        }
        if (const toml::node* distribution = root.get("distribution")) {
            m_plan.distribution = nonempty_string(*distribution, "distribution");
            check_choice(*distribution, "distribution", m_plan.distribution, k_distributions, "distribution");
        }
        m_plan.baseline =
            nonempty_string(required(root, "baseline", "", 1, "a kernel file such as \"moe_decode/x.cu\""), "baseline");
        if (const toml::node* seeds = root.get("seeds")) m_plan.seeds = string_list(*seeds, "seeds", false);
        if (const toml::node* agent = root.get("agent")) {
            if (agent->is_table()) {
                read_agent(*agent);
            } else {
                m_plan.agent = nonempty_string(*agent, "agent");
                check_choice(*agent, "agent", m_plan.agent, k_agents, "agent");
            }
        }
        if (const toml::node* tuner = root.get("tuner")) read_tuner(*tuner);
        if (const toml::node* budget = root.get("budget")) read_budget(*budget);
        if (const toml::node* stop = root.get("stop")) read_stop(*stop);
        if (const toml::node* accuracy = root.get("accuracy")) read_accuracy(*accuracy);
        if (const toml::node* timing = root.get("timing")) read_timing(*timing);
        read_directions(required(root, "directions", "", 1, "one or more [[directions]] tables"));
    }

private:
    int line(const toml::node& node) const {
        const auto toml_line = node.source().begin.line;
        return toml_line == 0 ? 0 : static_cast<int>(toml_line) + 1;
    }

    [[noreturn]] void fail(int line, std::string_view field, std::string_view message) const {
        if (line > 0) throw InputError(fmt::format("{}:{}: field '{}': {}", m_plan.path, line, field, message));
        throw InputError(fmt::format("{}: field '{}': {}", m_plan.path, field, message));
    }

    void record(const std::string& field, const toml::node& node) { m_plan.lines[field] = line(node); }

    // Unknown keys are typos until proven otherwise: the first one in the file
    // is an error that lists the known keys (and the nearest, if one is close).
    template <std::size_t N> void check_keys(const toml::table& table, std::string_view prefix,
                                             const std::array<std::string_view, N>& known, int table_line) {
        const toml::node* first = nullptr;
        std::string_view first_key;
        for (auto&& [key, value] : table) {
            if (contains(known, key.str())) continue;
            if (!first || line(value) < line(*first)) {
                first = &value;
                first_key = key.str();
            }
        }
        if (!first) return;
        std::string message = "unknown key";
        std::string_view nearest;
        std::size_t best = 3; // suggest only within two edits
        for (std::string_view candidate : known) {
            if (const std::size_t d = edit_distance(first_key, candidate); d < best) {
                best = d;
                nearest = candidate;
            }
        }
        if (!nearest.empty()) message += fmt::format(" (did you mean '{}'?)", nearest);
        const std::string where = prefix.empty()                      ? std::string("at the top level")
                                  : prefix.starts_with("directions[") ? std::string("in [[directions]]")
                                                                      : fmt::format("in [{}]", prefix);
        message += fmt::format("; known keys {}: {}", where, join(known));
        fail(line(*first) > 0 ? line(*first) : table_line, child(prefix, first_key), message);
    }

    const toml::node& required(const toml::table& table, std::string_view key, std::string_view prefix, int table_line,
                               std::string_view what) {
        const toml::node* node = table.get(key);
        if (!node) fail(table_line, child(prefix, key), fmt::format("missing; required: {}", what));
        return *node;
    }

    const toml::table& table_value(const toml::node& node, const std::string& field) {
        if (!node.is_table()) fail(line(node), field, fmt::format("expected a table, got {}", type_name(node)));
        record(field, node);
        return *node.as_table();
    }

    const toml::array& array_value(const toml::node& node, const std::string& field, std::string_view what) {
        if (!node.is_array()) fail(line(node), field, fmt::format("expected {}, got {}", what, type_name(node)));
        record(field, node);
        return *node.as_array();
    }

    std::string string_value(const toml::node& node, const std::string& field) {
        if (!node.is_string()) fail(line(node), field, fmt::format("expected a string, got {}", type_name(node)));
        record(field, node);
        return std::string(node.as_string()->get());
    }

    std::string nonempty_string(const toml::node& node, const std::string& field) {
        std::string value = string_value(node, field);
        if (value.empty()) fail(line(node), field, "must not be empty");
        return value;
    }

    int64_t integer_value(const toml::node& node, const std::string& field) {
        if (!node.is_integer()) fail(line(node), field, fmt::format("expected an integer, got {}", type_name(node)));
        record(field, node);
        return node.as_integer()->get();
    }

    int64_t integer_in(const toml::node& node, const std::string& field, int64_t lo, int64_t hi) {
        const int64_t value = integer_value(node, field);
        if (value < lo || value > hi) fail(line(node), field, fmt::format("{} is outside {}..{}", value, lo, hi));
        return value;
    }

    // An integer or a float, finite.
    double number_value(const toml::node& node, const std::string& field) {
        double value = 0;
        if (node.is_integer())
            value = static_cast<double>(node.as_integer()->get());
        else if (node.is_floating_point())
            value = node.as_floating_point()->get();
        else
            fail(line(node), field, fmt::format("expected a number, got {}", type_name(node)));
        if (!std::isfinite(value)) fail(line(node), field, "must be finite");
        record(field, node);
        return value;
    }

    double positive_number(const toml::node& node, const std::string& field) {
        const double value = number_value(node, field);
        if (value <= 0) fail(line(node), field, fmt::format("must be positive, got {}", value));
        return value;
    }

    template <std::size_t N> void check_choice(const toml::node& node, const std::string& field, std::string_view value,
                                               const std::array<std::string_view, N>& choices, std::string_view what) {
        if (!contains(choices, value))
            fail(line(node), field, fmt::format("unknown {} '{}' (known: {})", what, value, join(choices)));
    }

    // Distinct non-empty strings; elements recorded as field[i].
    std::vector<std::string> string_list(const toml::node& node, const std::string& field, bool nonempty) {
        const toml::array& array = array_value(node, field, "an array of strings");
        if (nonempty && array.empty()) fail(line(node), field, "must not be empty");
        std::vector<std::string> out;
        for (std::size_t i = 0; i < array.size(); ++i) {
            const toml::node& item = array[i];
            if (!item.is_string())
                fail(line(item), field,
                     fmt::format("expected an array of strings, but element {} is {}", i, type_name(item)));
            std::string value = nonempty_string(item, element(field, i));
            if (std::find(out.begin(), out.end(), value) != out.end())
                fail(line(item), field, fmt::format("'{}' listed twice", value));
            out.push_back(std::move(value));
        }
        return out;
    }

    std::vector<int> batch_list(const toml::node& node, const std::string& field) {
        const toml::array& array = array_value(node, field, "an array of batch sizes (integers)");
        if (array.empty()) fail(line(node), field, "must not be empty");
        std::vector<int> out;
        for (std::size_t i = 0; i < array.size(); ++i) {
            const toml::node& item = array[i];
            if (!item.is_integer())
                fail(line(item), field,
                     fmt::format("expected an array of batch sizes (integers), but element {} is {}", i,
                                 type_name(item)));
            const int64_t value = item.as_integer()->get();
            if (value < 1 || value > k_max_batch)
                fail(line(item), field, fmt::format("batch {} is outside 1..{}", value, k_max_batch));
            if (std::find(out.begin(), out.end(), value) != out.end())
                fail(line(item), field, fmt::format("batch {} listed twice", value));
            record(element(field, i), item);
            out.push_back(static_cast<int>(value));
        }
        return out;
    }

    void read_tuner(const toml::node& node) {
        const toml::table& table = table_value(node, "tuner");
        for (auto&& [key, value] : table) {
            const std::string field = child("tuner", key.str());
            if (key.str() == "strategy") {
                m_plan.strategy = nonempty_string(value, field);
                if (!is_identifier(m_plan.strategy))
                    fail(line(value), field, fmt::format("'{}' is not an identifier", m_plan.strategy));
                continue;
            }
            std::string text;
            if (value.is_string())
                text = value.as_string()->get();
            else if (value.is_integer())
                text = std::to_string(value.as_integer()->get());
            else if (value.is_floating_point())
                text = fmt::format("{}", value.as_floating_point()->get());
            else if (value.is_boolean())
                text = value.as_boolean()->get() ? "true" : "false";
            else
                fail(line(value), field,
                     fmt::format("strategy options are scalars (string, integer, float, boolean), got {}",
                                 type_name(value)));
            record(field, value);
            m_plan.strategy_options.emplace(std::string(key.str()), std::move(text));
        }
    }

    // [agent]: `name` picks the agent; the other keys are its options, kept as strings.
    void read_agent(const toml::node& node) {
        const toml::table& table = table_value(node, "agent");
        check_keys(table, "agent", k_agent_keys, line(node));
        const toml::node& name = required(table, "name", "agent", line(node), "an agent name");
        m_plan.agent = nonempty_string(name, "agent.name");
        check_choice(name, "agent.name", m_plan.agent, k_agents, "agent");
        for (const AgentKey& key : k_agent_table) {
            const toml::node* value = table.get(key.name);
            if (!value || key.name == "name") continue;
            const std::string field = child("agent", key.name);
            std::string text;
            switch (key.kind) {
            case AgentValue::text: text = nonempty_string(*value, field); break;
            case AgentValue::number: {
                const double v = number_value(*value, field);
                if (v < 0) fail(line(*value), field, fmt::format("must not be negative, got {}", v));
                text = fmt::format("{}", v);
                break;
            }
            case AgentValue::count:
                text = std::to_string(integer_in(*value, field, 0, 1'000'000'000));
                break;
            case AgentValue::positive_count:
                text = std::to_string(integer_in(*value, field, 1, 1'000'000'000));
                break;
            }
            record(field, *value);
            m_plan.agent_options.emplace(std::string(key.name), std::move(text));
        }
    }

    void read_budget(const toml::node& node) {
        const toml::table& table = table_value(node, "budget");
        check_keys(table, "budget", k_budget_keys, line(node));
        if (const toml::node* hours = table.get("hours")) m_plan.budget_hours = positive_number(*hours, "budget.hours");
        if (const toml::node* minutes = table.get("minutes")) {
            if (m_plan.budget_hours)
                fail(line(*minutes), "budget.minutes",
                     fmt::format("give hours or minutes, not both (hours at line {})", m_plan.line_of("budget.hours")));
            m_plan.budget_minutes = positive_number(*minutes, "budget.minutes");
        }
        if (const toml::node* experiments = table.get("experiments")) {
            const int64_t value = integer_value(*experiments, "budget.experiments");
            if (value < 1)
                fail(line(*experiments), "budget.experiments", fmt::format("must be positive, got {}", value));
            m_plan.budget_experiments = value;
        }
        if (!m_plan.budget_hours && !m_plan.budget_minutes && !m_plan.budget_experiments)
            fail(line(node), "budget", "needs hours, minutes or experiments (leave [budget] out for no limit)");
    }

    void read_stop(const toml::node& node) {
        const toml::table& table = table_value(node, "stop");
        check_keys(table, "stop", k_stop_keys, line(node));
        if (const toml::node* fraction = table.get("fraction_of_floor")) {
            const double value = number_value(*fraction, "stop.fraction_of_floor");
            if (!(value > 0 && value <= 1))
                fail(line(*fraction), "stop.fraction_of_floor", fmt::format("must be in (0, 1], got {}", value));
            m_plan.stop_fraction_of_floor = value;
        }
    }

    void read_accuracy(const toml::node& node) {
        const toml::table& table = table_value(node, "accuracy");
        check_keys(table, "accuracy", k_accuracy_keys, line(node));
        if (const toml::node* l2 = table.get("max_rel_l2"))
            m_plan.max_rel_l2 = positive_number(*l2, "accuracy.max_rel_l2");
        if (const toml::node* vs_seed = table.get("max_error_vs_seed")) {
            const double value = number_value(*vs_seed, "accuracy.max_error_vs_seed");
            if (value < 1)
                fail(line(*vs_seed), "accuracy.max_error_vs_seed",
                     fmt::format("must be at least 1 (the seed itself must pass), got {}", value));
            m_plan.max_error_vs_seed = value;
        }
    }

    void read_timing(const toml::node& node) {
        const toml::table& table = table_value(node, "timing");
        check_keys(table, "timing", k_timing_keys, line(node));
        if (const toml::node* repetitions = table.get("repetitions"))
            m_plan.repetitions = static_cast<int>(integer_in(*repetitions, "timing.repetitions", 1, k_max_repetitions));
        if (const toml::node* warmup = table.get("warmup"))
            m_plan.warmup = static_cast<int>(integer_in(*warmup, "timing.warmup", 0, k_max_repetitions));
    }

    void read_directions(const toml::node& node) {
        const toml::array& array = array_value(node, "directions", "[[directions]] tables");
        if (array.empty()) fail(line(node), "directions", "needs at least one direction");
        for (std::size_t i = 0; i < array.size(); ++i) {
            const std::string prefix = element("directions", i);
            const toml::node& item = array[i];
            if (!item.is_table())
                fail(line(item), prefix, fmt::format("expected a [[directions]] table, got {}", type_name(item)));
            m_plan.directions.push_back(read_direction(*item.as_table(), prefix, line(item)));
        }
    }

    Direction read_direction(const toml::table& table, const std::string& prefix, int table_line) {
        Direction direction;
        direction.line = table_line;
        m_plan.lines[prefix] = table_line;
        check_keys(table, prefix, k_direction_keys, table_line);
        const toml::node& name = required(table, "name", prefix, table_line, "a string");
        direction.name = nonempty_string(name, child(prefix, "name"));
        for (const Direction& other : m_plan.directions) {
            if (other.name == direction.name)
                fail(line(name), child(prefix, "name"),
                     fmt::format("'{}' already names the direction at line {}", direction.name, other.line));
        }
        if (const toml::node* hypothesis = table.get("hypothesis"))
            direction.hypothesis = string_value(*hypothesis, child(prefix, "hypothesis"));
        if (const toml::node* done_when = table.get("done_when"))
            direction.done_when = string_value(*done_when, child(prefix, "done_when"));
        direction.kernels =
            string_list(required(table, "kernels", prefix, table_line, "a non-empty array of kernel files"),
                        child(prefix, "kernels"), true);
        if (const toml::node* knobs = table.get("knobs")) direction.knobs = read_knobs(*knobs, child(prefix, "knobs"));
        if (const toml::node* batches = table.get("batches"))
            direction.batches = batch_list(*batches, child(prefix, "batches"));
        return direction;
    }

    std::map<std::string, std::vector<int64_t>, std::less<>> read_knobs(const toml::node& node,
                                                                        const std::string& prefix) {
        const toml::table& table = table_value(node, prefix);
        std::map<std::string, std::vector<int64_t>, std::less<>> knobs;
        for (auto&& [key, value] : table) {
            const std::string field = child(prefix, key.str());
            if (!is_identifier(key.str()))
                fail(line(value), field, fmt::format("knob name '{}' is not an identifier", key.str()));
            const toml::array& array = array_value(value, field, "an array of integer knob values");
            if (array.empty()) fail(line(value), field, "needs at least one value");
            std::vector<int64_t> values;
            for (std::size_t i = 0; i < array.size(); ++i) {
                const toml::node& item = array[i];
                if (!item.is_integer())
                    fail(line(item), field,
                         fmt::format("knob values are integers, but element {} is {}", i, type_name(item)));
                const int64_t v = item.as_integer()->get();
                if (std::find(values.begin(), values.end(), v) != values.end())
                    fail(line(item), field, fmt::format("value {} listed twice", v));
                values.push_back(v);
            }
            knobs.emplace(std::string(key.str()), std::move(values));
        }
        return knobs;
    }

    Plan& m_plan;
};

} // namespace

int Plan::line_of(std::string_view field) const {
    const auto it = lines.find(field);
    return it == lines.end() ? 0 : it->second;
}

Plan parse_plan(std::string path, std::string_view text) {
    Plan plan;
    plan.path = std::move(path);
    plan.hash = sha256_hex(text);
    const Split split = split_front_matter(plan.path, text);
    plan.front_matter = std::string(split.toml);
    plan.body = std::string(split.body);
    toml::table root;
    try {
        root = toml::parse(split.toml, std::string_view(plan.path));
    } catch (const toml::parse_error& e) {
        // toml++ counts lines from the front matter's first line, the file's second.
        throw InputError(fmt::format("{}:{}: TOML syntax error at column {}: {}", plan.path, e.source().begin.line + 1,
                                     e.source().begin.column, e.description()));
    }
    Reader(plan).read(root);
    return plan;
}

Plan load_plan(const fs::path& path) { return parse_plan(path.string(), read_text_file(path)); }

fs::path resolve_kernel(const Plan& plan, const std::string& reference, const fs::path& root, int line) {
    const fs::path in_seeds = root / "kernels_seed" / reference;
    const fs::path beside_plan = fs::path(plan.path).parent_path() / reference;
    std::error_code ec;
    if (!reference.empty()) {
        if (fs::is_regular_file(in_seeds, ec)) return in_seeds;
        if (fs::is_regular_file(beside_plan, ec)) return beside_plan;
    }
    const std::string where = line > 0 ? fmt::format("{}:{}", plan.path, line) : plan.path;
    throw InputError(fmt::format("{}: kernel '{}': not found (looked for {} and {})", where, reference,
                                 in_seeds.string(), beside_plan.string()));
}

std::vector<fs::path> check_plan_kernels(const Plan& plan, const fs::path& root) {
    std::map<fs::path, kernels::KernelFile> files;
    std::vector<fs::path> resolved;
    auto load = [&](const std::string& field, const std::string& reference) -> const kernels::KernelFile& {
        const int line = plan.line_of(field);
        const fs::path path = resolve_kernel(plan, reference, root, line);
        resolved.push_back(path);
        auto it = files.find(path);
        if (it == files.end()) {
            try {
                it = files.emplace(path, kernels::load_kernel_file(path)).first;
            } catch (const InputError& e) {
                throw InputError(fmt::format("{}:{}: field '{}': {}", plan.path, line, field, e.what()));
            }
        }
        if (it->second.op != plan.op)
            throw InputError(fmt::format("{}:{}: field '{}': kernel '{}' implements op '{}', the plan's op is '{}'",
                                         plan.path, line, field, reference, it->second.op, plan.op));
        return it->second;
    };
    load("baseline", plan.baseline);
    for (std::size_t i = 0; i < plan.seeds.size(); ++i) load(fmt::format("seeds[{}]", i), plan.seeds[i]);
    for (std::size_t d = 0; d < plan.directions.size(); ++d) {
        const Direction& direction = plan.directions[d];
        std::vector<const kernels::KernelFile*> kernels;
        for (std::size_t k = 0; k < direction.kernels.size(); ++k)
            kernels.push_back(&load(fmt::format("directions[{}].kernels[{}]", d, k), direction.kernels[k]));
        for (const auto& [knob, values] : direction.knobs) {
            const std::string field = fmt::format("directions[{}].knobs.{}", d, knob);
            const int line = plan.line_of(field);
            bool declared = false;
            std::string all_knobs;
            for (const kernels::KernelFile* kernel : kernels) {
                for (const kernels::Tune& tune : kernel->tunes) {
                    if (!all_knobs.empty()) all_knobs += ", ";
                    all_knobs += tune.name;
                    if (tune.name != knob) continue;
                    declared = true;
                    for (int64_t value : values) {
                        if (std::find(tune.values.begin(), tune.values.end(), value) == tune.values.end())
                            throw InputError(fmt::format(
                                "{}:{}: field '{}': value {} is not declared by {}:{} (@tune {} {})", plan.path, line,
                                field, value, kernel->path, tune.line, tune.name, fmt::join(tune.values, " ")));
                    }
                }
            }
            if (!declared)
                throw InputError(fmt::format("{}:{}: field '{}': no kernel of this direction declares knob '{}' "
                                             "(their knobs: {})",
                                             plan.path, line, field, knob, all_knobs.empty() ? "none" : all_knobs));
        }
    }
    return resolved;
}

} // namespace nightshift::research
