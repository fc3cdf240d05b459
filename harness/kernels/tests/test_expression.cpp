#include "harness/kernels/expression.h"

#include "harness/core/error.h"

#include <gtest/gtest.h>

#include <string>

namespace nightshift::kernels {
namespace {

int64_t eval(std::string_view text, const Symbols& symbols = {}) { return Expression::parse(text).evaluate(symbols); }

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

std::string parse_error(std::string_view text) {
    return input_error([&] { Expression::parse(text); });
}

std::string eval_error(std::string_view text, const Symbols& symbols = {}) {
    return input_error([&] { eval(text, symbols); });
}

TEST(Expression, Literals) {
    EXPECT_EQ(eval("0"), 0);
    EXPECT_EQ(eval("42"), 42);
    EXPECT_EQ(eval("9223372036854775807"), INT64_MAX);
    EXPECT_EQ(eval("  ( 1+2 ) *3  "), 9);
}

TEST(Expression, Precedence) {
    EXPECT_EQ(eval("1 + 2 * 3"), 7);
    EXPECT_EQ(eval("(1 + 2) * 3"), 9);
    EXPECT_EQ(eval("2 * 3 % 4"), 2); // (2*3)%4, not 2*(3%4)
    EXPECT_EQ(eval("7 - 6 / 3"), 5);
    EXPECT_EQ(eval("1 + 2 == 3"), 1); // arithmetic binds tighter than comparison
    EXPECT_EQ(eval("1 < 2 == 1"), 1); // relational binds tighter than equality
    EXPECT_EQ(eval("2 > 1 == 0"), 0);
    EXPECT_EQ(eval("1 || 1 && 0"), 1); // && binds tighter than ||
    EXPECT_EQ(eval("0 && 1 || 1"), 1);
    EXPECT_EQ(eval("1 == 1 && 2 == 3"), 0);
}

TEST(Expression, LeftAssociativity) {
    EXPECT_EQ(eval("10 - 4 - 3"), 3);
    EXPECT_EQ(eval("100 / 10 / 5"), 2);
    EXPECT_EQ(eval("100 % 7 % 3"), 2);
    EXPECT_EQ(eval("2 * 3 / 4"), 1); // (2*3)/4; right association would give 0
    EXPECT_EQ(eval("3 < 2 < 1"), 1); // (3<2)<1 as in C
}

TEST(Expression, UnaryOperators) {
    EXPECT_EQ(eval("-3"), -3);
    EXPECT_EQ(eval("-2 + 3"), 1); // unary minus binds to the operand only
    EXPECT_EQ(eval("-(2 + 3)"), -5);
    EXPECT_EQ(eval("- -3"), 3);
    EXPECT_EQ(eval("2 - -2"), 4);
    EXPECT_EQ(eval("-2 * -3"), 6);
    EXPECT_EQ(eval("!0"), 1);
    EXPECT_EQ(eval("!5"), 0);
    EXPECT_EQ(eval("!!7"), 1);
    EXPECT_EQ(eval("!0 + 1"), 2);
    EXPECT_EQ(eval("-X", {{"X", 4}}), -4);
}

TEST(Expression, IntegerDivisionTruncatesLikeC) {
    EXPECT_EQ(eval("7 / 2"), 3);
    EXPECT_EQ(eval("-7 / 2"), -3);
    EXPECT_EQ(eval("7 / -2"), -3);
    EXPECT_EQ(eval("7 % 3"), 1);
    EXPECT_EQ(eval("-7 % 3"), -1);
    EXPECT_EQ(eval("7 % -3"), 1);
}

TEST(Expression, DivisionByZero) {
    EXPECT_EQ(eval_error("1 / 0"), "division by zero in '1 / 0'");
    EXPECT_EQ(eval_error("I % (A - A)", {{"I", 8}, {"A", 3}}), "division by zero in 'I % (A - A)'");
}

TEST(Expression, Overflow) {
    EXPECT_NE(eval_error("9223372036854775807 + 1").find("overflow"), std::string::npos);
    EXPECT_NE(eval_error("X * X", {{"X", int64_t{1} << 40}}).find("overflow"), std::string::npos);
    EXPECT_EQ(eval_error("(-X - 1) / -1", {{"X", INT64_MAX}}), "integer overflow in '(-X - 1) / -1'");
    EXPECT_EQ(eval("-X / -1", {{"X", INT64_MAX}}), INT64_MAX);
}

TEST(Expression, Functions) {
    EXPECT_EQ(eval("cdiv(7, 2)"), 4);
    EXPECT_EQ(eval("cdiv(8, 2)"), 4);
    EXPECT_EQ(eval("cdiv(0, 5)"), 0);
    EXPECT_EQ(eval("cdiv(1, 5)"), 1);
    EXPECT_EQ(eval("cdiv(-7, 2)"), -3); // ceiling of -3.5
    EXPECT_EQ(eval("min(3, -4)"), -4);
    EXPECT_EQ(eval("max(3, -4)"), 3);
    EXPECT_EQ(eval("max(min(3, 9), 2 * 2)"), 4);
    EXPECT_EQ(eval("cdiv(I, ROWS * WARPS)", {{"I", 1000}, {"ROWS", 4}, {"WARPS", 8}}), 32);
    EXPECT_EQ(eval("cdiv (10, (2 + 1))"), 4);
    EXPECT_EQ(eval_error("cdiv(1, 0)"), "cdiv divisor 0 is not positive in 'cdiv(1, 0)'");
    EXPECT_NE(eval_error("cdiv(1, -2)").find("not positive"), std::string::npos);
}

TEST(Expression, Comparisons) {
    EXPECT_EQ(eval("3 == 3"), 1);
    EXPECT_EQ(eval("3 == 4"), 0);
    EXPECT_EQ(eval("3 != 4"), 1);
    EXPECT_EQ(eval("3 != 3"), 0);
    EXPECT_EQ(eval("3 < 4"), 1);
    EXPECT_EQ(eval("4 < 4"), 0);
    EXPECT_EQ(eval("4 <= 4"), 1);
    EXPECT_EQ(eval("5 <= 4"), 0);
    EXPECT_EQ(eval("5 > 4"), 1);
    EXPECT_EQ(eval("4 > 4"), 0);
    EXPECT_EQ(eval("4 >= 4"), 1);
    EXPECT_EQ(eval("3 >= 4"), 0);
    EXPECT_EQ(eval("-1 < 0"), 1);
}

TEST(Expression, LogicYieldsZeroOrOne) {
    EXPECT_EQ(eval("3 && 4"), 1);
    EXPECT_EQ(eval("3 && 0"), 0);
    EXPECT_EQ(eval("0 || 7"), 1);
    EXPECT_EQ(eval("0 || 0"), 0);
}

TEST(Expression, LogicShortCircuits) {
    EXPECT_EQ(eval("0 && 1 / 0"), 0);
    EXPECT_EQ(eval("1 || 1 / 0"), 1);
    EXPECT_EQ(eval("0 && MISSING"), 0);
    EXPECT_EQ(eval("B != 0 && A / B > 1", {{"A", 5}, {"B", 0}}), 0);
    EXPECT_EQ(eval("B != 0 && A / B > 1", {{"A", 5}, {"B", 2}}), 1);
    EXPECT_NE(eval_error("1 && 1 / 0").find("division by zero"), std::string::npos);
    EXPECT_NE(eval_error("0 || 1 / 0").find("division by zero"), std::string::npos);
}

TEST(Expression, Symbols) {
    const Symbols shape{{"T", 4}, {"K", 8}, {"I", 1536}, {"WARPS", 4}};
    EXPECT_EQ(eval("T*K", shape), 32);
    EXPECT_EQ(eval("32*WARPS", shape), 128);
    EXPECT_EQ(eval("_x1 + 1", {{"_x1", 2}}), 3);
}

TEST(Expression, ParsedOnceEvaluatedManyTimes) {
    const Expression e = Expression::parse("cdiv(I, R)");
    EXPECT_EQ(e.evaluate({{"I", 10}, {"R", 1}}), 10);
    EXPECT_EQ(e.evaluate({{"I", 10}, {"R", 3}}), 4);
    const Expression copy = e;
    EXPECT_EQ(copy.evaluate({{"I", 9}, {"R", 3}}), 3);
    EXPECT_EQ(copy.text(), "cdiv(I, R)");
}

TEST(Expression, UnknownSymbol) {
    EXPECT_EQ(eval_error("A + B", {{"A", 1}}), "unknown symbol 'B' in 'A + B'");
    // Names are case-sensitive.
    EXPECT_EQ(eval_error("t", {{"T", 1}}), "unknown symbol 't' in 't'");
}

TEST(Expression, ParseErrorsNameTheColumn) {
    EXPECT_EQ(parse_error(""), "expression '': empty expression at column 1");
    EXPECT_EQ(parse_error("   "), "expression '   ': empty expression at column 4");
    EXPECT_EQ(parse_error("1 +"), "expression '1 +': unexpected end of expression at column 4");
    EXPECT_EQ(parse_error("(1 + 2"), "expression '(1 + 2': expected ')' but the expression ended at column 7");
    EXPECT_EQ(parse_error("1 2"), "expression '1 2': unexpected '2' at column 3");
    EXPECT_EQ(parse_error("1 $ 2"), "expression '1 $ 2': unexpected '$' at column 3");
    EXPECT_EQ(parse_error("1 + foo(2, 3)"), "expression '1 + foo(2, 3)': unknown function 'foo' at column 5");
    EXPECT_EQ(parse_error("min(1)"), "expression 'min(1)': expected ',' at column 6");
    EXPECT_EQ(parse_error("cdiv(1, 2, 3)"), "expression 'cdiv(1, 2, 3)': expected ')' at column 10");
    EXPECT_EQ(parse_error("A = 1"), "expression 'A = 1': unexpected '=' at column 3");
    EXPECT_EQ(parse_error("A & B"), "expression 'A & B': unexpected '&' at column 3");
    EXPECT_EQ(parse_error("4x"), "expression '4x': malformed integer '4x' at column 1");
    EXPECT_EQ(parse_error("1 + 99999999999999999999"),
              "expression '1 + 99999999999999999999': integer 99999999999999999999 is too large at column 5");
    EXPECT_EQ(parse_error("1 + )"), "expression '1 + )': unexpected ')' at column 5");
    EXPECT_EQ(parse_error("()"), "expression '()': unexpected ')' at column 2");
}

TEST(Expression, ParseErrorsAreInputErrors) {
    EXPECT_THROW(Expression::parse("1 +"), InputError);
    EXPECT_THROW(Expression::parse("1 / 0").evaluate({}), InputError);
    EXPECT_NO_THROW(Expression::parse("1 / 0")); // only evaluation divides
}

TEST(Expression, SymbolsAreSortedAndUnique) {
    const Expression e = Expression::parse("cdiv(I, ROWS*WARPS) + I + max(T, 1) * WARPS");
    EXPECT_EQ(e.symbols(), (std::vector<std::string>{"I", "ROWS", "T", "WARPS"}));
    EXPECT_TRUE(Expression::parse("min(1, 2)").symbols().empty());
}

TEST(Expression, DefaultAndConstant) {
    const Expression one;
    EXPECT_EQ(one.evaluate({}), 1);
    EXPECT_EQ(one.text(), "1");
    const Expression minus = Expression::constant(-12);
    EXPECT_EQ(minus.evaluate({}), -12);
    EXPECT_EQ(minus.text(), "-12");
    EXPECT_TRUE(minus.symbols().empty());
}

} // namespace
} // namespace nightshift::kernels
