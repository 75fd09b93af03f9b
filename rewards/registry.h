// Length terms by name (`rewards.length.kind`).
//
// Each term is defined so that, with rewards.correctness.weight = 1,
// rewards.length.weight = 1 and no warm-up, correctness + term is exactly the
// published reward. C is the 0/1 correctness and n the length (think or total
// tokens, rewards.length.measure) of a response:
//
//   none      0
//   linear    -per_token * n
//   kimi      Kimi k1.5 §2.3.3: lambda = 0.5 - (n - min) / (max - min) over the
//             group's lengths; lambda if correct, else min(0, lambda); 0 for
//             every response when max == min
//   l1_exact  L1 Eq. 1: -alpha * |budget - n| (Response::budget; 0 without one)
//   l1_max    L1 Eq. 2: C * (clip(alpha * (budget - n) + delta, 0, 1) - 1), so
//             C + term = C * clip(...) (0 without a budget)
//   cosine    Yeo et al.: CosFn(n) - C, CosFn running from the "short" reward at
//             n = 0 to the "long" one at n = L_max (correct and wrong responses
//             each have their pair); cosine_exceed - C when truncated or n >= L_max
//   overlong  DAPO Eq. 13 on total tokens: 0 up to L_max - L_cache, then a ramp
//             to -1 at L_max; -1 past L_max or when truncated
//   arora     Arora & Zanette: -C * arora_alpha * sigmoid((n - mean) / std), mean
//             and (population) std over the group's correct responses; z = 0
//             when std == 0
//   truncation DLER: -C when the response was truncated at the generation
//             limit (it earns nothing), else 0
//
// docs/rewards.md derives each one and cites its source.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "rewards/reward.h"
#include "rewards/rewards_config.h"
#include "rewards/verify.h"

namespace muse::rewards {

// The registered names, "none" first.
std::vector<std::string> length_kinds();

// The term `cfg.kind` with its parameters from `cfg`. Terms that depend on
// correctness (kimi, l1_max, cosine, arora) judge it with `rule`, which
// should be rewards.correctness.rule(). Throws config::ConfigError naming
// "rewards.length.kind" for an unknown name.
std::unique_ptr<Reward> make_length_term(const LengthConfig& cfg, const AnswerRule& rule = {});

// Checks the length limits of `cfg.kind` (cosine's and overlong's, which
// default to the generation limit) against `max_new_tokens`, so a run learns
// of a bad one before its first step. Throws config::ConfigError naming the key.
void check_length_limits(const LengthConfig& cfg, int64_t max_new_tokens);

}  // namespace muse::rewards
