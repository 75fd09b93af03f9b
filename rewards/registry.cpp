#include "rewards/registry.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "rewards/terms.h"

namespace muse::rewards {
namespace {

// What a length term reads of its group.
struct Group {
  std::span<const Response> responses;
  std::vector<int64_t> n;       // length per rewards.length.measure
  std::vector<double> correct;  // 0/1
};

using TermFn = std::vector<double> (*)(const LengthConfig&, const Group&, const Context&);

std::vector<double> none(const LengthConfig&, const Group& g, const Context&) {
  return std::vector<double>(g.n.size(), 0.0);
}

std::vector<double> linear(const LengthConfig& cfg, const Group& g, const Context&) {
  std::vector<double> out;
  for (const int64_t n : g.n)
    out.push_back(-cfg.per_token * static_cast<double>(n));
  return out;
}

// Kimi k1.5 (arXiv 2501.12599) §2.3.3.
std::vector<double> kimi(const LengthConfig&, const Group& g, const Context&) {
  std::vector<double> out(g.n.size(), 0.0);
  if (g.n.empty()) return out;
  const auto [shortest, longest] = std::minmax_element(g.n.begin(), g.n.end());
  if (*shortest == *longest) return out;
  const auto range = static_cast<double>(*longest - *shortest);
  for (size_t i = 0; i < g.n.size(); ++i) {
    const double lambda = 0.5 - static_cast<double>(g.n[i] - *shortest) / range;
    out[i] = g.correct[i] != 0 ? lambda : std::min(0.0, lambda);
  }
  return out;
}

// L1 (arXiv 2503.04697) Eq. 1.
std::vector<double> l1_exact(const LengthConfig& cfg, const Group& g, const Context&) {
  std::vector<double> out(g.n.size(), 0.0);
  for (size_t i = 0; i < g.n.size(); ++i) {
    const int64_t budget = g.responses[i].budget;
    if (budget > 0) out[i] = -cfg.alpha * static_cast<double>(std::abs(budget - g.n[i]));
  }
  return out;
}

// L1 (arXiv 2503.04697) Eq. 2, minus the correctness it multiplies.
std::vector<double> l1_max(const LengthConfig& cfg, const Group& g, const Context&) {
  std::vector<double> out(g.n.size(), 0.0);
  for (size_t i = 0; i < g.n.size(); ++i) {
    const int64_t budget = g.responses[i].budget;
    if (budget <= 0 || g.correct[i] == 0) continue;
    const double scale =
        std::clamp(cfg.alpha * static_cast<double>(budget - g.n[i]) + cfg.delta, 0.0, 1.0);
    out[i] = scale - 1.0;
  }
  return out;
}

// A length limit that defaults to the generation limit.
int64_t limit_or_max_new_tokens(int64_t limit, const std::string& key, const Context& ctx) {
  const int64_t resolved = limit > 0 ? limit : ctx.max_new_tokens;
  if (resolved <= 0) {
    throw config::ConfigError(key, "0 means the generation limit, but Context::max_new_tokens is " +
                                       std::to_string(ctx.max_new_tokens));
  }
  return resolved;
}

// Yeo et al. (arXiv 2502.03373), minus the correctness it replaces.
std::vector<double> cosine(const LengthConfig& cfg, const Group& g, const Context& ctx) {
  const auto max_len = static_cast<double>(
      limit_or_max_new_tokens(cfg.cosine_max_len, "rewards.length.cosine_max_len", ctx));
  std::vector<double> out(g.n.size(), 0.0);
  for (size_t i = 0; i < g.n.size(); ++i) {
    const auto n = static_cast<double>(g.n[i]);
    const bool correct = g.correct[i] != 0;
    double reward = cfg.cosine_exceed;
    if (!g.responses[i].truncated && n < max_len) {
      const double short_value = correct ? cfg.cosine_correct_short : cfg.cosine_wrong_short;
      const double long_value = correct ? cfg.cosine_correct_long : cfg.cosine_wrong_long;
      reward = long_value +
               0.5 * (short_value - long_value) * (1.0 + std::cos(n * std::numbers::pi / max_len));
    }
    out[i] = reward - g.correct[i];
  }
  return out;
}

// DAPO's window: the limit L_max and the last L_cache tokens before it.
struct OverlongWindow {
  int64_t max_len;
  int64_t cache;
};

OverlongWindow overlong_window(const LengthConfig& cfg, const Context& ctx) {
  const int64_t max_len =
      limit_or_max_new_tokens(cfg.overlong_max_len, "rewards.length.overlong_max_len", ctx);
  const int64_t cache = cfg.overlong_cache > 0 ? cfg.overlong_cache : max_len / 4;
  if (cache >= max_len) {
    throw config::ConfigError("rewards.length.overlong_cache",
                              std::to_string(cache) + " must be less than the length limit (" +
                                  std::to_string(max_len) + ")");
  }
  return {.max_len = max_len, .cache = cache};
}

// DAPO (arXiv 2503.14476) Eq. 13; reads total tokens whatever the measure,
// since it guards the generation limit.
std::vector<double> overlong(const LengthConfig& cfg, const Group& g, const Context& ctx) {
  const auto [max_len, cache] = overlong_window(cfg, ctx);
  std::vector<double> out(g.n.size(), 0.0);
  for (size_t i = 0; i < g.n.size(); ++i) {
    const Response& r = g.responses[i];
    if (r.truncated || r.total_tokens > max_len) {
      out[i] = -1.0;
    } else if (r.total_tokens > max_len - cache) {
      out[i] = static_cast<double>(max_len - cache - r.total_tokens) / static_cast<double>(cache);
    }
  }
  return out;
}

// DLER (arXiv 2510.15110): a response cut at the generation limit earns no
// reward at all, so C + L = 0.
std::vector<double> truncation(const LengthConfig&, const Group& g, const Context&) {
  std::vector<double> out(g.n.size(), 0.0);
  for (size_t i = 0; i < g.n.size(); ++i) {
    if (g.responses[i].truncated) out[i] = -g.correct[i];
  }
  return out;
}

// Arora & Zanette (arXiv 2502.04463), minus the correctness it multiplies.
std::vector<double> arora(const LengthConfig& cfg, const Group& g, const Context&) {
  std::vector<double> correct_lengths;
  for (size_t i = 0; i < g.n.size(); ++i) {
    if (g.correct[i] != 0) correct_lengths.push_back(static_cast<double>(g.n[i]));
  }
  std::vector<double> out(g.n.size(), 0.0);
  if (correct_lengths.empty()) return out;
  const auto count = static_cast<double>(correct_lengths.size());
  double sum = 0, variance = 0;
  for (const double n : correct_lengths)
    sum += n;
  const double mean = sum / count;  // exact for equal lengths, so their z is exactly 0
  for (const double n : correct_lengths)
    variance += (n - mean) * (n - mean) / count;  // population
  const double stddev = std::sqrt(variance);
  for (size_t i = 0; i < g.n.size(); ++i) {
    if (g.correct[i] == 0) continue;
    // Equal lengths (or one correct response) give z = 0, as (n - mean) / (std + eps) would.
    const double z = stddev > 0 ? (static_cast<double>(g.n[i]) - mean) / stddev : 0.0;
    out[i] = -cfg.arora_alpha / (1.0 + std::exp(-z));
  }
  return out;
}

struct LengthKind {
  std::string_view name;
  TermFn fn;
};

// Adding a length term is adding its function above and one line here.
constexpr LengthKind kLengthKinds[] = {
    {"none", none},         {"linear", linear}, {"kimi", kimi},
    {"l1_exact", l1_exact}, {"l1_max", l1_max}, {"cosine", cosine},
    {"overlong", overlong}, {"arora", arora},   {"truncation", truncation},
};

class LengthTerm final : public Reward {
 public:
  LengthTerm(const LengthConfig& cfg, AnswerRule rule, TermFn fn)
      : cfg_(cfg), rule_(std::move(rule)), fn_(fn) {}

  std::vector<double> score(std::span<const Response> group, const Context& ctx) const override {
    Group g{.responses = group, .n = {}, .correct = {}};
    for (const Response& r : group) {
      g.n.push_back(cfg_.measure == "total" ? r.total_tokens : r.think_tokens);
      g.correct.push_back(is_correct(r, rule_) ? 1.0 : 0.0);
    }
    return fn_(cfg_, g, ctx);
  }

 private:
  LengthConfig cfg_;
  AnswerRule rule_;
  TermFn fn_;
};

}  // namespace

std::vector<std::string> length_kinds() {
  std::vector<std::string> names;
  for (const LengthKind& k : kLengthKinds)
    names.emplace_back(k.name);
  return names;
}

std::unique_ptr<Reward> make_length_term(const LengthConfig& cfg, const AnswerRule& rule) {
  std::string known;
  for (const LengthKind& k : kLengthKinds) {
    if (k.name == cfg.kind) return std::make_unique<LengthTerm>(cfg, rule, k.fn);
    known += (known.empty() ? "" : "|") + std::string(k.name);
  }
  throw config::ConfigError("rewards.length.kind",
                            "\"" + cfg.kind + "\" is not a length term: must be one of " + known);
}

void check_length_limits(const LengthConfig& cfg, int64_t max_new_tokens) {
  const Context ctx{.step = 0, .max_new_tokens = max_new_tokens};
  if (cfg.kind == "cosine")
    limit_or_max_new_tokens(cfg.cosine_max_len, "rewards.length.cosine_max_len", ctx);
  if (cfg.kind == "overlong") overlong_window(cfg, ctx);
}

}  // namespace muse::rewards
