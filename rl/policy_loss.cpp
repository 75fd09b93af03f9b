#include "rl/policy_loss.h"

#include <stdexcept>

namespace muse::rl {

KlEstimator parse_kl_estimator(const std::string& name) {
  if (name == "k1") return KlEstimator::kK1;
  if (name == "k2") return KlEstimator::kK2;
  if (name == "k3") return KlEstimator::kK3;
  throw std::invalid_argument("unknown KL estimator '" + name + "'");
}

LossAgg parse_loss_agg(const std::string& name) {
  if (name == "token_mean") return LossAgg::kTokenMean;
  if (name == "seq_mean_token_mean") return LossAgg::kSeqMeanTokenMean;
  if (name == "seq_sum_constant") return LossAgg::kSeqSumConstant;
  throw std::invalid_argument("unknown loss aggregation '" + name + "'");
}

at::Tensor kl_estimate(const at::Tensor& logp, const at::Tensor& ref_logp, KlEstimator kind) {
  const at::Tensor log_ratio = (logp - ref_logp).clamp(-20, 20);  // log(pi / ref)
  switch (kind) {
    case KlEstimator::kK1:
      return log_ratio;
    case KlEstimator::kK2:
      return 0.5 * log_ratio * log_ratio;
    case KlEstimator::kK3:
      // ref/pi - log(ref/pi) - 1 with log(ref/pi) = -log_ratio.
      return (at::exp(-log_ratio) + log_ratio - 1).clamp(-10, 10);
  }
  throw std::logic_error("unreachable");
}

PolicyLoss policy_loss(const TokenBatch& b, const PolicyLossOptions& o, const LossNormalizer& n) {
  const at::Tensor adv = b.advantages.unsqueeze(1);                        // (B,1)
  const at::Tensor ratio = at::exp((b.logp - b.old_logp).clamp(-20, 20));  // (B,R)
  const at::Tensor unclipped = -adv * ratio;
  const at::Tensor clipped = -adv * ratio.clamp(1 - o.clip_low, 1 + o.clip_high);
  at::Tensor token_loss = at::maximum(unclipped, clipped);  // (B,R)
  if (o.clip_dual > 1) {
    // A negative advantage with a huge ratio would push without bound: cap it.
    const at::Tensor capped = at::minimum(token_loss, -adv * o.clip_dual);
    token_loss = at::where(adv < 0, capped, token_loss);
  }
  PolicyLoss out;
  if (o.kl_coef > 0) {
    const at::Tensor kl = kl_estimate(b.logp, b.ref_logp, o.kl);
    token_loss = token_loss + o.kl_coef * kl;
    out.kl_sum = (kl.detach() * b.mask).sum().item<double>();
  }
  const at::Tensor masked = token_loss * b.mask;
  switch (o.agg) {
    case LossAgg::kTokenMean:
      out.loss = masked.sum() / n.tokens;
      break;
    case LossAgg::kSeqMeanTokenMean:
      out.loss = (masked.sum(1) / b.mask.sum(1).clamp_min(1)).sum() / n.sequences;
      break;
    case LossAgg::kSeqSumConstant:
      out.loss = masked.sum() / (n.sequences * n.constant);
      break;
  }
  const at::Tensor was_clipped = (clipped > unclipped).to(at::kFloat) * b.mask;
  out.clipped_tokens = was_clipped.sum().item<double>();
  out.ratio_sum = (ratio.detach() * b.mask).sum().item<double>();
  out.tokens = b.mask.sum().item<double>();
  return out;
}

}  // namespace muse::rl
