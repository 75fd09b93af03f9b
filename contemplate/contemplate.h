// Contemplating mode with a model: K solver candidates per problem from the
// batched KV-cache generator, the aggregator's prompt built from them, and the
// aggregator's answers. Not collective: the aggregate stage and muse-generate
// compose these on each rank's share of the problems.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "contemplate/aggregate_config.h"
#include "contemplate/aggregation.h"
#include "data/prompts.h"
#include "data/tokenizer.h"
#include "inference/prompting.h"
#include "model/model.h"
#include "rewards/reward.h"

namespace muse::contemplate {

// How candidates are turned into an aggregator prompt (from aggregate.*).
struct AggregationFormat {
  std::string prompt_template = kAggLmTemplate;
  std::string refine_template = kRefineTemplate;
  CandidateView view = CandidateView::kAnswer;
  int64_t candidate_max_tokens = 32;

  // Throws config::ConfigError naming the aggregate.* key at fault.
  static AggregationFormat from(const AggregateConfig& cfg);
};

struct SolverSampling {
  double temperature = 1.0;
  int64_t max_new_tokens = 64;
  uint64_t seed = 0;
  int64_t batch = 256;  // sequences per generate call (bounds the KV cache)
};

// `k` sampled candidates for each problem: result[p][j] is candidate j of
// problems[p]. The same problems, k, sampling and model give the same
// candidates.
std::vector<std::vector<rewards::Response>> sample_candidates(
    const model::Model& solver, const std::vector<inference::PresentedPrompt>& problems, int64_t k,
    const SolverSampling& sampling, const data::Tokenizer& tokenizer);

// The aggregator's prompt for `problem` and `candidates`, with the problem's
// images and reference answer.
data::PromptRecord aggregation_record(const data::PromptRecord& problem,
                                      std::span<const rewards::Response> candidates,
                                      const AggregationFormat& format,
                                      const data::Tokenizer& tokenizer,
                                      const model::ModelConfig& model);

// `problem` (its images and reference answer) asked as the aggregator prompt
// `prompt`.
data::PromptRecord aggregation_record_from_prompt(const data::PromptRecord& problem,
                                                  std::string prompt,
                                                  const data::Tokenizer& tokenizer,
                                                  const model::ModelConfig& model);

// Throws config::ConfigError naming `key` when `record` (`what`, e.g. "an
// aggregator prompt over 4 candidates") plus `max_new_tokens` does not fit
// model.max_seq_len.
void check_fits(const data::PromptRecord& record, int64_t max_new_tokens,
                const model::ModelConfig& model, const std::string& key, const std::string& what);

// The aggregator's answers to `records` (temperature 0 = greedy), ending at
// end-of-text, as the rewards see them.
std::vector<rewards::Response> aggregate(const model::Model& aggregator,
                                         const std::vector<data::PromptRecord>& records,
                                         const SolverSampling& sampling,
                                         const data::Tokenizer& tokenizer);

// One refinement round: every candidate of every problem is revised by
// `refiner`, prompted with aggregate.refine_template over the problem and all
// of its problem's candidates (shown as the aggregator sees them), and
// sampled as `sampling` says. result[p][j] revises candidates[p][j]. Throws
// config::ConfigError naming aggregate.refine_template when a prompt plus
// sampling.max_new_tokens does not fit model.max_seq_len.
std::vector<std::vector<rewards::Response>> refine_candidates(
    const model::Model& refiner, const std::vector<inference::PresentedPrompt>& problems,
    const std::vector<std::vector<rewards::Response>>& candidates, const AggregationFormat& format,
    const SolverSampling& sampling, const data::Tokenizer& tokenizer);

// The answers of `candidates` read in `forms` (nullopt where there is
// none), for voting.
std::vector<std::optional<std::string>> candidate_answers(
    std::span<const rewards::Response> candidates, std::span<const rewards::AnswerForm> forms);

}  // namespace muse::contemplate
