// The aggregate stage (contemplating mode, AggLM): the RL step of
// rl/policy_trainer.h trains an aggregator on prompts that show it K solver
// candidates for rl.prompts, and evaluation compares one sample, majority
// vote and the aggregator on eval.prompts. docs/contemplate.md describes it.
#pragma once

#include "comm/communicator.h"
#include "rl/policy_trainer.h"
#include "telemetry/metrics.h"

namespace muse::rl {

// Builds the candidate sets from aggregate.solver (or the starting weights)
// and trains the aggregator on them to trainer.steps, resuming like
// train_rl. Collective over `comm`; rank 0 writes `metrics`,
// aggregation_sets.jsonl and the progress line. Throws as train_rl.
void train_aggregator(const RlJob& job, comm::Communicator& comm, telemetry::Metrics& metrics);

}  // namespace muse::rl
