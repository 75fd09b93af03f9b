// Answer extraction, answer matching, the format check and think-token
// counting.
#include "rewards/verify.h"

#include <gtest/gtest.h>

#include <vector>

namespace muse::rewards {
namespace {

TEST(ExtractAnswer, TakesTheLastCompletePairTrimmed) {
  EXPECT_EQ(extract_answer("<answer> 42 </answer>"), "42");
  EXPECT_EQ(extract_answer("<think>maybe <answer>1</answer></think><answer>2</answer>"), "2");
  EXPECT_EQ(extract_answer("<answer>\n  x = 3\n</answer>\n"), "x = 3");
  EXPECT_EQ(extract_answer("<answer></answer>"), "");
  // An unclosed last <answer> leaves the previous complete pair.
  EXPECT_EQ(extract_answer("<answer>1</answer> then <answer>2"), "1");
}

TEST(ExtractAnswer, NoCompletePairIsNullopt) {
  EXPECT_EQ(extract_answer("<answer>1"), std::nullopt);
  EXPECT_EQ(extract_answer("1</answer>"), std::nullopt);
  EXPECT_EQ(extract_answer("</answer><answer>"), std::nullopt);
  EXPECT_EQ(extract_answer("the answer is 1"), std::nullopt);
  EXPECT_EQ(extract_answer(""), std::nullopt);
}

TEST(AnswersMatch, ExactComparesTrimmedStrings) {
  EXPECT_TRUE(answers_match("5", "5", MatchMode::kExact));
  EXPECT_TRUE(answers_match(" 5\n", "5 ", MatchMode::kExact));
  EXPECT_FALSE(answers_match("5", "5.0", MatchMode::kExact));
  EXPECT_FALSE(answers_match("1,000", "1000", MatchMode::kExact));
  EXPECT_FALSE(answers_match("Paris", "paris", MatchMode::kExact));
}

TEST(AnswersMatch, NumericReadsDecimalNumbers) {
  EXPECT_TRUE(answers_match("5.0", "5", MatchMode::kNumeric));
  EXPECT_TRUE(answers_match("1,000", "1000", MatchMode::kNumeric));
  EXPECT_TRUE(answers_match("1,234,567.25", "1234567.250", MatchMode::kNumeric));
  EXPECT_TRUE(answers_match("-3", " -3.00 ", MatchMode::kNumeric));
  EXPECT_TRUE(answers_match("+2", "2", MatchMode::kNumeric));
  EXPECT_TRUE(answers_match(".5", "0.5", MatchMode::kNumeric));
  EXPECT_TRUE(answers_match("-0", "0", MatchMode::kNumeric));
  EXPECT_FALSE(answers_match("-3", "3", MatchMode::kNumeric));
  EXPECT_FALSE(answers_match("5.1", "5", MatchMode::kNumeric));
  // Within 1e-9 of the reference's magnitude (at least 1e-9 absolute).
  EXPECT_TRUE(answers_match("3.0000000001", "3", MatchMode::kNumeric));
  EXPECT_FALSE(answers_match("3.00001", "3", MatchMode::kNumeric));
  EXPECT_TRUE(answers_match("1000000000.5", "1000000000", MatchMode::kNumeric));
  EXPECT_FALSE(answers_match("0.000000002", "0", MatchMode::kNumeric));
}

TEST(AnswersMatch, NumericFallsBackToExactForNonNumbers) {
  EXPECT_TRUE(answers_match(" x+1 ", "x+1", MatchMode::kNumeric));
  EXPECT_FALSE(answers_match("x+1", "1+x", MatchMode::kNumeric));
  // Badly grouped commas, a bare dot, exponents and stray text are not numbers.
  EXPECT_FALSE(answers_match("1,00", "100", MatchMode::kNumeric));
  EXPECT_FALSE(answers_match("1000,000", "1000000", MatchMode::kNumeric));
  EXPECT_FALSE(answers_match("5.", "5", MatchMode::kNumeric));
  EXPECT_FALSE(answers_match("1e3", "1000", MatchMode::kNumeric));
  EXPECT_FALSE(answers_match("5 apples", "5", MatchMode::kNumeric));
  EXPECT_FALSE(answers_match("-", "0", MatchMode::kNumeric));
  EXPECT_TRUE(answers_match("1,00", "1,00", MatchMode::kNumeric));
}

TEST(WellFormatted, AcceptsThinkThenAnswer) {
  EXPECT_TRUE(well_formatted("<think>reasoning</think><answer>5</answer>"));
  EXPECT_TRUE(well_formatted("  <think>r</think>\n\n<answer> 5 </answer>\n"));
  EXPECT_TRUE(well_formatted("<think></think><answer>5</answer>"));
}

TEST(WellFormatted, RejectsEverythingElse) {
  EXPECT_FALSE(well_formatted("<answer>5</answer>"));
  EXPECT_FALSE(well_formatted("<think>r</think>"));
  EXPECT_FALSE(well_formatted("<think>r</think><answer> </answer>"));
  EXPECT_FALSE(well_formatted("<think>r</think><answer>5"));
  EXPECT_FALSE(well_formatted("<think>r</think><answer>5</answer> extra"));
  EXPECT_FALSE(well_formatted("prefix <think>r</think><answer>5</answer>"));
  EXPECT_FALSE(well_formatted("<think>r</think> so <answer>5</answer>"));
  EXPECT_FALSE(well_formatted("<think>a</think><think>b</think><answer>5</answer>"));
  EXPECT_FALSE(well_formatted("<think>r</think><answer>5</answer><answer>6</answer>"));
  EXPECT_FALSE(well_formatted("<think>r <answer>4</answer></think><answer>5</answer>"));
  EXPECT_FALSE(well_formatted("<answer>5</answer><think>r</think>"));
  EXPECT_FALSE(well_formatted(""));
}

TEST(CountThinkTokens, CountsInsideTheFirstBlock) {
  constexpr int64_t kBegin = 1, kEnd = 2;
  auto count = [](std::vector<int64_t> tokens) { return count_think_tokens(tokens, kBegin, kEnd); };
  EXPECT_EQ(count({7, 1, 3, 4, 5, 2, 9}), 3);
  EXPECT_EQ(count({1, 2, 9}), 0);
  EXPECT_EQ(count({1, 3, 2, 4, 2}), 1);     // the first </think> closes
  EXPECT_EQ(count({2, 1, 3, 2}), 1);        // a </think> before <think> is ignored
  EXPECT_EQ(count({1, 3, 4}), 2);           // unclosed: everything after <think>
  EXPECT_EQ(count({1, 3, 1, 2, 1, 5}), 2);  // a second <think> inside counts as content
  EXPECT_EQ(count({3, 4, 2}), 0);           // no <think>
  EXPECT_EQ(count({}), 0);
}

}  // namespace
}  // namespace muse::rewards
