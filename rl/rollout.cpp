#include "rl/rollout.h"

#include <numeric>

#include "rewards/reward_set.h"
#include "rewards/verify.h"

namespace muse::rl {

std::vector<size_t> PromptSchedule::permutation(int64_t pass) const {
  std::vector<size_t> order(n_);
  std::iota(order.begin(), order.end(), size_t{0});
  uint64_t state = config::mix_seed({seed_, static_cast<uint64_t>(pass)});
  for (size_t i = n_; i > 1; --i) {  // Fisher-Yates
    state = config::mix_seed({state});
    std::swap(order[i - 1], order[state % i]);
  }
  return order;
}

std::vector<size_t> PromptSchedule::step_prompts(int64_t step, int64_t per_step) const {
  std::vector<size_t> out;
  int64_t cached_pass = -1;
  std::vector<size_t> order;
  for (int64_t pos = step * per_step; pos < (step + 1) * per_step; ++pos) {
    const int64_t pass = pos / static_cast<int64_t>(n_);
    if (pass != cached_pass) {
      order = permutation(pass);
      cached_pass = pass;
    }
    out.push_back(order[pos % static_cast<int64_t>(n_)]);
  }
  return out;
}

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
  return p;
}

rewards::Response to_response(const PresentedPrompt& prompt, const model::Generation& g,
                              const data::Tokenizer& tokenizer) {
  rewards::Response r;
  r.prompt = prompt.text;
  r.tokens = g.tokens;
  if (g.stop_reason == model::StopReason::kStopToken && !r.tokens.empty()) r.tokens.pop_back();
  r.text = tokenizer.decode(std::vector<int32_t>(r.tokens.begin(), r.tokens.end()));
  r.think_tokens = rewards::count_think_tokens(r.tokens, tokenizer.special_id(data::kThinkBegin),
                                               tokenizer.special_id(data::kThinkEnd));
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

}  // namespace muse::rl
