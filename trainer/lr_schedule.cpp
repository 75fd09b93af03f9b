#include "trainer/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

namespace muse::trainer {

LrDecay parse_lr_decay(std::string_view name) {
  if (name == "cosine") return LrDecay::kCosine;
  if (name == "linear") return LrDecay::kLinear;
  if (name == "constant") return LrDecay::kConstant;
  throw std::invalid_argument("unknown learning-rate schedule '" + std::string(name) +
                              "' (expected cosine, linear or constant)");
}

double LrSchedule::operator()(int64_t step) const {
  if (step < 0) throw std::invalid_argument("learning rate of a negative step");
  if (step < warmup_steps)
    return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps + 1);
  if (decay == LrDecay::kConstant) return peak_lr;
  const int64_t span = total_steps - warmup_steps;
  const double p =
      span <= 0 ? 1.0
                : std::clamp(static_cast<double>(step - warmup_steps) / static_cast<double>(span),
                             0.0, 1.0);
  const double shape =
      decay == LrDecay::kCosine ? 0.5 * (1.0 + std::cos(std::numbers::pi * p)) : 1.0 - p;
  return peak_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * shape);
}

LrSchedule make_lr_schedule(const OptimConfig& optim, int64_t total_steps) {
  return {.peak_lr = optim.lr,
          .min_lr_ratio = optim.min_lr_ratio,
          .warmup_steps = optim.warmup_steps,
          .total_steps = total_steps,
          .decay = parse_lr_decay(optim.schedule)};
}

}  // namespace muse::trainer
