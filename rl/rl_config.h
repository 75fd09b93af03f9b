// The `rl.*` config section: rollouts, advantages, the policy loss, the KL to
// a frozen reference and dynamic sampling. docs/rl.md gives each formula and
// its source; the `rewards.*` section (rewards/rewards_config.h) shapes the
// reward.
#pragma once

#include <cstdint>
#include <string>

#include "config/schema.h"

namespace muse::rl {

struct KlConfig {
  double coef = 0.0;
  std::string estimator = "k3";

  template <class V>
  void visit(V& v) {
    v.field("coef", coef,
            {.help = "weight of the KL penalty to the frozen reference policy in the loss "
                     "(GRPO's beta); 0 keeps no reference model in memory",
             .ge = 0});
    v.field("estimator", estimator,
            {.help = "per-token KL estimator (Schulman): k1 = log(pi/ref), k2 = (log(pi/ref))^2 "
                     "/ 2, k3 = ref/pi - log(ref/pi) - 1",
             .choices = {"k1", "k2", "k3"}});
  }
};

struct RlConfig {
  std::string prompts;
  int64_t prompts_per_step = 16;
  int64_t group_size = 8;
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t max_new_tokens = 64;
  std::string advantage = "grpo";
  std::string loss_agg = "token_mean";
  int64_t loss_constant = 0;
  double clip_low = 0.2;
  double clip_high = 0.28;
  double clip_dual = 0.0;
  int64_t mini_batches = 1;
  int64_t epochs = 1;
  int64_t micro_batch = 32;
  bool dynamic_sampling = false;
  int64_t dynamic_sampling_rounds = 1;
  bool mask_truncated = false;
  KlConfig kl;

  template <class V>
  void visit(V& v) {
    v.field("prompts", prompts,
            {.help = "training prompts: JSON Lines with prompt, answer and optional images "
                     "(as eval.prompts)"});
    v.field("prompts_per_step", prompts_per_step,
            {.help = "prompts per RL step over all ranks (a multiple of the world size); each "
                     "rank rolls out and trains on its share",
             .ge = 1});
    v.field("group_size", group_size,
            {.help = "responses sampled per prompt (G); advantages compare a response with its "
                     "group",
             .ge = 1});
    v.field("temperature", temperature, {.help = "sampling temperature of rollouts", .gt = 0});
    v.field("top_p", top_p,
            {.help = "nucleus sampling of rollouts: keep the most likely tokens up to this mass",
             .gt = 0,
             .le = 1});
    v.field("max_new_tokens", max_new_tokens,
            {.help = "generation limit per response; a response that reaches it is truncated",
             .unit = "tokens",
             .ge = 1});
    v.field("advantage", advantage,
            {.help = "advantage estimator: grpo (group mean/std), dr_grpo (group mean only), "
                     "rloo (leave-one-out mean), reinforce_pp_baseline (group mean, then "
                     "whitened over the global batch)"});
    v.field("loss_agg", loss_agg,
            {.help = "how token losses become the loss: token_mean (over all tokens of the "
                     "batch, DAPO), seq_mean_token_mean (per response, then over responses, "
                     "GRPO), seq_sum_constant (sum per response / rl.loss_constant, Dr. GRPO)",
             .choices = {"token_mean", "seq_mean_token_mean", "seq_sum_constant"}});
    v.field(
        "loss_constant", loss_constant,
        {.help = "seq_sum_constant's divisor; 0 = rl.max_new_tokens", .unit = "tokens", .ge = 0});
    v.field("clip_low", clip_low,
            {.help = "PPO ratio clip below: ratios under 1 - clip_low stop the gradient",
             .ge = 0,
             .lt = 1});
    v.field("clip_high", clip_high,
            {.help = "PPO ratio clip above (DAPO clip-higher: 0.28 with clip_low 0.2)", .ge = 0});
    v.field("clip_dual", clip_dual,
            {.help = "dual-clip bound c > 1 on the loss of negative advantages (verl "
                     "clip_ratio_c = 3); 0 turns it off",
             .ge = 0});
    v.field("mini_batches", mini_batches,
            {.help = "optimizer steps per epoch over one rollout batch (its responses split in "
                     "this many parts); more than 1 makes later steps off-policy",
             .ge = 1});
    v.field("epochs", epochs, {.help = "passes over each rollout batch", .ge = 1});
    v.field(
        "micro_batch", micro_batch,
        {.help = "responses per forward/backward on each rank (memory, not the maths)", .ge = 1});
    v.field("dynamic_sampling", dynamic_sampling,
            {.help = "drop groups whose rewards are all equal (they carry no signal) from the "
                     "update (DAPO)"});
    v.field("dynamic_sampling_rounds", dynamic_sampling_rounds,
            {.help = "with dynamic_sampling, rollout batches of prompts_per_step prompts a step "
                     "may draw until prompts_per_step groups with differing rewards are found "
                     "(DAPO's over-sampling; verl's max_num_gen_batches); the step trains on "
                     "those found",
             .ge = 1});
    v.field("mask_truncated", mask_truncated,
            {.help = "leave truncated responses out of the loss (DAPO overlong filtering); they "
                     "still count in their group's advantages"});
    v.section("kl", kl, "KL regularisation to the frozen starting policy.");
  }
};

}  // namespace muse::rl
