// The global gradient norm over every rank's gradient shards, and clipping
// to a maximum norm as torch.nn.utils.clip_grad_norm_ does.
//
// Legend: N world size, S shard numel, v = UnitShards::valid(rank).
#pragma once

#include <ATen/core/Tensor.h>

#include <cmath>
#include <span>

#include "comm/communicator.h"

namespace muse::trainer {

struct GradNorm {
  double norm = 0;       // global L2 norm of the gradient (before clipping)
  double clip_coef = 1;  // what the gradients were (or would be) scaled by, <= 1

  // False when some gradient is inf or NaN: the step should be skipped. Every
  // rank sees the same value, so every rank skips together.
  bool finite() const { return std::isfinite(norm); }
};

// min(1, max_norm / (norm + 1e-6)) as clip_grad_norm_; 1 when max_norm is 0
// (clipping off) or the norm is not finite.
double clip_coefficient(double norm, double max_norm);

// sqrt(all-reduce sum over ranks of the sum over `grads` of |g|^2): each
// tensor's norm in its dtype, their squares summed in fp64. `grads` are this rank's gradient shards
// without their padding (each (v), e.g. shard.narrow(0, 0, v)), so padding never counts. One
// all-reduce of one element on `comm`; every rank must call it.
double global_grad_norm(std::span<const at::Tensor> grads, comm::Communicator& comm);

// The global norm, and when it is finite and above `max_norm` (> 0), scales
// every tensor of `grads` in place by the clip coefficient. Non-finite
// gradients are left untouched for the caller to skip the step.
GradNorm clip_grad_norm(std::span<const at::Tensor> grads, double max_norm,
                        comm::Communicator& comm);

}  // namespace muse::trainer
