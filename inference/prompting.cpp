#include "inference/prompting.h"

#include "rewards/reward_set.h"
#include "rewards/terms.h"
#include "rewards/verify.h"

namespace muse::inference {

PresentedPrompt present_prompt(const data::PromptRecord& record, int64_t budget,
                               const data::Tokenizer& tokenizer, int64_t image_token_id,
                               int64_t image_tokens) {
  PresentedPrompt p{
      .record = &record, .tokens = record.tokens, .text = record.prompt, .budget = budget};
  if (budget > 0) {
    p.text = rewards::budget_prompt(record.prompt, budget);
    p.tokens = data::expand_image_tokens(data::encode_prompt(tokenizer, p.text),
                                         static_cast<int32_t>(image_token_id), image_tokens);
  }
  p.opens_reasoning = data::prompt_opens_reasoning(
      tokenizer, tokenizer.decode(std::vector<int32_t>(p.tokens.begin(), p.tokens.end())));
  return p;
}

rewards::Response to_response(const PresentedPrompt& prompt, const model::Generation& g,
                              const data::Tokenizer& tokenizer) {
  rewards::Response r;
  r.prompt = prompt.text;
  r.tokens = g.tokens;
  if (g.stop_reason == model::StopReason::kStopToken && !r.tokens.empty()) r.tokens.pop_back();
  r.text = tokenizer.decode(std::vector<int32_t>(r.tokens.begin(), r.tokens.end()));
  r.think_tokens = data::count_reasoning_tokens(tokenizer, r.tokens, prompt.opens_reasoning);
  r.total_tokens = static_cast<int64_t>(r.tokens.size());
  r.truncated = g.stop_reason == model::StopReason::kLength;
  r.answer = prompt.record->answer;
  r.budget = prompt.budget;
  return r;
}

std::vector<model::Generation> sample_groups(const model::Model& model,
                                             const std::vector<PresentedPrompt>& prompts,
                                             int64_t group_size, int64_t max_new_tokens,
                                             const model::GenerateOptions& options) {
  std::vector<model::Prompt> batch;
  for (const PresentedPrompt& p : prompts)
    for (int64_t j = 0; j < group_size; ++j)
      batch.push_back(
          {.tokens = p.tokens, .images = p.record->images, .max_new_tokens = max_new_tokens});
  if (batch.empty()) return {};
  return model::generate(model, batch, options);
}

bool AnswerTally::add(const rewards::Response& response, const rewards::AnswerRule& rule) {
  const bool right = rewards::is_correct(response, rule);
  prompts += 1;
  correct += right ? 1 : 0;
  think += static_cast<double>(response.think_tokens);
  response_tokens += static_cast<double>(response.total_tokens);
  truncated += response.truncated ? 1 : 0;
  return right;
}

}  // namespace muse::inference
