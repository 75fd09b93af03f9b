// AggLM's candidate sets, collectively over the ranks: the aggregate stage's
// training prompts (candidate sets from a solver, all hard sets plus a share
// of easy ones), and the evaluation of contemplating mode (one sample,
// majority vote and the aggregator over the same candidates, for several K),
// which the stage and muse-generate --contemplate --prompts run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "contemplate/aggregate_config.h"
#include "contemplate/contemplate.h"
#include "data/prompts.h"
#include "data/tokenizer.h"
#include "model/model.h"
#include "rewards/verify.h"
#include "telemetry/metrics.h"

namespace muse::contemplate {

// Throws config::ConfigError naming the aggregate.* key that cannot work.
void check_aggregate_config(const AggregateConfig& cfg);

struct AggregateSetup {
  const AggregateConfig* cfg = nullptr;        // [not null]
  AggregationFormat format;                    // from *cfg
  const data::Tokenizer* tokenizer = nullptr;  // [not null]
  model::ModelConfig model;                    // the aggregator's (image tokens, positions)
  rewards::AnswerRule answer = {};             // rewards.correctness.rule()
  uint64_t seed = 0;
};

struct AggregationPool {
  std::vector<data::PromptRecord> records;  // the selected sets as aggregator prompts
  telemetry::Record summary;                // sets, hard, selected, solver accuracy
  std::string sets_jsonl;                   // one line per set, for inspection
};

// aggregate.sets_per_problem sets of aggregate.k candidates from `solver` for
// every problem, shared out over the ranks and gathered, then selected. The
// same on every rank (its summary counts the hard sets, which may be none).
// Throws config::ConfigError when an aggregator prompt plus
// `aggregator_max_new_tokens` does not fit the model. Collective.
AggregationPool build_pool(const AggregateSetup& setup, const model::Model& solver,
                           const std::vector<data::PromptRecord>& problems,
                           int64_t aggregator_max_new_tokens, comm::Communicator& comm);

// On the first aggregate.eval_problems of `problems`: max(eval_k) solver
// candidates each: the records "single" (one sample) and "greedy" (the
// solver's greedy answer), then for each K in aggregate.eval_k "majority@K"
// and, from the greedy aggregator, "aggregator@K" (or
// "aggregator_untrained@K" at step 0); for each R in
// aggregate.eval_refine_rounds, the same two after R refinement rounds over
// the K candidates ("majority@K+refine@R", "aggregator@K+refine@R"), with the
// tokens and seconds they spent. Collective; every rank returns them.
// `per_problem`, when given, gets one record per problem of this rank's share
// (all of them on one rank): its index, reference, and each method's
// correctness ("single": the share of the samples right) and answer, for
// paired comparisons of the methods.
std::vector<telemetry::Record> evaluate_contemplation(
    const AggregateSetup& setup, const model::Model& solver, const model::Model& aggregator,
    const std::vector<data::PromptRecord>& problems, int64_t max_new_tokens, int64_t step,
    comm::Communicator& comm, std::vector<telemetry::Record>* per_problem = nullptr);

}  // namespace muse::contemplate
