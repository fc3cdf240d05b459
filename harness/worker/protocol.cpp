#include "harness/worker/protocol.h"

#include "harness/evaluate/evaluation_json.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace nightshift::worker {
using nlohmann::json;
namespace {

constexpr char k_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

json compiled_kernel_json(const CompiledKernel& k) {
    return {{"path", k.path},
            {"source", k.source},
            {"knobs", k.knobs},
            {"key", k.compiled.key},
            {"log", k.compiled.log},
            {"options", k.compiled.full_options},
            {"from_cache", k.compiled.from_cache},
            {"seconds", k.compiled.seconds},
            {"cubin", base64_encode(k.compiled.cubin)}};
}

CompiledKernel compiled_kernel_from_json(const json& j) {
    CompiledKernel k;
    k.path = j.at("path").get<std::string>();
    k.source = j.at("source").get<std::string>();
    k.knobs = j.at("knobs").get<kernels::Symbols>();
    k.compiled.ok = true;
    k.compiled.key = j.at("key").get<std::string>();
    k.compiled.log = j.at("log").get<std::string>();
    k.compiled.full_options = j.at("options").get<std::vector<std::string>>();
    k.compiled.from_cache = j.at("from_cache").get<bool>();
    k.compiled.seconds = j.at("seconds").get<double>();
    k.compiled.cubin = base64_decode(j.at("cubin").get<std::string>());
    cuda::parse_ptxas_report(k.compiled.log, k.compiled.entries, k.compiled.global_bytes);
    return k;
}

} // namespace

std::string base64_encode(const std::vector<char>& bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        unsigned v = (unsigned char)bytes[i] << 16 | (unsigned char)bytes[i + 1] << 8 | (unsigned char)bytes[i + 2];
        out += k_alphabet[v >> 18];
        out += k_alphabet[(v >> 12) & 63];
        out += k_alphabet[(v >> 6) & 63];
        out += k_alphabet[v & 63];
    }
    if (i < bytes.size()) {
        unsigned v = (unsigned char)bytes[i] << 16;
        if (i + 1 < bytes.size()) v |= (unsigned char)bytes[i + 1] << 8;
        out += k_alphabet[v >> 18];
        out += k_alphabet[(v >> 12) & 63];
        out += i + 1 < bytes.size() ? k_alphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::vector<char> base64_decode(const std::string& text) {
    if (text.size() % 4 != 0) throw InputError("base64: length is not a multiple of 4");
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    std::vector<char> out;
    out.reserve(text.size() / 4 * 3);
    for (std::size_t i = 0; i < text.size(); i += 4) {
        int a = value(text[i]), b = value(text[i + 1]);
        bool pad2 = text[i + 2] == '=', pad3 = text[i + 3] == '=';
        bool last = i + 4 == text.size();
        int c = pad2 ? 0 : value(text[i + 2]), d = pad3 ? 0 : value(text[i + 3]);
        if (a < 0 || b < 0 || c < 0 || d < 0 || ((pad2 || pad3) && !last) || (pad2 && !pad3)) {
            throw InputError(fmt::format("base64: bad character near offset {}", i));
        }
        unsigned v = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)c << 6 | (unsigned)d;
        out.push_back(static_cast<char>(v >> 16));
        if (!pad2) out.push_back(static_cast<char>((v >> 8) & 255));
        if (!pad3) out.push_back(static_cast<char>(v & 255));
    }
    return out;
}

json to_json(const EvaluateRequest& r) {
    json j = {{"type", "evaluate"},
              {"id", r.id},
              {"candidate", compiled_kernel_json(r.candidate)},
              {"problem",
               {{"model", r.problem.model},
                {"batch", r.problem.batch},
                {"format", r.problem.format},
                {"seed", r.problem.seed},
                {"distribution", r.problem.distribution}}},
              {"timing", {{"warmup", r.timing.warmup}, {"repetitions", r.timing.repetitions}}},
              {"time_speed_of_light", r.time_speed_of_light},
              {"max_error_vs_seed", r.max_error_vs_seed}};
    j["baseline"] = r.baseline ? compiled_kernel_json(*r.baseline) : json(nullptr);
    return j;
}

EvaluateRequest evaluate_request_from_json(const json& j) {
    try {
        EvaluateRequest r;
        r.id = j.at("id").get<long long>();
        r.candidate = compiled_kernel_from_json(j.at("candidate"));
        if (!j.at("baseline").is_null()) r.baseline = compiled_kernel_from_json(j.at("baseline"));
        const json& p = j.at("problem");
        r.problem = {.model = p.at("model").get<std::string>(),
                     .batch = p.at("batch").get<int>(),
                     .format = p.at("format").get<std::string>(),
                     .seed = p.at("seed").get<unsigned long long>(),
                     .distribution = p.at("distribution").get<std::string>()};
        r.timing = {.warmup = j.at("timing").at("warmup").get<int>(),
                    .repetitions = j.at("timing").at("repetitions").get<int>()};
        r.time_speed_of_light = j.at("time_speed_of_light").get<bool>();
        r.max_error_vs_seed = j.value("max_error_vs_seed", 2.5);
        return r;
    } catch (const json::exception& e) {
        throw InputError(fmt::format("malformed evaluate request: {}", e.what()));
    }
}

json to_json(const EvaluateReply& r) {
    return {{"type", "result"},
            {"id", r.id},
            {"evaluation", evaluate::to_json(r.evaluation)},
            {"baseline", r.baseline ? evaluate::to_json(*r.baseline) : json(nullptr)}};
}

EvaluateReply evaluate_reply_from_json(const json& j) {
    try {
        EvaluateReply r;
        r.id = j.at("id").get<long long>();
        r.evaluation = evaluate::evaluation_from_json(j.at("evaluation"));
        if (!j.at("baseline").is_null()) r.baseline = evaluate::evaluation_from_json(j.at("baseline"));
        return r;
    } catch (const json::exception& e) {
        throw InputError(fmt::format("malformed evaluate reply: {}", e.what()));
    }
}

} // namespace nightshift::worker
