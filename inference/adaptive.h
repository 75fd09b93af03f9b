// Adaptive re-expansion of compressed thoughts: answer with a small reasoning
// budget, read how sure the answer is, and answer again with a larger budget
// only where it is not. A model without reasoning markers (data.tokens.think_end
// empty) has its whole response budgeted instead. The signals and the policy are plain functions
// (unit tested); answer_adaptive runs them with a model over a batch of problems. Not collective.
// docs/inference.md describes the method and its costs.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "comm/communicator.h"
#include "data/prompts.h"
#include "data/tokenizer.h"
#include "inference/adaptive_config.h"
#include "model/model.h"
#include "rewards/reward.h"
#include "rewards/verify.h"
#include "telemetry/metrics.h"

namespace muse::inference {

enum class UncertaintySignal { kLogprob, kEntropy, kDisagreement };
enum class ExpandMode { kContinue, kRerun };

// Throws config::ConfigError naming the adaptive.* key at fault.
UncertaintySignal parse_signal(const std::string& name);
ExpandMode parse_expand(const std::string& name);
void check_adaptive_config(const AdaptiveConfig& cfg);

// The positions [begin, end) of the answer's tokens in `tokens`: those
// between the last complete <answer> ... </answer> pair. nullopt when there is
// no such pair or it is empty.
struct AnswerSpan {
  size_t begin = 0, end = 0;
};
std::optional<AnswerSpan> answer_span(std::span<const int64_t> tokens, int64_t answer_begin,
                                      int64_t answer_end);

// The tokens whose bytes overlap bytes [begin, end) of the decoding of
// `tokens` (byte-level BPE: the tokens decoded one at a time concatenate to
// it); nullopt when none do.
std::optional<AnswerSpan> tokens_in_bytes(const data::Tokenizer& tokenizer,
                                          std::span<const int64_t> tokens, size_t begin,
                                          size_t end);

// The answer's tokens for a response without one-token answer markers: those
// carrying the answer `forms` read in `text`, the decoding of `tokens` (a stop
// token may follow it). nullopt when no form finds an answer or it is empty.
std::optional<AnswerSpan> extracted_answer_span(const data::Tokenizer& tokenizer,
                                                std::span<const int64_t> tokens,
                                                std::string_view text,
                                                std::span<const rewards::AnswerForm> forms);

// Mean of `values` (per-token log-probabilities or entropies) over `span`.
double span_mean(std::span<const float> values, const AnswerSpan& span);

// The share of `answers` that are not the majority answer (a missing answer
// never agrees); 1 when there is no answer at all.
double disagreement(const std::vector<std::optional<std::string>>& answers,
                    rewards::MatchMode mode);

// How uncertain one pass is, higher = less sure, on each signal's own scale:
// -logprob, entropy, or disagreement. `logprobs`/`entropies` hold one mean per
// sample, nullopt for a sample without an answer (which is maximally
// uncertain: +infinity for logprob and entropy).
double uncertainty(UncertaintySignal signal, const std::vector<std::optional<double>>& per_sample,
                   double disagreement_share);

// The uncertainty above which a pass is expanded (adaptive.*_threshold in
// the same scale as uncertainty()).
double expand_above(const AdaptiveConfig& cfg, UncertaintySignal signal);

// What to do after a pass.
enum class Expansion {
  kStop,      // keep the answer
  kContinue,  // think (without markers: write) on from where the budget cut, with the next one
  kRerun,     // answer again from the problem with the next budget
};
struct PassState {
  double uncertainty = 0;
  bool has_larger_budget = false;
  bool cut = false;  // some sample's reasoning (without markers: response) was ended by the budget
  bool next_may_differ = false;  // a new pass differs without a cut: sampled, or budget stated
};
Expansion choose_expansion(const PassState& pass, double threshold, ExpandMode mode);

// One pass of one problem, for --verbose and the records.
struct PassLog {
  int64_t budget = 0;
  double uncertainty = 0;
  std::optional<std::string> answer;
  Expansion next = Expansion::kStop;
};

struct AdaptiveOutcome {
  std::optional<std::string> answer;  // the majority of the last pass's samples
  rewards::Response response;         // the last pass's first sample
  bool correct = false;
  // Reasoning tokens (without markers: response tokens but the stop token)
  // generated over every pass and sample.
  int64_t think_tokens = 0;
  int64_t tokens = 0;  // all tokens generated over every pass and sample
  std::vector<PassLog> passes;
};

struct AdaptiveSetup {
  const AdaptiveConfig* cfg = nullptr;         // [not null]
  const data::Tokenizer* tokenizer = nullptr;  // [not null]
  rewards::AnswerRule answer = {};             // how answers are read and compared
  bool budget_prompt = false;                  // adaptive.budget_prompt resolved
  uint64_t seed = 0;
};

// Answers each problem starting at budgets[0] and expanding through
// `budgets` as adaptive.* says. With one budget: the fixed-budget answer.
// Throws config::ConfigError when a problem plus its largest budget does not
// fit model.max_seq_len.
std::vector<AdaptiveOutcome> answer_adaptive(const model::Model& model,
                                             const std::vector<data::PromptRecord>& problems,
                                             std::span<const int64_t> budgets,
                                             const AdaptiveSetup& setup);

// Sums over problems that make a record.
struct AdaptiveTally {
  double problems = 0, correct = 0, think = 0, tokens = 0, expanded = 0, passes = 0;
  void add(const AdaptiveOutcome& o);
};

// The record "fixed_budget@N" or "adaptive": accuracy, think_tokens_mean,
// expanded_fraction, tokens_mean, passes_mean, prompts.
telemetry::Record adaptive_record(const std::string& name, const AdaptiveTally& tally,
                                  int64_t step);

// Whether prompts state the budget: adaptive.budget_prompt on, or auto with
// a length reward that trains models to follow it (rewards.length.kind
// l1_exact or l1_max).
bool states_budget(const AdaptiveConfig& cfg, const std::string& length_kind);

// On `problems`, shared out over the ranks: one fixed_budget@N record per
// adaptive.budgets entry, then the adaptive record (its settings included).
// Collective; every rank returns them.
std::vector<telemetry::Record> evaluate_adaptive(const model::Model& model,
                                                 const std::vector<data::PromptRecord>& problems,
                                                 const AdaptiveSetup& setup, int64_t step,
                                                 comm::Communicator& comm);

}  // namespace muse::inference
