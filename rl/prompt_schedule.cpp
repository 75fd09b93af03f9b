#include "rl/prompt_schedule.h"

#include <numeric>

#include "config/splitmix64.h"

namespace muse::rl {

std::vector<size_t> PromptSchedule::permutation(int64_t pass) const {
  std::vector<size_t> order(n_);
  std::iota(order.begin(), order.end(), size_t{0});
  uint64_t state = config::mix_seed({seed_, static_cast<uint64_t>(pass)});
  for (size_t i = n_; i > 1; --i) {  // Fisher-Yates
    state = config::mix_seed({state});
    std::swap(order[i - 1], order[state % i]);
  }
  return order;
}

std::vector<size_t> PromptSchedule::step_prompts(int64_t step, int64_t per_step) const {
  std::vector<size_t> out;
  int64_t cached_pass = -1;
  std::vector<size_t> order;
  for (int64_t pos = step * per_step; pos < (step + 1) * per_step; ++pos) {
    const int64_t pass = pos / static_cast<int64_t>(n_);
    if (pass != cached_pass) {
      order = permutation(pass);
      cached_pass = pass;
    }
    out.push_back(order[pos % static_cast<int64_t>(n_)]);
  }
  return out;
}

}  // namespace muse::rl
