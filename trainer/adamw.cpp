#include "trainer/adamw.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

namespace muse::trainer {
namespace {

void check_shard(const at::Tensor& t, const at::Tensor& like, const char* what) {
  if (t.scalar_type() != at::kFloat || t.dim() != 1 || !t.is_contiguous() ||
      t.size(0) != like.size(0) || t.device() != like.device())
    throw std::invalid_argument(std::string("AdamW: ") + what + " must be a contiguous (" +
                                std::to_string(like.size(0)) + ") float32 tensor on " +
                                like.device().str());
}

}  // namespace

at::Tensor decay_mask(const model::UnitLayout& unit, const UnitShards& shards, int rank) {
  at::Tensor mask = at::zeros({shards.shard_numel}, at::kBool);
  for (const ShardPiece& piece : shard_pieces(unit, shards, rank))
    if (unit.params[piece.param_index].weight_decay)
      mask.narrow(0, piece.shard_offset, piece.numel).fill_(true);
  return mask;
}

AdamWScalars adamw_scalars(const AdamWOptions& options, int64_t t, double lr) {
  const auto& [b1, b2, eps, wd] = options;
  // Scalars in fp64, cast to fp32 once, as ATen does with a Python float.
  const double bias1 = 1.0 - std::pow(b1, static_cast<double>(t));
  const double bias2_sqrt = std::pow(1.0 - std::pow(b2, static_cast<double>(t)), 0.5);
  return {.decay = static_cast<float>(1.0 - lr * wd),
          .lerp_weight = static_cast<float>(1.0 - b1),
          .beta2 = static_cast<float>(b2),
          .one_minus_b2 = static_cast<float>(1.0 - b2),
          .bias2_sqrt = static_cast<float>(bias2_sqrt),
          .eps = static_cast<float>(eps),
          .step_size = static_cast<float>(-lr / bias1)};
}

void adamw_update_cpu(const at::Tensor& param, const at::Tensor& grad, const at::Tensor& exp_avg,
                      const at::Tensor& exp_avg_sq, const at::Tensor& decay_mask,
                      const AdamWScalars& s) {
  float* p = param.data_ptr<float>();
  const float* g = grad.data_ptr<float>();
  float* m = exp_avg.data_ptr<float>();
  float* v = exp_avg_sq.data_ptr<float>();
  const bool* decays = decay_mask.data_ptr<bool>();
  const float w = s.lerp_weight;
  // Elements per task: large enough to amortise a thread's start.
  constexpr int64_t kGrain = 1 << 15;
  at::parallel_for(0, param.numel(), kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float gi = g[i];
      const float pi = decays[i] ? p[i] * s.decay : p[i] * 1.0f;
      // torch's lerp form for w: m + w (g - m) when w < 0.5, else
      // g - (g - m) (1 - w), where 1 - w is exact.
      const float mi = w < 0.5f ? m[i] + (gi - m[i]) * w : gi - (gi - m[i]) * (1.0f - w);
      const float vi = v[i] * s.beta2 + gi * s.one_minus_b2 * gi;
      const float denom = std::sqrt(vi) / s.bias2_sqrt + s.eps;
      p[i] = pi + mi * s.step_size / denom;
      m[i] = mi;
      v[i] = vi;
    }
  });
}

void adamw_update_ops(const at::Tensor& param, const at::Tensor& grad, const at::Tensor& m,
                      const at::Tensor& v, const at::Tensor& decay_mask, const AdamWScalars& s,
                      const at::Tensor& scratch, const at::Tensor& denom) {
  // 1 on elements that do not decay, so they are multiplied exactly by 1.
  param.mul_(at::where(decay_mask, at::scalar_tensor(s.decay, param.options()),
                       at::ones({}, param.options())));
  const float w = s.lerp_weight;
  scratch.copy_(grad).sub_(m);
  if (w < 0.5f) {
    m.add_(scratch.mul_(w));
  } else {
    m.copy_(grad).sub_(scratch.mul_(1.0f - w));
  }
  scratch.copy_(grad).mul_(s.one_minus_b2).mul_(grad);
  v.mul_(s.beta2).add_(scratch);
  at::Tensor denom_out = denom;  // sqrt_out takes a mutable reference
  at::sqrt_out(denom_out, v).div_(s.bias2_sqrt).add_(s.eps);
  scratch.copy_(m).mul_(s.step_size).div_(denom);
  param.add_(scratch);
}

AdamWShard::AdamWShard(at::Tensor mask, const AdamWOptions& options)
    : decay_mask_(std::move(mask)), options_(options) {
  if (decay_mask_.scalar_type() != at::kBool || decay_mask_.dim() != 1)
    throw std::invalid_argument("AdamW: the decay mask must be a 1-d bool tensor");
  decay_mask_ = decay_mask_.contiguous();
  const at::TensorOptions fp32 = at::TensorOptions(at::kFloat).device(decay_mask_.device());
  const int64_t n = decay_mask_.size(0);
  state_ = {.exp_avg = at::zeros({n}, fp32), .exp_avg_sq = at::zeros({n}, fp32), .step = 0};
  if (!decay_mask_.is_cpu()) {
    scratch_ = at::empty({n}, fp32);
    denom_scratch_ = at::empty({n}, fp32);
  }
}

void AdamWShard::step(const at::Tensor& param, const at::Tensor& grad, double lr) {
  check_shard(param, state_.exp_avg, "param");
  check_shard(grad, state_.exp_avg, "grad");
  const AdamWScalars s = adamw_scalars(options_, ++state_.step, lr);
  if (param.is_cpu()) {
    adamw_update_cpu(param, grad, state_.exp_avg, state_.exp_avg_sq, decay_mask_, s);
  } else {
    adamw_update_ops(param, grad, state_.exp_avg, state_.exp_avg_sq, decay_mask_, s, scratch_,
                     denom_scratch_);
  }
}

void AdamWShard::load_state(const AdamWState& state) {
  for (const at::Tensor* t : {&state.exp_avg, &state.exp_avg_sq})
    if (t->scalar_type() != at::kFloat || !t->sizes().equals(state_.exp_avg.sizes()))
      throw std::invalid_argument("AdamW: saved moments must be (" +
                                  std::to_string(state_.exp_avg.size(0)) + ") float32 tensors");
  set_step(state.step);
  state_.exp_avg.copy_(state.exp_avg);
  state_.exp_avg_sq.copy_(state.exp_avg_sq);
}

void AdamWShard::set_step(int64_t step) {
  if (step < 0) throw std::invalid_argument("AdamW: negative step count");
  state_.step = step;
}

}  // namespace muse::trainer
