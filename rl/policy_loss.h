// The GRPO-family policy loss over a batch of responses: the PPO clipped
// surrogate with separate low/high clip (and optional dual clip), a per-token
// KL penalty to a reference policy, and the loss aggregations whose choice
// sets each response's and each token's weight. docs/rl.md has the formulas.
//
// Shapes: B responses, R response positions (right-aligned: response b fills
// the last n_b of R, the mask marks them).
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace muse::rl {

enum class KlEstimator { kK1, kK2, kK3 };
enum class LossAgg { kTokenMean, kSeqMeanTokenMean, kSeqSumConstant };

KlEstimator parse_kl_estimator(const std::string& name);  // "k1", "k2", "k3"
LossAgg parse_loss_agg(const std::string& name);  // "token_mean", "seq_mean_token_mean", ...

struct PolicyLossOptions {
  double clip_low = 0.2;
  double clip_high = 0.2;
  double clip_dual = 0;  // c > 1 bounds the loss of negative advantages; 0 = off
  double kl_coef = 0;
  KlEstimator kl = KlEstimator::kK3;
  LossAgg agg = LossAgg::kTokenMean;
};

// The divisors that make the loss of a batch split over ranks and micro-batches
// sum to the loss of the whole batch: global counts of the mini-batch.
struct LossNormalizer {
  double tokens = 1;     // loss tokens of the mini-batch over all ranks
  double sequences = 1;  // responses of the mini-batch over all ranks
  double constant = 1;   // seq_sum_constant's divisor (e.g. the generation limit)
};

struct TokenBatch {
  at::Tensor logp;        // (B, R) fp32, differentiable: log pi_theta of the response tokens
  at::Tensor old_logp;    // (B, R) fp32: log pi_old (the rollout policy)
  at::Tensor ref_logp;    // (B, R) fp32, or undefined without a KL penalty
  at::Tensor advantages;  // (B) fp32
  at::Tensor mask;        // (B, R) fp32, 1 on response tokens
};

struct PolicyLoss {
  at::Tensor loss;  // () this batch's share of the normalised loss, differentiable
  // Sums over the batch's loss tokens, for metrics (detached doubles).
  double clipped_tokens = 0;  // tokens whose ratio was clipped (no gradient)
  double kl_sum = 0;          // sum of the KL estimate (0 without a reference)
  double ratio_sum = 0;       // sum of pi/pi_old
  double tokens = 0;
};

// Per-token KL estimate of KL(pi || ref) from log-probabilities (B, R); the
// log-ratio is clamped to +-20 and k3 to [-10, 10], as verl does.
at::Tensor kl_estimate(const at::Tensor& logp, const at::Tensor& ref_logp, KlEstimator kind);

PolicyLoss policy_loss(const TokenBatch& batch, const PolicyLossOptions& options,
                       const LossNormalizer& norm);

}  // namespace muse::rl
