#include "contemplate/contemplate.h"

#include <algorithm>

#include "config/schema.h"
#include "config/splitmix64.h"
#include "inference/voting.h"
#include "rewards/verify.h"

namespace muse::contemplate {
namespace {

// generate() over `prompts` in batches of at most `batch` sequences, each
// batch seeded from `seed` and its index.
std::vector<model::Generation> generate_batched(const model::Model& model,
                                                const std::vector<model::Prompt>& prompts,
                                                const SolverSampling& sampling,
                                                const data::Tokenizer& tokenizer) {
  std::vector<model::Generation> out;
  const auto batch = static_cast<size_t>(std::max<int64_t>(1, sampling.batch));
  for (size_t begin = 0, index = 0; begin < prompts.size(); begin += batch, ++index) {
    const std::vector<model::Prompt> part(
        prompts.begin() + static_cast<std::ptrdiff_t>(begin),
        prompts.begin() + static_cast<std::ptrdiff_t>(std::min(prompts.size(), begin + batch)));
    model::GenerateOptions options;
    options.sampling.temperature = sampling.temperature;
    options.stop_tokens = tokenizer.roles().stop_tokens();
    options.seed = config::mix_seed({sampling.seed, index});
    for (model::Generation& g : model::generate(model, part, options))
      out.push_back(std::move(g));
  }
  return out;
}

// What the aggregator or a refining agent is shown of each candidate.
std::vector<std::string> shown_candidates(std::span<const rewards::Response> candidates,
                                          const AggregationFormat& format,
                                          const data::Tokenizer& tokenizer) {
  std::vector<std::string> shown;
  for (const rewards::Response& c : candidates) {
    const std::vector<int64_t> tokens =
        candidate_tokens(tokenizer, c.tokens, format.view, format.candidate_max_tokens);
    shown.push_back(tokenizer.decode(std::vector<int32_t>(tokens.begin(), tokens.end())));
  }
  return shown;
}

}  // namespace

AggregationFormat AggregationFormat::from(const AggregateConfig& cfg) {
  check_template(cfg.prompt_template);
  check_refine_template(cfg.refine_template);
  return {.prompt_template = cfg.prompt_template,
          .refine_template = cfg.refine_template,
          .view = parse_candidate_view(cfg.candidates),
          .candidate_max_tokens = cfg.candidate_max_tokens};
}

std::vector<std::vector<rewards::Response>> sample_candidates(
    const model::Model& solver, const std::vector<inference::PresentedPrompt>& problems, int64_t k,
    const SolverSampling& sampling, const data::Tokenizer& tokenizer) {
  std::vector<model::Prompt> batch;
  for (const inference::PresentedPrompt& p : problems)
    for (int64_t j = 0; j < k; ++j)
      batch.push_back({.tokens = p.tokens,
                       .images = p.record->images,
                       .max_new_tokens = sampling.max_new_tokens});
  const std::vector<model::Generation> generations =
      generate_batched(solver, batch, sampling, tokenizer);
  std::vector<std::vector<rewards::Response>> out(problems.size());
  for (size_t p = 0; p < problems.size(); ++p)
    for (int64_t j = 0; j < k; ++j)
      out[p].push_back(inference::to_response(
          problems[p], generations[p * static_cast<size_t>(k) + j], tokenizer));
  return out;
}

data::PromptRecord aggregation_record(const data::PromptRecord& problem,
                                      std::span<const rewards::Response> candidates,
                                      const AggregationFormat& format,
                                      const data::Tokenizer& tokenizer,
                                      const model::ModelConfig& model) {
  return aggregation_record_from_prompt(
      problem,
      aggregator_prompt(format.prompt_template, problem.prompt,
                        shown_candidates(candidates, format, tokenizer)),
      tokenizer, model);
}

std::vector<std::vector<rewards::Response>> refine_candidates(
    const model::Model& refiner, const std::vector<inference::PresentedPrompt>& problems,
    const std::vector<std::vector<rewards::Response>>& candidates, const AggregationFormat& format,
    const SolverSampling& sampling, const data::Tokenizer& tokenizer) {
  std::vector<data::PromptRecord> records;
  std::vector<model::Prompt> batch;
  for (size_t p = 0; p < problems.size(); ++p) {
    const std::vector<std::string> shown = shown_candidates(candidates[p], format, tokenizer);
    for (size_t j = 0; j < shown.size(); ++j) {
      records.push_back(aggregation_record_from_prompt(
          *problems[p].record,
          refinement_prompt(format.refine_template, problems[p].record->prompt, shown, j),
          tokenizer, refiner.config()));
      check_fits(records.back(), sampling.max_new_tokens, refiner.config(),
                 "aggregate.refine_template",
                 "a refinement prompt over " + std::to_string(shown.size()) + " candidates");
    }
  }
  for (const data::PromptRecord& r : records)
    batch.push_back(
        {.tokens = r.tokens, .images = r.images, .max_new_tokens = sampling.max_new_tokens});
  const std::vector<model::Generation> generations =
      generate_batched(refiner, batch, sampling, tokenizer);
  std::vector<std::vector<rewards::Response>> out(problems.size());
  for (size_t p = 0, i = 0; p < problems.size(); ++p) {
    for (size_t j = 0; j < candidates[p].size(); ++j, ++i) {
      const inference::PresentedPrompt shown{
          .record = &records[i], .tokens = records[i].tokens, .text = records[i].prompt};
      out[p].push_back(inference::to_response(shown, generations[i], tokenizer));
    }
  }
  return out;
}

data::PromptRecord aggregation_record_from_prompt(const data::PromptRecord& problem,
                                                  std::string prompt,
                                                  const data::Tokenizer& tokenizer,
                                                  const model::ModelConfig& model) {
  data::PromptRecord r;
  r.tokens =
      data::expand_image_tokens(data::encode_prompt(tokenizer, prompt),
                                static_cast<int32_t>(model.image_token_id), model.n_patches());
  r.prompt = std::move(prompt);
  r.images = problem.images;
  r.answer = problem.answer;
  return r;
}

void check_fits(const data::PromptRecord& record, int64_t max_new_tokens,
                const model::ModelConfig& model, const std::string& key, const std::string& what) {
  const auto need = static_cast<int64_t>(record.tokens.size()) + max_new_tokens;
  if (need > model.max_seq_len) {
    throw config::ConfigError(key, what + " plus its new tokens is " + std::to_string(need) +
                                       " positions, more than model.max_seq_len (" +
                                       std::to_string(model.max_seq_len) +
                                       "); lower aggregate.candidate_max_tokens or shorten "
                                       "the template");
  }
}

std::vector<rewards::Response> aggregate(const model::Model& aggregator,
                                         const std::vector<data::PromptRecord>& records,
                                         const SolverSampling& sampling,
                                         const data::Tokenizer& tokenizer) {
  std::vector<model::Prompt> batch;
  for (const data::PromptRecord& r : records)
    batch.push_back(
        {.tokens = r.tokens, .images = r.images, .max_new_tokens = sampling.max_new_tokens});
  const std::vector<model::Generation> generations =
      generate_batched(aggregator, batch, sampling, tokenizer);
  std::vector<rewards::Response> out;
  for (size_t i = 0; i < records.size(); ++i) {
    const inference::PresentedPrompt shown{
        .record = &records[i], .tokens = records[i].tokens, .text = records[i].prompt, .budget = 0};
    out.push_back(inference::to_response(shown, generations[i], tokenizer));
  }
  return out;
}

std::vector<std::optional<std::string>> candidate_answers(
    std::span<const rewards::Response> candidates, std::span<const rewards::AnswerForm> forms) {
  std::vector<std::optional<std::string>> out;
  for (const rewards::Response& c : candidates)
    out.push_back(rewards::extract_answer(c.text, forms));
  return out;
}

}  // namespace muse::contemplate
