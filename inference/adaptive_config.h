// The `adaptive.*` config section: adaptive re-expansion of compressed
// thoughts at test time. A first pass answers with the smallest reasoning
// budget; when an uncertainty signal says the answer is doubtful, the problem
// is answered again with the next budget. docs/inference.md describes the
// signals, the policy and their costs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/schema.h"

namespace muse::inference {

struct AdaptiveConfig {
  std::vector<int64_t> budgets = {32, 128, 512};
  std::string signal = "logprob";
  double logprob_threshold = -0.3;
  double entropy_threshold = 0.2;
  double disagreement_threshold = 0.0;
  int64_t samples = 1;
  double temperature = 1.0;
  std::string expand = "continue";
  std::string budget_prompt = "auto";
  int64_t answer_tokens = 16;
  int64_t batch = 64;
  bool eval = false;

  template <class V>
  void visit(V& v) {
    v.field("budgets", budgets,
            {.help = "reasoning budgets in tokens, ascending: the first pass thinks for at most "
                     "the first, each expansion moves to the next (the fixed_budget@N "
                     "evaluation records use each one alone)",
             .unit = "tokens",
             .ge = 1});
    v.field("signal", signal,
            {.help = "what decides to expand: logprob (mean log-probability of the answer "
                     "tokens), entropy (mean entropy of the distributions the answer tokens are "
                     "drawn from) or disagreement (share of adaptive.samples parallel samples "
                     "that differ from their majority answer)",
             .choices = {"logprob", "entropy", "disagreement"}});
    v.field("logprob_threshold", logprob_threshold,
            {.help = "signal logprob: expand when the answer's mean log-probability is below this",
             .le = 0});
    v.field("entropy_threshold", entropy_threshold,
            {.help = "signal entropy: expand when the answer's mean entropy is above this",
             .unit = "nats",
             .ge = 0});
    v.field("disagreement_threshold", disagreement_threshold,
            {.help = "signal disagreement: expand when the share of samples not giving the "
                     "majority answer is above this",
             .ge = 0,
             .le = 1});
    v.field("samples", samples,
            {.help = "parallel samples per pass; the answer is their majority (1 = one greedy "
                     "answer; disagreement needs 2 or more)",
             .ge = 1});
    v.field("temperature", temperature,
            {.help = "sampling temperature when adaptive.samples > 1", .gt = 0});
    v.field("expand", expand,
            {.help = "how a pass is expanded: continue (keep the reasoning cut at the budget and "
                     "think on, paying only the new tokens) or rerun (answer again from the "
                     "problem with the larger budget, paying every token again)",
             .choices = {"continue", "rerun"}});
    v.field("budget_prompt", budget_prompt,
            {.help = "state the budget in the prompt with L1's \"Think for N tokens.\": on, off, "
                     "or auto (on when rewards.length.kind is l1_exact or l1_max, the models "
                     "trained to follow it)",
             .choices = {"auto", "on", "off"}});
    v.field(
        "answer_tokens", answer_tokens,
        {.help = "tokens allowed after the reasoning for the answer", .unit = "tokens", .ge = 1});
    v.field("batch", batch,
            {.help = "sequences per generation call (bounds the KV cache)", .ge = 1});
    v.field("eval", eval,
            {.help = "rl stage: at every evaluation also write the fixed_budget@N and adaptive "
                     "records on eval.prompts"});
  }
};

}  // namespace muse::inference
