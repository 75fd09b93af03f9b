// The update half of an RL step: given this rank's responses and their
// advantages, the optimizer steps of the policy loss (rl/policy_loss.h) over
// mini-batches and epochs, with the FSDP model's collectives in lock-step on
// every rank even when ranks hold different numbers of responses.
//
// The loss of each mini-batch is normalised by its global token and response
// counts, so the update does not depend on how the responses are split over
// ranks: 1 rank and N ranks holding the same responses take the same step.
#pragma once

#include <cstdint>
#include <span>

#include "comm/communicator.h"
#include "rl/policy_loss.h"
#include "rl/sample.h"
#include "trainer/fsdp.h"
#include "trainer/training_state.h"

namespace muse::rl {

struct UpdateOptions {
  PolicyLossOptions loss;
  int64_t mini_batches = 1;  // optimizer steps per epoch
  int64_t epochs = 1;
  int64_t micro_batch = 32;  // responses per forward/backward
  double loss_constant = 1;  // seq_sum_constant's divisor
  int64_t max_consecutive_skips = 5;
  // Tokens per chunk of the output projection fused with the log-softmax
  // (model/chunked_loss.h); 0 makes the (B, W, V) logits at once.
  int64_t loss_chunk_tokens = 0;
};

// Global statistics of the update (the same on every rank).
struct UpdateStats {
  double loss = 0;       // mean over optimizer steps
  double grad_norm = 0;  // of the last optimizer step
  double clip_fraction = 0;
  double kl_mean = 0;       // per token, against the reference (0 without one)
  double entropy_mean = 0;  // per token, of the policy before the first step
  double ratio_mean = 0;
  double tokens = 0;  // loss tokens over all ranks, per epoch
  int64_t optimizer_steps = 0;
  int64_t skipped_steps = 0;
};

// Takes the optimizer steps for `samples` (this rank's; any count, also 0) at
// learning rate `lr`. `reference` is the frozen policy of the KL penalty, or
// null when options.loss.kl_coef is 0. `step_number` names the RL step in
// errors. Collective over `comm`.
UpdateStats policy_update(trainer::TrainingState& state, trainer::FsdpModel* reference,
                          std::span<const Sample> samples, const UpdateOptions& options, double lr,
                          int64_t step_number, comm::Communicator& comm);

}  // namespace muse::rl
