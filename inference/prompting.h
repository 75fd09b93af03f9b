// A prompt as a model is asked it (with the L1 budget sentence when the
// length reward asks for one), batched sampling of groups, and a generation
// as the rewards see it. RL rollouts, evaluation, contemplating mode and
// adaptive re-expansion all go through these.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/prompts.h"
#include "data/tokenizer.h"
#include "model/generate.h"
#include "model/model.h"
#include "rewards/reward.h"
#include "rewards/verify.h"

namespace muse::inference {

// A prompt as presented to the policy.
struct PresentedPrompt {
  const data::PromptRecord* record = nullptr;  // [not null]
  std::vector<int64_t> tokens;                 // BOS + text tokens, images expanded
  std::string text;                            // the prompt text, with any budget sentence
  int64_t budget = 0;                          // the L1 budget it states; 0 = none
  bool opens_reasoning = false;  // it ends inside the reasoning markers (R1 chat templates)
};

// `record` with the sentence "Think for N tokens." appended when budget > 0.
PresentedPrompt present_prompt(const data::PromptRecord& record, int64_t budget,
                               const data::Tokenizer& tokenizer, int64_t image_token_id,
                               int64_t image_tokens);

// What the rewards need to know of one generation.
rewards::Response to_response(const PresentedPrompt& prompt, const model::Generation& g,
                              const data::Tokenizer& tokenizer);

// Sums over graded answers: the figures of an evaluation record.
struct AnswerTally {
  double prompts = 0, correct = 0, think = 0, response_tokens = 0, truncated = 0;
  // Counts `response`; returns whether it is right by `rule`.
  bool add(const rewards::Response& response, const rewards::AnswerRule& rule);
};

// `group_size` samples for each prompt, one batched generation; result
// [p * group_size + j] is sample j of prompt p.
std::vector<model::Generation> sample_groups(const model::Model& model,
                                             const std::vector<PresentedPrompt>& prompts,
                                             int64_t group_size, int64_t max_new_tokens,
                                             const model::GenerateOptions& options);

}  // namespace muse::inference
