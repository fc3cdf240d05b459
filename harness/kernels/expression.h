// Integer expressions from kernel-file annotations (@constrain, @scratch,
// @launch): parsed once when the file is read, evaluated for every
// configuration the tuner visits, so evaluation never re-reads the text.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace nightshift::kernels {

// Values of shape symbols and knobs, looked up by name.
using Symbols = std::map<std::string, int64_t, std::less<>>;

// Grammar, C precedence and left associativity:
//   integer literals, identifiers, + - * / %, unary - and !, parentheses,
//   cdiv(a,b) min(a,b) max(a,b), == != < <= > >= (0 or 1), && || (short-circuit).
// Arithmetic is int64_t; / and % truncate as in C. Division by zero, a
// non-positive cdiv divisor and overflow are InputErrors, never UB.
class Expression {
public:
    // The constant 1, the value of an omitted launch dimension.
    Expression();

    // Throws InputError "expression 'TEXT': WHAT at column N" (N counts from 1).
    static Expression parse(std::string_view text);
    static Expression constant(int64_t value);

    // Throws InputError "unknown symbol 'X' in 'TEXT'", "division by zero in 'TEXT'".
    int64_t evaluate(const Symbols& symbols) const;

    // Identifiers the expression refers to, sorted and unique (function names excluded).
    std::vector<std::string> symbols() const;

    const std::string& text() const { return m_text; }

    struct Node; // the AST, defined in expression.cpp

private:
    Expression(std::string text, std::shared_ptr<const Node> root);

    std::string m_text;
    // Shared and immutable, so copies of an Expression are cheap.
    std::shared_ptr<const Node> m_root;
};

} // namespace nightshift::kernels
