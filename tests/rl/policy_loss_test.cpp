// The policy loss against values worked out by hand: clipping (low, high,
// dual), each aggregation, the KL estimators, and which tokens get a gradient.
#include "rl/policy_loss.h"

#include <gtest/gtest.h>

#include <cmath>

namespace muse::rl {
namespace {

at::Tensor row(std::initializer_list<double> values) {
  return at::tensor(std::vector<double>(values), at::kFloat).unsqueeze(0);
}

// Token-mean aggregation, clip 0.2 below and `clip_high` above, no dual
// clip, a k3 KL penalty of `kl_coef`.
PolicyLossOptions token_mean(double clip_high, double kl_coef = 0) {
  return {.clip_low = 0.2,
          .clip_high = clip_high,
          .clip_dual = 0,
          .kl_coef = kl_coef,
          .kl = KlEstimator::kK3,
          .agg = LossAgg::kTokenMean};
}

LossNormalizer tokens(double n) {
  return {.tokens = n, .sequences = 1, .constant = 1};
}

TEST(PolicyLoss, ClipHigherStopsTheGradientOfLargeRatios) {
  // ratio = (0.5 / 0.25, 0.5 / 0.5) = (2, 1); A = 1: -A*ratio = (-2, -1),
  // clipped (-1.28, -1); the larger, (-1.28, -1), summed over 2 tokens.
  const at::Tensor logp = row({std::log(0.5), std::log(0.5)}).requires_grad_();
  const TokenBatch b{.logp = logp,
                     .old_logp = row({std::log(0.25), std::log(0.5)}),
                     .ref_logp = {},
                     .advantages = at::ones({1}),
                     .mask = at::ones({1, 2})};
  const PolicyLoss l = policy_loss(b, token_mean(0.28), tokens(2));
  EXPECT_NEAR(l.loss.item<double>(), -1.14, 1e-6);
  EXPECT_EQ(l.clipped_tokens, 1);
  EXPECT_NEAR(l.ratio_sum, 3, 1e-6);
  l.loss.backward();
  // d(-ratio)/dlogp = -ratio = -1 on the unclipped token, / 2 tokens.
  EXPECT_NEAR(logp.grad()[0][0].item<double>(), 0, 1e-7);
  EXPECT_NEAR(logp.grad()[0][1].item<double>(), -0.5, 1e-6);
}

TEST(PolicyLoss, ClipLowBoundsSmallRatiosOfNegativeAdvantages) {
  // ratio 0.5 with A = -1: -A*ratio = 0.5, clipped -A*0.8 = 0.8 -> 0.8.
  const TokenBatch b{.logp = row({std::log(0.25)}),
                     .old_logp = row({std::log(0.5)}),
                     .ref_logp = {},
                     .advantages = -at::ones({1}),
                     .mask = at::ones({1, 1})};
  const PolicyLoss l = policy_loss(b, token_mean(0.28), tokens(1));
  EXPECT_NEAR(l.loss.item<double>(), 0.8, 1e-6);
  EXPECT_EQ(l.clipped_tokens, 1);
}

TEST(PolicyLoss, DualClipCapsNegativeAdvantages) {
  // ratio (4, 1), A = -1: max(-A*r, -A*clip(r)) = (4, 1); dual clip 3 -> (3, 1).
  const TokenBatch b{.logp = row({std::log(0.8), std::log(0.5)}),
                     .old_logp = row({std::log(0.2), std::log(0.5)}),
                     .ref_logp = {},
                     .advantages = -at::ones({1}),
                     .mask = at::ones({1, 2})};
  PolicyLossOptions o = token_mean(0.28);
  EXPECT_NEAR(policy_loss(b, o, tokens(2)).loss.item<double>(), 2.5, 1e-5);
  o.clip_dual = 3;
  EXPECT_NEAR(policy_loss(b, o, tokens(2)).loss.item<double>(), 2.0, 1e-5);
}

TEST(PolicyLoss, AggregationsWeighTokensAndResponsesAsDocumented) {
  // On-policy (ratio 1): token losses -A. Response 1 has one token (A = 1),
  // response 2 two tokens (A = -1), right-aligned in R = 2.
  const at::Tensor zeros = at::zeros({2, 2});
  const TokenBatch b{.logp = zeros,
                     .old_logp = zeros,
                     .ref_logp = {},
                     .advantages = at::tensor({1.0f, -1.0f}),
                     .mask = at::tensor({0.0f, 1.0f, 1.0f, 1.0f}).view({2, 2})};
  PolicyLossOptions o = token_mean(0.2);
  const LossNormalizer n{.tokens = 3, .sequences = 2, .constant = 4};
  EXPECT_NEAR(policy_loss(b, o, n).loss.item<double>(), (-1.0 + 2.0) / 3, 1e-6);
  o.agg = LossAgg::kSeqMeanTokenMean;
  EXPECT_NEAR(policy_loss(b, o, n).loss.item<double>(), (-1.0 / 1 + 2.0 / 2) / 2, 1e-6);
  o.agg = LossAgg::kSeqSumConstant;
  EXPECT_NEAR(policy_loss(b, o, n).loss.item<double>(), (-1.0 + 2.0) / (2 * 4), 1e-6);
}

TEST(PolicyLoss, KlEstimatorsMatchTheirFormulas) {
  // log(pi/ref) = log(0.5/0.25) = log 2.
  const at::Tensor logp = row({std::log(0.5)}), ref = row({std::log(0.25)});
  EXPECT_NEAR(kl_estimate(logp, ref, KlEstimator::kK1).item<double>(), 0.6931472, 1e-6);
  EXPECT_NEAR(kl_estimate(logp, ref, KlEstimator::kK2).item<double>(), 0.2402265, 1e-6);
  // ref/pi - log(ref/pi) - 1 = 0.5 + log 2 - 1.
  EXPECT_NEAR(kl_estimate(logp, ref, KlEstimator::kK3).item<double>(), 0.1931472, 1e-6);
  EXPECT_NEAR(kl_estimate(ref, ref, KlEstimator::kK3).item<double>(), 0, 1e-7);
}

TEST(PolicyLoss, KlPenaltyAddsToEveryToken) {
  const TokenBatch b{.logp = row({std::log(0.5)}),
                     .old_logp = row({std::log(0.5)}),
                     .ref_logp = row({std::log(0.25)}),
                     .advantages = at::zeros({1}),
                     .mask = at::ones({1, 1})};
  const PolicyLoss l = policy_loss(b, token_mean(0.2, 0.1), tokens(1));
  EXPECT_NEAR(l.loss.item<double>(), 0.1 * 0.1931472, 1e-6);
  EXPECT_NEAR(l.kl_sum, 0.1931472, 1e-6);
}

TEST(PolicyLoss, MaskedTokensDoNotCount) {
  const at::Tensor logp = row({std::log(0.9), std::log(0.5)}).requires_grad_();
  const TokenBatch b{.logp = logp,
                     .old_logp = row({std::log(0.1), std::log(0.5)}),
                     .ref_logp = {},
                     .advantages = at::ones({1}),
                     .mask = row({0, 1})};
  const PolicyLoss l = policy_loss(b, token_mean(0.2), tokens(1));
  EXPECT_NEAR(l.loss.item<double>(), -1, 1e-6);
  EXPECT_EQ(l.clipped_tokens, 0);
  l.loss.backward();
  EXPECT_EQ(logp.grad()[0][0].item<double>(), 0);
}

}  // namespace
}  // namespace muse::rl
