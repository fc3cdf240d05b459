#include "harness/agents/reply_parser.h"

#include "harness/core/error.h"
#include "harness/kernels/kernel_file.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <regex>

namespace nightshift::agents {
namespace {

Failure failure(FailureKind kind, std::string message) {
    return {.kind = kind, .message = std::move(message), .http_status = std::nullopt, .body = {}};
}

struct Block {
    std::string text;
    std::size_t begin = 0, end = 0; // the whole fence, in the reply
};

// Fenced blocks: a line starting with ``` opens (any info string), the next
// line starting with ``` closes. An unclosed fence runs to the end (a reply
// cut off by max_tokens), and is marked so.
std::vector<Block> fenced_blocks(std::string_view text, bool& unclosed) {
    std::vector<Block> blocks;
    unclosed = false;
    std::size_t pos = 0;
    bool in_block = false;
    std::size_t open = 0, body = 0;
    while (pos <= text.size()) {
        std::size_t eol = text.find('\n', pos);
        if (eol == std::string_view::npos) eol = text.size();
        std::string_view line = text.substr(pos, eol - pos);
        std::size_t lead = line.find_first_not_of(" \t");
        bool fence = lead != std::string_view::npos && line.substr(lead).starts_with("```");
        if (fence) {
            if (!in_block) {
                in_block = true;
                open = pos;
                body = std::min(eol + 1, text.size());
            } else {
                blocks.push_back({std::string(text.substr(body, pos - body)), open, eol});
                in_block = false;
            }
        }
        if (eol == text.size()) break;
        pos = eol + 1;
    }
    if (in_block) {
        unclosed = true;
        blocks.push_back({std::string(text.substr(body)), open, text.size()});
    }
    return blocks;
}

// The source with comments and string/char literals blanked (newlines kept),
// so rules about code are not tripped by prose in the header comment.
std::string code_only(const std::string& s) {
    std::string out = s;
    enum { code, line_comment, block_comment, string, character } state = code;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i], next = i + 1 < s.size() ? s[i + 1] : '\0';
        switch (state) {
        case code:
            if (c == '/' && next == '/') state = line_comment, out[i] = ' ';
            else if (c == '/' && next == '*') state = block_comment, out[i] = ' ';
            else if (c == '"') state = string;
            else if (c == '\'') state = character;
            break;
        case line_comment:
            if (c == '\n') state = code;
            else out[i] = ' ';
            break;
        case block_comment:
            if (c == '*' && next == '/') {
                out[i] = out[i + 1] = ' ';
                ++i;
                state = code;
            } else if (c != '\n') out[i] = ' ';
            break;
        case string:
        case character:
            if (c == '\\' && next) {
                out[i] = ' ';
                if (next != '\n') out[i + 1] = ' ';
                ++i;
            } else if ((state == string && c == '"') || (state == character && c == '\'')) state = code;
            else if (c != '\n') out[i] = ' ';
            break;
        }
    }
    return out;
}

int line_at(const std::string& s, std::size_t offset) {
    return 1 + static_cast<int>(std::count(s.begin(), s.begin() + static_cast<long>(offset), '\n'));
}

bool is_label_line(const std::string& line, const std::string& label) {
    static const std::string k_marks = " \t>#*_-";
    std::size_t at = line.find_first_not_of(k_marks);
    if (at == std::string::npos || line.size() - at < label.size()) return false;
    for (std::size_t i = 0; i < label.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(line[at + i])) != label[i]) return false;
    }
    std::size_t after = line.find_first_not_of("*_ ", at + label.size());
    return after != std::string::npos && (line[after] == ':' || line[after] == '-');
}

// A labelled line outside the code ("Hypothesis: ...", "**Predicted effect**: ..."),
// with the lines that continue it, up to a blank line or the next label.
std::string labelled(const std::string& prose, const std::string& label) {
    std::vector<std::string> lines;
    for (std::size_t pos = 0; pos <= prose.size();) {
        std::size_t eol = prose.find('\n', pos);
        if (eol == std::string::npos) eol = prose.size();
        lines.push_back(prose.substr(pos, eol - pos));
        pos = eol + 1;
    }
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (!is_label_line(lines[i], label)) continue;
        std::string value = lines[i].substr(lines[i].find_first_of(":-", lines[i].find_first_not_of(" \t>#*_-") + label.size()) + 1);
        for (std::size_t j = i + 1; j < lines.size(); ++j) {
            const std::string& next = lines[j];
            if (next.find_first_not_of(" \t") == std::string::npos || next.find("```") != std::string::npos ||
                is_label_line(next, "hypothesis") || is_label_line(next, "predicted effect"))
                break;
            value += " " + next;
        }
        const std::size_t begin = value.find_first_not_of(" \t*_");
        const std::size_t end = value.find_last_not_of(" \t*_\r");
        return begin == std::string::npos ? std::string() : value.substr(begin, end - begin + 1);
    }
    return {};
}

} // namespace

const std::vector<std::string>& allowed_includes() {
    static const std::vector<std::string> includes = {"params.h"};
    return includes;
}

Outcome<KernelProposal> parse_reply(std::string_view text, std::string_view op,
                                    const std::vector<std::string>& shape_symbols) {
    bool unclosed = false;
    std::vector<Block> blocks = fenced_blocks(text, unclosed);
    std::vector<Block> kernels;
    for (auto& b : blocks) {
        if (b.text.find("@op") != std::string::npos) kernels.push_back(b);
    }
    if (kernels.empty()) {
        return failure(FailureKind::malformed_reply,
                       blocks.empty() ? "the reply has no fenced code block (```cuda ... ```)"
                                      : "no fenced code block holds a kernel file (none has an @op annotation)");
    }
    if (kernels.size() > 1)
        return failure(FailureKind::malformed_reply,
                       fmt::format("the reply has {} kernel files; one whole kernel file is asked for", kernels.size()));
    if (unclosed && kernels.front().end == text.size())
        return failure(FailureKind::malformed_reply, "the kernel file's code block is never closed (reply cut off?)");

    KernelProposal proposal;
    proposal.source = kernels.front().text;
    std::string prose = std::string(text.substr(0, kernels.front().begin)) + "\n" +
                        std::string(text.substr(std::min(kernels.front().end, text.size())));
    proposal.hypothesis = labelled(prose, "hypothesis");
    proposal.predicted_effect = labelled(prose, "predicted effect");

    const std::string code = code_only(proposal.source);
    // Includes: only the op's params.h (NVRTC has no host headers, and the harness
    // passes no other include folder a kernel may rely on).
    static const std::regex include_re(R"((^|\n)[ \t]*#[ \t]*include[ \t]*([<"])([^>"\n]*)[>"])");
    for (auto it = std::sregex_iterator(proposal.source.begin(), proposal.source.end(), include_re);
         it != std::sregex_iterator(); ++it) {
        const std::size_t at = static_cast<std::size_t>(it->position(0));
        if (code.substr(at, it->length(0)).find("include") == std::string::npos) continue; // inside a comment
        const std::string name = (*it)[3].str();
        if (std::find(allowed_includes().begin(), allowed_includes().end(), name) == allowed_includes().end() ||
            (*it)[2].str() != "\"")
            return failure(FailureKind::rejected_reply,
                           fmt::format("line {}: #include {}{}{} is outside the allowed set (\"params.h\")",
                                       line_at(proposal.source, at), (*it)[2].str(), name,
                                       (*it)[2].str() == "<" ? ">" : "\""));
    }
    // Host code: the harness launches; a kernel file is device code only.
    static const std::vector<std::pair<std::regex, std::string>> host_rules = {
        {std::regex(R"(\bint\s+main\s*\()"), "a main() function"},
        {std::regex(R"(<<<)"), "a kernel launch (<<<...>>>)"},
        {std::regex(R"(\b__host__\b)"), "__host__ code"},
        {std::regex(R"(\bcuda[A-Z]\w*\s*\()"), "a CUDA runtime API call"},
        {std::regex(R"(\bcu[A-Z]\w*\s*\()"), "a CUDA driver API call"},
        {std::regex(R"(\b(malloc|free|fopen|exit)\s*\()"), "a host library call"},
        {std::regex(R"(\bstd::)"), "the C++ standard library"},
    };
    for (const auto& [re, what] : host_rules) {
        std::smatch m;
        if (std::regex_search(code, m, re))
            return failure(FailureKind::rejected_reply,
                           fmt::format("line {}: host code is not allowed in a kernel file: {} ('{}')",
                                       line_at(code, static_cast<std::size_t>(m.position(0))), what, m.str(0)));
    }
    // Annotations: they must parse, name the op, declare launches (and
    // prepacks) whose entries the file defines, and use only shape symbols
    // and knobs.
    try {
        kernels::KernelFile file = kernels::parse_kernel_file("reply.cu", proposal.source);
        if (file.op != op)
            return failure(FailureKind::rejected_reply,
                           fmt::format("@op is '{}', the plan's op is '{}'", file.op, op));
        if (file.launches.empty())
            return failure(FailureKind::rejected_reply, "the kernel file has no @launch annotation");
        file.check_symbols(shape_symbols);
        for (const auto* launches : {&file.launches, &file.prepacks}) {
            for (const auto& launch : *launches) {
                std::regex entry_re("extern\\s+\"C\"[^;{]*__global__[^;{]*?\\b" + launch.entry + "\\s*\\(");
                if (!std::regex_search(proposal.source, entry_re))
                    return failure(FailureKind::rejected_reply,
                                   fmt::format("line {}: @{} {} names no extern \"C\" __global__ function of the file",
                                               launch.line, launches == &file.launches ? "launch" : "prepack",
                                               launch.entry));
            }
        }
    } catch (const InputError& e) {
        return failure(FailureKind::rejected_reply, fmt::format("annotations: {}", e.what()));
    }
    if (proposal.hypothesis.empty())
        return failure(FailureKind::rejected_reply, "the reply states no hypothesis (a 'Hypothesis:' line)");
    return proposal;
}

} // namespace nightshift::agents
