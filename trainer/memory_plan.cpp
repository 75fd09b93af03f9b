#include "trainer/memory_plan.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <map>
#include <vector>

#include "config/schema.h"
#include "model/forward.h"
#include "model/layout.h"
#include "telemetry/progress.h"
#include "trainer/shard_plan.h"

namespace muse::trainer {

namespace {

// ---- Planning. ----

// The small all-reduces of one step in trainer/pretrain.cpp, each of one
// 8-byte element: agreeing that every rank read its data (comm::run_agreed),
// the global count of targets, the loss, and the gradient norm (grad_clip).
constexpr int64_t kStepAllReduces = 4;
constexpr int64_t kScalarBytes = 8;

// Bytes per token of a loader batch: tokens and targets int64, segment ids int32.
constexpr int64_t kInputBytesPerToken = 8 + 8 + 4;

// What one micro-batch creates, in bytes, from the operations of
// model/forward.cpp as LibTorch runs them (docs/memory.md has the
// derivation and the measurements that confirm it). Element counts:
// c = B*T*C, kv = B*T*KV*D, f = B*T*F, v = B*T*V, m = B*T*T with the dense
// attention mask and 0 without it.
struct ActivationSizes {
  int64_t unit_io;              // one (B,T,C) tensor between units: p*c
  int64_t block_graph;          // what autograd saves in one block's forward
  int64_t block_nograd_peak;    // a block's forward without autograd, output included
  int64_t block_backward_peak;  // above the graph and output: the MLP's backward
  int64_t head_peak;            // the head's forward and backward with the loss
  int64_t constant;             // rotary tables, mask or segment plan, and the step's batches
};

ActivationSizes activation_sizes(const model::ModelConfig& cfg, const PlanInputs& in) {
  const int64_t p = c10::elementSize(in.fsdp.param_dtype), fp32 = 4;
  const int64_t B = in.batch_rows, T = in.seq_len, D = cfg.head_dim();
  // Packed rows keep their segments apart with a (B,1,T,T) mask (short rows
  // on the CPU) or within their boundaries: flash's variable-length kernel
  // (fp16/bf16 on a GPU) or SDPA per group of equal-length segments.
  const bool dense_mask =
      model::packed_attention_for(in.fsdp.device, T) == model::PackedAttention::kDenseMask;
  const bool flash = !dense_mask && !in.fsdp.device.is_cpu() &&
                     model::flash_attention_supports(in.fsdp.param_dtype, D);
  const int64_t c = B * T * cfg.dim, kv = B * T * cfg.n_kv_heads * D, f = B * T * cfg.ffn_hidden,
                v = B * T * cfg.vocab_size, m = dense_mask ? B * T * T : 0;
  // What attention keeps besides q, k, v, its output and log-sum-exp: the
  // mask converted to the compute dtype, or per group the groups' outputs
  // before they return to their tokens; flash nothing more.
  const int64_t attention_saved_extra = dense_mask ? p * m : (flash ? 0 : p * c);
  // Without autograd, those outputs and their concatenation live beside the
  // output until its expression ends.
  const int64_t attention_nograd_extra = dense_mask ? p * m : (flash ? 0 : 2 * p * c);
  ActivationSizes a{};
  a.unit_io = p * c;
  // What autograd saves. An RMSNorm (computed in fp32) keeps its fp32 input,
  // which for the first norm is the unit input itself unless the compute
  // dtype is lower, its normalised value and output in the compute dtype, and
  // its (B,T,1) fp32 inverse norm.
  const int64_t first_norm = (p == fp32 ? 0 : fp32 * c) + 2 * p * c + fp32 * B * T;
  const int64_t second_norm = fp32 * c + 2 * p * c + fp32 * B * T;
  // Flash attention keeps (rotated or gathered) q, k and v, its output and
  // the (B,H,T) fp32 log-sum-exp, and the extra above; the rotary tables are
  // cast to the compute dtype for each of q and k.
  const int64_t attention = p * c + 2 * p * kv + attention_saved_extra + p * c +
                            fp32 * B * cfg.n_heads * T + (p == fp32 ? 0 : 4 * p * B * T * D);
  // The MLP keeps gate, silu(gate), up and their product.
  a.block_graph = first_norm + attention + second_norm + 4 * p * f;
  // Without autograd the temporaries of one C++ expression live until its
  // end: at the MLP, h q q_rot a y g (c each), k v, gate silu up product,
  // the down projection and the sum; at attention, the extra above.
  a.block_nograd_peak =
      std::max(p * (8 * c + 2 * kv + 4 * f), p * (4 * c + 2 * kv) + attention_nograd_extra);
  // The down projection's backward yields the product's gradient, then the
  // gate's and up's while the weight gradient waits.
  a.block_backward_peak = 2 * p * f + p * cfg.dim * cfg.ffn_hidden;
  // The final norm and three (B,T,V) fp32 buffers: in forward the logits
  // (with their fp32 copy when the compute dtype is lower) and the
  // log-softmax; in backward, once the logits are freed (FsdpModel drops them
  // as soon as the loss exists; log-softmax saves only its output), that
  // output and the gradients of the log-softmax's output and input.
  a.head_peak = first_norm + 3 * fp32 * v;
  if (in.loss_chunk_tokens > 0) {
    // Chunked (model/chunked_loss.h), at the peak of its backward: the
    // counted rows of the norm's output and their gradient, the gradient
    // flowing back to the norm, the output projection's gradient, and one
    // chunk's softmax in fp32 (and in the compute dtype when that is lower).
    const int64_t K = std::min(in.loss_chunk_tokens, B * T);
    a.head_peak = first_norm + 3 * p * c + p * cfg.vocab_size * cfg.dim +
                  K * cfg.vocab_size * (fp32 + (p == fp32 ? 0 : p));
  }
  // The bool mask, or the segment plan's two int64 indices per token
  // (model::Segments; its boundaries are one int32 per segment).
  const int64_t segment_plan = dense_mask ? m : 2 * 8 * B * T;
  a.constant = 2 * fp32 * B * T * D + segment_plan + kInputBytesPerToken * B * T * in.grad_accum;
  return a;
}

struct Phase {
  int64_t gathered = 0;
  int64_t activations = 0;
};

// Walks one micro-batch of FsdpModel::forward_backward (trainer/fsdp.cpp)
// and returns the moment with the most bytes alive above the shards: which
// full unit buffers are gathered, which gradients are in flight and which
// activations exist.
Phase micro_batch_peak(const model::ModelConfig& cfg, const PlanInputs& in,
                       const std::vector<UnitShards>& shards) {
  const int64_t p = c10::elementSize(in.fsdp.param_dtype);
  const int64_t r = c10::elementSize(in.fsdp.reduce_dtype);
  const bool ckpt = in.fsdp.activation_checkpointing, keep = in.fsdp.keep_gathered;
  const bool tied = cfg.tie_embeddings;
  const int64_t L = cfg.n_layers, head = model::head_unit(cfg), k = in.fsdp.prefetch;
  const ActivationSizes a = activation_sizes(cfg, in);

  std::vector<bool> held(shards.size(), false);  // gathered buffers alive
  std::deque<int64_t> pending;                   // reduce-scatter buffers in flight
  int64_t tied_grad = 0;  // the embed unit's full gradient, from the head until its reduce
  Phase peak;
  const auto full = [&](int64_t u) { return shards[u].padded_numel * p; };
  const auto observe = [&](int64_t activations, int64_t extra_gathered) {
    int64_t gathered = extra_gathered + tied_grad;
    for (size_t u = 0; u < held.size(); ++u)
      if (held[u]) gathered += full(static_cast<int64_t>(u));
    for (const int64_t bytes : pending)
      gathered += bytes;
    activations += a.constant;
    if (gathered + activations > peak.gathered + peak.activations) peak = {gathered, activations};
  };
  // A reduce-scatter sends the full gradient in the reduce dtype (a copy
  // unless that is the param dtype) into an (S) result.
  const auto reduce = [&](int64_t u, int64_t send_bytes) {
    pending.push_back(send_bytes + shards[u].shard_numel * r);
    if (pending.size() > max_pending_reduces(k)) pending.pop_front();
    held[u] = false;
  };

  // Units first..last (either order, within the model) gathered.
  const auto hold = [&](int64_t first, int64_t last) {
    for (int64_t v = std::max<int64_t>(std::min(first, last), 0);
         v <= std::min(std::max(first, last), head); ++v)
      held[v] = true;
  };
  // Forward: unit u runs while units u+1..u+k are gathered; units 1..u-1 left
  // their inputs (checkpointing) or their graphs and outputs.
  for (int64_t u = 0; u < head; ++u) {
    hold(u, u + k);
    const int64_t before = u * a.unit_io + (ckpt ? 0 : std::max<int64_t>(u - 1, 0) * a.block_graph);
    int64_t running = a.unit_io;  // the unit's own, its output included
    if (u != model::kEmbedUnit) running = ckpt ? a.block_nograd_peak : a.block_graph + a.unit_io;
    observe(before + running, 0);
    if (!keep && !(tied && u == model::kEmbedUnit)) held[u] = false;
  }
  // The head with the loss, forward and backward, with the last k blocks
  // prefetched for backward.
  // The head's (and tied embed's) gradient buffers exist from just before its
  // backward.
  hold(head, head - k);
  const int64_t kept = (L + 1) * a.unit_io + (ckpt ? 0 : L * a.block_graph);
  observe(kept + a.head_peak, full(head));
  // Tied: the token table's gradient (from autograd) is added into the embed
  // unit's new full gradient buffer after the head's backward.
  if (tied) {
    tied_grad = full(model::kEmbedUnit);
    observe(kept + a.unit_io, full(head) + shards[model::kEmbedUnit].numel * p);
  }
  reduce(head, r == p ? 0 : shards[head].padded_numel * r);

  // Backward, last block to embed: units u-1..u-k are gathered while unit u
  // recomputes; the MLP's backward is the peak of activations, the
  // accumulation of the weights' gradients into the full buffer (two full
  // buffers and the per-weight gradients) the peak of gathered bytes. The
  // logits and the head's input are gone; its input's gradient flows on.
  for (int64_t u = head - 1; u >= 0; --u) {
    hold(u, u - k);
    // Unit inputs, the unit's output and the gradient flowing into it.
    const int64_t io = (u + 2) * a.unit_io;
    const int64_t graphs = ckpt ? 1 : u;
    if (u > 0) observe(io + graphs * a.block_graph + a.block_backward_peak, 0);
    observe(io + a.unit_io + (ckpt ? 0 : std::max<int64_t>(u - 1, 0)) * a.block_graph,
            (tied && u == model::kEmbedUnit ? 2 : 3) * full(u));
    if (tied && u == model::kEmbedUnit) tied_grad = 0;
    reduce(u, shards[u].padded_numel * r);
  }
  return peak;
}

// Bytes one rank sends to all-gather or reduce-scatter a full buffer of
// `bytes` (comm::CollectiveStats' wire convention).
int64_t ring_bytes(int64_t bytes, int n) {
  return bytes * (n - 1) / n;
}

}  // namespace

MemoryPlan plan_memory(const model::ModelConfig& cfg, const PlanInputs& in) {
  const int n = in.world_size;
  const int64_t p = c10::elementSize(in.fsdp.param_dtype);
  const int64_t r = c10::elementSize(in.fsdp.reduce_dtype);
  const std::vector<model::UnitLayout> layout = model::model_layout(cfg);
  std::vector<UnitShards> shards;
  for (const model::UnitLayout& unit : layout)
    shards.push_back(shard_unit(unit.numel, n));

  MemoryPlan plan;
  int64_t shard_numel = 0;  // sum of S
  for (const UnitShards& s : shards)
    shard_numel += s.shard_numel;
  plan.param_shard_bytes = 4 * shard_numel;
  plan.grad_shard_bytes = 4 * shard_numel;
  plan.optimizer_bytes = 2 * 4 * shard_numel;
  // The bool decay mask; off the CPU, AdamW's ATen-op form adds two fp32 buffers.
  plan.optimizer_scratch_bytes = shard_numel + (in.fsdp.device.is_cpu() ? 0 : 2 * 4 * shard_numel);
  const Phase peak = micro_batch_peak(cfg, in, shards);
  plan.gathered_bytes = peak.gathered;
  plan.activation_bytes = peak.activations;
  plan.total_bytes = plan.param_shard_bytes + plan.grad_shard_bytes + plan.optimizer_bytes +
                     plan.optimizer_scratch_bytes + plan.gathered_bytes + plan.activation_bytes;

  const double tokens_per_rank = double(in.grad_accum) * in.batch_rows * in.seq_len;
  plan.flops_per_token = double(model::flops_per_token(cfg, in.seq_len));
  plan.flops_per_step_rank = plan.flops_per_token * tokens_per_rank;
  plan.flops_per_step = plan.flops_per_step_rank * n;

  // ZeRO-3 traffic of one micro-batch: every unit is all-gathered for
  // forward and again for backward, except the head (its backward follows its
  // forward at once), every unit with keep_gathered, and the tied embed unit
  // (it stays gathered for the head); every full gradient is reduce-scattered once.
  int64_t micro_batch = 0;
  const int64_t head = model::head_unit(cfg);
  for (int64_t u = 0; u <= head; ++u) {
    const bool once =
        u == head || in.fsdp.keep_gathered || (cfg.tie_embeddings && u == model::kEmbedUnit);
    const int64_t full = shards[u].padded_numel;
    micro_batch += (once ? 1 : 2) * ring_bytes(full * p, n) + ring_bytes(full * r, n);
  }
  // An all-reduce sends 2(N-1)/N of its buffer.
  plan.comm_wire_bytes_per_step =
      in.grad_accum * micro_batch + kStepAllReduces * (2 * kScalarBytes * (n - 1) / n);
  return plan;
}

PlanInputs plan_inputs(const TrainerConfig& trainer, int64_t batch_size, int64_t seq_len,
                       int world_size, std::string_view backend) {
  const int64_t split = trainer.grad_accum * world_size;
  if (batch_size % split != 0) {
    throw config::ConfigError("data.batch_size", std::to_string(batch_size) +
                                                     " sequences do not split into " +
                                                     std::to_string(trainer.grad_accum) +
                                                     " micro-batch(es) (trainer.grad_accum) on " +
                                                     std::to_string(world_size) + " rank(s)");
  }
  return micro_batch_inputs(trainer, batch_size / split, seq_len, trainer.grad_accum, world_size,
                            backend);
}

PlanInputs micro_batch_inputs(const TrainerConfig& trainer, int64_t rows, int64_t seq_len,
                              int64_t grad_accum, int world_size, std::string_view backend) {
  PlanInputs in;
  in.world_size = world_size;
  in.batch_rows = rows;
  in.seq_len = seq_len;
  in.grad_accum = grad_accum;
  in.loss_chunk_tokens = trainer.loss_chunk_tokens;
  in.fsdp = fsdp_options(trainer, backend);
  in.fsdp.device = uses_gpu(trainer, backend) ? at::Device(at::kCUDA) : at::Device(at::kCPU);
  return in;
}

std::string format_memory_row(const std::string& name, int64_t bytes, const std::string& note) {
  char line[40];
  std::snprintf(line, sizeof line, "  %-22s %12s  ", name.c_str(),
                telemetry::format_bytes(static_cast<double>(bytes)).c_str());
  return line + note + "\n";
}

std::string format_memory_rows(const MemoryPlan& plan, const PlanInputs& in,
                               const std::vector<ExtraMemory>& extra) {
  const auto& row = format_memory_row;
  std::string out = row("parameters", plan.param_shard_bytes, "fp32 shard (master weights)");
  out += row("gradients", plan.grad_shard_bytes, "fp32 shard");
  out += row("optimizer state", plan.optimizer_bytes, "AdamW exp_avg + exp_avg_sq");
  out += row("optimizer scratch", plan.optimizer_scratch_bytes,
             in.fsdp.device.is_cpu() ? "AdamW decay mask" : "AdamW update buffers, decay mask");
  out += row("gathered buffers", plan.gathered_bytes, "full units and gradients in flight");
  out += row("activations", plan.activation_bytes, "estimate, one micro-batch");
  int64_t total = plan.total_bytes;
  for (const ExtraMemory& e : extra) {
    out += row(e.name, e.bytes, e.note);
    total += e.bytes;
  }
  return out + row("total", total, "planned peak");
}

std::string format_memory_plan(const model::ModelConfig& cfg, const PlanInputs& in) {
  const MemoryPlan plan = plan_memory(cfg, in);
  std::string out = "memory plan per rank (" + std::to_string(in.world_size) + " rank(s), " +
                    std::to_string(in.batch_rows) + " x " + std::to_string(in.seq_len) +
                    " tokens per micro-batch, " + std::to_string(in.grad_accum) +
                    " micro-batch(es) per step, " +
                    (in.fsdp.param_dtype == at::kBFloat16 ? "bf16" : "fp32") + " compute" +
                    (in.loss_chunk_tokens > 0
                         ? ", loss in chunks of " + std::to_string(in.loss_chunk_tokens) + " tokens"
                         : std::string()) +
                    "):\n";
  out += format_memory_rows(plan, in);
  out += "  FLOPs per step: " + telemetry::format_count(plan.flops_per_step) + " (" +
         telemetry::format_count(plan.flops_per_step_rank) + " per rank, " +
         telemetry::format_count(plan.flops_per_token) + " per token)\n";
  out += "  communication per step: " +
         telemetry::format_bytes(static_cast<double>(plan.comm_wire_bytes_per_step)) + " (" +
         std::to_string(plan.comm_wire_bytes_per_step) + " bytes sent per rank)";
  return out;
}

}  // namespace muse::trainer
