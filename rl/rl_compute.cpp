#include "rl/rl_compute.h"

#include "model/layout.h"

namespace muse::rl {

double sequence_forward_flops(const model::ModelConfig& cfg, int64_t tokens) {
  if (tokens <= 0) return 0;
  // flops_per_token = 3 (2 N + 4 L H D T): the division is exact.
  return static_cast<double>(tokens) * static_cast<double>(model::flops_per_token(cfg, tokens) / 3);
}

int64_t update_forward_passes(const UpdateOptions& options, bool reference) {
  // Mirrors policy_update: on-policy (one pass over one batch) reuses the
  // loss forward's own log-probabilities instead of scoring the samples.
  const bool on_policy = options.mini_batches * options.epochs == 1;
  return 3 * options.epochs + (on_policy ? 0 : 1) + (reference ? 1 : 0);
}

double rollout_flops(const model::ModelConfig& cfg, int64_t prompt_tokens,
                     int64_t response_tokens) {
  return sequence_forward_flops(cfg, prompt_tokens + response_tokens);
}

double update_flops(const model::ModelConfig& cfg, const UpdateOptions& options, bool reference,
                    int64_t prompt_tokens, int64_t response_tokens) {
  return static_cast<double>(update_forward_passes(options, reference)) *
         sequence_forward_flops(cfg, prompt_tokens + response_tokens);
}

}  // namespace muse::rl
