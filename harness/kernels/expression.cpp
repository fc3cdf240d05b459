#include "harness/kernels/expression.h"

#include "harness/core/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>
#include <utility>

namespace nightshift::kernels {

struct Expression::Node {
    // clang-format off
    enum class Op {
        number, symbol,
        negate, logical_not,
        add, subtract, multiply, divide, modulo,
        equal, not_equal, less, less_equal, greater, greater_equal,
        logical_and, logical_or,
        cdiv, min, max,
    };
    // clang-format on
    Op op = Op::number;
    int64_t value = 0; // Op::number
    std::string name;  // Op::symbol
    std::unique_ptr<const Node> lhs, rhs;
};

namespace {

using Node = Expression::Node;
using Op = Node::Op;
using NodePtr = std::unique_ptr<const Node>;

NodePtr make_node(Op op, NodePtr lhs = nullptr, NodePtr rhs = nullptr) {
    auto node = std::make_unique<Node>();
    node->op = op;
    node->lhs = std::move(lhs);
    node->rhs = std::move(rhs);
    return node;
}

bool is_identifier_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_identifier_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Binary operators by precedence level, loosest first; each level is left associative.
struct BinaryOp {
    std::string_view spelling;
    Op op;
};
const std::vector<std::vector<BinaryOp>> k_levels = {
    {{"||", Op::logical_or}},
    {{"&&", Op::logical_and}},
    {{"==", Op::equal}, {"!=", Op::not_equal}},
    {{"<=", Op::less_equal}, {">=", Op::greater_equal}, {"<", Op::less}, {">", Op::greater}},
    {{"+", Op::add}, {"-", Op::subtract}},
    {{"*", Op::multiply}, {"/", Op::divide}, {"%", Op::modulo}},
};

class Parser {
public:
    explicit Parser(std::string_view text) : m_text(text) {}

    NodePtr parse_all() {
        skip_space();
        if (m_pos == m_text.size()) fail("empty expression");
        NodePtr root = parse_level(0);
        skip_space();
        if (m_pos != m_text.size()) fail(fmt::format("unexpected '{}'", m_text[m_pos]));
        return root;
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        throw InputError(fmt::format("expression '{}': {} at column {}", m_text, what, m_pos + 1));
    }

    void skip_space() {
        while (m_pos < m_text.size() && std::isspace(static_cast<unsigned char>(m_text[m_pos]))) ++m_pos;
    }

    // Consumes `token` if it comes next, but never as the first half of a
    // longer operator: "<" must not take the "<" of "<=", nor "!" that of "!=".
    bool accept(std::string_view token) {
        skip_space();
        if (m_text.substr(m_pos, token.size()) != token) return false;
        const std::size_t end = m_pos + token.size();
        const bool single = token.size() == 1 && (token == "<" || token == ">" || token == "!");
        if (single && end < m_text.size() && m_text[end] == '=') return false;
        m_pos = end;
        return true;
    }

    void expect(std::string_view token) {
        if (!accept(token)) {
            skip_space();
            if (m_pos == m_text.size()) fail(fmt::format("expected '{}' but the expression ended", token));
            fail(fmt::format("expected '{}'", token));
        }
    }

    NodePtr parse_level(std::size_t level) {
        if (level == k_levels.size()) return parse_unary();
        NodePtr lhs = parse_level(level + 1);
        for (;;) {
            const BinaryOp* found = nullptr;
            for (const BinaryOp& candidate : k_levels[level]) {
                if (accept(candidate.spelling)) {
                    found = &candidate;
                    break;
                }
            }
            if (found == nullptr) return lhs;
            lhs = make_node(found->op, std::move(lhs), parse_level(level + 1));
        }
    }

    NodePtr parse_unary() {
        if (accept("-")) return make_node(Op::negate, parse_unary());
        if (accept("!")) return make_node(Op::logical_not, parse_unary());
        return parse_primary();
    }

    NodePtr parse_primary() {
        skip_space();
        if (m_pos == m_text.size()) fail("unexpected end of expression");
        const char c = m_text[m_pos];
        if (c == '(') {
            ++m_pos;
            NodePtr inner = parse_level(0);
            expect(")");
            return inner;
        }
        if (std::isdigit(static_cast<unsigned char>(c))) return parse_number();
        if (is_identifier_start(c)) return parse_identifier();
        fail(fmt::format("unexpected '{}'", c));
    }

    NodePtr parse_number() {
        const std::size_t start = m_pos;
        while (m_pos < m_text.size() && is_identifier_char(m_text[m_pos])) ++m_pos;
        const std::string_view digits = m_text.substr(start, m_pos - start);
        auto node = std::make_unique<Node>();
        node->op = Op::number;
        const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), node->value);
        if (ec == std::errc::result_out_of_range) {
            m_pos = start;
            fail(fmt::format("integer {} is too large", digits));
        }
        if (ec != std::errc() || end != digits.data() + digits.size()) {
            m_pos = start;
            fail(fmt::format("malformed integer '{}'", digits));
        }
        return node;
    }

    NodePtr parse_identifier() {
        const std::size_t start = m_pos;
        while (m_pos < m_text.size() && is_identifier_char(m_text[m_pos])) ++m_pos;
        std::string name(m_text.substr(start, m_pos - start));
        skip_space();
        if (m_pos < m_text.size() && m_text[m_pos] == '(') {
            Op op;
            if (name == "cdiv") op = Op::cdiv;
            else if (name == "min") op = Op::min;
            else if (name == "max") op = Op::max;
            else {
                m_pos = start;
                fail(fmt::format("unknown function '{}'", name));
            }
            ++m_pos;
            NodePtr a = parse_level(0);
            expect(",");
            NodePtr b = parse_level(0);
            expect(")");
            return make_node(op, std::move(a), std::move(b));
        }
        auto node = std::make_unique<Node>();
        node->op = Op::symbol;
        node->name = std::move(name);
        return node;
    }

    std::string_view m_text;
    std::size_t m_pos = 0;
};

class Evaluator {
public:
    Evaluator(const std::string& text, const Symbols& symbols) : m_text(text), m_symbols(symbols) {}

    int64_t eval(const Node& node) const {
        int64_t r = 0;
        switch (node.op) {
        case Op::number: return node.value;
        case Op::symbol: {
            const auto it = m_symbols.find(node.name);
            if (it == m_symbols.end()) fail(fmt::format("unknown symbol '{}'", node.name));
            return it->second;
        }
        case Op::negate:
            if (__builtin_sub_overflow(int64_t{0}, eval(*node.lhs), &r)) overflow();
            return r;
        case Op::logical_not: return eval(*node.lhs) == 0;
        // Short-circuit, so "B != 0 && A / B > 1" is safe, as in C.
        case Op::logical_and: return eval(*node.lhs) != 0 && eval(*node.rhs) != 0;
        case Op::logical_or: return eval(*node.lhs) != 0 || eval(*node.rhs) != 0;
        default: break;
        }
        const int64_t a = eval(*node.lhs);
        const int64_t b = eval(*node.rhs);
        switch (node.op) {
        case Op::add:
            if (__builtin_add_overflow(a, b, &r)) overflow();
            return r;
        case Op::subtract:
            if (__builtin_sub_overflow(a, b, &r)) overflow();
            return r;
        case Op::multiply:
            if (__builtin_mul_overflow(a, b, &r)) overflow();
            return r;
        case Op::divide:
        case Op::modulo:
            if (b == 0) fail("division by zero");
            if (a == INT64_MIN && b == -1) overflow();
            return node.op == Op::divide ? a / b : a % b;
        case Op::equal: return a == b;
        case Op::not_equal: return a != b;
        case Op::less: return a < b;
        case Op::less_equal: return a <= b;
        case Op::greater: return a > b;
        case Op::greater_equal: return a >= b;
        case Op::cdiv:
            // Defined for positive divisors only: a grid size from a zero or
            // negative tile size is a mistake in the file, not a value.
            if (b <= 0) fail(fmt::format("cdiv divisor {} is not positive", b));
            return a / b + (a % b > 0 ? 1 : 0);
        case Op::min: return std::min(a, b);
        case Op::max: return std::max(a, b);
        default: break;
        }
        fail("internal error: unhandled operator");
    }

private:
    [[noreturn]] void fail(const std::string& what) const { throw InputError(fmt::format("{} in '{}'", what, m_text)); }
    [[noreturn]] void overflow() const { fail("integer overflow"); }

    const std::string& m_text;
    const Symbols& m_symbols;
};

void collect_symbols(const Node* node, std::set<std::string>& out) {
    if (node == nullptr) return;
    if (node->op == Op::symbol) out.insert(node->name);
    collect_symbols(node->lhs.get(), out);
    collect_symbols(node->rhs.get(), out);
}

} // namespace

Expression::Expression() : Expression(constant(1)) {}

Expression::Expression(std::string text, std::shared_ptr<const Node> root)
    : m_text(std::move(text)), m_root(std::move(root)) {}

Expression Expression::parse(std::string_view text) { return Expression(std::string(text), Parser(text).parse_all()); }

Expression Expression::constant(int64_t value) {
    auto node = std::make_shared<Node>();
    node->op = Op::number;
    node->value = value;
    return Expression(std::to_string(value), std::move(node));
}

int64_t Expression::evaluate(const Symbols& symbols) const { return Evaluator(m_text, symbols).eval(*m_root); }

std::vector<std::string> Expression::symbols() const {
    std::set<std::string> names;
    collect_symbols(m_root.get(), names);
    return {names.begin(), names.end()};
}

} // namespace nightshift::kernels
