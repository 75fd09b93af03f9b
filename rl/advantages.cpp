#include "rl/advantages.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace muse::rl {

AdvantageKind parse_advantage(const std::string& name) {
  if (name == "grpo") return AdvantageKind::kGrpo;
  if (name == "dr_grpo") return AdvantageKind::kDrGrpo;
  if (name == "rloo") return AdvantageKind::kRloo;
  if (name == "reinforce_pp_baseline") return AdvantageKind::kReinforcePPBaseline;
  throw std::invalid_argument("unknown advantage estimator '" + name + "'");
}

std::vector<double> group_advantages(AdvantageKind kind, std::span<const double> rewards) {
  const double n = static_cast<double>(rewards.size());
  std::vector<double> out(rewards.begin(), rewards.end());
  if (rewards.size() < 2) {
    if (kind == AdvantageKind::kGrpo)
      for (double& a : out)
        a /= 1 + 1e-6;
    return out;
  }
  const double mean = std::accumulate(rewards.begin(), rewards.end(), 0.0) / n;
  for (double& a : out)
    a -= mean;
  switch (kind) {
    case AdvantageKind::kGrpo: {
      double ss = 0;
      for (double a : out)
        ss += a * a;
      const double std = std::sqrt(ss / (n - 1));
      for (double& a : out)
        a /= std + 1e-6;
      break;
    }
    case AdvantageKind::kRloo:
      for (double& a : out)
        a *= n / (n - 1);
      break;
    case AdvantageKind::kDrGrpo:
    case AdvantageKind::kReinforcePPBaseline:
      break;
  }
  return out;
}

Moments token_moments(std::span<const double> advantages, std::span<const double> token_counts) {
  Moments m;
  for (size_t i = 0; i < advantages.size(); ++i) {
    m.weight += token_counts[i];
    m.sum += token_counts[i] * advantages[i];
    m.sum_sq += token_counts[i] * advantages[i] * advantages[i];
  }
  return m;
}

void whiten(std::span<double> advantages, const Moments& global) {
  if (global.weight <= 1) return;
  const double mean = global.sum / global.weight;
  const double var =
      (global.sum_sq / global.weight - mean * mean) * global.weight / (global.weight - 1);
  const double scale = 1 / std::sqrt(std::max(var, 0.0) + 1e-8);
  for (double& a : advantages)
    a = (a - mean) * scale;
}

}  // namespace muse::rl
