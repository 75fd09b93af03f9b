// The RL stage: GRPO-family policy optimisation of a checkpoint with a shaped
// reward (rewards/), on the same FSDP-sharded model, optimizer and checkpoint
// layout as pretraining. docs/rl.md describes a step, its metrics and the
// config. The aggregate stage is the same loop on aggregator prompts built
// from solver candidates (docs/contemplate.md).
#pragma once

#include "comm/communicator.h"
#include "rewards/rewards_config.h"
#include "rl/adaptive_config.h"
#include "rl/aggregate_config.h"
#include "rl/rl_config.h"
#include "telemetry/metrics.h"
#include "trainer/pretrain.h"

namespace muse::rl {

struct RlJob {
  trainer::TrainJob base;  // stage (rl or aggregate), seed, run directory, init_from, model...
  RlConfig rl;
  rewards::RewardsConfig rewards;
  AggregateConfig aggregate;  // the aggregate stage only
  AdaptiveConfig adaptive;    // the rl stage's adaptive evaluation (adaptive.eval)
};

// What can be checked before the RL stage starts: a prompt set, prompts per
// step that split over the ranks, and reward length limits that fit the
// generation limit. Throws config::ConfigError naming the key (without it in
// the message).
// `stage` is rl or aggregate.
void check_launch(const std::string& stage, const RlConfig& rl,
                  const rewards::RewardsConfig& rewards, int world_size);

// Runs RL steps to trainer.steps, continuing from the run directory's LATEST
// checkpoint when there is one, else starting from init_from's weights. In
// the aggregate stage the prompts are aggregation prompts over solver
// candidates for rl.prompts, and evaluation compares one sample, majority
// vote and the aggregator on eval.prompts.
// Collective over `comm`; rank 0 writes `metrics` and the progress line.
// Throws trainer::TrainError, config::ConfigError, data::DataError or
// checkpoints::CheckpointError.
void train_rl(const RlJob& job, comm::Communicator& comm, telemetry::Metrics& metrics);

}  // namespace muse::rl
