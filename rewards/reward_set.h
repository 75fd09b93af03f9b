// The reward of a run: the terms rewards.* enables, weighted and summed.
//
//   total = wc * C + wf * F + w_len(step) * (combine == gate ? C * L : L) + wr * R
//
// C correctness, F format, L the length term, R repetition; wc, wf, wr their
// weights; w_len(step) the warmed-up length weight:
//   warmup linear: w * min(1, step / warmup_steps)   (w when warmup_steps = 0)
//   warmup step:   0 while step < warmup_steps, then w (Kimi k1.5)
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rewards/reward.h"
#include "rewards/rewards_config.h"
#include "rewards/terms.h"

namespace muse::rewards {

struct Scores {
  std::vector<double> total;    // per response: sum of the weighted terms
  std::vector<double> correct;  // per response: 0/1 correctness (computed even with weight 0)
  // Per term name ("correctness", "format", "length", "repetition"; those of
  // term_names(), in that order): the weighted contribution per response.
  std::vector<std::pair<std::string, std::vector<double>>> terms;
  double length_weight = 0;  // the warmed-up length weight used
};

class RewardSet {
 public:
  // Validates `cfg` (config::ConfigError naming the key).
  explicit RewardSet(const RewardsConfig& cfg);

  // The scores of one group (every response to one prompt).
  Scores score(std::span<const Response> group, const Context& ctx) const;

  // Terms with a non-zero weight; "correctness" always.
  std::vector<std::string> term_names() const;
  // w_len(step) of the header comment.
  double length_weight(int64_t step) const;
  // Whether prompts state a budget (length.kind l1_exact or l1_max).
  bool uses_budget() const;
  // The budget of evaluation prompts: length.eval_budget, or budget_max when 0.
  int64_t eval_budget() const;

 private:
  RewardsConfig cfg_;
  CorrectnessReward correctness_;
  FormatReward format_;
  RepetitionReward repetition_;
  std::unique_ptr<Reward> length_;  // null when length.kind is none or its weight 0
};

// `prompt` with the sentence L1 (arXiv 2503.04697) appends to state a budget:
// prompt + " Think for N tokens."
std::string budget_prompt(std::string_view prompt, int64_t budget);

// A training prompt's budget, uniform in [budget_min, budget_max]:
// budget_min + splitmix64(key) mod (budget_max - budget_min + 1). The same key
// gives the same budget, so the caller derives it from what identifies the
// prompt (seed, step, index) to redraw the same budgets on resume.
int64_t draw_budget(const LengthConfig& cfg, uint64_t key);

}  // namespace muse::rewards
