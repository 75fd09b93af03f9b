// The pieces of contemplating mode that are plain data: what the aggregator
// is shown of each candidate, its prompt, majority voting and AggLM's
// hard/easy selection of training sets. docs/contemplate.md has the template
// and the rules.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/tokenizer.h"
#include "rewards/verify.h"

namespace muse::contemplate {

enum class CandidateView {
  kAnswer,  // only the tokens after </think> (AggLM)
  kFull,    // the whole response, the reasoning included
};

// "answer" / "full"; throws config::ConfigError naming aggregate.candidates.
CandidateView parse_candidate_view(const std::string& name);

// The tokens of a response (stop token removed) the aggregator is shown: all
// of them, or those after its last reasoning end marker (none when the
// response never closed its reasoning; data::tokens_after_reasoning), cut to
// `max_tokens`.
std::vector<int64_t> candidate_tokens(const data::Tokenizer& tokenizer,
                                      std::span<const int64_t> response, CandidateView view,
                                      int64_t max_tokens);

// Throws config::ConfigError naming `key` unless `prompt_template` holds
// {problem} and {solutions} exactly once each.
void check_template(std::string_view prompt_template, std::string_view key = "aggregate.template");

// As check_template for aggregate.refine_template, which may also hold {own}
// once.
void check_refine_template(std::string_view prompt_template);

// The template with {problem} replaced by the problem and {solutions} by
// "\nSolution 1: <c1>\nSolution 2: <c2>..." (candidates trimmed; an empty
// one reads "(no solution)"). "<image>" markers are removed from candidates,
// so the prompt's images are the problem's, and bytes that are not UTF-8
// (a candidate cut inside a character) become '?'.
std::string aggregator_prompt(std::string_view prompt_template, std::string_view problem,
                              const std::vector<std::string>& candidates);

// A refinement round's prompt for agent `own` of `candidates`: with {own} in
// the template, {own} is its proposal and {solutions} the others' (numbered
// from 1); without it, {solutions} lists its own proposal first, then the
// others. Candidates are cleaned as in aggregator_prompt.
std::string refinement_prompt(std::string_view prompt_template, std::string_view problem,
                              const std::vector<std::string>& candidates, size_t own);

// The sets to train on: every hard one, and round(easy_share * hard count)
// easy ones (as many as there are, at most) drawn with `seed`; ascending.
std::vector<size_t> select_sets(const std::vector<bool>& hard, double easy_share, uint64_t seed);

}  // namespace muse::contemplate
