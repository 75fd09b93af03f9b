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
// Every operation rounds once per element to fp32 (never a fused
// multiply-add, which a vectorised body may use where a scalar tail does not),
// so an element's result does not depend on where it sits in the shard or how
// the work is split: applying this to the N shards of a unit is bitwise the
// same as applying it to the whole buffer. On the CPU the update is one pass
// over the shard (adamw_update_cpu, built without FMA contraction); on other
// devices a sequence of whole-tensor ATen ops that round the same way
// (adamw_update_ops: copy, add, sub, mul, div, sqrt, where; never lerp,
// addcmul, addcdiv), which equals the CPU pass up to the rounding of the
// square root (ATen's CPU sqrt is MKL's, not always correctly rounded). torch.optim.AdamW
// (foreach=False) computes the same formulas with fused ops and agrees to
// ~1e-7 of each tensor's scale (tests/trainer/adamw_compat.py).
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

// The scalars of step t, in the fp32 form in which every element sees them.
struct AdamWScalars {
  float decay;         // 1 - lr * wd, on decaying elements
  float lerp_weight;   // 1 - b1
  float beta2;         // b2
  float one_minus_b2;  // 1 - b2
  float bias2_sqrt;    // sqrt(1 - b2^t)
  float eps;
  float step_size;  // -lr / (1 - b1^t)
};
AdamWScalars adamw_scalars(const AdamWOptions& options, int64_t t, double lr);

// One update of (S) fp32 param, exp_avg and exp_avg_sq in place from grad.
// The same result two ways: one pass over contiguous CPU tensors, or ATen ops
// on any device (`scratch` and `denom` are (S) fp32 buffers for the terms).
void adamw_update_cpu(const at::Tensor& param, const at::Tensor& grad, const at::Tensor& exp_avg,
                      const at::Tensor& exp_avg_sq, const at::Tensor& decay_mask,
                      const AdamWScalars& s);
void adamw_update_ops(const at::Tensor& param, const at::Tensor& grad, const at::Tensor& exp_avg,
                      const at::Tensor& exp_avg_sq, const at::Tensor& decay_mask,
                      const AdamWScalars& s, const at::Tensor& scratch, const at::Tensor& denom);

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
  // The update count, for moments filled in place through state()'s tensors
  // (a resume reads a checkpoint straight into them). Throws
  // std::invalid_argument when negative.
  void set_step(int64_t step);

 private:
  at::Tensor decay_mask_;  // (S) bool
  AdamWOptions options_;
  AdamWState state_;
  // (S) fp32 buffers for adamw_update_ops, off the CPU only.
  at::Tensor scratch_;
  at::Tensor denom_scratch_;
};

}  // namespace muse::trainer
