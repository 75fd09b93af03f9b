// Advantage estimators of the GRPO family, for outcome rewards: one scalar
// per response, broadcast to each of its tokens by the loss. They are
// registered by name (rl.advantage), as the length terms are; adding one is a
// class and a row in advantages.cpp. docs/rl.md has the formulas and their
// sources:
//
//   grpo                   (r - mean) / (std + 1e-6), std with Bessel's correction
//   dr_grpo                r - mean
//   rloo                   r - mean of the others = (r - mean) * G / (G - 1)
//   reinforce_pp_baseline  r - mean, then whitened over the global batch's tokens
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

namespace muse::rl {

class AdvantageEstimator {
 public:
  virtual ~AdvantageEstimator() = default;
  // The advantages of one group's responses from their rewards. A group of
  // one has no baseline: GRPO divides r by 1 + 1e-6 (mean 0, std 1, as verl),
  // the others return r.
  virtual std::vector<double> group(std::span<const double> rewards) const = 0;
  // Whether the step whitens the group advantages over every loss token of
  // the global batch afterwards (whiten()).
  virtual bool whitens_batch() const { return false; }
};

// The registered names, in the order docs list them.
std::vector<std::string> advantage_names();

// The estimator `name`; throws config::ConfigError naming rl.advantage and
// the known names for any other.
std::unique_ptr<AdvantageEstimator> make_advantage(const std::string& name);

// Token-weighted moments of the advantages of a batch: each response counts
// once per loss token. Sums add across ranks, so the global moments are
// those of the summed Moments.
struct Moments {
  double weight = 0;  // sum of token counts
  double sum = 0;     // sum of count * a
  double sum_sq = 0;  // sum of count * a^2
};
Moments token_moments(std::span<const double> advantages, std::span<const double> token_counts);

// (a - mean) / sqrt(var + 1e-8) in place, with the unbiased variance of the
// global token-weighted moments (verl's masked_whiten).
void whiten(std::span<double> advantages, const Moments& global);

}  // namespace muse::rl
