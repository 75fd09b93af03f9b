// The `rewards.*` config section: which terms make up the RL reward and how
// each is weighted (docs/rewards.md has every formula).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/schema.h"
#include "rewards/verify.h"

namespace muse::rewards {

struct CorrectnessConfig {
  double weight = 1.0;
  std::string match = "numeric";
  std::vector<std::string> extract = {"tags"};

  template <class V>
  void visit(V& v) {
    v.field("weight", weight,
            {.help = "weight of the 0/1 correctness reward (the last <answer> against the "
                     "reference answer)"});
    v.field("match", match,
            {.help = "how answers are compared (rewards/verify.h): exact (the last "
                     "<answer>...</answer> pair against the reference, trimmed strings), numeric "
                     "(the same pair, decimal numbers to 1e-9 relative, falling back to exact) "
                     "or caption (no tags: the response begins with the reference as a whole "
                     "word)",
             .choices = {"exact", "numeric", "caption"}});
    v.field("extract", extract,
            {.help = "where a response's answer is read, the first form found winning: tags "
                     "(the last <answer>...</answer>), boxed (the last \\boxed{...}), hashes "
                     "(after the last ####), last_number (the last number in the text)",
             .choices = {"tags", "boxed", "hashes", "last_number"}});
  }

  MatchMode mode() const { return parse_match_mode(match); }
  // match and extract together: how every accuracy and the reward check a
  // response.
  AnswerRule rule() const {
    AnswerRule r{.match = mode(), .forms = {}};
    for (const std::string& form : extract)
      r.forms.push_back(parse_answer_form(form));
    return r;
  }
};

struct FormatConfig {
  double weight = 0.0;

  template <class V>
  void visit(V& v) {
    v.field("weight", weight,
            {.help = "weight of the 0/1 format reward: 1 when the response is exactly "
                     "<think>...</think> <answer>...</answer>"});
  }
};

struct LengthConfig {
  std::string kind = "none";
  double weight = 1.0;
  std::string combine = "add";
  std::string measure = "think";
  int64_t warmup_steps = 0;
  std::string warmup = "linear";
  double per_token = 0.001;
  double alpha = 0.0003;
  double delta = 0.5;
  int64_t budget_min = 100;
  int64_t budget_max = 4000;
  int64_t eval_budget = 0;
  double arora_alpha = 0.1;
  int64_t cosine_max_len = 0;
  double cosine_correct_short = 2.0;
  double cosine_correct_long = 1.0;
  double cosine_wrong_short = -10.0;
  double cosine_wrong_long = 0.0;
  double cosine_exceed = -10.0;
  int64_t overlong_max_len = 0;
  int64_t overlong_cache = 0;

  template <class V>
  void visit(V& v) {
    v.field("kind", kind,
            {.help = "the length term: none, linear, kimi (Kimi k1.5), l1_exact, l1_max (L1), "
                     "cosine (Yeo et al.), overlong (DAPO), arora (Arora & Zanette) or truncation "
                     "(DLER)"});
    v.field("weight", weight, {.help = "weight of the length term after warm-up", .ge = 0});
    v.field("combine", combine,
            {.help = "add: add the weighted term; gate: multiply it by the 0/1 correctness first, "
                     "so only correct responses are penalised",
             .choices = {"add", "gate"}});
    v.field("measure", measure,
            {.help = "the length the term reads: think (tokens inside <think>...</think>) or total "
                     "(every generated token); overlong always reads total",
             .choices = {"think", "total"}});
    v.field("warmup_steps", warmup_steps,
            {.help = "RL steps over which the length weight warms up; 0 applies it from the start",
             .unit = "steps",
             .ge = 0});
    v.field("warmup", warmup,
            {.help = "linear: weight * min(1, step / warmup_steps); step: 0 before warmup_steps, "
                     "then the full weight (Kimi k1.5)",
             .choices = {"linear", "step"}});
    v.field("per_token", per_token,
            {.help = "linear: penalty per token", .unit = "per token", .ge = 0});
    v.field("alpha", alpha,
            {.help = "l1_exact, l1_max: penalty per token of distance to the budget (L1: 0.0003)",
             .unit = "per token",
             .ge = 0});
    v.field("delta", delta,
            {.help = "l1_max: offset that keeps a correct answer slightly over its budget above "
                     "a wrong one (L1: 0.5)"});
    v.field("budget_min", budget_min,
            {.help = "l1_exact, l1_max: training prompts state a budget drawn uniformly from "
                     "[budget_min, budget_max]",
             .unit = "tokens",
             .ge = 1});
    v.field("budget_max", budget_max,
            {.help = "l1_exact, l1_max: largest budget drawn for a training prompt",
             .unit = "tokens",
             .ge = 1});
    v.field("eval_budget", eval_budget,
            {.help = "l1_exact, l1_max: budget stated in evaluation prompts; 0 uses budget_max",
             .unit = "tokens",
             .ge = 0});
    v.field("arora_alpha", arora_alpha,
            {.help = "arora: largest share of the correctness reward a long correct response "
                     "loses",
             .ge = 0,
             .lt = 1});
    v.field("cosine_max_len", cosine_max_len,
            {.help = "cosine: length at which the curve ends and cosine_exceed starts; 0 uses the "
                     "generation limit",
             .unit = "tokens",
             .ge = 0});
    v.field("cosine_correct_short", cosine_correct_short,
            {.help = "cosine: reward of a correct response of length 0"});
    v.field("cosine_correct_long", cosine_correct_long,
            {.help = "cosine: reward of a correct response of length cosine_max_len"});
    v.field("cosine_wrong_short", cosine_wrong_short,
            {.help = "cosine: reward of a wrong response of length 0"});
    v.field("cosine_wrong_long", cosine_wrong_long,
            {.help = "cosine: reward of a wrong response of length cosine_max_len"});
    v.field("cosine_exceed", cosine_exceed,
            {.help = "cosine: reward of a truncated response or one of cosine_max_len tokens or "
                     "more"});
    v.field("overlong_max_len", overlong_max_len,
            {.help = "overlong: length past which the penalty is -1; 0 uses the generation limit",
             .unit = "tokens",
             .ge = 0});
    v.field("overlong_cache", overlong_cache,
            {.help = "overlong: the penalty ramps from 0 to -1 over the last overlong_cache tokens "
                     "before overlong_max_len; 0 uses a quarter of it",
             .unit = "tokens",
             .ge = 0});
  }
};

struct RepetitionConfig {
  double weight = 0.0;
  int64_t ngram = 3;
  double max_penalty = -1.0;

  template <class V>
  void visit(V& v) {
    v.field("weight", weight, {.help = "weight of the n-gram repetition penalty", .ge = 0});
    v.field("ngram", ngram, {.help = "words per n-gram", .ge = 1});
    v.field("max_penalty", max_penalty,
            {.help = "penalty of a response that repeats one n-gram throughout", .le = 0});
  }
};

struct RewardsConfig {
  CorrectnessConfig correctness;
  FormatConfig format;
  LengthConfig length;
  RepetitionConfig repetition;

  template <class V>
  void visit(V& v) {
    v.section("correctness", correctness, "Whether the response's answer is right.");
    v.section("format", format, "Whether the response has the think-then-answer shape.");
    v.section("length", length,
              "The length term (thought compression), its warm-up and parameters.");
    v.section("repetition", repetition, "The n-gram repetition penalty (Yeo et al.).");
  }

  // Checks every field's bounds and the relations between fields; throws
  // config::ConfigError naming the key ("rewards.length.budget_min").
  void validate() const;
};

}  // namespace muse::rewards
