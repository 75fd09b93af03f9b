// One rolled-out response with what the update needs: the prompt it answers
// (with its images), the generated tokens and the advantage its reward earned.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace muse::rl {

struct Sample {
  std::vector<int64_t> prompt;    // BOS + prompt tokens, <image> placeholders expanded
  at::Tensor images;              // (N_img, S_img, S_img, Ch) uint8, or undefined
  std::vector<int64_t> response;  // generated tokens, the stop token included
  double advantage = 0;
};

}  // namespace muse::rl
