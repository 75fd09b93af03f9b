// Each registered length term on small groups, against values worked out by
// hand from the published formulas.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "rewards/registry.h"

namespace muse::rewards {
namespace {

constexpr double kTol = 1e-12;

// A response with `think` think tokens and 5 more outside the think block,
// correct for the reference answer "5" or not.
Response response(int64_t think, bool correct, int64_t budget = 0) {
  Response r;
  r.text =
      correct ? "<think>...</think><answer>5</answer>" : "<think>...</think><answer>4</answer>";
  r.answer = "5";
  r.think_tokens = think;
  r.total_tokens = think + 5;
  r.budget = budget;
  return r;
}

// Lengths 10, 20, 30; correct, wrong, correct.
std::vector<Response> group_10_20_30(int64_t budget = 0) {
  return {response(10, true, budget), response(20, false, budget), response(30, true, budget)};
}

std::vector<double> score(const LengthConfig& cfg, const std::vector<Response>& group,
                          int64_t max_new_tokens = 0) {
  return make_length_term(cfg)->score(group, {.step = 0, .max_new_tokens = max_new_tokens});
}

void expect_near(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], kTol) << "response " << i;
}

LengthConfig kind(std::string name) {
  LengthConfig cfg;
  cfg.kind = std::move(name);
  return cfg;
}

TEST(LengthKinds, RegisteredOnceEach) {
  const std::vector<std::string> names = length_kinds();
  EXPECT_EQ(names, (std::vector<std::string>{"none", "linear", "kimi", "l1_exact", "l1_max",
                                             "cosine", "overlong", "arora", "truncation"}));
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size());
}

TEST(LengthKinds, UnknownNameNamesTheKey) {
  try {
    make_length_term(kind("shorter"));
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(e.key(), "rewards.length.kind");
    EXPECT_NE(std::string(e.what()).find("\"shorter\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("linear|kimi|l1_exact"), std::string::npos) << e.what();
  }
}

TEST(LengthTerm, None) {
  expect_near(score(kind("none"), group_10_20_30()), {0, 0, 0});
}

TEST(LengthTerm, Linear) {
  LengthConfig cfg = kind("linear");
  cfg.per_token = 0.01;
  expect_near(score(cfg, group_10_20_30()), {-0.1, -0.2, -0.3});
  cfg.measure = "total";  // 15, 25, 35 tokens
  expect_near(score(cfg, group_10_20_30()), {-0.15, -0.25, -0.35});
}

TEST(LengthTerm, Kimi) {
  // lambda = 0.5 - (n - 10) / 20 = 0.5, 0, -0.5; the wrong one gets min(0, lambda).
  expect_near(score(kind("kimi"), group_10_20_30()), {0.5, 0.0, -0.5});
  // Wrong, correct, wrong: a short wrong answer earns nothing, a long one loses.
  expect_near(score(kind("kimi"), {response(10, false), response(20, true), response(30, false)}),
              {0.0, 0.0, -0.5});
  // 15, 25, 35 total tokens: same spread, same lambdas.
  LengthConfig total = kind("kimi");
  total.measure = "total";
  expect_near(score(total, group_10_20_30()), {0.5, 0.0, -0.5});
  // All the same length: 0 for all.
  expect_near(score(kind("kimi"), {response(7, true), response(7, false)}), {0, 0});
  EXPECT_TRUE(score(kind("kimi"), {}).empty());
}

TEST(LengthTerm, L1Exact) {
  LengthConfig cfg = kind("l1_exact");
  cfg.alpha = 0.01;
  // Budget 20: |20 - n| = 10, 0, 10, whatever the correctness.
  expect_near(score(cfg, group_10_20_30(20)), {-0.1, 0.0, -0.1});
  // No budget stated: no term.
  expect_near(score(cfg, group_10_20_30(0)), {0, 0, 0});
  // The paper's alpha: 600 tokens off a 1000 budget.
  expect_near(score(kind("l1_exact"), {response(400, true, 1000)}), {-0.18});
}

TEST(LengthTerm, L1Max) {
  LengthConfig cfg = kind("l1_max");
  cfg.alpha = 0.01;
  cfg.delta = 0.5;
  // Budget 20: clip(0.01 * (20 - n) + 0.5, 0, 1) = 0.6, 0.5, 0.4; term = C * (clip - 1).
  expect_near(score(cfg, group_10_20_30(20)), {-0.4, 0.0, -0.6});
  // Far under budget clips to 1 (no penalty); far over clips to 0 (C + term = 0).
  expect_near(score(cfg, {response(10, true, 100), response(200, true, 20)}), {0.0, -1.0});
  expect_near(score(cfg, group_10_20_30(0)), {0, 0, 0});
}

TEST(LengthTerm, Cosine) {
  LengthConfig cfg = kind("cosine");  // Yeo et al.: correct 2 -> 1, wrong -10 -> 0, exceed -10
  cfg.cosine_max_len = 40;
  // n = 10 correct: 1 + 0.5 * (2 - 1) * (1 + cos(pi/4)) = 1.85355339..., minus C = 1.
  // n = 20 wrong:   0 + 0.5 * (-10 - 0) * (1 + cos(pi/2)) = -5.
  // n = 30 correct: 1 + 0.5 * (2 - 1) * (1 + cos(3pi/4)) = 1.14644660..., minus 1.
  expect_near(score(cfg, group_10_20_30()), {0.8535533905932737, -5.0, 0.14644660940672627});
  // Length 0 gets the "short" value: 2 - 1 for correct, -10 for wrong.
  expect_near(score(cfg, {response(0, true), response(0, false)}), {1.0, -10.0});
  // At or past L_max, or truncated: exceed - C.
  Response truncated = response(10, true);
  truncated.truncated = true;
  expect_near(score(cfg, {response(40, false), response(45, true), truncated}),
              {-10.0, -11.0, -11.0});
  // L_max from the generation limit when the key is 0.
  cfg.cosine_max_len = 0;
  expect_near(score(cfg, group_10_20_30(), 40), {0.8535533905932737, -5.0, 0.14644660940672627});
  try {
    score(cfg, group_10_20_30(), 0);
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(e.key(), "rewards.length.cosine_max_len");
  }
}

TEST(LengthTerm, Overlong) {
  LengthConfig cfg = kind("overlong");
  cfg.overlong_max_len = 40;
  cfg.overlong_cache = 20;
  // Total tokens 15, 25, 35 (think + 5): 0 up to 20, then (20 - n) / 20.
  expect_near(score(cfg, group_10_20_30()), {0.0, -0.25, -0.75});
  Response at_limit = response(35, true);  // 40 total, finished
  Response truncated = response(35, true);
  truncated.truncated = true;
  expect_near(score(cfg, {response(15, false), at_limit, response(45, true), truncated}),
              {0.0, -1.0, -1.0, -1.0});
  // Defaults: L_max = the generation limit 40, L_cache = 40 / 4 = 10.
  expect_near(score(kind("overlong"), {response(25, true), response(30, true)}, 40), {0.0, -0.5});
  cfg.overlong_max_len = 0;
  try {
    score(cfg, group_10_20_30(), 20);  // cache 20 is not less than L_max 20
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(e.key(), "rewards.length.overlong_cache");
  }
}

TEST(LengthTerm, Arora) {
  LengthConfig cfg = kind("arora");
  cfg.arora_alpha = 0.1;
  // Correct lengths 10 and 30: mean 20, population std 10, z = -1 and +1.
  // -0.1 * sigmoid(-1) = -0.1 * 0.26894142..., -0.1 * sigmoid(1) = -0.1 * 0.73105857...
  expect_near(score(cfg, group_10_20_30()), {-0.026894142136999512, 0.0, -0.07310585786300049});
  // One correct response, or equal lengths: z = 0, sigmoid 0.5.
  expect_near(score(cfg, {response(10, true), response(99, false)}), {-0.05, 0.0});
  expect_near(score(cfg, {response(12, true), response(12, true)}), {-0.05, -0.05});
  // No correct response: nothing to compare with.
  expect_near(score(cfg, {response(10, false), response(30, false)}), {0.0, 0.0});
}

TEST(LengthTerm, TruncationTakesAwayTheRewardOfTruncatedResponses) {
  Response cut_correct = response(30, true);
  cut_correct.truncated = true;
  Response cut_wrong = response(30, false);
  cut_wrong.truncated = true;
  // Only a truncated correct response loses its correctness; length alone costs nothing.
  expect_near(score(kind("truncation"), {response(10, true), response(90, true),
                                         response(20, false), cut_correct, cut_wrong}),
              {0.0, 0.0, 0.0, -1.0, 0.0});
}

TEST(LengthTerm, ExactMatchModeJudgesCorrectness) {
  // "5.0" is right for numeric matching, wrong for exact.
  Response r = response(10, true);
  r.text = "<answer>5.0</answer>";
  LengthConfig cfg = kind("l1_max");
  cfg.alpha = 0.01;
  const Context ctx{.step = 0, .max_new_tokens = 0};
  r.budget = 20;  // clip(0.6) - 1 = -0.4 when correct
  expect_near(make_length_term(cfg, {.match = MatchMode::kNumeric, .forms = {AnswerForm::kTags}})
                  ->score({&r, 1}, ctx),
              {-0.4});
  expect_near(make_length_term(cfg, {.match = MatchMode::kExact, .forms = {AnswerForm::kTags}})
                  ->score({&r, 1}, ctx),
              {0.0});
}

}  // namespace
}  // namespace muse::rewards
