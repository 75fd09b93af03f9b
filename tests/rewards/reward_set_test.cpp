// Composing the terms: weights, add vs gate, warm-up, the term breakdown, and
// the L1 budget helpers.
#include "rewards/reward_set.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

namespace muse::rewards {
namespace {

constexpr double kTol = 1e-12;

Response response(std::string text, int64_t think) {
  Response r;
  r.text = std::move(text);
  r.answer = "5";
  r.think_tokens = think;
  r.total_tokens = think + 5;
  return r;
}

// 0: correct, well formatted, no repeated trigram; 10 think tokens.
// 1: wrong, no think block; 20 think tokens.
// 2: correct, well formatted, trigrams <think> go go | go go go | go go go |
//    go go </think><answer>5</answer>: 3 distinct of 4; 30 think tokens.
std::vector<Response> group() {
  return {response("<think>a b c</think> <answer>5</answer>", 10),
          response("<answer>4</answer>", 20),
          response("<think> go go go go </think><answer>5</answer>", 30)};
}

// correctness 1, format 0.5, linear length (0.01 per token) weight 2,
// repetition 1.
RewardsConfig all_terms() {
  RewardsConfig cfg;
  cfg.format.weight = 0.5;
  cfg.length.kind = "linear";
  cfg.length.per_token = 0.01;
  cfg.length.weight = 2;
  cfg.repetition.weight = 1;
  return cfg;
}

Context at_step(int64_t step) {
  return {.step = step, .max_new_tokens = 64};
}

void expect_near(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], kTol) << "response " << i;
}

TEST(RewardSet, DefaultIsCorrectnessOnly) {
  const RewardSet set{RewardsConfig{}};
  EXPECT_EQ(set.term_names(), std::vector<std::string>{"correctness"});
  const Scores s = set.score(group(), at_step(0));
  expect_near(s.total, {1, 0, 1});
  expect_near(s.correct, {1, 0, 1});
  ASSERT_EQ(s.terms.size(), 1u);
  EXPECT_EQ(s.terms[0].first, "correctness");
}

TEST(RewardSet, AddsWeightedTerms) {
  const RewardSet set(all_terms());
  EXPECT_EQ(set.term_names(),
            (std::vector<std::string>{"correctness", "format", "length", "repetition"}));
  const Scores s = set.score(group(), at_step(0));
  // correctness 1, 0, 1; format 0.5 * (1, 0, 1); length 2 * -0.01 * (10, 20, 30);
  // repetition 1 * (0, 0, -0.25).
  expect_near(s.total, {1.3, -0.4, 0.65});
  expect_near(s.correct, {1, 0, 1});
  EXPECT_DOUBLE_EQ(s.length_weight, 2.0);
  ASSERT_EQ(s.terms.size(), 4u);
  EXPECT_EQ(s.terms[0].first, "correctness");
  expect_near(s.terms[0].second, {1, 0, 1});
  EXPECT_EQ(s.terms[1].first, "format");
  expect_near(s.terms[1].second, {0.5, 0, 0.5});
  EXPECT_EQ(s.terms[2].first, "length");
  expect_near(s.terms[2].second, {-0.2, -0.4, -0.6});
  EXPECT_EQ(s.terms[3].first, "repetition");
  expect_near(s.terms[3].second, {0, 0, -0.25});
}

TEST(RewardSet, CorrectnessIsReportedEvenWithWeightZero) {
  RewardsConfig cfg = all_terms();
  cfg.correctness.weight = 0;
  const Scores s = RewardSet(cfg).score(group(), at_step(0));
  expect_near(s.correct, {1, 0, 1});
  expect_near(s.terms[0].second, {0, 0, 0});
  expect_near(s.total, {0.3, -0.4, -0.35});
}

TEST(RewardSet, GateKeepsTheLengthTermOfCorrectResponsesOnly) {
  RewardsConfig cfg = all_terms();
  cfg.length.combine = "gate";
  const Scores s = RewardSet(cfg).score(group(), at_step(0));
  expect_near(s.terms[2].second, {-0.2, 0.0, -0.6});
  expect_near(s.total, {1.3, 0.0, 0.65});
}

TEST(RewardSet, LinearWarmup) {
  RewardsConfig cfg = all_terms();
  cfg.length.warmup_steps = 4;
  const RewardSet set(cfg);
  EXPECT_DOUBLE_EQ(set.length_weight(0), 0.0);
  EXPECT_DOUBLE_EQ(set.length_weight(1), 0.5);
  EXPECT_DOUBLE_EQ(set.length_weight(2), 1.0);
  EXPECT_DOUBLE_EQ(set.length_weight(4), 2.0);
  EXPECT_DOUBLE_EQ(set.length_weight(100), 2.0);
  const Scores s = set.score(group(), at_step(1));
  EXPECT_DOUBLE_EQ(s.length_weight, 0.5);
  // Response 0: 1 + 0.5 + 0.5 * -0.1 = 1.45.
  expect_near(s.terms[2].second, {-0.05, -0.1, -0.15});
  expect_near(s.total, {1.45, -0.1, 1.1});
  // The term stays in the breakdown (as zeros) while its weight is 0.
  const Scores s0 = set.score(group(), at_step(0));
  EXPECT_EQ(s0.terms[2].first, "length");
  expect_near(s0.terms[2].second, {0, 0, 0});
  expect_near(s0.total, {1.5, 0, 1.25});
}

TEST(RewardSet, StepWarmup) {
  RewardsConfig cfg = all_terms();
  cfg.length.warmup_steps = 4;
  cfg.length.warmup = "step";
  const RewardSet set(cfg);
  EXPECT_DOUBLE_EQ(set.length_weight(0), 0.0);
  EXPECT_DOUBLE_EQ(set.length_weight(3), 0.0);
  EXPECT_DOUBLE_EQ(set.length_weight(4), 2.0);
  EXPECT_DOUBLE_EQ(set.length_weight(5), 2.0);
  expect_near(set.score(group(), at_step(3)).total, {1.5, 0, 1.25});
  expect_near(set.score(group(), at_step(4)).total, {1.3, -0.4, 0.65});
}

TEST(RewardSet, NoWarmupUsesTheFullWeight) {
  const RewardSet set(all_terms());
  EXPECT_DOUBLE_EQ(set.length_weight(0), 2.0);
}

TEST(RewardSet, LengthTermOffWithKindNoneOrWeightZero) {
  RewardsConfig none = all_terms();
  none.length.kind = "none";
  EXPECT_EQ(RewardSet(none).term_names(),
            (std::vector<std::string>{"correctness", "format", "repetition"}));
  RewardsConfig zero = all_terms();
  zero.length.weight = 0;
  EXPECT_EQ(RewardSet(zero).term_names(),
            (std::vector<std::string>{"correctness", "format", "repetition"}));
  expect_near(RewardSet(zero).score(group(), at_step(0)).total, {1.5, 0, 1.25});
}

TEST(RewardSet, L1MaxIsThePublishedReward) {
  // correctness + l1_max = C * clip(alpha * (budget - n) + delta, 0, 1).
  RewardsConfig cfg;
  cfg.length.kind = "l1_max";
  cfg.length.alpha = 0.01;
  std::vector<Response> g = group();
  for (Response& r : g)
    r.budget = 20;
  const RewardSet set(cfg);
  EXPECT_TRUE(set.uses_budget());
  // clip(0.6), wrong, clip(0.4).
  expect_near(set.score(g, at_step(0)).total, {0.6, 0.0, 0.4});
}

TEST(RewardSet, EmptyGroup) {
  const Scores s = RewardSet(all_terms()).score({}, at_step(0));
  EXPECT_TRUE(s.total.empty());
  EXPECT_TRUE(s.correct.empty());
  EXPECT_EQ(s.terms.size(), 4u);
}

TEST(RewardSet, ValidatesItsConfig) {
  RewardsConfig cfg;
  cfg.length.kind = "shortest";
  EXPECT_THROW(RewardSet{cfg}, config::ConfigError);
}

TEST(RewardSet, Budgets) {
  RewardsConfig cfg;
  EXPECT_FALSE(RewardSet(cfg).uses_budget());
  cfg.length.kind = "l1_exact";
  EXPECT_TRUE(RewardSet(cfg).uses_budget());
  EXPECT_EQ(RewardSet(cfg).eval_budget(), 4000);  // budget_max
  cfg.length.eval_budget = 1024;
  EXPECT_EQ(RewardSet(cfg).eval_budget(), 1024);
}

TEST(BudgetPrompt, AppendsTheL1Sentence) {
  EXPECT_EQ(budget_prompt("What is 2+2?", 512), "What is 2+2? Think for 512 tokens.");
  EXPECT_EQ(budget_prompt("", 100), " Think for 100 tokens.");
}

TEST(DrawBudget, DeterministicAndInRange) {
  const LengthConfig cfg;  // [100, 4000]
  // splitmix64(0) = 0xe220a8397b1dcdaf; 100 + that mod 3901 = 3057.
  EXPECT_EQ(draw_budget(cfg, 0), 3057);
  EXPECT_EQ(draw_budget(cfg, 1), 3492);
  EXPECT_EQ(draw_budget(cfg, 12345), draw_budget(cfg, 12345));
  for (uint64_t key = 0; key < 1000; ++key) {
    const int64_t b = draw_budget(cfg, key);
    EXPECT_GE(b, 100);
    EXPECT_LE(b, 4000);
  }
  LengthConfig small;
  small.budget_min = 1;
  small.budget_max = 3;
  std::set<int64_t> seen;
  for (uint64_t key = 0; key < 100; ++key)
    seen.insert(draw_budget(small, key));
  EXPECT_EQ(seen, (std::set<int64_t>{1, 2, 3}));
  small.budget_min = small.budget_max = 7;
  EXPECT_EQ(draw_budget(small, 99), 7);
}

TEST(DrawBudget, RejectsAnEmptyRange) {
  LengthConfig cfg;
  cfg.budget_min = 500;
  cfg.budget_max = 100;
  EXPECT_THROW(draw_budget(cfg, 0), config::ConfigError);
}

}  // namespace
}  // namespace muse::rewards
