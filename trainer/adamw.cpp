#include "trainer/adamw.h"

#include <ATen/ATen.h>

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

AdamWShard::AdamWShard(at::Tensor mask, const AdamWOptions& options)
    : decay_mask_(std::move(mask)), options_(options) {
  if (decay_mask_.scalar_type() != at::kBool || decay_mask_.dim() != 1)
    throw std::invalid_argument("AdamW: the decay mask must be a 1-d bool tensor");
  const at::TensorOptions fp32 = at::TensorOptions(at::kFloat).device(decay_mask_.device());
  const int64_t n = decay_mask_.size(0);
  state_ = {.exp_avg = at::zeros({n}, fp32), .exp_avg_sq = at::zeros({n}, fp32), .step = 0};
  scratch_ = at::empty({n}, fp32);
  denom_scratch_ = at::empty({n}, fp32);
}

void AdamWShard::step(const at::Tensor& param, const at::Tensor& grad, double lr) {
  check_shard(param, state_.exp_avg, "param");
  check_shard(grad, state_.exp_avg, "grad");
  const auto& [b1, b2, eps, wd] = options_;
  at::Tensor& m = state_.exp_avg;
  at::Tensor& v = state_.exp_avg_sq;
  const int64_t t = ++state_.step;
  // Scalars in fp64, cast to fp32 once per op, as torch does with Python floats.
  const double bias1 = 1.0 - std::pow(b1, static_cast<double>(t));
  const double bias2_sqrt = std::pow(1.0 - std::pow(b2, static_cast<double>(t)), 0.5);

  if (wd != 0) {
    // 1 on elements that do not decay, so they are multiplied exactly by 1.
    const at::Tensor keep = at::scalar_tensor(1.0 - lr * wd, param.options());
    param.mul_(at::where(decay_mask_, keep, at::ones({}, param.options())));
  }
  // m <- lerp(m, g, w), w = 1 - b1, in the form torch's lerp picks for w:
  // m + w (g - m) when w < 0.5, else g - (g - m) (1 - w).
  const float w = static_cast<float>(1.0 - b1);
  scratch_.copy_(grad).sub_(m);
  if (w < 0.5f) {
    m.add_(scratch_.mul_(w));
  } else {
    m.copy_(grad).sub_(scratch_.mul_(1.0f - w));  // 1 - w is exact for w in [0.5, 1]
  }
  scratch_.copy_(grad).mul_(1.0 - b2).mul_(grad);  // (1 - b2) * g * g
  v.mul_(b2).add_(scratch_);
  at::sqrt_out(denom_scratch_, v).div_(bias2_sqrt).add_(eps);
  scratch_.copy_(m).mul_(-lr / bias1).div_(denom_scratch_);
  param.add_(scratch_);
}

void AdamWShard::load_state(const AdamWState& state) {
  for (const at::Tensor* t : {&state.exp_avg, &state.exp_avg_sq})
    if (t->scalar_type() != at::kFloat || !t->sizes().equals(state_.exp_avg.sizes()))
      throw std::invalid_argument("AdamW: saved moments must be (" +
                                  std::to_string(state_.exp_avg.size(0)) + ") float32 tensors");
  if (state.step < 0) throw std::invalid_argument("AdamW: negative step count");
  state_.exp_avg.copy_(state.exp_avg);
  state_.exp_avg_sq.copy_(state.exp_avg_sq);
  state_.step = state.step;
}

}  // namespace muse::trainer
