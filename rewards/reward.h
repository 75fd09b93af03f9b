// The reward interface: a reward scores a group (every response sampled for
// one prompt) at once, because several length terms compare a response with
// the rest of its group.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace muse::rewards {

// One sampled response, as rl/ sees it.
struct Response {
  std::string prompt;           // prompt text (with any budget sentence)
  std::vector<int64_t> tokens;  // generated tokens, stop token excluded
  std::string text;             // decoded tokens
  int64_t think_tokens = 0;     // tokens inside <think>...</think> (count_think_tokens)
  int64_t total_tokens = 0;     // tokens.size(): the stop token is not counted
  bool truncated = false;       // hit max_new_tokens without the stop token
  std::string answer;           // reference answer
  int64_t budget = 0;           // L1 token budget stated in the prompt; 0 = none
};

struct Context {
  int64_t step = 0;  // RL step (0-based) being scored, for warm-up
  // The generation limit: L_max of cosine and overlong when their keys are 0.
  int64_t max_new_tokens = 0;
};

// A reward over one group (all responses to one prompt), one value per
// response, in the group's order.
class Reward {
 public:
  virtual ~Reward() = default;
  virtual std::vector<double> score(std::span<const Response> group, const Context& ctx) const = 0;
};

}  // namespace muse::rewards
