#include "trainer/prompt_eval.h"

namespace muse::trainer {

PromptAnswers answer_prompts(const model::Model& model, const data::Tokenizer& tokenizer,
                             const std::vector<data::PromptRecord>& prompts, int64_t max_new_tokens,
                             int rank, int size) {
  PromptAnswers out;
  std::vector<model::Prompt> mine;
  for (size_t i = rank; i < prompts.size(); i += size) {
    mine.push_back({.tokens = prompts[i].tokens,
                    .images = prompts[i].images,
                    .max_new_tokens = max_new_tokens});
    out.records.push_back(&prompts[i]);
  }
  if (mine.empty()) return out;
  model::GenerateOptions options;
  options.sampling.temperature = 0;
  options.stop_tokens = tokenizer.roles().stop_tokens();
  out.generations = model::generate(model, mine, options);
  return out;
}

std::string decode_generation(const data::Tokenizer& tokenizer, const model::Generation& g) {
  std::vector<int32_t> ids(g.tokens.begin(), g.tokens.end());
  if (g.stop_reason == model::StopReason::kStopToken && !ids.empty()) ids.pop_back();
  return tokenizer.decode(ids);
}

}  // namespace muse::trainer
