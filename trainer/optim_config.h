// The `optim.*` config section: AdamW, the learning-rate schedule and
// gradient clipping.
#pragma once

#include <cstdint>
#include <string>

#include "config/schema.h"

namespace muse::trainer {

struct OptimConfig {
  double lr = 3e-4;
  double min_lr_ratio = 0.1;
  int64_t warmup_steps = 0;
  std::string schedule = "cosine";
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;

  template <class V>
  void visit(V& v) {
    v.field("lr", lr,
            {.help = "peak learning rate of AdamW (reached at the end of warmup)", .gt = 0});
    v.field(
        "min_lr_ratio", min_lr_ratio,
        {.help = "learning rate at the end of the decay, as a fraction of lr", .ge = 0, .le = 1});
    v.field("warmup_steps", warmup_steps,
            {.help = "steps of linear warmup from lr/(warmup_steps+1) to lr",
             .unit = "steps",
             .ge = 0});
    v.field("schedule", schedule,
            {.help = "learning rate after warmup: cosine or linear decay to min_lr_ratio * lr over "
                     "the remaining trainer.steps, or constant lr",
             .choices = {"cosine", "linear", "constant"}});
    v.field("beta1", beta1, {.help = "AdamW decay rate of the gradient mean", .ge = 0, .lt = 1});
    v.field("beta2", beta2,
            {.help = "AdamW decay rate of the squared gradient mean", .ge = 0, .lt = 1});
    v.field("eps", eps, {.help = "AdamW term added to the denominator", .gt = 0});
    v.field("weight_decay", weight_decay,
            {.help = "decoupled weight decay of AdamW (not applied to norms and biases)", .ge = 0});
    v.field(
        "grad_clip", grad_clip,
        {.help = "clip the global gradient L2 norm to this value; 0 turns clipping off", .ge = 0});
  }
};

}  // namespace muse::trainer
