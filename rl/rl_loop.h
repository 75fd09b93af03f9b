// The RL stage: GRPO-family policy optimisation of a checkpoint with a shaped
// reward (rewards/), evaluated on eval.prompts by greedy answers and, with
// adaptive.eval, by fixed budgets against adaptive re-expansion.
// docs/rl.md describes a step, its metrics and the config.
#pragma once

#include "comm/communicator.h"
#include "rl/policy_trainer.h"
#include "telemetry/metrics.h"

namespace muse::rl {

// Runs RL steps on rl.prompts to trainer.steps, continuing from the run
// directory's LATEST checkpoint when there is one, else starting from
// init_from's weights. Collective over `comm`; rank 0 writes `metrics` and
// the progress line. Throws trainer::TrainError, config::ConfigError,
// data::DataError or checkpoints::CheckpointError.
void train_rl(const RlJob& job, comm::Communicator& comm, telemetry::Metrics& metrics);

}  // namespace muse::rl
