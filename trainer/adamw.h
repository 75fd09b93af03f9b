// AdamW on one rank's shard of one unit (ZeRO-3: each rank keeps the master
// weights and moments of its 1/N of the model only).
//
// Legend: S shard numel (UnitShards::shard_numel). Every tensor is (S) fp32
// on one device. Step t = 1, 2, ... (Loshchilov & Hutter 2019, algorithm 2;
// torch.optim.AdamW):
//   p   <- p * (1 - lr * wd)            on elements of parameters with weight_decay
//   m   <- m + (1 - b1) * (g - m)         (torch's lerp; g - b1 (g - m) when b1 <= 0.5)
//   v   <- b2 * v + (1 - b2) * g * g
//   p   <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//
// Each line is a sequence of whole-tensor ATen ops that each round once per
// element (copy, add, sub, mul, div, sqrt, where; never lerp, addcmul,
// addcdiv or add with alpha other than +-1, whose vectorised body may fuse a
// multiply-add that the scalar tail does not), so an element's result does
// not depend on where it sits in the shard or how a kernel splits the work:
// applying this to the N shards of a unit is bitwise the same as applying it
// to the whole buffer. torch.optim.AdamW (foreach=False) computes the same
// formulas with fused ops and agrees to ~1e-7 of each tensor's scale
// (tests/trainer/adamw_compat.py).
// Padding (p = g = 0) stays 0.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "model/layout.h"
#include "trainer/shard_plan.h"

namespace muse::trainer {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

// What AdamW keeps for a shard; checkpoints save it as is.
struct AdamWState {
  at::Tensor exp_avg;     // (S) fp32, m
  at::Tensor exp_avg_sq;  // (S) fp32, v
  int64_t step = 0;       // updates taken; units: steps
};

// (S) bool on the CPU: true on the elements of rank r's shard that belong to a
// parameter with weight_decay; false on other parameters and padding.
at::Tensor decay_mask(const model::UnitLayout& unit, const UnitShards& shards, int rank);

class AdamWShard {
 public:
  // `mask` is decay_mask(...) of this shard, moved to the device of the
  // weights; the moments start at zero there.
  AdamWShard(at::Tensor mask, const AdamWOptions& options);

  // One update of `param` (the master weights) in place from `grad`, with the
  // learning rate `lr` of this step (from the schedule).
  void step(const at::Tensor& param, const at::Tensor& grad, double lr);

  const AdamWState& state() const { return state_; }
  // Replaces the state by a copy of `state` (shapes must match this shard's).
  void load_state(const AdamWState& state);

 private:
  at::Tensor decay_mask_;  // (S) bool
  AdamWOptions options_;
  AdamWState state_;
  at::Tensor scratch_;        // (S) fp32, reused for the update terms
  at::Tensor denom_scratch_;  // (S) fp32
};

}  // namespace muse::trainer
