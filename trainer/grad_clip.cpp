#include "trainer/grad_clip.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <optional>

namespace muse::trainer {

double clip_coefficient(double norm, double max_norm) {
  if (max_norm <= 0 || !std::isfinite(norm)) return 1.0;
  return std::min(1.0, max_norm / (norm + 1e-6));
}

double global_grad_norm(std::span<const at::Tensor> grads, comm::Communicator& comm) {
  const at::Device device = grads.empty() ? at::Device(at::kCPU) : grads.front().device();
  at::Tensor sum_sq = at::zeros({1}, at::TensorOptions(at::kDouble).device(device));  // (1)
  // Each shard's norm in its own dtype (ATen's reduction is accurate, and an
  // fp64 copy of every gradient would cost a pass and memory), squared and
  // summed over shards and ranks in fp64.
  for (const at::Tensor& g : grads)
    sum_sq.add_(at::linalg_vector_norm(g, 2).to(at::kDouble).square());
  comm.all_reduce(sum_sq, comm::ReduceOp::kSum);
  return std::sqrt(sum_sq.item<double>());
}

GradNorm clip_grad_norm(std::span<const at::Tensor> grads, double max_norm,
                        comm::Communicator& comm) {
  GradNorm result;
  result.norm = global_grad_norm(grads, comm);
  result.clip_coef = clip_coefficient(result.norm, max_norm);
  if (result.clip_coef < 1.0)
    for (const at::Tensor& g : grads)
      g.mul_(result.clip_coef);  // tensors are handles: mul_ is const
  return result;
}

}  // namespace muse::trainer
