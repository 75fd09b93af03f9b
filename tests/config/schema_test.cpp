// Tests of config/schema.h: value checks, constraint descriptions, value
// formatting and flattening a tree into fields and sections.
#include "config/schema.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

namespace muse::config {
namespace {

using ::testing::HasSubstr;

// The message and key of the ConfigError `f` throws; fails the test when it
// throws nothing or something else.
template <class F>
std::pair<std::string, std::string> config_error_of(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return {e.key(), e.what()};
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected ConfigError, got another exception: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected ConfigError, nothing was thrown";
  return {};
}

// --- check_value -------------------------------------------------------------

TEST(CheckValue, GreaterOrEqualIsInclusive) {
  const FieldSpec spec{.help = "", .ge = 1};
  EXPECT_NO_THROW(check_value("trainer.steps", spec, int64_t{1}));
  EXPECT_NO_THROW(check_value("trainer.steps", spec, int64_t{1000000}));
  const auto [key, what] = config_error_of([&] { check_value("trainer.steps", spec, int64_t{0}); });
  EXPECT_EQ(key, "trainer.steps");
  EXPECT_EQ(what, "0 is out of range: must be >= 1");
}

TEST(CheckValue, GreaterThanIsExclusive) {
  const FieldSpec spec{.help = "", .gt = 0};
  EXPECT_NO_THROW(check_value("dist.collective_timeout_s", spec, 1e-300));
  EXPECT_NO_THROW(check_value("dist.collective_timeout_s", spec, 300.0));
  auto [key, what] = config_error_of([&] { check_value("dist.collective_timeout_s", spec, 0.0); });
  EXPECT_EQ(key, "dist.collective_timeout_s");
  EXPECT_EQ(what, "0.0 is out of range: must be > 0");
  std::tie(key, what) =
      config_error_of([&] { check_value("dist.collective_timeout_s", spec, -1.0); });
  EXPECT_EQ(what, "-1.0 is out of range: must be > 0");
  // Integers are checked against the same bounds.
  std::tie(key, what) = config_error_of([&] { check_value("k", spec, int64_t{0}); });
  EXPECT_EQ(what, "0 is out of range: must be > 0");
}

TEST(CheckValue, LessOrEqualIsInclusive) {
  const FieldSpec spec{.help = "", .le = 1};
  EXPECT_NO_THROW(check_value("ratio", spec, 1.0));
  EXPECT_NO_THROW(check_value("ratio", spec, -5.0));
  const auto [key, what] = config_error_of([&] { check_value("ratio", spec, 1.5); });
  EXPECT_EQ(key, "ratio");
  EXPECT_EQ(what, "1.5 is out of range: must be <= 1");
}

TEST(CheckValue, LessThanIsExclusive) {
  const FieldSpec spec{.help = "", .lt = 1};
  EXPECT_NO_THROW(check_value("ratio", spec, 0.999));
  const auto [key, what] = config_error_of([&] { check_value("ratio", spec, 1.0); });
  EXPECT_EQ(key, "ratio");
  EXPECT_EQ(what, "1.0 is out of range: must be < 1");
  EXPECT_THROW(check_value("n", spec, int64_t{1}), ConfigError);
  EXPECT_NO_THROW(check_value("n", spec, int64_t{0}));
}

TEST(CheckValue, CombinedBoundsAreAllChecked) {
  const FieldSpec spec{.help = "", .gt = 0, .le = 1};
  EXPECT_NO_THROW(check_value("p", spec, 1.0));
  EXPECT_NO_THROW(check_value("p", spec, 0.5));
  EXPECT_THROW(check_value("p", spec, 0.0), ConfigError);
  const auto [key, what] = config_error_of([&] { check_value("p", spec, 1.0000001); });
  EXPECT_EQ(what, "1.0000001 is out of range: must be > 0 and <= 1");
}

TEST(CheckValue, NonFiniteFloatsAreRejectedEvenWithoutBounds) {
  const FieldSpec spec{.help = ""};
  auto [key, what] =
      config_error_of([&] { check_value("lr", spec, std::numeric_limits<double>::quiet_NaN()); });
  EXPECT_EQ(key, "lr");
  EXPECT_EQ(what, ".nan is not a finite number");
  std::tie(key, what) =
      config_error_of([&] { check_value("lr", spec, std::numeric_limits<double>::infinity()); });
  EXPECT_EQ(what, ".inf is not a finite number");
  std::tie(key, what) =
      config_error_of([&] { check_value("lr", spec, -std::numeric_limits<double>::infinity()); });
  EXPECT_EQ(what, "-.inf is not a finite number");
  // A NaN must not slip through bound checks (every comparison with NaN is false).
  const FieldSpec bounded{.help = "", .ge = 0, .le = 1};
  EXPECT_THROW(check_value("lr", bounded, std::nan("")), ConfigError);
}

TEST(CheckValue, Choices) {
  const FieldSpec spec{.help = "", .choices = {"auto", "mpi", "nccl"}};
  EXPECT_NO_THROW(check_value("dist.backend", spec, std::string("auto")));
  EXPECT_NO_THROW(check_value("dist.backend", spec, std::string("nccl")));
  auto [key, what] =
      config_error_of([&] { check_value("dist.backend", spec, std::string("gloo")); });
  EXPECT_EQ(key, "dist.backend");
  EXPECT_EQ(what, "\"gloo\" is not allowed: must be one of auto|mpi|nccl");
  // Matching is exact: no case folding, no prefixes, no trimming.
  EXPECT_THROW(check_value("dist.backend", spec, std::string("MPI")), ConfigError);
  EXPECT_THROW(check_value("dist.backend", spec, std::string("mp")), ConfigError);
  EXPECT_THROW(check_value("dist.backend", spec, std::string("mpi ")), ConfigError);
  EXPECT_THROW(check_value("dist.backend", spec, std::string("")), ConfigError);
}

TEST(CheckValue, UnconstrainedValuesPass) {
  const FieldSpec spec{.help = ""};
  EXPECT_NO_THROW(check_value("s", spec, std::string("anything at all")));
  EXPECT_NO_THROW(check_value("s", spec, std::string("")));
  EXPECT_NO_THROW(check_value("n", spec, std::numeric_limits<int64_t>::min()));
  EXPECT_NO_THROW(check_value("x", spec, -DBL_MAX));
  EXPECT_NO_THROW(check_value("b", spec, true));
  EXPECT_NO_THROW(check_value("b", FieldSpec{.help = "", .ge = 5}, false));
}

TEST(CheckValue, ListsAreCheckedElementByElement) {
  const FieldSpec spec{.help = "", .ge = 1};
  EXPECT_NO_THROW(check_value("l", spec, std::vector<int64_t>{1, 2, 3}));
  EXPECT_NO_THROW(check_value("l", spec, std::vector<int64_t>{}));
  const auto [key, what] = config_error_of([&] {
    check_value("l", spec, std::vector<int64_t>{1, 0, 3});
  });
  EXPECT_EQ(key, "l");
  EXPECT_EQ(what, "0 is out of range: must be >= 1");
  const FieldSpec choices{.help = "", .choices = {"a", "b"}};
  EXPECT_NO_THROW(check_value("w", choices, std::vector<std::string>{"a", "b", "a"}));
  EXPECT_THROW(check_value("w", choices, std::vector<std::string>{"a", "c"}), ConfigError);
  EXPECT_THROW(check_value("f", FieldSpec{.help = ""}, std::vector<double>{1.0, std::nan("")}),
               ConfigError);
}

// --- describe_constraints ------------------------------------------------------

TEST(DescribeConstraints, EachBoundAndCombinations) {
  EXPECT_EQ(describe_constraints(FieldSpec{.help = "h"}), "");
  EXPECT_EQ(describe_constraints(FieldSpec{.help = "", .ge = 1}), ">= 1");
  EXPECT_EQ(describe_constraints(FieldSpec{.help = "", .gt = 0}), "> 0");
  EXPECT_EQ(describe_constraints(FieldSpec{.help = "", .le = 10}), "<= 10");
  EXPECT_EQ(describe_constraints(FieldSpec{.help = "", .lt = -2}), "< -2");
  EXPECT_EQ(describe_constraints(FieldSpec{.help = "", .gt = 0, .le = 1}), "> 0 and <= 1");
  EXPECT_EQ(describe_constraints(FieldSpec{.help = "", .ge = 0, .lt = 1}), ">= 0 and < 1");
  // Fractional bounds keep their fraction; whole ones print as integers.
  EXPECT_EQ(describe_constraints(FieldSpec{.help = "", .ge = 0.5}), ">= 0.5");
  EXPECT_EQ(describe_constraints(FieldSpec{.help = "", .le = 1e-7}), "<= 1e-07");
  EXPECT_EQ(describe_constraints(FieldSpec{.help = "", .le = 1e6}), "<= 1000000");
}

TEST(DescribeConstraints, Choices) {
  EXPECT_EQ(describe_constraints(FieldSpec{.help = "", .choices = {"pretrain", "sft", "rl"}}),
            "one of pretrain|sft|rl");
  EXPECT_EQ(describe_constraints(FieldSpec{.help = "", .choices = {"only"}}), "one of only");
}

// --- format_value ------------------------------------------------------------

TEST(FormatValue, Scalars) {
  EXPECT_EQ(format_value(true), "true");
  EXPECT_EQ(format_value(false), "false");
  EXPECT_EQ(format_value(int64_t{0}), "0");
  EXPECT_EQ(format_value(int64_t{-42}), "-42");
  EXPECT_EQ(format_value(std::numeric_limits<int64_t>::max()), "9223372036854775807");
  EXPECT_EQ(format_value(std::numeric_limits<int64_t>::min()), "-9223372036854775808");
}

TEST(FormatValue, FloatsStayRecognisableAsFloats) {
  EXPECT_EQ(format_value(1.0), "1.0");
  EXPECT_EQ(format_value(0.0), "0.0");
  EXPECT_EQ(format_value(-0.0), "-0.0");
  EXPECT_EQ(format_value(300.0), "300.0");
  EXPECT_EQ(format_value(-2.0), "-2.0");
  EXPECT_EQ(format_value(0.1), "0.1");
  EXPECT_EQ(format_value(2.5), "2.5");
  EXPECT_EQ(format_value(3e-4), "3e-04");
  EXPECT_EQ(format_value(0.001), "0.001");
  EXPECT_EQ(format_value(1e16), "1e+16");
  EXPECT_EQ(format_value(12345678901234567168.0), "12345678901234567168.0");
  EXPECT_EQ(format_value(1e-7), "1e-07");
  EXPECT_EQ(format_value(1e20), "1e+20");
  EXPECT_EQ(format_value(std::numeric_limits<double>::quiet_NaN()), ".nan");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), ".inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-.inf");
}

TEST(FormatValue, FloatsRoundTripExactly) {
  for (double v : {0.1, 0.2, 0.3, 1.0 / 3, 2.0 / 3, 1e-7, 3e-4, 6.02214076e23, 123456789.123456789,
                   DBL_MAX, DBL_MIN, DBL_EPSILON, -0.1, 1.0 + DBL_EPSILON, 0.1 + 0.2}) {
    const std::string text = format_value(v);
    char* end = nullptr;
    const double back = std::strtod(text.c_str(), &end);
    EXPECT_EQ(*end, '\0') << text;
    EXPECT_EQ(back, v) << text;
  }
  // Shortest form, not 17 digits.
  EXPECT_EQ(format_value(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(format_value(1.0 / 3), "0.3333333333333333");
}

TEST(FormatValue, StringsAreDoubleQuotedAndEscaped) {
  EXPECT_EQ(format_value(std::string("")), "\"\"");
  EXPECT_EQ(format_value(std::string("run")), "\"run\"");
  EXPECT_EQ(format_value(std::string("say \"hi\"")), "\"say \\\"hi\\\"\"");
  EXPECT_EQ(format_value(std::string("a\\b")), "\"a\\\\b\"");
  EXPECT_EQ(format_value(std::string("line1\nline2")), "\"line1\\nline2\"");
  EXPECT_EQ(format_value(std::string("a\tb")), "\"a\\tb\"");
  EXPECT_EQ(format_value(std::string("key: value # not a comment")),
            "\"key: value # not a comment\"");
}

TEST(FormatValue, Lists) {
  EXPECT_EQ(format_value(std::vector<int64_t>{}), "[]");
  EXPECT_EQ(format_value(std::vector<int64_t>{1, -2, 3}), "[1, -2, 3]");
  EXPECT_EQ(format_value(std::vector<double>{1.0, 0.1}), "[1.0, 0.1]");
  EXPECT_EQ(format_value(std::vector<std::string>{"a", "b c"}), "[\"a\", \"b c\"]");
}

// --- join_key, type_name ---------------------------------------------------------

TEST(JoinKey, JoinsWithDots) {
  EXPECT_EQ(join_key("", "seed"), "seed");
  EXPECT_EQ(join_key("trainer", "steps"), "trainer.steps");
  EXPECT_EQ(join_key("a.b", "c"), "a.b.c");
}

TEST(TypeName, Names) {
  EXPECT_EQ(type_name<bool>(), "bool");
  EXPECT_EQ(type_name<int64_t>(), "int");
  EXPECT_EQ(type_name<double>(), "float");
  EXPECT_EQ(type_name<std::string>(), "string");
  EXPECT_EQ(type_name<std::vector<int64_t>>(), "list[int]");
  EXPECT_EQ(type_name<std::vector<double>>(), "list[float]");
  EXPECT_EQ(type_name<std::vector<std::string>>(), "list[string]");
}

// --- Describer -------------------------------------------------------------------

struct Leaf {
  double lr = 3e-4;
  std::vector<int64_t> sizes = {1, 2};

  template <class V>
  void visit(V& v) {
    v.field("lr", lr, {.help = "learning rate", .gt = 0, .le = 1});
    v.field("sizes", sizes, {.help = "sizes", .unit = "tokens"});
  }
};

struct Middle {
  bool on = true;
  Leaf leaf;

  template <class V>
  void visit(V& v) {
    v.field("on", on, {.help = "switch"});
    v.section("leaf", leaf, "The leaf.");
  }
};

struct Tree {
  std::string mode = "a";
  int64_t n = 7;
  Middle middle;

  template <class V>
  void visit(V& v) {
    v.field("mode", mode, {.help = "the mode", .choices = {"a", "b"}});
    v.section("middle", middle, "The middle.");
    v.field("n", n, {.help = "a count", .unit = "steps", .ge = 1});
  }
};

TEST(Describer, FlattensFieldsInDeclarationOrder) {
  const auto fields = describe_fields<Tree>();
  ASSERT_EQ(fields.size(), 5u);
  auto expect = [](const FieldInfo& f, const std::string& path, const std::string& type,
                   const std::string& value, const std::string& unit,
                   const std::string& constraints, const std::string& help) {
    EXPECT_EQ(f.path, path);
    EXPECT_EQ(f.type, type) << path;
    EXPECT_EQ(f.value, value) << path;
    EXPECT_EQ(f.unit, unit) << path;
    EXPECT_EQ(f.constraints, constraints) << path;
    EXPECT_EQ(f.help, help) << path;
  };
  expect(fields[0], "mode", "string", "\"a\"", "", "one of a|b", "the mode");
  expect(fields[1], "middle.on", "bool", "true", "", "", "switch");
  expect(fields[2], "middle.leaf.lr", "float", "3e-04", "", "> 0 and <= 1", "learning rate");
  expect(fields[3], "middle.leaf.sizes", "list[int]", "[1, 2]", "tokens", "", "sizes");
  expect(fields[4], "n", "int", "7", "steps", ">= 1", "a count");
}

TEST(Describer, ShowsCurrentValuesOfAGivenTree) {
  Tree t;
  t.n = 99;
  t.middle.leaf.lr = 0.1;
  const auto fields = describe_fields(t);
  EXPECT_EQ(fields[4].value, "99");
  EXPECT_EQ(fields[2].value, "0.1");
}

TEST(Describer, ListsNestedSections) {
  const auto sections = describe_sections<Tree>();
  ASSERT_EQ(sections.size(), 2u);
  EXPECT_EQ(sections[0].path, "middle");
  EXPECT_EQ(sections[0].help, "The middle.");
  EXPECT_EQ(sections[1].path, "middle.leaf");
  EXPECT_EQ(sections[1].help, "The leaf.");
}

}  // namespace
}  // namespace muse::config
