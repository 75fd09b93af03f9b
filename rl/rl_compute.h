// The compute of an RL run, for the `compute_*` keys of its metrics
// (docs/rl.md): model FLOPs by the PaLM count of model::flops_per_token, over
// the tokens the step really runs through the model (padding and the
// recomputation of activation checkpointing are not counted).
//
// Every token of a sequence of T = prompt + response tokens counts as seeing
// all T positions, as model::flops_per_token does for training. That is the
// sequence the update's forward sees; for the rollout's cached decoding, where
// a token at position t attends to t keys, it is an upper bound on the
// attention term (at most twice it), and exact for the 2 N term.
#pragma once

#include <cstdint>

#include "model/model_config.h"
#include "rl/policy_update.h"

namespace muse::rl {

// Forward FLOPs of one sequence of `tokens` positions: tokens times a third
// of model::flops_per_token(cfg, tokens), i.e. tokens * (2 N + 4 L H D tokens).
double sequence_forward_flops(const model::ModelConfig& cfg, int64_t tokens);

// Forward-pass equivalents policy_update spends per trained sequence: 3 per
// epoch (forward + backward), 1 for the old log-probabilities when it is
// off-policy (mini_batches * epochs > 1), 1 for the reference with a KL
// penalty (`reference`).
int64_t update_forward_passes(const UpdateOptions& options, bool reference);

// Rollout FLOPs of one sampled response: its prompt prefilled and its
// `response_tokens` (the stop token included) decoded.
double rollout_flops(const model::ModelConfig& cfg, int64_t prompt_tokens, int64_t response_tokens);

// Update FLOPs of one trained sample (prompt + response through every pass
// of update_forward_passes).
double update_flops(const model::ModelConfig& cfg, const UpdateOptions& options, bool reference,
                    int64_t prompt_tokens, int64_t response_tokens);

}  // namespace muse::rl
