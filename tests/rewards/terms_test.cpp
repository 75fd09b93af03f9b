// The correctness, format and repetition terms.
#include "rewards/terms.h"

#include <gtest/gtest.h>

#include <vector>

namespace muse::rewards {
namespace {

Response response(std::string text, std::string answer) {
  Response r;
  r.text = std::move(text);
  r.answer = std::move(answer);
  return r;
}

TEST(CorrectnessReward, ScoresTheLastAnswer) {
  const std::vector<Response> group = {
      response("<think>2+3</think><answer>5</answer>", "5"),
      response("<think>2+3</think><answer>6</answer>", "5"),
      response("<think>2+3</think> it is 5", "5"),                     // no <answer>
      response("<answer>5</answer> no wait <answer>6</answer>", "5"),  // the last one counts
      response("<answer>5.0</answer>", "5"),
      response("<answer>1,000</answer>", "1000"),
  };
  EXPECT_EQ(
      CorrectnessReward(AnswerRule{.match = MatchMode::kNumeric, .forms = {AnswerForm::kTags}})
          .score(group, {}),
      (std::vector<double>{1, 0, 0, 0, 1, 1}));
  EXPECT_EQ(CorrectnessReward(AnswerRule{.match = MatchMode::kExact, .forms = {AnswerForm::kTags}})
                .score(group, {}),
            (std::vector<double>{1, 0, 0, 0, 0, 0}));
}

TEST(FormatReward, ScoresTheShape) {
  const std::vector<Response> group = {
      response("<think>r</think>\n<answer>5</answer>", "5"),
      response("<answer>5</answer>", "5"),
      response("<think>r</think><answer>5</answer> more", "5"),
  };
  EXPECT_EQ(FormatReward().score(group, {}), (std::vector<double>{1, 0, 0}));
}

TEST(RepetitionPenalty, DistinctNgramShare) {
  // Trigrams aba, bab, aba, bab: 2 distinct of 4.
  EXPECT_DOUBLE_EQ(repetition_penalty("a b a b a b", 3, -1.0), -0.5);
  // Unigrams: 1 distinct of 4, lower-cased.
  EXPECT_DOUBLE_EQ(repetition_penalty("The the THE tHe", 1, -2.0), -1.5);
  // Bigrams over any whitespace: 4 of "the the", 1 distinct.
  EXPECT_DOUBLE_EQ(repetition_penalty("the\tthe\nthe  the\r\nthe", 2, -1.0), -0.75);
  // Words are split on whitespace only: tags stay attached.
  // <think>, go, go, go, go, </think><answer>5</answer>: trigrams 4, distinct 3.
  EXPECT_DOUBLE_EQ(repetition_penalty("<think> go go go go </think><answer>5</answer>", 3, -1.0),
                   -0.25);
  EXPECT_DOUBLE_EQ(repetition_penalty("one two three four", 3, -1.0), 0.0);
}

TEST(RepetitionPenalty, FewerWordsThanNgramIsZero) {
  EXPECT_DOUBLE_EQ(repetition_penalty("a b", 3, -1.0), 0.0);
  EXPECT_DOUBLE_EQ(repetition_penalty("   ", 1, -1.0), 0.0);
  EXPECT_DOUBLE_EQ(repetition_penalty("", 3, -1.0), 0.0);
  // Exactly ngram words: one n-gram, distinct.
  EXPECT_DOUBLE_EQ(repetition_penalty("a a a", 3, -1.0), 0.0);
}

TEST(RepetitionReward, ScoresEachText) {
  const std::vector<Response> group = {response("a b a b a b", ""), response("a b c d", "")};
  EXPECT_EQ(RepetitionReward(3, -1.0).score(group, {}), (std::vector<double>{-0.5, 0.0}));
}

}  // namespace
}  // namespace muse::rewards
