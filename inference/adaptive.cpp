#include "inference/adaptive.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "comm/agree.h"
#include "config/schema.h"
#include "config/splitmix64.h"
#include "inference/prompting.h"
#include "inference/voting.h"
#include "model/generate.h"

namespace muse::inference {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// One sample of one problem as it stands after the passes so far.
struct Trace {
  std::vector<int64_t> tokens;  // generated over the passes (continued traces concatenated)
  std::vector<float> logprobs, entropies;
  bool cut = false;  // the last pass's budget ended its reasoning (its response, without markers)
  rewards::Response response;
};

struct ProblemState {
  std::vector<Trace> samples;
  size_t budget_index = 0;
  Expansion next = Expansion::kRerun;  // how the coming pass starts (the first starts afresh)
  AdaptiveOutcome outcome;
};

std::string joined(std::span<const int64_t> values) {
  std::string out;
  for (const int64_t v : values) {
    if (!out.empty()) out += ',';
    out += std::to_string(v);
  }
  return out;
}

// Runs the next pass of every problem in `active`, each at its current budget.
void run_pass(const model::Model& model, const std::vector<data::PromptRecord>& problems,
              std::span<const int64_t> budgets, const AdaptiveSetup& setup,
              const std::vector<size_t>& active, std::vector<ProblemState>& state, int64_t pass) {
  const AdaptiveConfig& cfg = *setup.cfg;
  const data::Tokenizer& tok = *setup.tokenizer;
  const model::ModelConfig& mc = model.config();
  // Without reasoning markers a budget caps the whole response; with them,
  // forcing the end of the reasoning needs it as one token.
  const bool whole_response_budget = tok.roles().think_end.text.empty();
  const int64_t think_end =
      whole_response_budget ? -1 : data::TokenRoles::single(tok.roles().think_end, "think_end");
  struct Job {
    size_t problem, sample;
    PresentedPrompt shown;
    size_t prefix;  // tokens of the trace the pass continues from
  };
  std::vector<Job> jobs;
  std::vector<model::Prompt> prompts;
  for (const size_t p : active) {
    ProblemState& st = state[p];
    const int64_t budget = budgets[st.budget_index];
    PresentedPrompt shown = present_prompt(problems[p], setup.budget_prompt ? budget : 0, tok,
                                           mc.image_token_id, mc.n_patches());
    if (st.samples.empty()) st.samples.resize(static_cast<size_t>(cfg.samples));
    for (size_t j = 0; j < st.samples.size(); ++j) {
      Trace& t = st.samples[j];
      const bool cont = st.next == Expansion::kContinue;
      if (cont && !t.cut) continue;  // reasoning closed by itself: nothing to continue
      if (!cont) t = Trace{};
      // The kept reasoning: everything before the forced </think> (all of a
      // response cut without markers).
      if (cont && !whole_response_budget) {
        const auto end = std::find(t.tokens.begin(), t.tokens.end(), think_end);
        const auto keep = static_cast<size_t>(end - t.tokens.begin());
        t.tokens.resize(keep);
        t.logprobs.resize(keep);
        t.entropies.resize(keep);
      }
      model::Prompt prompt{.tokens = shown.tokens, .images = problems[p].images};
      prompt.tokens.insert(prompt.tokens.end(), t.tokens.begin(), t.tokens.end());
      const auto kept = static_cast<int64_t>(t.tokens.size());
      if (whole_response_budget) {
        prompt.max_new_tokens = budget - kept;
      } else {
        // + 1: the <think> that opens the reasoning is generated too.
        prompt.think_limit = budget + 1 - kept;
        prompt.max_new_tokens = prompt.think_limit + 1 + cfg.answer_tokens;
      }
      const auto need = static_cast<int64_t>(prompt.tokens.size()) + prompt.max_new_tokens;
      if (need > mc.max_seq_len) {
        throw config::ConfigError("adaptive.budgets",
                                  "problem " + std::to_string(p + 1) + " with a budget of " +
                                      std::to_string(budget) + " needs " + std::to_string(need) +
                                      " positions, more than model.max_seq_len (" +
                                      std::to_string(mc.max_seq_len) + ")");
      }
      jobs.push_back({.problem = p, .sample = j, .shown = shown, .prefix = t.tokens.size()});
      prompts.push_back(std::move(prompt));
    }
  }
  const auto batch = static_cast<size_t>(cfg.batch);
  for (size_t begin = 0, chunk = 0; begin < prompts.size(); begin += batch, ++chunk) {
    const size_t end = std::min(prompts.size(), begin + batch);
    model::GenerateOptions options;
    options.sampling.temperature = cfg.samples > 1 ? cfg.temperature : 0;
    options.stop_tokens = tok.roles().stop_tokens();
    options.think_end_token = think_end;
    options.record_entropy = parse_signal(cfg.signal) == UncertaintySignal::kEntropy;
    options.seed = config::mix_seed({setup.seed, static_cast<uint64_t>(pass), chunk});
    const std::vector<model::Generation> gens = model::generate(
        model,
        std::vector<model::Prompt>(prompts.begin() + static_cast<std::ptrdiff_t>(begin),
                                   prompts.begin() + static_cast<std::ptrdiff_t>(end)),
        options);
    for (size_t i = begin; i < end; ++i) {
      const Job& job = jobs[i];
      const model::Generation& g = gens[i - begin];
      Trace& t = state[job.problem].samples[job.sample];
      const int64_t think_before = job.prefix > 0 ? t.response.think_tokens : 0;
      t.tokens.insert(t.tokens.end(), g.tokens.begin(), g.tokens.end());
      t.logprobs.insert(t.logprobs.end(), g.logprobs.begin(), g.logprobs.end());
      t.entropies.insert(t.entropies.end(), g.entropies.begin(), g.entropies.end());
      t.cut = whole_response_budget ? g.stop_reason == model::StopReason::kLength
                                    : g.forced_think_end >= 0;
      model::Generation whole = g;
      whole.tokens = t.tokens;
      t.response = to_response(job.shown, whole, tok);
      AdaptiveOutcome& o = state[job.problem].outcome;
      o.think_tokens += t.response.think_tokens - think_before;
      o.tokens += static_cast<int64_t>(g.tokens.size());
    }
  }
}

}  // namespace

UncertaintySignal parse_signal(const std::string& name) {
  if (name == "logprob") return UncertaintySignal::kLogprob;
  if (name == "entropy") return UncertaintySignal::kEntropy;
  if (name == "disagreement") return UncertaintySignal::kDisagreement;
  throw config::ConfigError("adaptive.signal", "unknown signal '" + name + "'");
}

ExpandMode parse_expand(const std::string& name) {
  if (name == "continue") return ExpandMode::kContinue;
  if (name == "rerun") return ExpandMode::kRerun;
  throw config::ConfigError("adaptive.expand", "unknown expansion '" + name + "'");
}

void check_adaptive_config(const AdaptiveConfig& cfg) {
  if (cfg.budgets.empty()) throw config::ConfigError("adaptive.budgets", "needs at least one");
  if (!std::is_sorted(cfg.budgets.begin(), cfg.budgets.end()) ||
      std::adjacent_find(cfg.budgets.begin(), cfg.budgets.end()) != cfg.budgets.end())
    throw config::ConfigError("adaptive.budgets",
                              "must be strictly ascending, e.g. [32, 128, 512]");
  if (parse_signal(cfg.signal) == UncertaintySignal::kDisagreement && cfg.samples < 2) {
    throw config::ConfigError("adaptive.samples",
                              "signal disagreement needs 2 or more samples per pass");
  }
  (void)parse_expand(cfg.expand);
}

std::optional<AnswerSpan> answer_span(std::span<const int64_t> tokens, int64_t answer_begin,
                                      int64_t answer_end) {
  const auto close = std::find(tokens.rbegin(), tokens.rend(), answer_end);
  if (close == tokens.rend()) return std::nullopt;
  const auto open = std::find(close + 1, tokens.rend(), answer_begin);
  if (open == tokens.rend()) return std::nullopt;
  const auto begin = static_cast<size_t>(tokens.rend() - open);     // after <answer>
  const auto end = static_cast<size_t>(tokens.rend() - close) - 1;  // at </answer>
  if (begin >= end) return std::nullopt;
  return AnswerSpan{.begin = begin, .end = end};
}

std::optional<AnswerSpan> tokens_in_bytes(const data::Tokenizer& tokenizer,
                                          std::span<const int64_t> tokens, size_t begin,
                                          size_t end) {
  std::optional<AnswerSpan> span;
  size_t token_begin = 0;  // the byte where token i's decoding starts
  for (size_t i = 0; i < tokens.size() && token_begin < end; ++i) {
    const auto id = static_cast<int32_t>(tokens[i]);
    const size_t token_end = token_begin + tokenizer.decode(std::span(&id, 1)).size();
    if (token_end > begin && token_end > token_begin) {
      if (!span) span = AnswerSpan{.begin = i};
      span->end = i + 1;
    }
    token_begin = token_end;
  }
  return span;
}

std::optional<AnswerSpan> extracted_answer_span(const data::Tokenizer& tokenizer,
                                                std::span<const int64_t> tokens,
                                                std::string_view text,
                                                std::span<const rewards::AnswerForm> forms) {
  const std::optional<rewards::LocatedAnswer> answer = rewards::locate_answer(text, forms);
  if (!answer || answer->text.empty()) return std::nullopt;
  return tokens_in_bytes(tokenizer, tokens, answer->offset, answer->offset + answer->text.size());
}

double span_mean(std::span<const float> values, const AnswerSpan& span) {
  double sum = 0;
  for (size_t i = span.begin; i < span.end; ++i)
    sum += values[i];
  return sum / static_cast<double>(span.end - span.begin);
}

double disagreement(const std::vector<std::optional<std::string>>& answers,
                    rewards::MatchMode mode) {
  if (answers.empty()) return 1;
  const Vote vote = majority_vote(answers, mode);
  return 1.0 - static_cast<double>(vote.votes) / static_cast<double>(answers.size());
}

double uncertainty(UncertaintySignal signal, const std::vector<std::optional<double>>& per_sample,
                   double disagreement_share) {
  if (signal == UncertaintySignal::kDisagreement) return disagreement_share;
  double sum = 0;
  for (const std::optional<double>& v : per_sample) {
    if (!v) return kInf;
    sum += signal == UncertaintySignal::kLogprob ? -*v : *v;
  }
  return per_sample.empty() ? kInf : sum / static_cast<double>(per_sample.size());
}

double expand_above(const AdaptiveConfig& cfg, UncertaintySignal signal) {
  switch (signal) {
    case UncertaintySignal::kLogprob:
      return -cfg.logprob_threshold;
    case UncertaintySignal::kEntropy:
      return cfg.entropy_threshold;
    case UncertaintySignal::kDisagreement:
      return cfg.disagreement_threshold;
  }
  return kInf;
}

Expansion choose_expansion(const PassState& pass, double threshold, ExpandMode mode) {
  if (!(pass.uncertainty > threshold) || !pass.has_larger_budget) return Expansion::kStop;
  if (pass.cut && mode == ExpandMode::kContinue) return Expansion::kContinue;
  // Without a cut the reasoning ended by itself; a new pass only helps when
  // it can come out differently.
  if (pass.cut || pass.next_may_differ) return Expansion::kRerun;
  return Expansion::kStop;
}

std::vector<AdaptiveOutcome> answer_adaptive(const model::Model& model,
                                             const std::vector<data::PromptRecord>& problems,
                                             std::span<const int64_t> budgets,
                                             const AdaptiveSetup& setup) {
  const AdaptiveConfig& cfg = *setup.cfg;
  const UncertaintySignal signal = parse_signal(cfg.signal);
  const ExpandMode mode = parse_expand(cfg.expand);
  const double threshold = expand_above(cfg, signal);
  const data::TokenRoles& roles = setup.tokenizer->roles();
  // One-token answer markers are found by id; otherwise (and when a response
  // lacks them) the answer is located in the text.
  const bool answer_markers =
      roles.answer_begin.ids.size() == 1 && roles.answer_end.ids.size() == 1;
  const bool whole_response_budget = roles.think_end.text.empty();
  std::vector<ProblemState> state(problems.size());
  std::vector<size_t> active(problems.size());
  std::iota(active.begin(), active.end(), size_t{0});
  for (int64_t pass = 0; !active.empty(); ++pass) {
    run_pass(model, problems, budgets, setup, active, state, pass);
    std::vector<size_t> next;
    for (const size_t p : active) {
      ProblemState& st = state[p];
      std::vector<std::optional<std::string>> answers, final_answers;
      std::vector<std::optional<double>> per_sample;
      bool cut = false;
      for (const Trace& t : st.samples) {
        answers.push_back(rewards::extract_answer(t.response.text, setup.answer.forms));
        // Without reasoning markers a response cut by the budget has not
        // answered yet: the number it stopped at is no final answer.
        final_answers.push_back(whole_response_budget && t.cut ? std::nullopt : answers.back());
        std::optional<AnswerSpan> span;
        if (answer_markers)
          span =
              answer_span(t.tokens, roles.answer_begin.ids.front(), roles.answer_end.ids.front());
        if (!span && !t.response.truncated)
          span = extracted_answer_span(*setup.tokenizer, t.tokens, t.response.text,
                                       setup.answer.forms);
        per_sample.push_back(
            span ? std::optional(span_mean(
                       signal == UncertaintySignal::kEntropy ? t.entropies : t.logprobs, *span))
                 : std::nullopt);
        cut = cut || t.cut;
      }
      const PassState ps{.uncertainty = uncertainty(
                             signal, per_sample, disagreement(final_answers, setup.answer.match)),
                         .has_larger_budget = st.budget_index + 1 < budgets.size(),
                         .cut = cut,
                         .next_may_differ = cfg.samples > 1 || setup.budget_prompt};
      st.next = choose_expansion(ps, threshold, mode);
      st.outcome.answer = majority_vote(answers, setup.answer.match).answer;
      st.outcome.response = st.samples.front().response;
      st.outcome.passes.push_back({.budget = budgets[st.budget_index],
                                   .uncertainty = ps.uncertainty,
                                   .answer = st.outcome.answer,
                                   .next = st.next});
      if (st.next != Expansion::kStop) {
        ++st.budget_index;
        next.push_back(p);
      }
    }
    active = std::move(next);
  }
  std::vector<AdaptiveOutcome> out;
  for (size_t p = 0; p < problems.size(); ++p) {
    AdaptiveOutcome& o = state[p].outcome;
    o.correct =
        o.answer && rewards::answers_match(*o.answer, problems[p].answer, setup.answer.match);
    out.push_back(std::move(o));
  }
  return out;
}

void AdaptiveTally::add(const AdaptiveOutcome& o) {
  problems += 1;
  correct += o.correct ? 1 : 0;
  think += static_cast<double>(o.think_tokens);
  tokens += static_cast<double>(o.tokens);
  expanded += o.passes.size() > 1 ? 1 : 0;
  passes += static_cast<double>(o.passes.size());
}

telemetry::Record adaptive_record(const std::string& name, const AdaptiveTally& tally,
                                  int64_t step) {
  const double n = std::max(1.0, tally.problems);
  telemetry::Record r;
  r.add("step", step)
      .add("eval", name)
      .add("accuracy", tally.correct / n)
      .add("think_tokens_mean", tally.think / n)
      .add("expanded_fraction", tally.expanded / n)
      .add("tokens_mean", tally.tokens / n)
      .add("passes_mean", tally.passes / n)
      .add("prompts", static_cast<int64_t>(tally.problems));
  return r;
}

bool states_budget(const AdaptiveConfig& cfg, const std::string& length_kind) {
  return cfg.budget_prompt == "on" ||
         (cfg.budget_prompt == "auto" && (length_kind == "l1_exact" || length_kind == "l1_max"));
}

std::vector<telemetry::Record> evaluate_adaptive(const model::Model& model,
                                                 const std::vector<data::PromptRecord>& problems,
                                                 const AdaptiveSetup& setup, int64_t step,
                                                 comm::Communicator& comm) {
  const AdaptiveConfig& cfg = *setup.cfg;
  // Per method (each budget alone, then adaptive): the tally's six sums.
  constexpr size_t kSums = 6;
  const size_t methods = cfg.budgets.size() + 1;
  std::vector<double> sums(kSums * methods, 0.0);
  comm::run_agreed(comm, [&] {
    std::vector<data::PromptRecord> share;
    for (size_t i = static_cast<size_t>(comm.rank()); i < problems.size();
         i += static_cast<size_t>(comm.size()))
      share.push_back(problems[i]);
    if (share.empty()) return;
    for (size_t m = 0; m < methods; ++m) {
      const bool adaptive = m == cfg.budgets.size();
      const std::span<const int64_t> budgets =
          adaptive ? std::span<const int64_t>(cfg.budgets) : std::span(&cfg.budgets[m], 1);
      AdaptiveTally t;
      for (const AdaptiveOutcome& o : answer_adaptive(model, share, budgets, setup))
        t.add(o);
      const double values[kSums] = {t.problems, t.correct, t.think, t.tokens, t.expanded, t.passes};
      std::copy(std::begin(values), std::end(values),
                sums.begin() + static_cast<std::ptrdiff_t>(kSums * m));
    }
  });
  sums = comm::sum_over_ranks(comm, sums);
  std::vector<telemetry::Record> out;
  for (size_t m = 0; m < methods; ++m) {
    const double* v = sums.data() + kSums * m;
    const AdaptiveTally t{.problems = v[0],
                          .correct = v[1],
                          .think = v[2],
                          .tokens = v[3],
                          .expanded = v[4],
                          .passes = v[5]};
    if (m < cfg.budgets.size()) {
      out.push_back(adaptive_record("fixed_budget@" + std::to_string(cfg.budgets[m]), t, step));
      out.back().add("budget", cfg.budgets[m]);
    } else {
      out.push_back(adaptive_record("adaptive", t, step));
      out.back()
          .add("budgets", joined(cfg.budgets))
          .add("signal", cfg.signal)
          .add("threshold", expand_above(cfg, parse_signal(cfg.signal)))
          .add("expand", cfg.expand)
          .add("samples", cfg.samples);
    }
  }
  return out;
}

}  // namespace muse::inference
