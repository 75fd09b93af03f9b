// Contemplating mode's plain-data pieces: what a candidate shows, the
// aggregator prompt, AggLM's hard/easy selection, and reading the answer of
// an aggregator's output.
#include "contemplate/aggregation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "config/schema.h"
#include "contemplate/aggregate_config.h"
#include "rewards/verify.h"

namespace muse::contemplate {
namespace {

using rewards::MatchMode;
using ::testing::HasSubstr;

// A trained tokenizer: <think> is id 4, </think> id 5; bytes are ids 8..263.
const data::Tokenizer& tokenizer() {
  static const data::Tokenizer t =
      data::Tokenizer::train_from_texts({"abc"}, {.vocab_size = 264, .min_pair_count = 2});
  return t;
}
constexpr int64_t kThinkEnd = 5;
constexpr int64_t kA = 8 + 'a', kB = 8 + 'b', kC = 8 + 'c';

TEST(CandidateTokens, AnswerViewKeepsWhatFollowsTheLastThinkEnd) {
  const std::vector<int64_t> response = {4, kA, kB, kThinkEnd, kC, kThinkEnd, kA, kB};
  EXPECT_EQ(candidate_tokens(tokenizer(), response, CandidateView::kAnswer, 32),
            (std::vector<int64_t>{kA, kB}));
}

TEST(CandidateTokens, AnswerViewOfUnclosedReasoningIsEmpty) {
  const std::vector<int64_t> response = {4, kA, kB, kC};
  EXPECT_TRUE(candidate_tokens(tokenizer(), response, CandidateView::kAnswer, 32).empty());
}

TEST(CandidateTokens, FullViewKeepsEverythingUpToTheCut) {
  const std::vector<int64_t> response = {4, kA, kThinkEnd, kB, kC};
  EXPECT_EQ(candidate_tokens(tokenizer(), response, CandidateView::kFull, 32), response);
  EXPECT_EQ(candidate_tokens(tokenizer(), response, CandidateView::kFull, 2),
            (std::vector<int64_t>{4, kA}));
  EXPECT_EQ(candidate_tokens(tokenizer(), response, CandidateView::kAnswer, 1),
            (std::vector<int64_t>{kB}));
}

TEST(CandidateView, ParsesTheTwoNamesAndRejectsOthers) {
  EXPECT_EQ(parse_candidate_view("answer"), CandidateView::kAnswer);
  EXPECT_EQ(parse_candidate_view("full"), CandidateView::kFull);
  try {
    parse_candidate_view("summary");
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(e.key(), "aggregate.candidates");
  }
}

TEST(AggregatorPrompt, FillsTheAggLmTemplate) {
  const std::string prompt = aggregator_prompt(
      "Given the following problem: {problem}\nand these solution attempts: {solutions}\nEnd.",
      "What is 2 + 3?", {"<answer>5</answer>", "  <answer>6</answer>\n"});
  EXPECT_EQ(prompt,
            "Given the following problem: What is 2 + 3?\nand these solution attempts: "
            "\nSolution 1: <answer>5</answer>\nSolution 2: <answer>6</answer>\nEnd.");
}

TEST(AggregatorPrompt, SolutionsMayComeFirstAndEmptyOnesAreNamed) {
  EXPECT_EQ(aggregator_prompt("Answers:{solutions}\n{problem}", "Sum? <image>", {"", "7"}),
            "Answers:\nSolution 1: (no solution)\nSolution 2: 7\nSum? <image>");
}

TEST(AggregatorPrompt, SlotTextInsideTheProblemOrCandidatesIsNotFilled) {
  EXPECT_EQ(aggregator_prompt("{problem}|{solutions}", "a {solutions} b", {"{problem}"}),
            "a {solutions} b|\nSolution 1: {problem}");
}

TEST(AggregatorPrompt, CandidatesCannotAddImagesOrInvalidUtf8) {
  // The problem's one <image> stays; a candidate's is removed. A candidate
  // cut inside "é" (C3 A9) and an overlong C0 byte become '?'.
  const std::string prompt = aggregator_prompt("{problem}{solutions}", "Digit? <image>",
                                               {"It is <image> 4", std::string("caf\xC3", 4),
                                                std::string("\xC0\x80x", 3), "d\xC3\xA9j\xC3\xA0"});
  EXPECT_EQ(std::count(prompt.begin(), prompt.end(), '<'), 1);
  EXPECT_THAT(prompt, HasSubstr("Solution 1: It is  4"));
  EXPECT_THAT(prompt, HasSubstr("Solution 2: caf?"));
  EXPECT_THAT(prompt, HasSubstr("Solution 3: ??x"));
  EXPECT_THAT(prompt, HasSubstr("Solution 4: d\xC3\xA9j\xC3\xA0"));
}

TEST(AggregatorPrompt, TemplateNeedsEachSlotOnce) {
  for (const char* bad : {"{problem} only", "{solutions} only", "{problem}{problem}{solutions}"}) {
    try {
      check_template(bad);
      FAIL() << bad;
    } catch (const config::ConfigError& e) {
      EXPECT_EQ(e.key(), "aggregate.template") << bad;
    }
  }
  EXPECT_NO_THROW(check_template("{solutions}{problem}"));
}

TEST(RefinementPrompt, ShowsTheAgentItsOwnProposalAndTheOthers) {
  const std::vector<std::string> candidates = {"<answer>5</answer>", "<answer>6</answer>",
                                               " <answer>7</answer> "};
  EXPECT_EQ(refinement_prompt("{problem}\nYours: {own}\nOthers:{solutions}\nRevise.",
                              "What is 2 + 3?", candidates, 1),
            "What is 2 + 3?\nYours: <answer>6</answer>\nOthers:\nSolution 1: "
            "<answer>5</answer>\nSolution 2: <answer>7</answer>\nRevise.");
  // Without {own}, the agent's proposal is listed first.
  EXPECT_EQ(refinement_prompt("Proposed answers:{solutions}\n{problem}", "Sum?", candidates, 2),
            "Proposed answers:\nSolution 1: <answer>7</answer>\nSolution 2: "
            "<answer>5</answer>\nSolution 3: <answer>6</answer>\nSum?");
  // An empty own proposal is named; slots inside a proposal are not filled.
  EXPECT_EQ(refinement_prompt("{own}|{problem}|{solutions}", "p", {"", "{own}"}, 0),
            "(no solution)|p|\nSolution 1: {own}");
}

TEST(RefinementPrompt, TemplateNeedsProblemAndSolutionsOnceAndOwnAtMostOnce) {
  for (const char* bad :
       {"{problem} {own}", "{solutions} {own}", "{problem}{solutions}{own}{own}"}) {
    try {
      check_refine_template(bad);
      FAIL() << bad;
    } catch (const config::ConfigError& e) {
      EXPECT_EQ(e.key(), "aggregate.refine_template") << bad;
    }
  }
  EXPECT_NO_THROW(check_refine_template("{solutions}{problem}"));
  EXPECT_NO_THROW(check_refine_template(kRefineTemplate));
}

TEST(SelectSets, KeepsEveryHardSetAndAShareOfEasyOnes) {
  // 4 hard (0, 2, 5, 9) and 8 easy: a share of 0.5 keeps 2 easy ones.
  std::vector<bool> hard(12, false);
  for (size_t i : {0, 2, 5, 9})
    hard[i] = true;
  const std::vector<size_t> chosen = select_sets(hard, 0.5, 42);
  ASSERT_EQ(chosen.size(), 6u);
  EXPECT_TRUE(std::is_sorted(chosen.begin(), chosen.end()));
  int n_hard = 0;
  for (size_t i : chosen)
    n_hard += hard[i] ? 1 : 0;
  EXPECT_EQ(n_hard, 4);
  EXPECT_EQ(select_sets(hard, 0.5, 42), chosen);  // the seed fixes the draw
}

TEST(SelectSets, TheShareIsCappedByTheEasySetsThereAre) {
  const std::vector<bool> hard = {true, true, true, false};
  EXPECT_EQ(select_sets(hard, 0.0, 1), (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(select_sets(hard, 10.0, 1), (std::vector<size_t>{0, 1, 2, 3}));
  EXPECT_TRUE(select_sets({false, false}, 0.5, 1).empty());  // no hard set, no easy one
}

TEST(SelectSets, DifferentSeedsDrawDifferentEasySets) {
  std::vector<bool> hard(200, false);
  for (size_t i = 0; i < 20; ++i)
    hard[i] = true;
  EXPECT_NE(select_sets(hard, 1.0, 1), select_sets(hard, 1.0, 2));
}

TEST(AggregatorAnswer, TheFinalAnswerIsTheLastPairNotAQuotedCandidate) {
  // An aggregator quoting the candidates' answers in its reasoning.
  const std::string output =
      "<think>Solution 1 says <answer>5</answer> but image 2 shows 4, so 3 + 4 = 7."
      "</think><answer>7</answer>";
  EXPECT_EQ(rewards::extract_answer(output), "7");
  EXPECT_TRUE(rewards::answers_match(*rewards::extract_answer(output), "7", MatchMode::kNumeric));
  // The rule is the solver's (rewards/verify.h): the last complete pair, so
  // an output cut off after quoting a candidate answers with the quote.
  EXPECT_EQ(rewards::extract_answer("<think>Solution 1 says <answer>5</answer> but"), "5");
  EXPECT_FALSE(rewards::extract_answer("<think>Looking at the solutions <answer>"));
}

}  // namespace
}  // namespace muse::contemplate
