// Answer extraction, answer matching (every mode, and answer_correct on whole
// responses), the format check and think-token counting.
#include "rewards/verify.h"

#include <gtest/gtest.h>

#include <optional>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace muse::rewards {
namespace {

// The checker reading <answer> tags, comparing with `match`.
AnswerRule rule(MatchMode match) {
  AnswerRule r;
  r.match = match;
  return r;
}

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

TEST(AnswersMatch, CaptionWantsTheReferenceAsALeadingWholeWord) {
  EXPECT_TRUE(answers_match(" seven.", "seven", MatchMode::kCaption));
  EXPECT_TRUE(answers_match("seven", "seven", MatchMode::kCaption));
  EXPECT_TRUE(answers_match("seven cats", "seven", MatchMode::kCaption));
  EXPECT_FALSE(answers_match(" sevenfold", "seven", MatchMode::kCaption));
  EXPECT_FALSE(answers_match("seven7", "seven", MatchMode::kCaption));
  EXPECT_FALSE(answers_match("a seven", "seven", MatchMode::kCaption));
  // Not symmetric: the reference must be the prefix.
  EXPECT_FALSE(answers_match("seven", "seven.", MatchMode::kCaption));
}

TEST(AnswerCorrect, CaptionRule) {
  EXPECT_TRUE(answer_correct(" seven.", "seven", rule(MatchMode::kCaption)));
  EXPECT_TRUE(answer_correct("seven", "seven", rule(MatchMode::kCaption)));
  EXPECT_TRUE(answer_correct("seven-ish", "seven", rule(MatchMode::kCaption)));
  EXPECT_FALSE(answer_correct(" sevenfold", "seven", rule(MatchMode::kCaption)));
  EXPECT_FALSE(answer_correct("Seven", "seven", rule(MatchMode::kCaption)));
  EXPECT_FALSE(answer_correct("", "seven", rule(MatchMode::kCaption)));
  // Both sides are trimmed, with every kind of whitespace.
  EXPECT_TRUE(answer_correct("\n\t seven \n", "seven", rule(MatchMode::kCaption)));
  EXPECT_TRUE(answer_correct("seven dogs", "  seven\n", rule(MatchMode::kCaption)));
  EXPECT_TRUE(answer_correct("two cats", " two cats ", rule(MatchMode::kCaption)));
  // A blank reference answers nothing, or every response would count.
  EXPECT_FALSE(answer_correct("seven", "", rule(MatchMode::kCaption)));
  EXPECT_FALSE(answer_correct("seven", " \n", rule(MatchMode::kCaption)));
  EXPECT_FALSE(answer_correct("", "", rule(MatchMode::kCaption)));
  // Tags mean nothing to a caption: the text is read as it is.
  EXPECT_FALSE(answer_correct("<answer>seven</answer>", "seven", rule(MatchMode::kCaption)));
  EXPECT_TRUE(answer_correct("<answer>seven</answer>", "<answer>seven", rule(MatchMode::kCaption)));
}

TEST(AnswerCorrect, ReadsTheLastCompletePair) {
  const std::string_view two = "<answer>1</answer> <answer>2</answer>";
  for (const MatchMode mode : {MatchMode::kExact, MatchMode::kNumeric}) {
    EXPECT_TRUE(answer_correct(two, "2", rule(mode)));
    EXPECT_FALSE(answer_correct(two, "1", rule(mode)));
    // An unclosed last <answer> leaves the previous complete pair.
    EXPECT_TRUE(answer_correct("<answer>1</answer> <answer>2", "1", rule(mode)));
    EXPECT_FALSE(answer_correct("<answer>1</answer> <answer>2", "2", rule(mode)));
  }
}

TEST(AnswerCorrect, ExactAndNumericCompareTheAnswer) {
  const std::string_view text = "<think>so 5.0</think><answer> 5.0 </answer>";
  EXPECT_TRUE(answer_correct(text, "5", rule(MatchMode::kNumeric)));
  EXPECT_FALSE(answer_correct(text, "5", rule(MatchMode::kExact)));
  EXPECT_TRUE(answer_correct(text, "5.0", rule(MatchMode::kExact)));
  EXPECT_TRUE(answer_correct("<answer>1,000</answer>", "1000", rule(MatchMode::kNumeric)));
  EXPECT_FALSE(answer_correct("<answer>1,000</answer>", "1000", rule(MatchMode::kExact)));
  EXPECT_FALSE(answer_correct("<answer>6</answer>", "5", rule(MatchMode::kNumeric)));
  // No prefix rule inside the tags: the whole answer must match.
  EXPECT_FALSE(answer_correct("<answer>seven.</answer>", "seven", rule(MatchMode::kExact)));
  EXPECT_TRUE(answer_correct("<answer>x+1</answer>", "x+1", rule(MatchMode::kNumeric)));
}

TEST(AnswerCorrect, ExactAndNumericNeedACompletePair) {
  for (const MatchMode mode : {MatchMode::kExact, MatchMode::kNumeric}) {
    EXPECT_FALSE(answer_correct("5", "5", rule(mode)));
    EXPECT_FALSE(answer_correct(" seven.", "seven", rule(mode)));
    EXPECT_FALSE(answer_correct("<answer>5", "5", rule(mode)));
    EXPECT_FALSE(answer_correct("5</answer>", "5", rule(mode)));
    EXPECT_FALSE(answer_correct("", "", rule(mode)));
  }
  // An empty pair still is a pair: it answers an empty reference.
  EXPECT_TRUE(answer_correct("<answer> </answer>", "", rule(MatchMode::kExact)));
}

TEST(ParseMatchMode, NamesEveryMode) {
  EXPECT_EQ(parse_match_mode("exact"), MatchMode::kExact);
  EXPECT_EQ(parse_match_mode("numeric"), MatchMode::kNumeric);
  EXPECT_EQ(parse_match_mode("caption"), MatchMode::kCaption);
  EXPECT_THROW(parse_match_mode("auto"), std::invalid_argument);
  EXPECT_THROW(parse_match_mode(""), std::invalid_argument);
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

TEST(ExtractAnswer, EachFormReadsWhatRealModelsWrite) {
  using enum AnswerForm;
  const auto read = [](std::string_view text, AnswerForm form) {
    const AnswerForm forms[] = {form};
    return extract_answer(text, forms);
  };
  EXPECT_EQ(read("so \\boxed{12} or rather \\boxed{\\frac{1}{2}} done", kBoxed), "\\frac{1}{2}");
  EXPECT_EQ(read("\\boxed{ 7 }", kBoxed), "7");
  EXPECT_EQ(read("an unclosed \\boxed{3", kBoxed), std::nullopt);
  EXPECT_EQ(read("\\boxed{5} then \\boxed{6", kBoxed), "5");  // the last that closes
  EXPECT_EQ(read("steps\n#### 1,234.\nThanks", kHashes), "1,234");
  EXPECT_EQ(read("#### 3\n#### 4", kHashes), "4");
  EXPECT_EQ(read("#### \nnothing", kHashes), std::nullopt);
  EXPECT_EQ(read("3 apples and 17 more make 20.", kLastNumber), "20");
  EXPECT_EQ(read("a loss of -3.5 then 1,000 left", kLastNumber), "1,000");
  EXPECT_EQ(read("lists 3, 4, 56", kLastNumber), "56");
  EXPECT_EQ(read("pi is 3.14.", kLastNumber), "3.14");
  EXPECT_EQ(read("no digits", kLastNumber), std::nullopt);
  EXPECT_EQ(read("x <answer> 9 </answer>", kTags), "9");
}

TEST(LocateAnswer, GivesWhereEachFormFoundTheAnswer) {
  using enum AnswerForm;
  const auto offset = [](std::string_view text, AnswerForm form) -> std::optional<size_t> {
    const AnswerForm forms[] = {form};
    const std::optional<LocatedAnswer> got = locate_answer(text, forms);
    if (!got) return std::nullopt;
    // The answer is the text at its offset, and the one extract_answer reads.
    EXPECT_EQ(text.substr(got->offset, got->text.size()), got->text) << text;
    EXPECT_EQ(extract_answer(text, forms), got->text) << text;
    return got->offset;
  };
  EXPECT_EQ(offset("x <answer> 9 </answer>", kTags), 11u);
  EXPECT_EQ(offset("<answer>1</answer> then <answer>22</answer>", kTags), 32u);
  EXPECT_EQ(offset("so \\boxed{ 12 } ok", kBoxed), 11u);
  EXPECT_EQ(offset("steps\n#### 1,234.\nThanks", kHashes), 11u);
  EXPECT_EQ(offset("3 apples and 17 more make 20.", kLastNumber), 26u);
  EXPECT_EQ(offset("a loss of -3.5", kLastNumber), 10u);
  EXPECT_EQ(offset("no digits", kLastNumber), std::nullopt);
  const AnswerForm boxed_then_number[] = {kBoxed, kLastNumber};
  const std::optional<LocatedAnswer> got = locate_answer("7 then 8", boxed_then_number);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->text, "8");
  EXPECT_EQ(got->offset, 7u);
}

TEST(ExtractAnswer, TheFirstFormFoundWins) {
  const AnswerForm boxed_then_number[] = {AnswerForm::kBoxed, AnswerForm::kLastNumber};
  EXPECT_EQ(extract_answer("\\boxed{4} so 5", boxed_then_number), "4");
  EXPECT_EQ(extract_answer("it is 5", boxed_then_number), "5");
  AnswerRule rule;
  rule.match = MatchMode::kNumeric;
  rule.forms = {AnswerForm::kHashes, AnswerForm::kTags};
  EXPECT_TRUE(answer_correct("work... #### 1,000", "1000", rule));
  EXPECT_TRUE(answer_correct("<answer>1000</answer>", "1000", rule));
  EXPECT_FALSE(answer_correct("the answer is 1000", "1000", rule));
  EXPECT_EQ(parse_answer_form("last_number"), AnswerForm::kLastNumber);
  EXPECT_THROW(parse_answer_form("first_number"), std::invalid_argument);
}

}  // namespace
}  // namespace muse::rewards
