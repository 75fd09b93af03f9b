// Which prompts an RL step uses: an endless sequence of seeded permutations
// of the prompt set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace muse::rl {

// The order prompts are used in: an endless sequence of seeded permutations
// of the set, one per pass. RL step s (0-based) uses positions
// [s * per_step, (s + 1) * per_step), so the step alone is the cursor a
// resumed run needs.
class PromptSchedule {
 public:
  PromptSchedule(size_t n_prompts, uint64_t seed) : n_(n_prompts), seed_(seed) {}
  // Indices into the prompt set of step `step`'s prompts.
  std::vector<size_t> step_prompts(int64_t step, int64_t per_step) const;

 private:
  std::vector<size_t> permutation(int64_t pass) const;
  size_t n_;
  uint64_t seed_;
};

}  // namespace muse::rl
