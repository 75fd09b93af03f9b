// Rollouts: which prompts an RL step uses, how they are presented (with the
// L1 budget sentence when the length reward asks for one), and the sampled
// responses as the rewards see them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/splitmix64.h"
#include "data/prompts.h"
#include "data/tokenizer.h"
#include "model/generate.h"
#include "model/model.h"
#include "rewards/reward.h"
#include "rl/sample.h"

namespace muse::rl {

// The order prompts are used in: an endless sequence of seeded permutations
// of the set, one per pass. RL step s (0-based) uses positions
// [s * per_step, (s + 1) * per_step), so the step alone is the cursor a
// resumed run needs.
class PromptSchedule {
 public:
  PromptSchedule(size_t n_prompts, uint64_t seed) : n_(n_prompts), seed_(seed) {}
  // Indices into the prompt set of step `step`'s prompts.
  std::vector<size_t> step_prompts(int64_t step, int64_t per_step) const;

 private:
  std::vector<size_t> permutation(int64_t pass) const;
  size_t n_;
  uint64_t seed_;
};

// A prompt as presented to the policy.
struct PresentedPrompt {
  const data::PromptRecord* record = nullptr;  // [not null]
  std::vector<int64_t> tokens;                 // BOS + text tokens, images expanded
  std::string text;                            // the prompt text, with any budget sentence
  int64_t budget = 0;                          // the L1 budget it states; 0 = none
};

// `record` with the sentence "Think for N tokens." appended when budget > 0.
PresentedPrompt present_prompt(const data::PromptRecord& record, int64_t budget,
                               const data::Tokenizer& tokenizer, int64_t image_token_id,
                               int64_t image_tokens);

// What the rewards need to know of one generation.
rewards::Response to_response(const PresentedPrompt& prompt, const model::Generation& g,
                              const data::Tokenizer& tokenizer);

// `group_size` samples for each prompt, one batched generation; result
// [p * group_size + j] is sample j of prompt p.
std::vector<model::Generation> sample_groups(const model::Model& model,
                                             const std::vector<PresentedPrompt>& prompts,
                                             int64_t group_size, int64_t max_new_tokens,
                                             const model::GenerateOptions& options);

}  // namespace muse::rl
