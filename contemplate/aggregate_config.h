// The `aggregate.*` config section: contemplating mode, where K solver
// samples are read by an aggregator that writes the final answer, and the
// `aggregate` stage that trains the aggregator with the RL stage's algorithm
// (AggLM, arXiv 2509.06870). docs/contemplate.md describes the recipe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/schema.h"

namespace muse::contemplate {

// AggLM's aggregation prompt (Fig. 2), with {problem} and {solutions}.
inline constexpr const char* kAggLmTemplate =
    "Given the following problem: {problem}\nand these solution attempts: {solutions}\nIt is "
    "possible that any, all, or none of these solutions are correct or complete. Carefully "
    "review the provided solutions, using them as starting points - correcting mistakes, filling "
    "in gaps, and/or combining useful ideas - to produce a final, comprehensive, and correct "
    "solution to the problem.";

// The refinement round's prompt (recursive self-aggregation, arXiv
// 2509.26626; parallel draft-refine, arXiv 2510.01123): an agent sees its
// own proposal and the others' and revises.
inline constexpr const char* kRefineTemplate =
    "{problem}\nYour earlier solution: {own}\nOther agents' solutions:{solutions}\nReview "
    "them, correct any mistakes in your own and write an improved solution.";

struct AggregateConfig {
  std::string solver;
  int64_t k = 8;
  int64_t sets_per_problem = 2;
  int64_t train_problems = 0;
  double easy_share = 0.5;
  std::string candidates = "answer";
  int64_t candidate_max_tokens = 32;
  double solver_temperature = 1.0;
  int64_t solver_max_new_tokens = 64;
  std::string prompt_template = kAggLmTemplate;
  std::vector<int64_t> eval_k = {2, 4, 8};
  int64_t eval_problems = 0;
  std::string refine_template = kRefineTemplate;
  std::string refine_by = "solver";
  std::vector<int64_t> eval_refine_rounds = {};

  template <class V>
  void visit(V& v) {
    v.field("solver", solver,
            {.help = "the solver agents: empty = the weights being trained (one model solves and "
                     "aggregates), or a checkpoint or run directory of a separate, frozen solver"});
    v.field("k", k, {.help = "solver candidates per training set (AggLM: 8)", .ge = 1});
    v.field("sets_per_problem", sets_per_problem,
            {.help = "candidate sets sampled per training problem (AggLM's s)", .ge = 1});
    v.field("train_problems", train_problems,
            {.help = "training problems given candidate sets (the first ones of rl.prompts); 0 = "
                     "all",
             .ge = 0});
    v.field("easy_share", easy_share,
            {.help = "easy sets (majority right) kept per hard set (majority wrong); every hard "
                     "set is kept (AggLM: 0.05 to 0.5 work best)",
             .ge = 0});
    v.field("candidates", candidates,
            {.help = "what the aggregator sees of each candidate: answer (the part after "
                     "</think>, AggLM) or full (the whole response, the compressed reasoning "
                     "included)",
             .choices = {"answer", "full"}});
    v.field("candidate_max_tokens", candidate_max_tokens,
            {.help = "longest candidate shown to the aggregator; longer ones are cut",
             .unit = "tokens",
             .ge = 1});
    v.field("solver_temperature", solver_temperature,
            {.help = "sampling temperature of the solver candidates", .gt = 0});
    v.field("solver_max_new_tokens", solver_max_new_tokens,
            {.help = "generation limit per solver candidate", .unit = "tokens", .ge = 1});
    v.field("template", prompt_template,
            {.help = "the aggregator prompt: {problem} is the problem (with its images), "
                     "{solutions} the candidates as \"\\nSolution i: ...\" (default: AggLM's)"});
    v.field("eval_k", eval_k,
            {.help = "candidate counts K evaluated on eval.prompts: single, majority@K and "
                     "aggregator@K records",
             .ge = 1});
    v.field(
        "eval_problems", eval_problems,
        {.help = "held-out problems evaluated (the first ones of eval.prompts); 0 = all", .ge = 0});
    v.field("refine_template", refine_template,
            {.help = "a refinement round's prompt for one agent: {problem}, {solutions} (the "
                     "other agents' proposals as \"\\nSolution i: ...\") and optionally {own} "
                     "(its own; without {own}, {solutions} lists its own first)"});
    v.field("refine_by", refine_by,
            {.help = "who revises in a refinement round: solver (the agents themselves) or "
                     "aggregator (the model trained to read proposals, sampling one revision "
                     "per agent)",
             .choices = {"solver", "aggregator"}});
    v.field("eval_refine_rounds", eval_refine_rounds,
            {.help = "refinement rounds R evaluated besides none: aggregator@K+refine@R and "
                     "majority@K+refine@R records for each K of eval_k (empty = none)",
             .ge = 1});
  }
};

}  // namespace muse::contemplate
