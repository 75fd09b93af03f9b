// The `trainer.*`, `checkpoint.*` and `eval.*` config sections: the training
// loop, its sharding and precision, saving state, and periodic evaluation.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "config/schema.h"

namespace muse::trainer {

struct TrainerConfig {
  int64_t steps = 100;
  int64_t grad_accum = 1;
  std::string device = "auto";
  std::string param_dtype = "auto";
  std::string reduce_dtype = "fp32";
  bool keep_gathered = false;
  bool activation_checkpointing = true;
  int64_t prefetch = 1;
  int64_t loss_chunk_tokens = 0;
  bool cpu_block_cache = true;
  int64_t max_consecutive_skips = 5;
  int64_t stop_after = 0;

  template <class V>
  void visit(V& v) {
    v.field("steps", steps, {.help = "optimizer steps to train for", .unit = "steps", .ge = 1});
    v.field("grad_accum", grad_accum,
            {.help = "micro-batches per optimizer step: each rank runs data.batch_size / "
                     "(world size * grad_accum) sequences at a time and sums the gradients",
             .ge = 1});
    v.field("device", device,
            {.help = "where weights and compute live: auto (the GPU of the rank's local index "
                     "with the nccl backend, else cpu), cpu or cuda",
             .choices = {"auto", "cpu", "cuda"}});
    v.field("param_dtype", param_dtype,
            {.help = "dtype of gathered weights and compute (master weights and optimizer "
                     "state stay fp32): auto (bf16 on GPU, fp32 on CPU), fp32 or bf16",
             .choices = {"auto", "fp32", "bf16"}});
    v.field("reduce_dtype", reduce_dtype,
            {.help = "dtype in which gradients are reduce-scattered: fp32 or bf16",
             .choices = {"fp32", "bf16"}});
    v.field("keep_gathered", keep_gathered,
            {.help = "keep each unit's gathered weights from forward to backward instead of "
                     "all-gathering them again (more memory, less communication)"});
    v.field("activation_checkpointing", activation_checkpointing,
            {.help = "keep only each unit's input in forward and recompute the unit in "
                     "backward; false keeps every activation (needs keep_gathered)"});
    v.field("prefetch", prefetch,
            {.help = "units whose all-gather is in flight ahead of the computing unit (and "
                     "gradient reduce-scatters left in flight behind it); 0 overlaps no "
                     "communication with compute",
             .unit = "units",
             .ge = 0,
             .le = 8});
    v.field("loss_chunk_tokens", loss_chunk_tokens,
            {.help = "tokens per chunk of the output projection fused with the loss (and the RL "
                     "log-probabilities): each chunk's logits are made, reduced and, in "
                     "backward, made again, so one (chunk, V) block is held instead of the (B, T, "
                     "V) logits and their log-softmax; 0 computes the whole logits at once",
             .unit = "tokens",
             .ge = 0});
    v.field("cpu_block_cache", cpu_block_cache,
            {.help = "keep freed CPU blocks of 1 MiB or more for reuse instead of returning "
                     "them to the OS each step (never above the process's peak in use)"});
    v.field("max_consecutive_skips", max_consecutive_skips,
            {.help = "steps in a row whose loss or gradient norm is not finite (each skipped, "
                     "on every rank) before training stops with an error",
             .unit = "steps",
             .ge = 1});
    v.field("stop_after", stop_after,
            {.help = "end this launch after this many steps, with a checkpoint, to continue "
                     "with the next launch (jobs shorter than the run); 0 runs to trainer.steps",
             .unit = "steps",
             .ge = 0});
  }
};

struct CheckpointConfig {
  int64_t every = 100;
  int64_t keep = 2;

  template <class V>
  void visit(V& v) {
    v.field("every", every,
            {.help = "steps between checkpoints (the last step is always saved)",
             .unit = "steps",
             .ge = 1});
    v.field("keep", keep,
            {.help = "complete checkpoints kept in the run directory; older ones are deleted",
             .ge = 1});
  }
};

struct EvalConfig {
  int64_t every = 0;
  std::string shards;
  int64_t batches = 4;
  std::string prompts;
  int64_t max_new_tokens = 4;
  std::string match = "auto";

  template <class V>
  void visit(V& v) {
    v.field("every", every,
            {.help = "steps between evaluations (also after the last step); 0 turns evaluation "
                     "off",
             .unit = "steps",
             .ge = 0});
    v.field("shards", shards,
            {.help = "held-out shards (directory or glob) for the evaluation loss; empty for "
                     "none"});
    v.field("batches", batches,
            {.help = "batches of data.batch_size sequences read from eval.shards per evaluation",
             .ge = 1});
    v.field("prompts", prompts,
            {.help = "held-out prompts (JSONL with prompt, images, answer) whose greedy "
                     "continuations are checked against the answer as eval.match says; empty "
                     "for none"});
    v.field("max_new_tokens", max_new_tokens,
            {.help = "tokens generated per evaluation prompt", .unit = "tokens", .ge = 1});
    v.field("match", match,
            {.help = "how held-out answers are checked (the RL reward's verifier, "
                     "rewards/verify.h): caption = the response begins with the reference as a "
                     "whole word; exact/numeric = the last complete <answer>...</answer> pair; "
                     "auto = caption in the pretrain stage, rewards.correctness.match in every "
                     "other stage",
             .choices = {"auto", "caption", "exact", "numeric"}});
  }
};

}  // namespace muse::trainer
