// Fully sharded data parallelism (ZeRO-3) over the model's units: embed, each
// block, head. Every rank keeps 1/N of each unit's flat buffer as fp32 master
// weights and the matching gradient shard; a unit's full buffer exists only
// while the unit computes.
//
// One micro-batch, forward then backward (docs/trainer.md has the timeline):
//   forward   for u = 0..L-1: all-gather units u+1..u+k (asynchronous
//             prefetch, k = options.prefetch), wait for unit u, run it, keep
//             its input, free its buffer.
//   head      the last unit runs with autograd together with the loss, and
//             its backward follows at once. The loss gets the final norm's
//             output and the output projection (model::HeadOutput): it makes
//             the (B, T, V) logits itself, or projects a chunk of tokens at a
//             time (model/chunked_loss.h).
//   backward  for u = L-2..0: re-gather unit u (prefetched during unit u+1
//             with units down to u-k+1),
//             recompute its forward with autograd, back-propagate, start the
//             reduce-scatter of its full gradient (asynchronous, overlapping
//             unit u-1's backward) and free the buffer.
// The recompute in backward is activation checkpointing at unit boundaries.
// `keep_gathered` keeps each unit's gathered buffer from forward to backward
// (no re-gather); `activation_checkpointing = false` also keeps each unit's
// autograd graph from forward (no recompute), which needs `keep_gathered`
// since the graph holds the buffer.
//
// Tied embeddings: the head reads the embed unit's token table, so the embed
// unit's gathered buffer and its gradient live for the whole micro-batch.
//
// Gradients: each unit's full gradient is reduce-scattered (sum) in the
// reduce dtype and added to the fp32 gradient shard, so micro-batches
// accumulate there. The caller scales the loss so that the sum over ranks and
// micro-batches is the mean it wants (e.g. divides by the global token count).
//
// Legend: N world size, L units, S shard numel, n unit numel, B batch, T time,
// V vocab.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "comm/communicator.h"
#include "model/forward.h"
#include "model/layout.h"
#include "model/model.h"
#include "model/model_config.h"
#include "trainer/shard_plan.h"
#include "trainer/train_config.h"

namespace muse::trainer {

struct FsdpOptions {
  at::Device device = at::kCPU;
  at::ScalarType param_dtype = at::kFloat;   // gathered weights and compute
  at::ScalarType reduce_dtype = at::kFloat;  // gradient reduce-scatter
  bool keep_gathered = false;                // FSDP2's reshard_after_forward = false
  bool activation_checkpointing = true;      // recompute each unit in backward
  int64_t prefetch = 1;  // units gathered ahead of the computing one; 0 = no overlap
};

// Gradient reduce-scatters left in flight behind the computing unit: enough
// to overlap the next units' backward, few enough that full-size gradients do
// not pile up; none (each completes at once) without prefetch.
inline size_t max_pending_reduces(int64_t prefetch) {
  return prefetch == 0 ? 0 : static_cast<size_t>(prefetch) + 1;
}

// One unit's shard on this rank.
struct FsdpUnit {
  model::UnitLayout layout;
  UnitShards shards;
  at::Tensor param;  // (S) fp32 master weights; padding is 0
  at::Tensor grad;   // (S) fp32 accumulated gradient; padding stays 0

  // The real elements (no padding) of param and grad: (valid) views.
  at::Tensor param_valid(int rank) const { return param.narrow(0, 0, shards.valid(rank)); }
  at::Tensor grad_valid(int rank) const { return grad.narrow(0, 0, shards.valid(rank)); }
};

class FsdpModel {
 public:
  // Initialises every unit with model::init_unit(cfg, ..., seed) and keeps
  // this rank's shard, so the weights are the same whatever the world size.
  // Throws config::ConfigError for an invalid model config or options that
  // cannot work together.
  FsdpModel(const model::ModelConfig& cfg, uint64_t seed, comm::Communicator& comm,
            const FsdpOptions& options);

  const model::ModelConfig& config() const { return cfg_; }
  const FsdpOptions& options() const { return options_; }
  int rank() const { return comm_->rank(); }
  int world_size() const { return comm_->size(); }
  std::vector<FsdpUnit>& units() { return units_; }
  const std::vector<FsdpUnit>& units() const { return units_; }

  // Forward and backward of one micro-batch: `loss_fn` maps the head's
  // output (HeadOutput::logits() gives the (B, T, V) logits) to the scalar to
  // differentiate. Adds the gradient to every unit's grad shard and returns
  // the loss (detached). Collective: every rank calls it, with its own inputs.
  at::Tensor forward_backward(const model::Inputs& in,
                              const std::function<at::Tensor(const model::HeadOutput&)>& loss_fn);

  // Logits (B, T, V) in the param dtype without autograd (evaluation).
  // Collective.
  at::Tensor forward(const model::Inputs& in);
  // The head's output without autograd and without the logits; its output
  // projection keeps the head's (or, tied, the embed unit's) gathered buffer
  // alive. Collective.
  model::HeadOutput forward_head(const model::Inputs& in);

  void zero_grad();

  // Writes the full fp32 weights into `out` (a Model of the same config) on
  // every rank, one unit at a time. Collective.
  void gather_into(model::Model& out);

  // Bytes this rank holds for master weights and gradient shards.
  int64_t shard_bytes() const;

 private:
  struct Gathered;
  // A weight as an autograd leaf sharing storage with its unit's gathered
  // buffer, at element `offset` of it.
  struct ParamLeaf {
    at::Tensor leaf;
    int64_t offset;
  };
  // A unit's gathered buffer and, when its gradient is wanted, where the
  // leaves made for its weights are collected.
  struct UnitBuffers {
    at::Tensor flat;                           // (N*S) param dtype
    std::vector<ParamLeaf>* leaves = nullptr;  // null: no autograd for the weights
  };
  std::unique_ptr<Gathered> gather(int64_t unit);
  // Runs the embed unit or a block, `unit`, on `x`.
  at::Tensor run_unit(int64_t unit, const UnitBuffers& buffers, const at::Tensor& x,
                      const model::Inputs& in, const model::AttnContext& ctx);
  // Runs the head on `x`; `embed` is the embed unit's buffers, which the head
  // reads when embeddings are tied.
  model::HeadOutput run_head(const UnitBuffers& buffers, const at::Tensor& x,
                             const UnitBuffers& embed);

  model::ModelConfig cfg_;
  FsdpOptions options_;
  comm::Communicator* comm_;  // [not null]
  std::vector<FsdpUnit> units_;
};

// Whether training runs on the GPU: trainer.device cuda, or auto with the
// nccl backend.
bool uses_gpu(const TrainerConfig& trainer, std::string_view backend);

// The FSDP dtypes and options trainer.* asks for (the device left as CPU).
FsdpOptions fsdp_options(const TrainerConfig& trainer, std::string_view backend);

}  // namespace muse::trainer
