#include "rewards/reward_set.h"

#include <algorithm>

#include "config/splitmix64.h"
#include "rewards/registry.h"

namespace muse::rewards {
namespace {

const RewardsConfig& validated(const RewardsConfig& cfg) {
  cfg.validate();
  return cfg;
}

}  // namespace

RewardSet::RewardSet(const RewardsConfig& cfg)
    : cfg_(validated(cfg)),
      correctness_(cfg.correctness.rule()),
      repetition_(cfg.repetition.ngram, cfg.repetition.max_penalty) {
  if (cfg.length.kind != "none" && cfg.length.weight != 0)
    length_ = make_length_term(cfg.length, cfg.correctness.rule());
}

Scores RewardSet::score(std::span<const Response> group, const Context& ctx) const {
  Scores out;
  out.total.assign(group.size(), 0.0);
  out.correct = correctness_.score(group, ctx);
  out.length_weight = length_weight(ctx.step);
  auto add = [&](std::string name, std::vector<double> values, double weight) {
    for (size_t i = 0; i < values.size(); ++i) {
      values[i] *= weight;
      out.total[i] += values[i];
    }
    out.terms.emplace_back(std::move(name), std::move(values));
  };

  add("correctness", out.correct, cfg_.correctness.weight);
  if (cfg_.format.weight != 0) add("format", format_.score(group, ctx), cfg_.format.weight);
  if (length_) {
    std::vector<double> length(group.size(), 0.0);
    if (out.length_weight != 0) {  // not computed during a step warm-up
      length = length_->score(group, ctx);
      if (cfg_.length.combine == "gate") {
        for (size_t i = 0; i < length.size(); ++i) {
          if (out.correct[i] == 0) length[i] = 0;
        }
      }
    }
    add("length", std::move(length), out.length_weight);
  }
  if (cfg_.repetition.weight != 0)
    add("repetition", repetition_.score(group, ctx), cfg_.repetition.weight);
  return out;
}

std::vector<std::string> RewardSet::term_names() const {
  std::vector<std::string> names = {"correctness"};
  if (cfg_.format.weight != 0) names.emplace_back("format");
  if (length_) names.emplace_back("length");
  if (cfg_.repetition.weight != 0) names.emplace_back("repetition");
  return names;
}

double RewardSet::length_weight(int64_t step) const {
  const LengthConfig& l = cfg_.length;
  if (l.warmup_steps == 0) return l.weight;
  if (l.warmup == "step") return step < l.warmup_steps ? 0.0 : l.weight;
  return l.weight * std::min(1.0, static_cast<double>(step) / static_cast<double>(l.warmup_steps));
}

bool RewardSet::uses_budget() const {
  return cfg_.length.kind == "l1_exact" || cfg_.length.kind == "l1_max";
}

int64_t RewardSet::eval_budget() const {
  return cfg_.length.eval_budget > 0 ? cfg_.length.eval_budget : cfg_.length.budget_max;
}

std::string budget_prompt(std::string_view prompt, int64_t budget) {
  return std::string(prompt) + " Think for " + std::to_string(budget) + " tokens.";
}

int64_t draw_budget(const LengthConfig& cfg, uint64_t key) {
  if (cfg.budget_min < 1 || cfg.budget_min > cfg.budget_max) {
    throw config::ConfigError("rewards.length.budget_min",
                              "budgets are drawn from [" + std::to_string(cfg.budget_min) + ", " +
                                  std::to_string(cfg.budget_max) +
                                  "], which needs 1 <= budget_min <= budget_max");
  }
  const auto span = static_cast<uint64_t>(cfg.budget_max - cfg.budget_min) + 1;
  return cfg.budget_min + static_cast<int64_t>(config::splitmix64(key) % span);
}

}  // namespace muse::rewards
