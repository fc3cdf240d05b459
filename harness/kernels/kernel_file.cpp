#include "harness/kernels/kernel_file.h"

#include "harness/core/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

namespace nightshift::kernels {

namespace {

struct ScratchTypeInfo {
    ScratchType type;
    std::string_view name;
    std::size_t bytes;
};
constexpr std::array<ScratchTypeInfo, 6> k_scratch_types = {{
    {ScratchType::f32, "f32", 4},
    {ScratchType::f64, "f64", 8},
    {ScratchType::bf16, "bf16", 2},
    {ScratchType::i32, "i32", 4},
    {ScratchType::u32, "u32", 4},
    {ScratchType::u8, "u8", 1},
}};

constexpr std::array<std::string_view, 4> k_formats = {"bf16", "int8_row", "int4_g128", "fp8_e4m3"};

// Knob names become -D defines in device code: a knob named like an expression
// function would redefine min()/max() there, and NS_ belongs to the harness's
// own shape defines (-DNS_T=..).
constexpr std::array<std::string_view, 3> k_function_names = {"cdiv", "min", "max"};
constexpr std::string_view k_reserved_prefix = "NS_";

bool is_space(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

bool is_identifier(std::string_view s) {
    if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

// Removes and returns the next whitespace-separated word of `rest`.
std::string_view next_word(std::string_view& rest) {
    rest = trim(rest);
    std::size_t end = 0;
    while (end < rest.size() && !std::isspace(static_cast<unsigned char>(rest[end]))) ++end;
    const std::string_view word = rest.substr(0, end);
    rest.remove_prefix(end);
    return word;
}

std::vector<std::string_view> words(std::string_view text) {
    std::vector<std::string_view> out;
    for (std::string_view word = next_word(text); !word.empty(); word = next_word(text)) out.push_back(word);
    return out;
}

std::string join(const std::vector<std::string_view>& items) {
    std::string out;
    for (std::string_view item : items) {
        if (!out.empty()) out += ' ';
        out += item;
    }
    return out;
}

// Splits the inside of grid=(...) on commas outside parentheses, so that
// cdiv(I, A*B) stays one dimension.
std::vector<std::string_view> split_top_level(std::string_view text) {
    std::vector<std::string_view> parts;
    int depth = 0;
    std::size_t start = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '(') ++depth;
        else if (text[i] == ')') --depth;
        else if (text[i] == ',' && depth == 0) {
            parts.push_back(trim(text.substr(start, i - start)));
            start = i + 1;
        }
    }
    parts.push_back(trim(text.substr(start)));
    return parts;
}

// Where a launch argument `grid=`, `block=`, `smem=` or `pdl=` starts at
// text[pos] (not "==", which belongs to an expression).
bool launch_key_at(std::string_view text, std::size_t pos) {
    for (std::string_view key : {"grid", "block", "smem", "pdl"}) {
        if (text.substr(pos, key.size()) != key) continue;
        std::size_t i = pos + key.size();
        while (i < text.size() && is_space(text[i])) ++i;
        if (i < text.size() && text[i] == '=' && (i + 1 == text.size() || text[i + 1] != '=')) return true;
    }
    return false;
}

class FileParser {
public:
    FileParser(std::string path, std::string source) {
        m_file.path = std::move(path);
        m_file.source = std::move(source);
    }

    KernelFile parse() {
        std::string_view rest = m_file.source;
        while (!rest.empty() || m_line == 0) {
            ++m_line;
            const std::size_t newline = rest.find('\n');
            std::string_view line = rest.substr(0, newline);
            rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            parse_line(line);
        }
        if (m_op_line == 0) throw InputError(fmt::format("{}: missing @op", m_file.path));
        if (m_file.launches.empty()) throw InputError(fmt::format("{}: no @launch", m_file.path));
        // A packed layout nobody writes, or a prepack with nothing to write,
        // is a mistake in the file, not something to skip.
        const auto packed = std::find_if(m_file.scratch.begin(), m_file.scratch.end(),
                                         [](const Scratch& s) { return s.packed; });
        if (packed != m_file.scratch.end() && m_file.prepacks.empty())
            throw InputError(fmt::format("{}:{}: @packed {} but no @prepack writes it", m_file.path, packed->line,
                                         packed->name));
        if (packed == m_file.scratch.end() && !m_file.prepacks.empty())
            throw InputError(fmt::format("{}:{}: @prepack {} but no @packed buffer for it to write", m_file.path,
                                         m_file.prepacks.front().line, m_file.prepacks.front().entry));
        return std::move(m_file);
    }

private:
    [[noreturn]] void fail(const std::string& message) const {
        throw InputError(fmt::format("{}:{}: {}", m_file.path, m_line, message));
    }

    Expression expression(std::string_view text) const {
        try {
            return Expression::parse(text);
        } catch (const InputError& e) {
            fail(e.what());
        }
    }

    void parse_line(std::string_view line) {
        line = trim(line);
        if (line.substr(0, 2) != "//") return;
        line.remove_prefix(2);
        while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
        if (line.empty() || line.front() != '@') return;

        std::size_t key_end = 1;
        while (key_end < line.size() && !std::isspace(static_cast<unsigned char>(line[key_end]))) ++key_end;
        const std::string_view key = line.substr(1, key_end - 1);
        std::string_view args = line.substr(key_end);
        for (std::size_t i = 0; i + 1 < args.size(); ++i) {
            if (is_space(args[i]) && args[i + 1] == '#') {
                args = args.substr(0, i);
                break;
            }
        }
        args = trim(args);

        if (key == "op") parse_op(args);
        else if (key == "formats") parse_formats(args);
        else if (key == "tune") parse_tune(args);
        else if (key == "constrain") parse_constrain(args);
        else if (key == "scratch") parse_scratch(args, false);
        else if (key == "packed") parse_scratch(args, true);
        else if (key == "launch") m_file.launches.push_back(parse_launch(args, "launch"));
        else if (key == "prepack") m_file.prepacks.push_back(parse_launch(args, "prepack"));
        else if (key == "parent") parse_parent(args);
        else if (key == "nondeterministic") parse_nondeterministic(args);
        else fail(fmt::format("unknown annotation @{}", key));
    }

    void parse_op(std::string_view args) {
        const auto w = words(args);
        if (m_op_line != 0) fail(fmt::format("@op given twice (first at line {})", m_op_line));
        if (w.size() != 1) fail("@op expects exactly one name");
        m_file.op = w[0];
        m_op_line = m_line;
    }

    void parse_formats(std::string_view args) {
        if (m_formats_line != 0) fail(fmt::format("@formats given twice (first at line {})", m_formats_line));
        const auto w = words(args);
        if (w.empty()) fail("@formats expects one or more formats");
        for (std::string_view format : w) {
            if (std::find(k_formats.begin(), k_formats.end(), format) == k_formats.end())
                fail(fmt::format("unknown format '{}' (known: {})", format,
                                 join(std::vector<std::string_view>(k_formats.begin(), k_formats.end()))));
            if (std::find(m_file.formats.begin(), m_file.formats.end(), format) != m_file.formats.end())
                fail(fmt::format("format '{}' listed twice", format));
            m_file.formats.emplace_back(format);
        }
        m_formats_line = m_line;
    }

    void parse_tune(std::string_view args) {
        const auto w = words(args);
        if (w.size() < 2) fail("@tune expects a knob name and one or more integer values");
        const std::string_view name = w[0];
        if (!is_identifier(name)) fail(fmt::format("knob name '{}' is not an identifier", name));
        if (std::find(k_function_names.begin(), k_function_names.end(), name) != k_function_names.end())
            fail(fmt::format("knob name '{}' is an expression function", name));
        if (name.substr(0, k_reserved_prefix.size()) == k_reserved_prefix)
            fail(fmt::format("knob name '{}' uses the harness's reserved prefix {}", name, k_reserved_prefix));
        for (const Tune& tune : m_file.tunes) {
            if (tune.name == name) fail(fmt::format("knob '{}' already declared at line {}", name, tune.line));
        }
        Tune tune{std::string(name), {}, m_line};
        for (std::size_t i = 1; i < w.size(); ++i) {
            int64_t value = 0;
            const char* first = w[i].data();
            const char* last = first + w[i].size();
            const auto [end, ec] = std::from_chars(first, last, value);
            if (ec != std::errc() || end != last) fail(fmt::format("knob '{}': '{}' is not an integer", name, w[i]));
            if (std::find(tune.values.begin(), tune.values.end(), value) != tune.values.end())
                fail(fmt::format("knob '{}': value {} listed twice", name, value));
            tune.values.push_back(value);
        }
        m_file.tunes.push_back(std::move(tune));
    }

    void parse_constrain(std::string_view args) {
        if (args.empty()) fail("@constrain expects an expression");
        m_file.constraints.push_back({expression(args), m_line});
    }

    // @scratch and @packed: one namespace, one numbering, one limit.
    void parse_scratch(std::string_view args, bool packed) {
        const std::string_view kind = packed ? "packed" : "scratch";
        std::string_view rest = args;
        const std::string_view name = next_word(rest);
        const std::string_view type_name = next_word(rest);
        const std::string_view count = trim(rest);
        if (count.empty()) fail(fmt::format("@{} expects NAME TYPE COUNT", kind));
        if (!is_identifier(name)) fail(fmt::format("{} name '{}' is not an identifier", kind, name));
        for (const Scratch& s : m_file.scratch) {
            if (s.name == name)
                fail(fmt::format("{} '{}' already declared at line {}", s.packed ? "packed" : "scratch", name, s.line));
        }
        if (m_file.scratch.size() == k_max_scratch)
            fail(fmt::format("more than {} @scratch and @packed buffers (params.scratch[] has {} slots)",
                             k_max_scratch, k_max_scratch));
        const auto info = std::find_if(k_scratch_types.begin(), k_scratch_types.end(),
                                       [&](const ScratchTypeInfo& t) { return t.name == type_name; });
        if (info == k_scratch_types.end()) {
            std::vector<std::string_view> known;
            for (const ScratchTypeInfo& t : k_scratch_types) known.push_back(t.name);
            fail(fmt::format("unknown {} type '{}' (known: {})", kind, type_name, join(known)));
        }
        m_file.scratch.push_back({std::string(name), info->type, expression(count), m_line, packed});
    }

    // @launch and @prepack (`key_name`): the same grammar.
    Launch parse_launch(std::string_view args, std::string_view key_name) {
        std::string_view rest = args;
        Launch launch;
        launch.line = m_line;
        launch.entry = next_word(rest);
        if (launch.entry.empty() || launch_key_at(launch.entry, 0))
            fail(fmt::format("@{} expects ENTRY grid=(X[,Y[,Z]]) block=(X[,Y[,Z]]) [smem=BYTES]{}", key_name,
                             key_name == "launch" ? " [pdl=EXPR]" : ""));
        if (!is_identifier(launch.entry)) fail(fmt::format("{} entry '{}' is not an identifier", key_name, launch.entry));

        bool has_grid = false, has_block = false, has_smem = false, has_pdl = false;
        std::size_t pos = 0;
        const auto skip_spaces = [&] {
            while (pos < rest.size() && is_space(rest[pos])) ++pos;
        };
        for (;;) {
            skip_spaces();
            if (pos == rest.size()) break;
            const std::size_t key_start = pos;
            while (pos < rest.size() && (std::isalnum(static_cast<unsigned char>(rest[pos])) || rest[pos] == '_'))
                ++pos;
            const std::string_view key = rest.substr(key_start, pos - key_start);
            skip_spaces();
            if (key.empty() || pos == rest.size() || rest[pos] != '=')
                fail(fmt::format("@{} {}: expected grid=, block=, smem= or pdl= at '{}'", key_name, launch.entry,
                                 rest.substr(key_start)));
            ++pos;
            skip_spaces();
            const auto once = [&](bool& seen) {
                if (seen) fail(fmt::format("@{} {}: {}= given twice", key_name, launch.entry, key));
                seen = true;
            };
            if (key == "grid") {
                once(has_grid);
                launch.grid = dims(key_name, launch.entry, key, rest, pos);
            } else if (key == "block") {
                once(has_block);
                launch.block = dims(key_name, launch.entry, key, rest, pos);
            } else if (key == "smem" || key == "pdl") {
                once(key == "smem" ? has_smem : has_pdl);
                // These expressions are not parenthesized and may contain
                // spaces: each runs until the next top-level launch key or the end.
                const std::size_t start = pos;
                int depth = 0;
                for (; pos < rest.size(); ++pos) {
                    if (rest[pos] == '(') ++depth;
                    else if (rest[pos] == ')') --depth;
                    else if (depth == 0 && is_space(rest[pos]) && launch_key_at(rest, pos + 1)) break;
                }
                const std::string_view text = trim(rest.substr(start, pos - start));
                if (text.empty()) fail(fmt::format("@{} {}: {}= expects an expression", key_name, launch.entry, key));
                (key == "smem" ? launch.smem_bytes : launch.programmatic) = expression(text);
            } else {
                fail(fmt::format("@{} {}: unknown argument '{}=' (expected grid=, block=, smem= or pdl=)", key_name,
                                 launch.entry, key));
            }
        }
        if (has_pdl && key_name == "prepack") fail(fmt::format("@prepack {}: pdl= applies to @launch only", launch.entry));
        if (has_pdl && m_file.launches.empty())
            fail(fmt::format("@launch {}: pdl= on the first launch would let it overlap the timing's L2 flush; "
                             "it belongs on a later launch of the call",
                             launch.entry));
        if (!has_grid) fail(fmt::format("@{} {}: missing grid=(...)", key_name, launch.entry));
        if (!has_block) fail(fmt::format("@{} {}: missing block=(...)", key_name, launch.entry));
        return launch;
    }

    // Reads "(e1[,e2[,e3]])" at rest[pos] and leaves pos after the ')'.
    std::array<Expression, 3> dims(std::string_view key_name, std::string_view entry, std::string_view key,
                                   std::string_view rest, std::size_t& pos) const {
        if (pos == rest.size() || rest[pos] != '(')
            fail(fmt::format("@{} {}: {}= expects (X[,Y[,Z]])", key_name, entry, key));
        const std::size_t open = pos;
        int depth = 0;
        for (; pos < rest.size(); ++pos) {
            if (rest[pos] == '(') ++depth;
            else if (rest[pos] == ')' && --depth == 0) break;
        }
        if (pos == rest.size()) fail(fmt::format("@{} {}: unbalanced parentheses in {}=", key_name, entry, key));
        const std::string_view inner = rest.substr(open + 1, pos - open - 1);
        ++pos;
        if (pos < rest.size() && !is_space(rest[pos]))
            fail(fmt::format("@{} {}: unexpected '{}' after {}=(...)", key_name, entry, rest[pos], key));

        const auto parts = split_top_level(inner);
        if (parts.size() > 3)
            fail(fmt::format("@{} {}: {}= has {} dimensions, at most 3", key_name, entry, key, parts.size()));
        std::array<Expression, 3> out;
        for (std::size_t i = 0; i < parts.size(); ++i) {
            if (parts[i].empty()) fail(fmt::format("@{} {}: {}= dimension {} is empty", key_name, entry, key, i + 1));
            out[i] = expression(parts[i]);
        }
        return out;
    }

    void parse_parent(std::string_view args) {
        if (m_file.parent) fail("@parent given twice");
        const auto w = words(args);
        if (w.size() != 1) fail("@parent expects exactly one file");
        m_file.parent = std::string(w[0]);
    }

    void parse_nondeterministic(std::string_view args) {
        if (!args.empty()) fail("@nondeterministic takes no arguments");
        if (m_file.nondeterministic) fail("@nondeterministic given twice");
        m_file.nondeterministic = true;
    }

    KernelFile m_file;
    int m_line = 0;
    int m_op_line = 0;
    int m_formats_line = 0;
};

// Every expression in the file with its line, in file order.
std::vector<std::pair<int, const Expression*>> all_expressions(const KernelFile& file) {
    std::vector<std::pair<int, const Expression*>> out;
    for (const Constraint& c : file.constraints) out.emplace_back(c.line, &c.condition);
    for (const Scratch& s : file.scratch) out.emplace_back(s.line, &s.count);
    for (const auto* launches : {&file.launches, &file.prepacks}) {
        for (const Launch& l : *launches) {
            for (const Expression& e : l.grid) out.emplace_back(l.line, &e);
            for (const Expression& e : l.block) out.emplace_back(l.line, &e);
            out.emplace_back(l.line, &l.smem_bytes);
            out.emplace_back(l.line, &l.programmatic);
        }
    }
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    return out;
}

std::string join_values(const std::vector<int64_t>& values) {
    std::string out;
    for (int64_t v : values) out += (out.empty() ? "" : " ") + std::to_string(v);
    return out;
}

} // namespace

std::size_t scratch_type_bytes(ScratchType type) {
    for (const ScratchTypeInfo& info : k_scratch_types) {
        if (info.type == type) return info.bytes;
    }
    return 0;
}

std::string_view to_string(ScratchType type) {
    for (const ScratchTypeInfo& info : k_scratch_types) {
        if (info.type == type) return info.name;
    }
    return "?";
}

Symbols KernelFile::default_knobs() const {
    Symbols knobs;
    for (const Tune& tune : tunes) knobs[tune.name] = tune.values.front();
    return knobs;
}

std::vector<Symbols> KernelFile::knob_space() const {
    std::vector<Symbols> space{Symbols{}};
    // Expanding the first knob first makes it vary slowest.
    for (const Tune& tune : tunes) {
        std::vector<Symbols> next;
        next.reserve(space.size() * tune.values.size());
        for (const Symbols& partial : space) {
            for (int64_t value : tune.values) {
                Symbols s = partial;
                s[tune.name] = value;
                next.push_back(std::move(s));
            }
        }
        space = std::move(next);
    }
    return space;
}

bool KernelFile::satisfies(const Symbols& knobs_and_shape) const {
    for (const Constraint& c : constraints) {
        int64_t value = 0;
        try {
            value = c.condition.evaluate(knobs_and_shape);
        } catch (const InputError& e) {
            throw InputError(fmt::format("{}:{}: {}", path, c.line, e.what()));
        }
        if (value == 0) return false;
    }
    return true;
}

void KernelFile::check_symbols(const std::vector<std::string>& shape_symbols) const {
    const std::set<std::string, std::less<>> shape(shape_symbols.begin(), shape_symbols.end());
    std::set<std::string, std::less<>> known = shape;
    for (const Tune& tune : tunes) {
        if (shape.count(tune.name) != 0)
            throw InputError(
                fmt::format("{}:{}: knob '{}' has the name of a shape symbol", path, tune.line, tune.name));
        known.insert(tune.name);
    }
    for (const auto& [line, expr] : all_expressions(*this)) {
        for (const std::string& name : expr->symbols()) {
            if (known.count(name) == 0)
                throw InputError(fmt::format("{}:{}: unknown symbol '{}' in '{}' (neither a knob nor a shape symbol)",
                                             path, line, name, expr->text()));
        }
    }
}

Symbols KernelFile::resolve_knobs(const Symbols& overrides) const {
    for (const auto& override_entry : overrides) {
        const std::string& name = override_entry.first;
        if (std::none_of(tunes.begin(), tunes.end(), [&](const Tune& t) { return t.name == name; })) {
            std::vector<std::string_view> names;
            for (const Tune& t : tunes) names.push_back(t.name);
            throw InputError(fmt::format("{}: unknown knob '{}' (knobs: {})", path, name,
                                         names.empty() ? std::string("none") : join(names)));
        }
    }
    Symbols knobs;
    for (const Tune& tune : tunes) {
        const auto it = overrides.find(tune.name);
        if (it == overrides.end()) {
            knobs[tune.name] = tune.values.front();
            continue;
        }
        if (std::find(tune.values.begin(), tune.values.end(), it->second) == tune.values.end())
            throw InputError(fmt::format("{}:{}: knob '{}' = {} is not one of its values {}", path, tune.line,
                                         tune.name, it->second, join_values(tune.values)));
        knobs[tune.name] = it->second;
    }
    return knobs;
}

KernelFile parse_kernel_file(std::string path, std::string source) {
    return FileParser(std::move(path), std::move(source)).parse();
}

KernelFile load_kernel_file(const std::filesystem::path& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        throw IoError(fmt::format("cannot read kernel file '{}': it is a directory", path.string()));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw IoError(fmt::format("cannot read kernel file '{}': {}", path.string(), std::strerror(errno)));
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw IoError(fmt::format("error reading kernel file '{}'", path.string()));
    return parse_kernel_file(path.string(), text.str());
}

} // namespace nightshift::kernels
