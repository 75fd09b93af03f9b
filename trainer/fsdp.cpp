#include "trainer/fsdp.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <deque>
#include <utility>

#include "config/schema.h"
#include "model/weights.h"
#include "telemetry/nvtx.h"

namespace muse::trainer {

// A unit's full buffer while (or after) it is all-gathered.
struct FsdpModel::Gathered {
  at::Tensor full;    // (N*S) param dtype
  at::Tensor source;  // this rank's send buffer, alive until the gather completes
  std::unique_ptr<comm::Work> work;

  const at::Tensor& wait() {
    if (work) {
      work->wait();
      work.reset();
      source.reset();
    }
    return full;
  }
};

namespace {

// A gradient reduce-scatter in flight; its result is added to the unit's
// fp32 gradient shard when it completes.
struct PendingReduce {
  FsdpUnit* unit;
  at::Tensor send;  // (N*S) reduce dtype
  at::Tensor recv;  // (S) reduce dtype
  std::unique_ptr<comm::Work> work;

  void finish() {
    work->wait();
    unit->grad.add_(recv);
  }
};

}  // namespace

FsdpModel::FsdpModel(const model::ModelConfig& cfg, uint64_t seed, comm::Communicator& comm,
                     const FsdpOptions& options)
    : cfg_(cfg), options_(options), comm_(&comm) {
  cfg_.validate();
  if (!options_.activation_checkpointing && !options_.keep_gathered) {
    throw config::ConfigError("trainer.activation_checkpointing",
                              "false needs trainer.keep_gathered: true (without recompute, each "
                              "unit's autograd graph holds its gathered weights until backward)");
  }
  if (options_.prefetch < 0) throw config::ConfigError("trainer.prefetch", "must be >= 0");
  const std::vector<model::UnitLayout> layout = model::model_layout(cfg_);
  const int rank = comm.rank();
  const auto fp32 = at::TensorOptions().dtype(at::kFloat).device(options_.device);
  for (size_t u = 0; u < layout.size(); ++u) {
    FsdpUnit unit{.layout = layout[u],
                  .shards = shard_unit(layout[u].numel, comm.size()),
                  .param = {},
                  .grad = {}};
    // Every rank initialises the whole unit from the seed and keeps its
    // slice: the weights do not depend on the world size.
    const at::Tensor init = model::init_unit(cfg_, unit.layout, static_cast<int64_t>(u), seed);
    unit.param = at::zeros({unit.shards.shard_numel}, fp32);
    unit.param.narrow(0, 0, unit.shards.valid(rank))
        .copy_(init.narrow(0, unit.shards.begin(rank), unit.shards.valid(rank)));
    unit.grad = at::zeros_like(unit.param);
    units_.push_back(std::move(unit));
  }
}

std::unique_ptr<FsdpModel::Gathered> FsdpModel::gather(int64_t u) {
  const telemetry::NvtxRange range("fsdp gather unit", u);
  auto g = std::make_unique<Gathered>();
  const FsdpUnit& unit = units_[u];
  g->source = unit.param.to(options_.param_dtype);  // no copy when already fp32
  g->full = at::empty({unit.shards.padded_numel}, g->source.options());
  g->work = comm_->all_gather_async(g->full, g->source);
  return g;
}

namespace {

// Views of a gathered buffer, or autograd leaves sharing their storage when
// the unit's gradient is wanted: one leaf per parameter, because the backward
// of a view of one flat leaf would materialise a gradient the size of the
// whole buffer for every parameter.
template <class Buffers>
model::ViewFn leaves_of(const Buffers& b) {
  if (b.leaves == nullptr) return {};
  return [&b](const at::Tensor& view) {
    at::Tensor leaf = view.detach().requires_grad_();
    b.leaves->push_back({leaf, view.storage_offset() - b.flat.storage_offset()});
    return leaf;
  };
}

}  // namespace

at::Tensor FsdpModel::run_unit(int64_t u, const UnitBuffers& unit, const at::Tensor& x,
                               const model::Inputs& in, const model::AttnContext& ctx) {
  const model::UnitLayout& layout = units_[u].layout;
  if (u == model::kEmbedUnit)
    return model::embed_forward(model::embed_weights(layout, unit.flat, leaves_of(unit)), cfg_, in);
  return model::block_forward(model::block_weights(layout, unit.flat, leaves_of(unit)), cfg_, x,
                              ctx);
}

model::HeadOutput FsdpModel::run_head(const UnitBuffers& unit, const at::Tensor& x,
                                      const UnitBuffers& embed) {
  at::Tensor tok_embed;  // the output projection when tied: a leaf of the embed unit
  if (cfg_.tie_embeddings) {
    tok_embed =
        model::param_view(units_[model::kEmbedUnit].layout, embed.flat, model::ParamId::kTokEmbed);
    if (const model::ViewFn as = leaves_of(embed)) tok_embed = as(tok_embed);
  }
  const model::UnitLayout& layout = units_[model::head_unit(cfg_)].layout;
  return model::head_output(model::head_weights(layout, unit.flat, tok_embed, leaves_of(unit)),
                            cfg_, x);
}

at::Tensor FsdpModel::forward_backward(
    const model::Inputs& in, const std::function<at::Tensor(const model::HeadOutput&)>& loss_fn) {
  const int64_t n_units = static_cast<int64_t>(units_.size());
  const int64_t head = n_units - 1;
  const bool tied = cfg_.tie_embeddings;
  const model::AttnContext ctx = model::attn_context(cfg_, in);

  std::vector<std::unique_ptr<Gathered>> gathered(n_units);
  // Per unit: its weights' autograd leaves, its full gradient buffer (while
  // it accumulates), its input and, without recompute, its output.
  std::vector<std::vector<ParamLeaf>> leaves(n_units);
  std::vector<at::Tensor> grads(n_units), inputs(n_units), outputs(n_units);
  const auto with_grad = [&](int64_t u) -> UnitBuffers {
    return {.flat = gathered[u]->wait(), .leaves = &leaves[u]};
  };
  // Points the unit's leaves' gradients into one flat buffer, just before its
  // backward, so autograd accumulates in place into the unit's full gradient.
  // A gradient autograd already made elsewhere is added into the buffer first.
  const auto attach_gradient = [&](int64_t u) {
    if (!grads[u].defined()) grads[u] = at::zeros_like(gathered[u]->full);
    for (ParamLeaf& p : leaves[u]) {
      const at::Tensor& made = p.leaf.grad();
      if (made.defined() && made.is_alias_of(grads[u])) continue;
      at::Tensor view = grads[u].as_strided(p.leaf.sizes(), p.leaf.strides(),
                                            grads[u].storage_offset() + p.offset);
      if (made.defined()) view.add_(made);
      p.leaf.mutable_grad() = view;
    }
  };
  // Issues the all-gathers of units first..last (either order) not yet gathered.
  const auto prefetch = [&](int64_t first, int64_t last) {
    const int64_t step = first <= last ? 1 : -1;
    for (int64_t v = first; v != last + step; v += step)
      if (v >= 0 && v < n_units && !gathered[v]) gathered[v] = gather(v);
  };
  const int64_t depth = options_.prefetch;
  const auto release = [&](int64_t u) {
    if (tied && u == model::kEmbedUnit) return;  // the head reads it until the end
    gathered[u].reset();
    leaves[u].clear();
    grads[u].reset();
  };

  // Forward through every unit but the head, keeping only unit inputs.
  at::Tensor x;  // (B,T,C) activations between units
  for (int64_t u = 0; u < head; ++u) {
    prefetch(u, u + depth);
    const telemetry::NvtxRange range("fsdp forward unit", u);
    if (options_.activation_checkpointing) {
      inputs[u] = x;
      at::NoGradGuard no_grad;
      x = run_unit(u, {.flat = gathered[u]->wait(), .leaves = nullptr}, x, in, ctx);
    } else {
      inputs[u] = u == 0 ? at::Tensor() : x.requires_grad_();
      outputs[u] = run_unit(u, with_grad(u), inputs[u], in, ctx);
      x = outputs[u].detach();
    }
    if (!options_.keep_gathered && !(tied && u == model::kEmbedUnit)) gathered[u].reset();
  }

  // The head and the loss, forward and backward at once, with the last
  // blocks prefetched for backward.
  prefetch(head, head - depth);
  std::deque<PendingReduce> pending;
  const auto reduce_gradient = [&](int64_t u) {
    const telemetry::NvtxRange range("fsdp reduce-scatter unit", u);
    PendingReduce p{.unit = &units_[u], .send = {}, .recv = {}, .work = nullptr};
    p.send = grads[u].to(options_.reduce_dtype);
    p.recv = at::empty({units_[u].shards.shard_numel}, p.send.options());
    p.work = comm_->reduce_scatter_async(p.recv, p.send, comm::ReduceOp::kSum);
    pending.push_back(std::move(p));
    if (pending.size() > max_pending_reduces(depth)) {
      pending.front().finish();
      pending.pop_front();
    }
  };

  at::Tensor loss, grad_x;
  {
    const telemetry::NvtxRange range("fsdp head forward+backward", head);
    // Scoped: the loss's graph references the head's gathered buffer and
    // its full gradient, which must not outlive the head's backward.
    const at::Tensor head_in = x.detach().requires_grad_();
    const at::Tensor head_loss = loss_fn(
        run_head(with_grad(head), head_in, tied ? with_grad(model::kEmbedUnit) : UnitBuffers{}));
    // The loss's graph keeps what its backward needs (the log-softmax's
    // output); logits the loss made are gone before the backward.
    attach_gradient(head);
    head_loss.backward();
    loss = head_loss.detach();
    grad_x = head_in.grad();
    // Tied: the token table's gradient from the output projection was made
    // by autograd once the loss's (B,T,V) buffers were gone; only now does
    // the embed unit's full gradient exist, off the step's peak.
    if (tied) attach_gradient(model::kEmbedUnit);
  }
  x.reset();
  reduce_gradient(head);
  release(head);

  // Backward through the other units, last to first.
  for (int64_t u = head - 1; u >= 0; --u) {
    prefetch(u, u - depth);
    const telemetry::NvtxRange range("fsdp backward unit", u);
    at::Tensor out = outputs[u];
    if (options_.activation_checkpointing) {
      if (u > 0) inputs[u] = inputs[u].detach().requires_grad_();
      out = run_unit(u, with_grad(u), inputs[u], in, ctx);
    }
    attach_gradient(u);
    out.backward(grad_x);
    grad_x = u > 0 ? inputs[u].grad() : at::Tensor();
    inputs[u].reset();
    outputs[u].reset();
    reduce_gradient(u);
    gathered[u].reset();
    leaves[u].clear();
    grads[u].reset();
  }
  for (PendingReduce& p : pending)
    p.finish();
  return loss;
}

at::Tensor FsdpModel::forward(const model::Inputs& in) {
  at::NoGradGuard no_grad;
  return forward_head(in).logits();  // (B,T,V)
}

model::HeadOutput FsdpModel::forward_head(const model::Inputs& in) {
  at::NoGradGuard no_grad;
  const int64_t n_units = static_cast<int64_t>(units_.size());
  const int64_t head = n_units - 1;
  const model::AttnContext ctx = model::attn_context(cfg_, in);
  std::vector<std::unique_ptr<Gathered>> gathered(n_units);
  at::Tensor x;
  for (int64_t u = 0; u < head; ++u) {
    for (int64_t v = u; v <= std::min(u + options_.prefetch, head); ++v)
      if (!gathered[v]) gathered[v] = gather(v);
    x = run_unit(u, {.flat = gathered[u]->wait(), .leaves = nullptr}, x, in, ctx);
    if (!(cfg_.tie_embeddings && u == model::kEmbedUnit)) gathered[u].reset();
  }
  if (!gathered[head]) gathered[head] = gather(head);  // not prefetched with prefetch 0
  const UnitBuffers embed{
      .flat = cfg_.tie_embeddings ? gathered[model::kEmbedUnit]->full : at::Tensor(),
      .leaves = nullptr};
  return run_head({.flat = gathered[head]->wait(), .leaves = nullptr}, x, embed);
}

void FsdpModel::zero_grad() {
  for (FsdpUnit& unit : units_)
    unit.grad.zero_();
}

void FsdpModel::gather_into(model::Model& out) {
  at::NoGradGuard no_grad;
  for (size_t u = 0; u < units_.size(); ++u) {
    const FsdpUnit& unit = units_[u];
    const at::Tensor full = at::empty({unit.shards.padded_numel}, unit.param.options());
    comm_->all_gather(full, unit.param);
    out.flat_params()[u].copy_(full.narrow(0, 0, unit.shards.numel));
  }
}

int64_t FsdpModel::shard_bytes() const {
  int64_t bytes = 0;
  for (const FsdpUnit& unit : units_)
    bytes += unit.param.nbytes() + unit.grad.nbytes();
  return bytes;
}

bool uses_gpu(const TrainerConfig& trainer, std::string_view backend) {
  return trainer.device == "cuda" || (trainer.device == "auto" && backend == "nccl");
}

FsdpOptions fsdp_options(const TrainerConfig& trainer, std::string_view backend) {
  const bool gpu = uses_gpu(trainer, backend);
  FsdpOptions o;
  o.param_dtype = trainer.param_dtype == "bf16" || (trainer.param_dtype == "auto" && gpu)
                      ? at::kBFloat16
                      : at::kFloat;
  o.reduce_dtype = trainer.reduce_dtype == "bf16" ? at::kBFloat16 : at::kFloat;
  o.keep_gathered = trainer.keep_gathered;
  o.activation_checkpointing = trainer.activation_checkpointing;
  o.prefetch = trainer.prefetch;
  return o;
}

}  // namespace muse::trainer
