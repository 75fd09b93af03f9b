// The learning rate as a pure function of the step: linear warmup, then
// cosine or linear decay to a floor, or constant.
//
// `step` counts optimizer steps already taken (0 for the first update), as
// torch.optim.lr_scheduler.LambdaLR's epoch does. With W warmup steps, T
// total steps, peak lr and floor m * lr:
//   s < W:  lr * (s + 1) / (W + 1)                 (never 0; reaches lr at s = W)
//   s >= W: p = clamp((s - W) / (T - W), 0, 1)     (p = 1 when T <= W)
//     cosine:   lr * (m + (1 - m) * (1 + cos(pi p)) / 2)
//     linear:   lr * (m + (1 - m) * (1 - p))
//     constant: lr
// so the floor is reached at s = T, one past the last of T steps, as in
// Hugging Face's get_cosine_schedule_with_warmup.
#pragma once

#include <cstdint>
#include <string_view>

#include "trainer/optim_config.h"

namespace muse::trainer {

enum class LrDecay { kCosine, kLinear, kConstant };

// "cosine" | "linear" | "constant"; throws std::invalid_argument otherwise.
LrDecay parse_lr_decay(std::string_view name);

struct LrSchedule {
  double peak_lr = 3e-4;
  double min_lr_ratio = 0;   // m, in [0, 1]
  int64_t warmup_steps = 0;  // W; units: steps
  int64_t total_steps = 1;   // T; units: steps
  LrDecay decay = LrDecay::kCosine;

  // The learning rate of the update after `step` updates (step >= 0).
  double operator()(int64_t step) const;
};

// The schedule of `optim` over a run of `total_steps` steps.
LrSchedule make_lr_schedule(const OptimConfig& optim, int64_t total_steps);

}  // namespace muse::trainer
