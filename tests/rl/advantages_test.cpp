// Each advantage estimator against values worked out by hand.
#include "rl/advantages.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/schema.h"
#include "rl/rl_config.h"

namespace muse::rl {
namespace {

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-6) << "index " << i;
}

TEST(Advantages, GrpoDividesByTheUnbiasedStd) {
  // mean 0.5, deviations +-0.5, std = sqrt(4 * 0.25 / 3) = 0.5773503.
  expect_near_all(make_advantage("grpo")->group(std::vector<double>{1, 0, 1, 0}),
                  {0.8660239, -0.8660239, 0.8660239, -0.8660239});
}

TEST(Advantages, GrpoOfEqualRewardsIsZero) {
  expect_near_all(make_advantage("grpo")->group(std::vector<double>{0.3, 0.3, 0.3}), {0, 0, 0});
}

TEST(Advantages, DrGrpoOnlySubtractsTheMean) {
  expect_near_all(make_advantage("dr_grpo")->group(std::vector<double>{1, 0, 0}),
                  {0.6666667, -0.3333333, -0.3333333});
}

TEST(Advantages, RlooSubtractsTheMeanOfTheOthers) {
  // r0: others (0, 0) -> 1; r1: others (1, 0) -> 0 - 0.5.
  expect_near_all(make_advantage("rloo")->group(std::vector<double>{1, 0, 0}), {1.0, -0.5, -0.5});
  expect_near_all(make_advantage("rloo")->group(std::vector<double>{2, 4}), {-2, 2});
}

TEST(Advantages, ReinforceBaselineSubtractsTheMeanBeforeWhitening) {
  expect_near_all(make_advantage("reinforce_pp_baseline")->group(std::vector<double>{3, 1}),
                  {1, -1});
}

TEST(Advantages, GroupOfOneHasNoBaseline) {
  expect_near_all(make_advantage("grpo")->group(std::vector<double>{2}), {1.999998});
  expect_near_all(make_advantage("rloo")->group(std::vector<double>{2}), {2});
  expect_near_all(make_advantage("dr_grpo")->group(std::vector<double>{2}), {2});
}

TEST(Advantages, WhitenUsesTokenWeightedUnbiasedMoments) {
  // a = (1, -1) over (1, 3) tokens: mean -0.5, E[a^2] = 1, variance
  // (1 - 0.25) * 4 / 3 = 1.
  std::vector<double> adv{1, -1};
  const std::vector<double> tokens{1, 3};
  const Moments m = token_moments(adv, tokens);
  EXPECT_DOUBLE_EQ(m.weight, 4);
  EXPECT_DOUBLE_EQ(m.sum, -2);
  EXPECT_DOUBLE_EQ(m.sum_sq, 4);
  whiten(adv, m);
  expect_near_all(adv, {1.5, -0.5});
}

TEST(Advantages, MomentsOfShardsAddUp) {
  const std::vector<double> a{1, -1, 2}, n{2, 1, 3};
  const Moments whole = token_moments(a, n);
  const Moments left = token_moments(std::span(a).first(1), std::span(n).first(1));
  const Moments right = token_moments(std::span(a).last(2), std::span(n).last(2));
  EXPECT_DOUBLE_EQ(whole.weight, left.weight + right.weight);
  EXPECT_DOUBLE_EQ(whole.sum, left.sum + right.sum);
  EXPECT_DOUBLE_EQ(whole.sum_sq, left.sum_sq + right.sum_sq);
}

TEST(Advantages, EveryRegisteredNameMakesAnEstimator) {
  EXPECT_EQ(advantage_names(),
            (std::vector<std::string>{"grpo", "dr_grpo", "rloo", "reinforce_pp_baseline"}));
  for (const std::string& name : advantage_names())
    EXPECT_EQ(make_advantage(name)->whitens_batch(), name == "reinforce_pp_baseline") << name;
}

TEST(Advantages, AnUnknownNameIsAConfigErrorListingTheKnownOnes) {
  try {
    make_advantage("ppo");
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(e.key(), "rl.advantage");
    for (const std::string& name : advantage_names())
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

TEST(Advantages, TheConfigHelpNamesEveryEstimator) {
  for (const config::FieldInfo& f : config::describe_fields<RlConfig>()) {
    if (f.path != "advantage") continue;
    for (const std::string& name : advantage_names())
      EXPECT_NE(f.help.find(name), std::string::npos) << name;
    return;
  }
  FAIL() << "no rl.advantage";
}

}  // namespace
}  // namespace muse::rl
