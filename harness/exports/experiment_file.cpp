#include "harness/exports/experiment_file.h"

#include "harness/core/error.h"
#include "harness/core/paths.h"
#include "harness/evaluate/status.h"

#include <fmt/format.h>

#include <cctype>
#include <fstream>

namespace nightshift::exports {
namespace {

using nlohmann::json;

template <class T>
json optional_json(const std::optional<T>& value) {
    return value ? json(*value) : json(nullptr);
}

json optional_seed(const std::optional<std::int64_t>& bits) {
    // Seeds are 64-bit unsigned, stored in SQLite by their bit pattern.
    return bits ? json(static_cast<std::uint64_t>(*bits)) : json(nullptr);
}

json parse_or(const std::optional<std::string>& text, json fallback) {
    if (!text || text->empty()) return fallback;
    return json::parse(*text, nullptr, false).is_discarded() ? fallback : json::parse(*text);
}

// field(j, "a/b") with a message naming the path when it is missing.
const json& field(const json& j, std::string_view path) {
    const json* node = &j;
    std::size_t start = 0;
    while (start <= path.size()) {
        std::size_t slash = path.find('/', start);
        std::string key(path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
        if (!node->is_object() || !node->contains(key))
            throw InputError(fmt::format("experiment record: missing field '{}'", path));
        node = &(*node)[key];
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    return *node;
}

template <class T>
T get(const json& j, std::string_view path) {
    const json& value = field(j, path);
    try {
        return value.get<T>();
    } catch (const json::exception&) {
        throw InputError(fmt::format("experiment record: field '{}' has the wrong type ({})", path, value.type_name()));
    }
}

template <class T>
std::optional<T> get_optional(const json& j, std::string_view path) {
    const json* node = &j;
    std::size_t start = 0;
    while (true) {
        std::size_t slash = path.find('/', start);
        std::string key(path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
        if (!node->is_object() || !node->contains(key) || (*node)[key].is_null()) return std::nullopt;
        node = &(*node)[key];
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    return get<T>(j, path);
}

std::string slug(std::string_view text) {
    std::string out;
    for (char c : text) {
        char lower = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        bool word = std::isalnum(static_cast<unsigned char>(lower)) || lower == '-' || lower == '.' || lower == '_';
        out += word ? lower : '-';
    }
    while (out.find("--") != std::string::npos) out.replace(out.find("--"), 2, "-");
    while (!out.empty() && out.back() == '-') out.pop_back();
    while (!out.empty() && out.front() == '-') out.erase(0, 1);
    return out.empty() ? "unknown" : out;
}

// "NVIDIA H100 80GB HBM3" -> "h100"; "" (replay rows) -> "device".
std::string gpu_word(const std::string& device) {
    std::string last = "device";
    std::size_t start = 0;
    while (start < device.size()) {
        std::size_t end = device.find(' ', start);
        std::string word = device.substr(start, end == std::string::npos ? std::string::npos : end - start);
        bool has_digit = false, has_alpha = false;
        for (char c : word) {
            has_digit |= std::isdigit(static_cast<unsigned char>(c)) != 0;
            has_alpha |= std::isalpha(static_cast<unsigned char>(c)) != 0;
        }
        if (has_digit && has_alpha && word != "NVIDIA") return slug(word);
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return device.empty() ? last : slug(device);
}

} // namespace

json experiment_json(store::Store& store, std::int64_t id) {
    std::optional<store::ExperimentRecord> found = store.experiment(id);
    if (!found) throw InputError(fmt::format("no experiment {} in {}", id, store.path().string()));
    const store::ExperimentRecord& e = *found;
    store::ProblemKey problem = store.problem(e.problem_id);
    store::KernelRecord kernel = store.kernel(e.kernel_id);
    std::optional<store::RunRecord> run = store.run(e.run_id);

    json baseline = nullptr;
    if (e.baseline_kernel_id) {
        store::KernelRecord b = store.kernel(*e.baseline_kernel_id);
        baseline = {{"kernel_id", b.id},
                    {"path", b.path},
                    {"source_hash", b.source_hash},
                    {"source", b.source},
                    {"knobs", parse_or(e.baseline_knobs_json, json::object())}};
    }
    json record = {
        {"format", "nightshift-experiment"},
        {"version", k_experiment_file_version},
        {"experiment",
         {{"id", e.id},
          {"created_at", e.created_at},
          {"run", e.run_id},
          {"loop", optional_json(e.loop_id)},
          {"status", std::string(evaluate::to_string(e.status))},
          {"message", e.message},
          {"hypothesis", e.hypothesis},
          {"evaluator", e.evaluator},
          {"candidate_key", e.candidate_key}}},
        {"problem",
         {{"op", problem.op},
          {"model", problem.model},
          {"batch", problem.batch},
          {"format", problem.format},
          {"distribution", problem.distribution}}},
        {"kernel",
         {{"id", kernel.id},
          {"path", kernel.path},
          {"origin", kernel.origin},
          {"parent", optional_json(kernel.parent_id)},
          {"source_hash", kernel.source_hash},
          {"source", kernel.source}}},
        {"knobs", parse_or(e.knobs_json, json::object())},
        {"compile_options", parse_or(e.compile_options_json, json::array())},
        {"baseline", baseline},
        {"seeds", {{"input", optional_seed(e.seed)}, {"verification", optional_seed(e.verification_seed)}}},
        {"verification",
         {{"rounds_passed", optional_json(e.rounds_passed)},
          {"rel_l2", optional_json(e.rel_l2)},
          {"max_abs_over_rms", optional_json(e.max_abs_over_rms)},
          {"worst_rel_l2", optional_json(e.worst_rel_l2)},
          {"seed_rel_l2", optional_json(e.seed_rel_l2)},
          {"max_error_vs_seed", optional_json(e.max_error_vs_seed)}}},
        {"timing",
         {{"warmup", optional_json(e.warmup)},
          {"repetitions", optional_json(e.repetitions)},
          {"method", optional_json(e.timing_method)},
          {"median_us", optional_json(e.median_us)},
          {"min_us", optional_json(e.min_us)},
          {"q1_us", optional_json(e.q1_us)},
          {"q3_us", optional_json(e.q3_us)},
          {"cv", optional_json(e.cv)},
          {"samples_us", parse_or(e.samples_json, json::array())},
          {"sm_clock_mhz", optional_json(e.sm_clock_mhz)},
          {"mem_clock_mhz", optional_json(e.mem_clock_mhz)}}},
        {"floors",
         {{"copy_floor_us", optional_json(e.copy_floor_us)},
          {"sol_us", optional_json(e.sol_us)},
          {"fraction_of_floor", optional_json(e.fraction_of_floor)},
          {"fraction_of_sol", optional_json(e.fraction_of_sol)},
          {"copy_gb_per_s", run ? optional_json(run->copy_gb_per_s) : json(nullptr)}}},
        {"speedup",
         {{"baseline_median_us", optional_json(e.baseline_median_us)},
          {"speedup", optional_json(e.speedup)},
          {"noise", optional_json(e.speedup_noise)}}},
        {"resources",
         {{"registers", optional_json(e.registers)},
          {"spill_bytes", optional_json(e.spill_bytes)},
          {"entries", parse_or(e.resources_json, json::array())}}},
        {"environment",
         {{"device", run ? run->device : ""},
          {"driver", run ? run->driver : ""},
          {"nvrtc", run ? run->nvrtc : ""},
          {"host", run ? run->host : ""},
          {"git_commit", run ? run->git_commit : ""},
          {"plan", run ? run->plan_path : ""},
          {"plan_hash", run ? run->plan_hash : ""},
          {"run_created_at", run ? run->created_at : ""}}},
        {"note", fmt::format("{} {} B={} {}: {} [{}] {}; replay with: nightshift replay FILE", problem.op,
                             problem.model, problem.batch, problem.format, kernel.path, e.knobs_json,
                             e.median_us ? fmt::format("{:.2f} us", *e.median_us) : std::string(evaluate::to_string(e.status)))},
    };
    return record;
}

RecordedExperiment recorded_from_json(const json& j) {
    if (get<std::string>(j, "format") != "nightshift-experiment")
        throw InputError("experiment record: 'format' is not nightshift-experiment");
    int version = get<int>(j, "version");
    if (version > k_experiment_file_version)
        throw InputError(fmt::format("experiment record version {} is newer than this nightshift's {}", version,
                                     k_experiment_file_version));
    RecordedExperiment r;
    r.id = get<std::int64_t>(j, "experiment/id");
    r.created_at = get<std::string>(j, "experiment/created_at");
    r.status = get<std::string>(j, "experiment/status");
    r.message = get<std::string>(j, "experiment/message");
    r.evaluator = get<std::string>(j, "experiment/evaluator");
    r.problem = {get<std::string>(j, "problem/op"), get<std::string>(j, "problem/model"), get<int>(j, "problem/batch"),
                 get<std::string>(j, "problem/format"), get<std::string>(j, "problem/distribution")};
    r.kernel_path = get<std::string>(j, "kernel/path");
    r.kernel_source = get<std::string>(j, "kernel/source");
    r.kernel_hash = get<std::string>(j, "kernel/source_hash");
    r.knobs = field(j, "knobs");
    if (!r.knobs.is_object()) throw InputError("experiment record: field 'knobs' is not an object");
    r.compile_options = get<std::vector<std::string>>(j, "compile_options");
    if (!field(j, "baseline").is_null()) {
        r.baseline_path = get<std::string>(j, "baseline/path");
        r.baseline_source = get<std::string>(j, "baseline/source");
        r.baseline_knobs = field(j, "baseline/knobs");
    }
    r.input_seed = get_optional<std::uint64_t>(j, "seeds/input");
    r.verification_seed = get_optional<std::uint64_t>(j, "seeds/verification");
    r.warmup = get_optional<int>(j, "timing/warmup").value_or(5);
    r.repetitions = get_optional<int>(j, "timing/repetitions").value_or(50);
    r.max_error_vs_seed = get_optional<double>(j, "verification/max_error_vs_seed").value_or(2.5);
    r.median_us = get_optional<double>(j, "timing/median_us");
    r.min_us = get_optional<double>(j, "timing/min_us");
    r.q1_us = get_optional<double>(j, "timing/q1_us");
    r.q3_us = get_optional<double>(j, "timing/q3_us");
    r.cv = get_optional<double>(j, "timing/cv");
    r.rel_l2 = get_optional<double>(j, "verification/rel_l2");
    r.baseline_median_us = get_optional<double>(j, "speedup/baseline_median_us");
    r.speedup = get_optional<double>(j, "speedup/speedup");
    r.speedup_noise = get_optional<double>(j, "speedup/noise");
    r.fraction_of_floor = get_optional<double>(j, "floors/fraction_of_floor");
    r.copy_floor_us = get_optional<double>(j, "floors/copy_floor_us");
    r.device = get<std::string>(j, "environment/device");
    r.driver = get<std::string>(j, "environment/driver");
    r.nvrtc = get<std::string>(j, "environment/nvrtc");
    r.host = get<std::string>(j, "environment/host");
    r.git_commit = get<std::string>(j, "environment/git_commit");
    return r;
}

RecordedExperiment load_recorded(store::Store& store, std::int64_t id) {
    return recorded_from_json(experiment_json(store, id));
}

RecordedExperiment load_recorded(const std::filesystem::path& file) {
    std::string text = read_text_file(file);
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded()) throw InputError(fmt::format("{}: not valid JSON", file.string()));
    try {
        return recorded_from_json(j);
    } catch (const InputError& e) {
        throw InputError(fmt::format("{}: {}", file.string(), e.what()));
    }
}

std::string file_name(const json& record) {
    std::string date = get<std::string>(record, "experiment/created_at").substr(0, 10);
    std::string kernel = std::filesystem::path(get<std::string>(record, "kernel/path")).stem().string();
    return fmt::format("{}_{}_{}_b{}_{}_{}_e{}.json", slug(date), gpu_word(get<std::string>(record, "environment/device")),
                       slug(get<std::string>(record, "problem/model")), get<int>(record, "problem/batch"),
                       slug(get<std::string>(record, "problem/format")), slug(kernel),
                       get<std::int64_t>(record, "experiment/id"));
}

std::filesystem::path write_record(const json& record, const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    std::filesystem::path path = dir / file_name(record);
    if (std::filesystem::exists(path))
        throw IoError(fmt::format("{} exists; exported records are never overwritten", path.string()));
    std::ofstream out(path);
    out << record.dump(1) << "\n";
    out.close();
    if (!out) throw IoError(fmt::format("cannot write {}", path.string()));
    return path;
}

} // namespace nightshift::exports
