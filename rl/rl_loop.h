// The RL stage: GRPO-family policy optimisation of a checkpoint with a shaped
// reward (rewards/), on the same FSDP-sharded model, optimizer and checkpoint
// layout as pretraining. docs/rl.md describes a step, its metrics and the
// config.
#pragma once

#include "dist/communicator.h"
#include "rewards/rewards_config.h"
#include "rl/rl_config.h"
#include "telemetry/metrics.h"
#include "trainer/pretrain.h"

namespace muse::rl {

struct RlJob {
  trainer::TrainJob base;  // stage, seed, run directory, init_from, model, optimizer, eval...
  RlConfig rl;
  rewards::RewardsConfig rewards;
};

// What can be checked before the RL stage starts: a prompt set, prompts per
// step that split over the ranks, and reward length limits that fit the
// generation limit. Throws config::ConfigError naming the key (without it in
// the message).
void check_launch(const RlConfig& rl, const rewards::RewardsConfig& rewards, int world_size);

// Runs RL steps to trainer.steps, continuing from the run directory's LATEST
// checkpoint when there is one, else starting from init_from's weights.
// Collective over `comm`; rank 0 writes `metrics` and the progress line.
// Throws trainer::TrainError, config::ConfigError, data::DataError or
// checkpoints::CheckpointError.
void train_rl(const RlJob& job, dist::Communicator& comm, telemetry::Metrics& metrics);

}  // namespace muse::rl
