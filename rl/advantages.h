// Advantage estimators of the GRPO family, for outcome rewards: one scalar
// per response, broadcast to each of its tokens by the loss. docs/rl.md has
// the formulas and their sources.
#pragma once

#include <span>
#include <string>
#include <vector>

namespace muse::rl {

enum class AdvantageKind {
  kGrpo,                 // (r - mean) / (std + 1e-6), std with Bessel's correction
  kDrGrpo,               // r - mean
  kRloo,                 // r - mean of the others = (r - mean) * G / (G - 1)
  kReinforcePPBaseline,  // r - mean, then whitened over the global batch's tokens
};

// "grpo", "dr_grpo", "rloo", "reinforce_pp_baseline"; throws
// std::invalid_argument for anything else (the config's choices prevent it).
AdvantageKind parse_advantage(const std::string& name);

// The advantages of one group's responses from their rewards. A group of one
// has no baseline: GRPO divides r by 1 + 1e-6 (mean 0, std 1, as verl), the
// others return r. kReinforcePPBaseline returns r - mean; whiten() finishes it.
std::vector<double> group_advantages(AdvantageKind kind, std::span<const double> rewards);

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
