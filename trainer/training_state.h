// What every training stage (pretraining, SFT, RL) keeps and saves: the
// FSDP-sharded model, its sharded AdamW, the loss guards, and the tensors of
// a checkpoint. The loops of trainer/pretrain.cpp and rl/ differ in what they
// feed forward_backward; the update, the guards and the checkpoint layout are
// this one class, so every stage's checkpoint resumes, reshards and exports
// the same way.
//
// Checkpoint tensors per unit U: "U/param" (fp32 master weights),
// "U/exp_avg" and "U/exp_avg_sq" (AdamW moments), each the full unit's flat
// buffer of which every rank writes its slice.
#pragma once

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "checkpoints/checkpoint.h"
#include "comm/communicator.h"
#include "model/model.h"
#include "model/model_config.h"
#include "trainer/adamw.h"
#include "trainer/fsdp.h"
#include "trainer/grad_clip.h"
#include "trainer/optim_config.h"
#include "trainer/train_config.h"
#include "trainer/train_job.h"

namespace muse::trainer {

// Training that cannot go on (too many non-finite steps, a checkpoint that
// does not fit). The message is one line naming the cause.
class TrainError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The device of the rank's weights and compute: the GPU of `local_rank` when
// uses_gpu(...), else the CPU. Throws config::ConfigError when a GPU is asked
// for but none is visible.
at::Device pick_device(const TrainerConfig& cfg, int local_rank, const comm::Communicator& comm);

// The CPU generator's state as bytes, and back (a checkpoint's rank state).
std::string cpu_rng_state();
void set_cpu_rng_state(const std::string& bytes);

// The outcome of one optimizer step.
struct Update {
  GradNorm norm;
  bool skipped = false;  // loss or norm not finite: no update on any rank
};

class TrainingState {
 public:
  TrainingState(const model::ModelConfig& cfg, uint64_t seed, comm::Communicator& comm,
                const FsdpOptions& fsdp, const OptimConfig& optim);

  FsdpModel& model() { return model_; }
  const FsdpModel& model() const { return model_; }

  // Clips the accumulated gradients to optim.grad_clip and takes an AdamW
  // step at `lr`, unless `loss` (the same on every rank) or the global norm is
  // not finite: then every rank skips, and after `max_consecutive_skips` in a
  // row rank 0 throws TrainError naming `step_number` (the others PeerFailure).
  Update step(double loss, double lr, int64_t max_consecutive_skips, int64_t step_number);

  // Bytes of master weights, gradient shards and optimizer moments on this rank.
  int64_t shard_bytes() const;
  int64_t skipped_total() const { return skipped_total_; }
  int64_t consecutive_skips() const { return consecutive_skips_; }
  int64_t optimizer_steps() const { return optim_.front().state().step; }

  // Appends this rank's slices of every unit's param, exp_avg and exp_avg_sq.
  void add_to_checkpoint(checkpoints::SaveRequest& request) const;
  // The weights of `ckpt` (any world size; its model must equal ours).
  void load_weights(const checkpoints::Checkpoint& ckpt);
  // The weights init_from names (a checkpoint or run directory, or hf:DIR);
  // returns what was loaded, for the log.
  std::string init_from(const std::string& from);
  // Weights, moments and the guard counters train_state.json records, to
  // continue a run exactly.
  void resume(const checkpoints::Checkpoint& ckpt, const nlohmann::json& train_state);
  // What resume() reads back: the optimizer steps and guard counters.
  nlohmann::json counters() const;

 private:
  comm::Communicator& comm_;
  FsdpModel model_;
  std::vector<AdamWShard> optim_;
  double grad_clip_;
  int64_t skipped_total_ = 0;
  int64_t consecutive_skips_ = 0;
};

// "UNIT/what", the name of a unit's tensor in a checkpoint.
std::string unit_tensor_name(const FsdpUnit& unit, const std::string& what);

// Reads this rank's slice of "UNIT/what" for every unit of `model` into the
// unit's live parameter shard (padding zeroed), in one batched pass over the
// rank files: "param" for weights, "reference" for the RL stage's KL reference.
void read_units(const checkpoints::Checkpoint& ckpt, const FsdpModel& model,
                const std::string& what, int rank);

// Saves step `step` of `job` as a checkpoint of job.run_dir (collective):
// `state`'s tensors, then `more_tensors` (a reference policy); this rank's
// CPU generator; and train_state.json, the same for every stage: the stage,
// the step, state.counters() and the stage's own keys `stage_state` (the
// loader's position, the compute so far). Returns the checkpoint directory.
std::filesystem::path save_training(const TrainJob& job, int64_t step, const TrainingState& state,
                                    const nlohmann::json& stage_state,
                                    std::vector<checkpoints::ShardedTensor> more_tensors,
                                    comm::Communicator& comm);

// Continues from `ckpt`: `state` as it was saved and, on the world size it
// was saved on, this rank's CPU generator. Returns train_state.json (its
// "step" and the stage's own keys).
nlohmann::json resume_training(const checkpoints::Checkpoint& ckpt, TrainingState& state,
                               comm::Communicator& comm);

}  // namespace muse::trainer
