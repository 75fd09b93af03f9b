// Greedy answers to a held-out prompt set, shared out over the ranks: what
// the evaluations of every stage (caption accuracy after pretraining,
// reasoning accuracy and length after SFT and RL) generate from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/prompts.h"
#include "data/tokenizer.h"
#include "model/generate.h"
#include "model/model.h"

namespace muse::trainer {

// This rank's share of a prompt set: every `size`-th prompt from `rank`.
struct PromptAnswers {
  std::vector<const data::PromptRecord*> records;
  std::vector<model::Generation> generations;  // greedy, one per record
};

// Greedy continuations of up to `max_new_tokens` of this rank's prompts,
// ending at the tokenizer's end-of-text token. Not collective: each rank
// generates with its own full copy of the weights.
PromptAnswers answer_prompts(const model::Model& model, const data::Tokenizer& tokenizer,
                             const std::vector<data::PromptRecord>& prompts, int64_t max_new_tokens,
                             int rank, int size);

// The generated text without its stop token.
std::string decode_generation(const data::Tokenizer& tokenizer, const model::Generation& g);

}  // namespace muse::trainer
