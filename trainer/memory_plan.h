// What one training step costs each rank, planned from the config alone
// before anything is allocated: bytes of memory, FLOPs and communication
// (trainer/memory_meter.h measures the memory on the CPU).
// docs/memory.md derives the formulas and compares them with measurements.
//
// Legend: N world size, S shard numel of a unit, n unit numel, B micro-batch
// rows per rank, T sequence length, C model width, V vocab, H heads, F ffn
// hidden, K loss chunk tokens, p/r bytes per element of the param/reduce dtype.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/model_config.h"
#include "trainer/fsdp.h"
#include "trainer/train_config.h"

namespace muse::trainer {

// What a plan depends on besides the model's shape.
struct PlanInputs {
  int world_size = 1;             // N
  int64_t batch_rows = 1;         // B: rows of one micro-batch on one rank
  int64_t seq_len = 1;            // T
  int64_t grad_accum = 1;         // micro-batches per optimizer step
  FsdpOptions fsdp = {};          // dtypes, recompute, prefetch, and the device (CPU or not)
  int64_t loss_chunk_tokens = 0;  // K: trainer.loss_chunk_tokens; 0 = the whole logits
};

// Per rank; bytes unless named otherwise.
struct MemoryPlan {
  int64_t param_shard_bytes = 0;        // fp32 master weights, sum of S over units * 4
  int64_t grad_shard_bytes = 0;         // fp32 accumulated gradients, the same
  int64_t optimizer_bytes = 0;          // AdamW exp_avg + exp_avg_sq
  int64_t optimizer_scratch_bytes = 0;  // AdamW's decay mask (+ two update buffers off the CPU)
  // The next two are taken at the moment of a micro-batch with the most
  // bytes alive in total (forward_backward's peak), so that they add up:
  // full unit buffers (gathered weights in the param dtype, the prefetched
  // next unit among them) and full gradients in flight,
  int64_t gathered_bytes = 0;
  // and activations and temporaries, an estimate from the model's operations.
  int64_t activation_bytes = 0;
  int64_t total_bytes = 0;               // the sum of the above: the planned peak
  double flops_per_token = 0;            // forward + backward (model::flops_per_token)
  double flops_per_step = 0;             // all ranks, every micro-batch
  double flops_per_step_rank = 0;        // this rank's share
  int64_t comm_wire_bytes_per_step = 0;  // comm::CommStats wire bytes one rank sends
};

MemoryPlan plan_memory(const model::ModelConfig& cfg, const PlanInputs& in);

// The plan for a training config as the loop of trainer/pretrain.cpp would
// run it on `world_size` ranks over `backend` ("mpi", "nccl", ...): the
// micro-batch is data.batch_size / (N * grad_accum) rows of data.seq_len
// tokens. Throws config::ConfigError when the batch does not split so.
PlanInputs plan_inputs(const TrainerConfig& trainer, int64_t batch_size, int64_t seq_len,
                       int world_size, std::string_view backend);

// The plan of `grad_accum` micro-batches of `rows` sequences of `seq_len`
// tokens per rank through FsdpModel::forward_backward, as the trainer's
// settings run them on `world_size` ranks over `backend`.
PlanInputs micro_batch_inputs(const TrainerConfig& trainer, int64_t rows, int64_t seq_len,
                              int64_t grad_accum, int world_size, std::string_view backend);

// The plan as a short table per rank, for the dry run.
std::string format_memory_plan(const model::ModelConfig& cfg, const PlanInputs& in);

// Memory a caller holds besides the training step's (a stage's other
// models), shown as a row of the table and counted in its total.
struct ExtraMemory {
  std::string name;
  int64_t bytes = 0;
  std::string note;
};

// One row of the table: "  NAME  BYTES  NOTE".
std::string format_memory_row(const std::string& name, int64_t bytes, const std::string& note);

// The table's rows, one per part of `plan`, then `extra`, then the total.
std::string format_memory_rows(const MemoryPlan& plan, const PlanInputs& in,
                               const std::vector<ExtraMemory>& extra = {});

}  // namespace muse::trainer
