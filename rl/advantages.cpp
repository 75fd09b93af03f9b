#include "rl/advantages.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "config/schema.h"

namespace muse::rl {
namespace {

// The rewards less their mean (a group of one keeps its reward).
std::vector<double> centred(std::span<const double> rewards) {
  std::vector<double> out(rewards.begin(), rewards.end());
  if (rewards.size() < 2) return out;
  const double mean =
      std::accumulate(rewards.begin(), rewards.end(), 0.0) / static_cast<double>(rewards.size());
  for (double& a : out)
    a -= mean;
  return out;
}

class Grpo : public AdvantageEstimator {
 public:
  std::vector<double> group(std::span<const double> rewards) const override {
    std::vector<double> out = centred(rewards);
    if (rewards.size() < 2) {
      for (double& a : out)
        a /= 1 + 1e-6;
      return out;
    }
    double ss = 0;
    for (double a : out)
      ss += a * a;
    const double std = std::sqrt(ss / (static_cast<double>(rewards.size()) - 1));
    for (double& a : out)
      a /= std + 1e-6;
    return out;
  }
};

class DrGrpo : public AdvantageEstimator {
 public:
  std::vector<double> group(std::span<const double> rewards) const override {
    return centred(rewards);
  }
};

class Rloo : public AdvantageEstimator {
 public:
  std::vector<double> group(std::span<const double> rewards) const override {
    std::vector<double> out = centred(rewards);
    if (rewards.size() < 2) return out;
    const double n = static_cast<double>(rewards.size());
    for (double& a : out)
      a *= n / (n - 1);
    return out;
  }
};

class ReinforcePPBaseline : public DrGrpo {
 public:
  bool whitens_batch() const override { return true; }
};

struct Registered {
  const char* name;
  std::function<std::unique_ptr<AdvantageEstimator>()> make;
};

const Registered kEstimators[] = {
    {"grpo", [] { return std::make_unique<Grpo>(); }},
    {"dr_grpo", [] { return std::make_unique<DrGrpo>(); }},
    {"rloo", [] { return std::make_unique<Rloo>(); }},
    {"reinforce_pp_baseline", [] { return std::make_unique<ReinforcePPBaseline>(); }},
};

}  // namespace

std::vector<std::string> advantage_names() {
  std::vector<std::string> names;
  for (const Registered& r : kEstimators)
    names.emplace_back(r.name);
  return names;
}

std::unique_ptr<AdvantageEstimator> make_advantage(const std::string& name) {
  std::string known;
  for (const Registered& r : kEstimators) {
    if (r.name == name) return r.make();
    if (!known.empty()) known += '|';
    known += r.name;
  }
  throw config::ConfigError(
      "rl.advantage", "\"" + name + "\" is not an advantage estimator: must be one of " + known);
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
