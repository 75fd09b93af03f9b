// The terms besides the length term: correctness, format and repetition.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "rewards/reward.h"
#include "rewards/verify.h"

namespace muse::rewards {

// Whether the response answers its reference: answer_correct (verify.h), the
// checker behind every accuracy muse-train reports.
bool is_correct(const Response& response, const AnswerRule& rule);

// 1 for a correct response (is_correct), else 0.
class CorrectnessReward final : public Reward {
 public:
  explicit CorrectnessReward(AnswerRule rule) : rule_(std::move(rule)) {}
  std::vector<double> score(std::span<const Response> group, const Context& ctx) const override;

 private:
  AnswerRule rule_;
};

// 1 for a well_formatted response, else 0.
class FormatReward final : public Reward {
 public:
  std::vector<double> score(std::span<const Response> group, const Context& ctx) const override;
};

// TRL's get_repetition_penalty_reward (after Yeo et al., arXiv 2502.03373):
// the words of the lower-cased text split on whitespace; 0 with fewer than
// `ngram` words, else max_penalty * (1 - distinct n-grams / n-grams).
// Lower-casing and whitespace are ASCII.
double repetition_penalty(std::string_view text, int64_t ngram, double max_penalty);

// repetition_penalty of each response's text.
class RepetitionReward final : public Reward {
 public:
  RepetitionReward(int64_t ngram, double max_penalty) : ngram_(ngram), max_penalty_(max_penalty) {}
  std::vector<double> score(std::span<const Response> group, const Context& ctx) const override;

 private:
  int64_t ngram_;
  double max_penalty_;
};

}  // namespace muse::rewards
