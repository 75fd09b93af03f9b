// muse-generate: answers prompts with a checkpoint, alone or in contemplating
// mode (K solver samples, then the aggregator).
//
//   muse-generate --checkpoint DIR|hf:DIR [--chat] [--json] (--prompt TEXT [--image FILE ...] |
//   --prompts FILE.jsonl)
//                 [--adaptive | --contemplate K [--refine-rounds R]] [--solver DIR]
//                 [--metrics FILE] [--set KEY=VALUE ...] [--verbose] [--compare-sequential] ...
//
// Exit codes: 0 success, 1 runtime failure, 2 bad command line or bad input.
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apps/muse_config.h"
#include "checkpoints/checkpoint.h"
#include "comm/solo_communicator.h"
#include "config/cli.h"
#include "config/files.h"
#include "config/splitmix64.h"
#include "contemplate/candidate_sets.h"
#include "contemplate/contemplate.h"
#include "data/data_error.h"
#include "data/prompts.h"
#include "data/tokenizer.h"
#include "formats/model_source.h"
#include "inference/adaptive.h"
#include "inference/prompting.h"
#include "inference/voting.h"
#include "model/generate.h"
#include "muse/version.h"
#include "rewards/terms.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"

namespace {

namespace config = muse::config;
namespace data = muse::data;
namespace model = muse::model;
namespace rewards = muse::rewards;
namespace contemplate = muse::contemplate;
namespace inference = muse::inference;
namespace telemetry = muse::telemetry;
using Clock = std::chrono::steady_clock;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

const char* kDescription =
    "Answers prompts with a muse-train checkpoint. Without --contemplate: one greedy\n"
    "answer per prompt. With --contemplate K: K solver samples in one batch (from the\n"
    "checkpoint, or --solver, or the run's aggregate.solver), then the aggregator (the\n"
    "checkpoint) reads them in the run's aggregate.template and writes the final\n"
    "answer. --prompts reads JSON Lines records {\"prompt\", \"answer\", \"images\"}\n"
    "as eval.prompts does and reports accuracy against the answers; --verbose prints\n"
    "every candidate; --compare-sequential times one sequential chain producing as\n"
    "many tokens as the parallel mode spent. Settings not given come from the\n"
    "checkpoint's config. --refine-rounds R lets the K agents see each other's\n"
    "proposals and revise theirs R times before the aggregator reads them\n"
    "(aggregate.refine_template, aggregate.refine_by). --adaptive answers with the\n"
    "smallest of adaptive.budgets reasoning tokens (response tokens for a model\n"
    "without reasoning markers, data.tokens.think_end empty) and expands to larger\n"
    "budgets where the answer looks uncertain (adaptive.signal). --metrics FILE (with\n"
    "--prompts) runs the evaluation muse-train runs and appends its records:\n"
    "fixed_budget@N and adaptive with --adaptive; single, greedy, majority@K,\n"
    "aggregator@K (+refine@R) with --contemplate. --set KEY=VALUE changes an\n"
    "adaptive.*, aggregate.* or rewards.* setting of the checkpoint's config.\n"
    "Plain answers with --metrics FILE are an evaluation: the prompts are answered\n"
    "in batches of --batch, the record \"greedy\" (accuracy, its standard error,\n"
    "response tokens) is appended to FILE and --answers FILE gets one line per\n"
    "prompt; with --contemplate, --answers FILE gets each problem's correctness and\n"
    "answer per method, for paired comparisons.\n"
    "Exit codes: 0 success, 1 runtime failure, 2 bad command line or input.";

struct Options {
  std::string checkpoint, prompt, prompts, solver, tokenizer, metrics, answers;
  std::vector<std::string> images, overrides;
  std::optional<int64_t> contemplate, max_new_tokens, limit;
  int64_t refine_rounds = 0;
  int64_t batch = 64;
  std::optional<double> temperature;
  uint64_t seed = 0;
  bool verbose = false, compare_sequential = false, adaptive = false, chat = false, json = false;
};

// One JSON line per answer, for tools that compare with other engines.
void print_json_answer(const data::PromptRecord& prompt, const rewards::Response& answer) {
  const nlohmann::json line{{"prompt", prompt.prompt},
                            {"prompt_ids", prompt.tokens},
                            {"ids", answer.tokens},
                            {"text", answer.text},
                            {"finish", answer.truncated ? "length" : "stop"}};
  std::cout << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The response text without surrounding whitespace, on one line.
std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  const size_t b = text.find_first_not_of(' ');
  return b == std::string::npos ? "" : text.substr(b, text.find_last_not_of(' ') - b + 1);
}

std::string shown_answer(const rewards::Response& r, const rewards::AnswerRule& rule) {
  const std::optional<std::string> a = rewards::extract_answer(r.text, rule.forms);
  return a ? *a : "(no answer) " + one_line(r.text);
}

// Seconds one greedy chain takes to decode `tokens` tokens after `prompt`
// (stop tokens ignored; positions past model.max_seq_len are computed like
// any other): the sequential cost of the same number of tokens.
double time_sequential_chain(const model::Model& m, const data::PromptRecord& prompt,
                             int64_t tokens) {
  const Clock::time_point start = Clock::now();
  model::Decoder decoder(m, {{.tokens = prompt.tokens, .images = prompt.images}}, tokens);
  for (int64_t t = 0; t < tokens; ++t)
    decoder.step(decoder.logits().argmax(-1));
  return seconds_since(start);
}

// The sections --set may change: how to answer, not what the model is.
constexpr std::string_view kSettableSections[] = {"adaptive.", "aggregate.", "rewards.",
                                                  "data.chat", "data.tokens."};

void apply_overrides(muse::MuseConfig& cfg, const std::vector<std::string>& overrides) {
  config::Origins origins;
  for (const std::string& assignment : overrides) {
    if (std::none_of(std::begin(kSettableSections), std::end(kSettableSections),
                     [&](std::string_view s) { return assignment.starts_with(s); })) {
      throw config::ConfigError("--set", assignment +
                                             ": only adaptive.*, aggregate.*, rewards.*, "
                                             "data.chat* and data.tokens.* keys can be set (the "
                                             "model is the checkpoint's)");
    }
    config::apply_yaml(cfg, config::parse_override(assignment), "--set " + assignment, origins);
  }
}

void append_records(const std::string& path, const std::vector<telemetry::Record>& records) {
  telemetry::JsonlSink sink(path);
  for (const telemetry::Record& r : records)
    sink.write(r);
}

// One line per record: its name, accuracy and mean reasoning tokens.
void print_records(const std::vector<telemetry::Record>& records) {
  for (const telemetry::Record& r : records) {
    const auto number = [&](std::string_view key) {
      const telemetry::Value* v = r.find(key);
      return v && std::holds_alternative<double>(*v) ? std::get<double>(*v) : 0.0;
    };
    std::printf("%-28s accuracy %.3f  reasoning tokens %.1f",
                std::get<std::string>(*r.find("eval")).c_str(), number("accuracy"),
                number("think_tokens_mean"));
    if (r.find("expanded_fraction")) std::printf("  expanded %.3f", number("expanded_fraction"));
    if (r.find("seconds_per_problem"))
      std::printf("  %.3f s/problem", number("seconds_per_problem"));
    std::printf("\n");
  }
}

// --adaptive: each prompt's answer and passes; with --metrics, the
// fixed-budget and adaptive records over all prompts.
int run_adaptive(const Options& o, const muse::MuseConfig& cfg, const model::Model& m,
                 const data::Tokenizer& tokenizer, const std::vector<data::PromptRecord>& prompts,
                 int64_t step) {
  inference::check_adaptive_config(cfg.adaptive);
  const inference::AdaptiveSetup setup{
      .cfg = &cfg.adaptive,
      .tokenizer = &tokenizer,
      .answer = cfg.rewards.correctness.rule(),
      .budget_prompt = inference::states_budget(cfg.adaptive, cfg.rewards.length.kind),
      .seed = o.seed};
  if (!o.metrics.empty()) {
    muse::comm::SoloCommunicator solo;
    const std::vector<telemetry::Record> records =
        inference::evaluate_adaptive(m, prompts, setup, step, solo);
    print_records(records);
    append_records(o.metrics, records);
    return 0;
  }
  const bool graded = !o.prompts.empty();
  inference::AdaptiveTally tally;
  const std::vector<inference::AdaptiveOutcome> outcomes =
      inference::answer_adaptive(m, prompts, cfg.adaptive.budgets, setup);
  for (size_t i = 0; i < outcomes.size(); ++i) {
    const inference::AdaptiveOutcome& out = outcomes[i];
    tally.add(out);
    if (graded || o.verbose)
      std::cout << "[" << i + 1 << "] " << one_line(prompts[i].prompt) << "\n";
    if (o.verbose) {
      for (const inference::PassLog& pass : out.passes) {
        std::printf("  budget %lld: answer %s, uncertainty %.3f -> %s\n",
                    static_cast<long long>(pass.budget), pass.answer.value_or("(none)").c_str(),
                    pass.uncertainty,
                    pass.next == inference::Expansion::kStop       ? "keep"
                    : pass.next == inference::Expansion::kContinue ? "continue"
                                                                   : "rerun");
      }
      std::cout << "  response: " << one_line(out.response.text) << "\n";
    }
    std::string line = "answer: " + out.answer.value_or("(no answer)");
    if (graded)
      line +=
          "  (reference " + prompts[i].answer + ", " + (out.correct ? "correct" : "wrong") + ")";
    std::printf("%s%s  [%lld reasoning tokens, %zu pass(es)]\n", graded || o.verbose ? "  " : "",
                line.c_str(), static_cast<long long>(out.think_tokens), out.passes.size());
  }
  if (graded) {
    const double n = std::max(1.0, tally.problems);
    std::printf(
        "%lld prompt(s): adaptive accuracy %.3f, %.1f reasoning tokens per answer, %.1f%% "
        "expanded\n",
        static_cast<long long>(tally.problems), tally.correct / n, tally.think / n,
        100 * tally.expanded / n);
  }
  return 0;
}

// Plain answers with --metrics: every prompt answered in batches of
// --batch (greedy unless --temperature), one summary record appended to
// --metrics and, with --answers, one line per prompt.
int run_evaluation(const Options& o, const muse::MuseConfig& cfg, const model::Model& m,
                   const data::Tokenizer& tokenizer, const std::vector<data::PromptRecord>& prompts,
                   int64_t step) {
  const rewards::AnswerRule rule = cfg.rewards.correctness.rule();
  const int64_t max_new = o.max_new_tokens.value_or(cfg.eval.max_new_tokens);
  model::GenerateOptions options;
  options.sampling.temperature = o.temperature.value_or(0);
  options.stop_tokens = tokenizer.roles().stop_tokens();
  options.seed = o.seed;
  // The answers go to a temporary file renamed at the end, so FILE is
  // either a whole evaluation's answers or absent, never a mix of two.
  const std::string answers_tmp = o.answers + ".tmp";
  std::unique_ptr<telemetry::JsonlSink> answers;
  if (!o.answers.empty()) {
    std::filesystem::remove(answers_tmp);
    answers = std::make_unique<telemetry::JsonlSink>(answers_tmp);
  }
  inference::AnswerTally tally;
  const Clock::time_point start = Clock::now();
  for (size_t first = 0; first < prompts.size(); first += static_cast<size_t>(o.batch)) {
    const size_t end = std::min(prompts.size(), first + static_cast<size_t>(o.batch));
    std::vector<model::Prompt> batch;
    for (size_t i = first; i < end; ++i)
      batch.push_back(
          {.tokens = prompts[i].tokens, .images = prompts[i].images, .max_new_tokens = max_new});
    const std::vector<model::Generation> generations = model::generate(m, batch, options);
    for (size_t i = first; i < end; ++i) {
      const inference::PresentedPrompt shown{
          .record = &prompts[i], .tokens = prompts[i].tokens, .text = prompts[i].prompt};
      const rewards::Response r = inference::to_response(shown, generations[i - first], tokenizer);
      const bool right = tally.add(r, rule);
      if (answers) {
        telemetry::Record line;
        const std::optional<std::string> answer = rewards::extract_answer(r.text, rule.forms);
        line.add("index", static_cast<int64_t>(i))
            .add("correct", right)
            .add("answer", answer.value_or(""))
            .add("reference", prompts[i].answer)
            .add("response_tokens", r.total_tokens)
            .add("think_tokens", r.think_tokens)
            .add("finish", r.truncated ? "length" : "stop")
            .add("text", r.text);
        answers->write(line);
      }
    }
    const double s = seconds_since(start);
    std::fprintf(stderr, "answered %zu/%zu prompts, accuracy %.3f, %.0f s\n", end, prompts.size(),
                 tally.correct / static_cast<double>(end), s);
  }
  const double n = std::max<double>(1, static_cast<double>(prompts.size()));
  const double accuracy = tally.correct / n;
  telemetry::Record r;
  r.add("step", step)
      .add("eval", "greedy")
      .add("accuracy", accuracy)
      .add("accuracy_stderr", std::sqrt(accuracy * (1 - accuracy) / n))
      .add("think_tokens_mean", tally.think / n)
      .add("response_tokens_mean", tally.response_tokens / n)
      .add("truncated_fraction", tally.truncated / n)
      .add("prompts", static_cast<int64_t>(prompts.size()))
      .add("max_new_tokens", max_new)
      .add("temperature", options.sampling.temperature)
      .add("checkpoint", o.checkpoint)
      .add("seconds", seconds_since(start));
  std::printf(
      "%zu prompt(s): accuracy %.4f +- %.4f, %.1f response tokens per answer, %.3f "
      "truncated\n",
      prompts.size(), accuracy, std::sqrt(accuracy * (1 - accuracy) / n), tally.response_tokens / n,
      tally.truncated / n);
  if (answers) {
    answers->flush();
    answers.reset();
    std::filesystem::rename(answers_tmp, o.answers);
  }
  append_records(o.metrics, {r});
  return 0;
}

struct Totals {
  double prompts = 0, single = 0, majority = 0, answer = 0, tokens = 0, parallel_s = 0,
         sequential_s = 0;
};

int run(const Options& o) {
  muse::SourceConfig source = muse::source_config(o.checkpoint, "--checkpoint");
  muse::MuseConfig& cfg = source.cfg;
  apply_overrides(cfg, o.overrides);
  if (!o.tokenizer.empty()) cfg.data.tokenizer = o.tokenizer;
  if (o.chat) cfg.data.chat = true;
  const data::Tokenizer tokenizer = data::check_text_format(cfg.data);
  const model::Model aggregator =
      muse::formats::load_model_from(o.checkpoint, "--checkpoint", cfg.model, 0, at::kCPU);
  const model::ModelConfig& mc = aggregator.config();
  const data::PromptOptions popts{.image_tokens = mc.n_patches(),
                                  .image_size = mc.image_size,
                                  .image_channels = mc.image_channels};

  std::vector<data::PromptRecord> prompts;
  if (!o.prompts.empty()) {
    prompts = data::load_prompts(o.prompts, tokenizer, popts);
    if (o.limit && static_cast<size_t>(*o.limit) < prompts.size()) prompts.resize(*o.limit);
  } else {
    prompts.push_back(data::make_prompt(tokenizer, o.prompt, "", o.images, ".", popts));
  }
  const bool graded = !o.prompts.empty();
  if (o.adaptive) return run_adaptive(o, cfg, aggregator, tokenizer, prompts, source.step);
  if (!o.contemplate && !o.metrics.empty())
    return run_evaluation(o, cfg, aggregator, tokenizer, prompts, source.step);

  // Contemplating mode: the solver is --solver, else the run's separate
  // solver, else the checkpoint itself.
  const int64_t k = o.contemplate.value_or(0);
  std::unique_ptr<model::Model> separate_solver;
  const std::string solver_from = !o.solver.empty() ? o.solver : cfg.aggregate.solver;
  if (k > 0 && !solver_from.empty()) {
    separate_solver = std::make_unique<model::Model>(
        muse::formats::load_model_from(solver_from, "--solver", cfg.model, 0, at::kCPU));
  }
  const model::Model& solver = separate_solver ? *separate_solver : aggregator;
  const contemplate::AggregationFormat format = contemplate::AggregationFormat::from(cfg.aggregate);
  const rewards::AnswerRule rule = cfg.rewards.correctness.rule();
  const int64_t max_new = o.max_new_tokens.value_or(cfg.eval.max_new_tokens);
  const contemplate::SolverSampling solver_sampling{
      .temperature = o.temperature.value_or(cfg.aggregate.solver_temperature),
      .max_new_tokens = cfg.aggregate.solver_max_new_tokens,
      .seed = o.seed,
      .batch = 256};
  if (k > 0 && !o.metrics.empty()) {
    // The aggregation evaluation of the aggregate stage, for this K and R.
    contemplate::AggregateConfig eval_cfg = cfg.aggregate;
    eval_cfg.eval_k = {k};
    eval_cfg.eval_refine_rounds.clear();
    for (int64_t r = 1; r <= o.refine_rounds; ++r)  // what each round adds
      eval_cfg.eval_refine_rounds.push_back(r);
    eval_cfg.eval_problems = 0;
    eval_cfg.solver_temperature = solver_sampling.temperature;
    eval_cfg.solver_max_new_tokens = solver_sampling.max_new_tokens;
    const contemplate::AggregateSetup setup{.cfg = &eval_cfg,
                                            .format = format,
                                            .tokenizer = &tokenizer,
                                            .model = mc,
                                            .answer = rule,
                                            .seed = o.seed};
    // Records count aggregation training steps: a checkpoint from another
    // stage (a solver, SmolLM2) reads as an untrained aggregator, step 0.
    const int64_t aggregation_step = cfg.stage == "aggregate" ? source.step : 0;
    muse::comm::SoloCommunicator solo;
    std::vector<telemetry::Record> per_problem;
    const std::vector<telemetry::Record> records = contemplate::evaluate_contemplation(
        setup, solver, aggregator, prompts, max_new, aggregation_step, solo,
        o.answers.empty() ? nullptr : &per_problem);
    print_records(records);
    append_records(o.metrics, records);
    if (!o.answers.empty()) {
      std::string lines;
      for (const telemetry::Record& r : per_problem)
        lines += telemetry::to_json(r) + "\n";
      config::write_file_atomic(o.answers, lines);
    }
    return 0;
  }
  const model::Model& refiner = cfg.aggregate.refine_by == "aggregator" ? aggregator : solver;
  contemplate::SolverSampling refine_sampling = solver_sampling;
  refine_sampling.seed = config::mix_seed({o.seed, 1});  // revisions apart from the first samples
  const contemplate::SolverSampling final_sampling{
      .temperature = k > 0 ? 0 : o.temperature.value_or(0),
      .max_new_tokens = max_new,
      .seed = o.seed,
      .batch = 1};

  Totals totals;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const data::PromptRecord& problem = prompts[i];
    if ((graded || o.verbose) && !o.json)
      std::cout << "[" << i + 1 << "] " << one_line(problem.prompt) << "\n";
    const Clock::time_point start = Clock::now();
    std::vector<rewards::Response> candidates;
    int64_t spent = 0;  // tokens of candidates since revised
    data::PromptRecord final_prompt = problem;
    if (k > 0) {
      const inference::PresentedPrompt shown =
          inference::present_prompt(problem, 0, tokenizer, mc.image_token_id, mc.n_patches());
      candidates =
          contemplate::sample_candidates(solver, {shown}, k, solver_sampling, tokenizer).front();
      for (int64_t round = 1; round <= o.refine_rounds; ++round) {
        for (const rewards::Response& c : candidates)
          spent += c.total_tokens;
        if (o.verbose) {
          for (size_t j = 0; j < candidates.size(); ++j)
            std::cout << "  " << (round == 1 ? "" : "round " + std::to_string(round - 1) + " ")
                      << "candidate " << j + 1 << ": " << one_line(candidates[j].text) << "\n";
        }
        candidates = contemplate::refine_candidates(refiner, {shown}, {candidates}, format,
                                                    refine_sampling, tokenizer)
                         .front();
      }
      final_prompt = contemplate::aggregation_record(problem, candidates, format, tokenizer, mc);
      contemplate::check_fits(final_prompt, max_new, mc, "--contemplate",
                              "the aggregator prompt over " + std::to_string(k) + " candidates");
    }
    const rewards::Response answer =
        contemplate::aggregate(aggregator, {final_prompt}, final_sampling, tokenizer).front();
    const double parallel_s = seconds_since(start);
    if (o.json) {
      print_json_answer(final_prompt, answer);
      continue;
    }

    int64_t tokens = spent + answer.total_tokens;
    for (const rewards::Response& c : candidates)
      tokens += c.total_tokens;
    if (o.verbose) {
      const std::string label =
          o.refine_rounds > 0 ? "round " + std::to_string(o.refine_rounds) + " " : "";
      for (size_t j = 0; j < candidates.size(); ++j)
        std::cout << "  " << label << "candidate " << j + 1 << ": " << one_line(candidates[j].text)
                  << "\n";
      if (k > 0) std::cout << "  aggregator: " << one_line(answer.text) << "\n";
    }
    std::string line = "answer: " + shown_answer(answer, rule);
    if (graded) {
      const bool right = rewards::is_correct(answer, rule);
      line += "  (reference " + problem.answer + ", " + (right ? "correct" : "wrong") + ")";
      totals.answer += right ? 1 : 0;
      if (k > 0) {
        for (const rewards::Response& c : candidates)
          totals.single += rewards::is_correct(c, rule) ? 1.0 / static_cast<double>(k) : 0;
        const inference::Vote vote = inference::majority_vote(
            contemplate::candidate_answers(candidates, rule.forms), rule.match);
        totals.majority += inference::is_hard(vote, problem.answer, rule.match) ? 0 : 1;
        if (o.verbose) {
          std::cout << "  majority: " << vote.answer.value_or("(none)") << " (" << vote.votes
                    << " of " << k << " votes)\n";
        }
      }
    }
    std::cout << (graded || o.verbose ? "  " : "") << line << "\n";
    if (o.compare_sequential) {
      const double sequential_s = time_sequential_chain(aggregator, problem, tokens);
      totals.sequential_s += sequential_s;
      if (o.verbose) {
        std::printf("  %lld tokens: parallel %.3f s, one sequential chain %.3f s\n",
                    static_cast<long long>(tokens), parallel_s, sequential_s);
      }
    }
    totals.prompts += 1;
    totals.tokens += static_cast<double>(tokens);
    totals.parallel_s += parallel_s;
  }

  if ((graded || o.compare_sequential) && !o.json) {
    const double n = std::max(1.0, totals.prompts);
    std::printf("%lld prompt(s)", static_cast<long long>(totals.prompts));
    if (graded && k > 0) {
      std::printf(": single %.3f, majority@%lld %.3f, aggregator@%lld %.3f", totals.single / n,
                  static_cast<long long>(k), totals.majority / n, static_cast<long long>(k),
                  totals.answer / n);
    } else if (graded) {
      std::printf(": accuracy %.3f", totals.answer / n);
    }
    std::printf("; %.1f tokens per answer, %.3f s per answer", totals.tokens / n,
                totals.parallel_s / n);
    if (o.compare_sequential) {
      std::printf("; one sequential chain of as many tokens %.3f s (%.2fx the time)",
                  totals.sequential_s / n, totals.sequential_s / std::max(1e-9, totals.parallel_s));
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  bool help = false, version = false;
  std::string contemplate, max_new_tokens, temperature, seed = "0", limit, refine_rounds, batch;
  config::ArgParser args(
      "muse-generate",
      "--checkpoint DIR (--prompt TEXT [--image FILE ...] | --prompts FILE.jsonl) [options]",
      kDescription);
  args.option("--checkpoint", "DIR", &o.checkpoint,
              "checkpoint directory, run directory (its LATEST), or hf:DIR (a Hugging Face "
              "model directory: its config.json, weights and tokenizer)");
  args.option("--prompt", "TEXT", &o.prompt, "one prompt; <image> marks each --image");
  args.repeated("--image", "FILE", &o.images, "an image of --prompt, in marker order");
  args.option("--prompts", "FILE", &o.prompts, "JSON Lines prompts with reference answers");
  args.option("--limit", "N", &limit, "answer only the first N records of --prompts");
  args.option("--contemplate", "K", &contemplate,
              "contemplating mode: K solver samples, then the aggregator");
  args.option("--refine-rounds", "R", &refine_rounds,
              "with --contemplate: R rounds in which each agent sees the others' proposals and "
              "revises its own before the aggregator reads them");
  args.flag("--adaptive", &o.adaptive,
            "answer with the smallest of adaptive.budgets and expand where the answer looks "
            "uncertain");
  args.option("--metrics", "FILE", &o.metrics,
              "with --prompts: run the evaluation (greedy; fixed_budget@N and adaptive with "
              "--adaptive; the contemplating methods with --contemplate) and append its records "
              "to FILE");
  args.option("--answers", "FILE", &o.answers,
              "with --metrics: write one JSON line per prompt; plain answers: index, correct, "
              "answer, reference, response_tokens, finish, text; --contemplate: index, "
              "reference, and each method's correctness and answer (single: the share of the "
              "samples right)");
  args.option("--batch", "N", &batch,
              "with --metrics and plain answers: prompts answered in one batch (default 64)");
  args.repeated(
      "--set", "KEY=VALUE", &o.overrides,
      "change an adaptive.*, aggregate.*, rewards.*, data.chat* or data.tokens.* setting of the "
      "checkpoint's config");
  args.option("--solver", "DIR", &o.solver,
              "the solvers' checkpoint (default: the run's aggregate.solver, else --checkpoint)");
  args.option("--max-new-tokens", "N", &max_new_tokens,
              "generation limit of the answer, the aggregator's with --contemplate "
              "(default: the run's eval.max_new_tokens; the solvers keep "
              "aggregate.solver_max_new_tokens, which --set changes)");
  args.option("--temperature", "T", &temperature,
              "solver sampling temperature (default aggregate.solver_temperature); without "
              "--contemplate the answer's (default 0, greedy)");
  args.option("--seed", "S", &seed, "sampling seed (default 0)");
  args.option("--tokenizer", "FILE", &o.tokenizer, "tokenizer.json (default: the run's)");
  args.flag("--chat", &o.chat,
            "present each prompt as the user turn of the model's chat template (data.chat)");
  args.flag("--json", &o.json,
            "print one JSON object per prompt: prompt, prompt_ids, ids (the generated ids, "
            "without the stop token), text and finish (stop or length)");
  args.flag("--verbose", &o.verbose, "print every candidate, the vote and the aggregator's text");
  args.flag("--compare-sequential", &o.compare_sequential,
            "also time one sequential chain producing the same number of tokens");
  args.flag("--version", &version, "print the version and exit");
  args.flag("--help", &help, "print this help and exit");
  try {
    args.parse(argc, argv);
    if (config::print_help_or_version(
            args, help, version,
            std::string("muse-generate ") + MUSE_VERSION + " (commit " + MUSE_GIT_COMMIT + ")"))
      return 0;
    if (o.checkpoint.empty()) throw config::UsageError("--checkpoint is required");
    if (o.prompt.empty() == o.prompts.empty())
      throw config::UsageError("give one of --prompt and --prompts");
    if (!o.images.empty() && o.prompt.empty())
      throw config::UsageError("--image goes with --prompt (--prompts records name their images)");
    if (!contemplate.empty())
      o.contemplate = config::parse_int_option("--contemplate", contemplate, 1);
    if (!max_new_tokens.empty())
      o.max_new_tokens = config::parse_int_option("--max-new-tokens", max_new_tokens, 1);
    if (!temperature.empty())
      o.temperature = config::parse_number_option("--temperature", temperature, 0);
    if (!limit.empty()) o.limit = config::parse_int_option("--limit", limit, 1);
    o.seed = static_cast<uint64_t>(config::parse_int_option("--seed", seed, 0));
    if (!o.contemplate && !o.solver.empty())
      throw config::UsageError("--solver goes with --contemplate");
    if (!refine_rounds.empty()) {
      if (!o.contemplate) throw config::UsageError("--refine-rounds goes with --contemplate");
      o.refine_rounds = config::parse_int_option("--refine-rounds", refine_rounds, 0);
    }
    if (o.adaptive && o.contemplate)
      throw config::UsageError("--adaptive and --contemplate are separate modes; give one");
    if (!o.metrics.empty() && o.prompts.empty())
      throw config::UsageError(
          "--metrics needs --prompts (records are measured on graded prompts)");
    if (!batch.empty()) o.batch = config::parse_int_option("--batch", batch, 1);
    const bool plain_evaluation = !o.metrics.empty() && !o.adaptive && !o.contemplate;
    if (!o.answers.empty() && (o.metrics.empty() || o.adaptive))
      throw config::UsageError("--answers goes with --metrics and plain answers or --contemplate");
    if (!batch.empty() && !plain_evaluation)
      throw config::UsageError("--batch goes with --metrics and plain answers");
    if (!o.metrics.empty() && !o.adaptive && !o.contemplate && o.compare_sequential)
      throw config::UsageError("--compare-sequential does not go with a --metrics evaluation");
    if (o.adaptive && (o.max_new_tokens || o.temperature)) {
      throw config::UsageError(
          "--max-new-tokens and --temperature do not apply to --adaptive (set "
          "adaptive.budgets, adaptive.answer_tokens and adaptive.temperature with --set)");
    }
    if (o.json && (o.adaptive || o.contemplate || o.compare_sequential || !o.metrics.empty()))
      throw config::UsageError(
          "--json prints plain answers; it does not go with --adaptive, "
          "--contemplate, --compare-sequential or --metrics");
    if (o.adaptive && o.compare_sequential)
      throw config::UsageError("--compare-sequential goes with --contemplate or plain answers");
  } catch (const config::UsageError& e) {
    telemetry::log_error(std::string("muse-generate: ") + e.what());
    return kExitUsage;
  }
  try {
    return run(o);
  } catch (const config::ConfigError& e) {
    telemetry::log_error(e.key() + ": " + e.what());
    return kExitUsage;
  } catch (const data::DataError& e) {
    telemetry::log_error(e.what());
    return kExitUsage;
  } catch (const muse::checkpoints::CheckpointError& e) {
    telemetry::log_error(e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    telemetry::log_error(e.what());
    return kExitFailure;
  }
}
