// Majority voting with ties and numeric matching, the number of distinct
// answers, and AggLM's hard/easy rule.
#include "inference/voting.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace muse::inference {
namespace {

using rewards::MatchMode;

std::vector<std::optional<std::string>> answers(std::initializer_list<const char*> list) {
  std::vector<std::optional<std::string>> out;
  for (const char* a : list)
    out.push_back(a ? std::optional<std::string>(a) : std::nullopt);
  return out;
}

TEST(MajorityVote, TheMostCommonAnswerWins) {
  const Vote v = majority_vote(answers({"3", "5", "5", "3", "5"}), MatchMode::kExact);
  EXPECT_EQ(v.answer, "5");
  EXPECT_EQ(v.votes, 3);
}

TEST(MajorityVote, ATieGoesToTheAnswerSeenFirst) {
  EXPECT_EQ(majority_vote(answers({"7", "2", "2", "7"}), MatchMode::kExact).answer, "7");
  EXPECT_EQ(majority_vote(answers({"2", "7", "7", "2"}), MatchMode::kExact).answer, "2");
  EXPECT_EQ(majority_vote(answers({"9", "4"}), MatchMode::kExact).answer, "9");
}

TEST(MajorityVote, NumericModeCountsEqualNumbersTogether) {
  const Vote v =
      majority_vote(answers({"4", "5", "5.0", "1,000", "1000", "1000.00"}), MatchMode::kNumeric);
  EXPECT_EQ(v.answer, "1,000");  // the first spelling of the largest cluster
  EXPECT_EQ(v.votes, 3);
  EXPECT_EQ(majority_vote(answers({"5", "5.0"}), MatchMode::kExact).votes, 1);
}

TEST(MajorityVote, CandidatesWithoutAnAnswerDoNotVote) {
  const Vote v = majority_vote(answers({nullptr, nullptr, "8"}), MatchMode::kExact);
  EXPECT_EQ(v.answer, "8");
  EXPECT_EQ(v.votes, 1);
  EXPECT_FALSE(majority_vote(answers({nullptr, nullptr}), MatchMode::kExact).answer);
  EXPECT_FALSE(majority_vote({}, MatchMode::kExact).answer);
}

TEST(DistinctAnswers, CountsAnswersAsTheVoteGroupsThem) {
  using A = std::vector<std::optional<std::string>>;
  EXPECT_EQ(distinct_answers(A{"3", "3.0", "4", std::nullopt}, rewards::MatchMode::kNumeric), 2);
  EXPECT_EQ(distinct_answers(A{"3", "3.0", "4"}, rewards::MatchMode::kExact), 3);
  EXPECT_EQ(distinct_answers(A{std::nullopt}, rewards::MatchMode::kNumeric), 0);
}

TEST(Difficulty, HardWhenTheMajorityIsWrongOrMissing) {
  EXPECT_FALSE(is_hard(majority_vote(answers({"6", "6", "1"}), MatchMode::kNumeric), "6.0",
                       MatchMode::kNumeric));
  EXPECT_TRUE(is_hard(majority_vote(answers({"6", "1", "1"}), MatchMode::kNumeric), "6",
                      MatchMode::kNumeric));
  EXPECT_TRUE(
      is_hard(majority_vote(answers({nullptr}), MatchMode::kNumeric), "6", MatchMode::kNumeric));
  // A tie the wrong answer wins (it came first) is hard.
  EXPECT_TRUE(
      is_hard(majority_vote(answers({"1", "6"}), MatchMode::kNumeric), "6", MatchMode::kNumeric));
}

}  // namespace
}  // namespace muse::inference
