#include "contemplate/candidate_sets.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <sstream>

#include "comm/agree.h"
#include "config/schema.h"
#include "config/splitmix64.h"
#include "inference/voting.h"
#include "rewards/terms.h"
#include "telemetry/log.h"
#include "telemetry/progress.h"

namespace muse::contemplate {
namespace {

using nlohmann::json;

// Seeds of the candidate samplings, apart from the rollouts' (step, rank).
constexpr uint64_t kPoolSeedTag = 0xA66A;
constexpr uint64_t kEvalSeedTag = 0xE7A1;
constexpr uint64_t kSelectSeedTag = 0x5E1E;
constexpr uint64_t kRefineSeedTag = 0x4EF1;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// This rank's share of problems [0, n): every size-th from rank.
std::vector<inference::PresentedPrompt> share_of(const std::vector<data::PromptRecord>& problems,
                                                 size_t n, const comm::Communicator& comm) {
  std::vector<inference::PresentedPrompt> out;
  for (size_t i = comm.rank(); i < n; i += comm.size())
    out.push_back({.record = &problems[i],
                   .tokens = problems[i].tokens,
                   .text = problems[i].prompt,
                   .budget = 0});
  return out;
}

// The methods' names after "majority@" and "aggregator@": "K" or "K+refine@R".
std::string method_suffix(int64_t k, int64_t rounds) {
  return std::to_string(k) + (rounds > 0 ? "+refine@" + std::to_string(rounds) : "");
}

std::string aggregator_name(int64_t step) {
  return step == 0 ? "aggregator_untrained@" : "aggregator@";
}

// The answer `response` gives in `forms`, or "" for none.
std::string answer_of(const rewards::Response& response,
                      std::span<const rewards::AnswerForm> forms) {
  return candidate_answers(std::span(&response, 1), forms).front().value_or("");
}

std::string aggregator_over(int64_t k) {
  return "an aggregator prompt over " + std::to_string(k) + " candidates";
}

int64_t think_sum(std::span<const rewards::Response> responses) {
  int64_t n = 0;
  for (const rewards::Response& r : responses)
    n += r.think_tokens;
  return n;
}

int64_t token_sum(std::span<const rewards::Response> responses) {
  int64_t n = 0;
  for (const rewards::Response& r : responses)
    n += r.total_tokens;
  return n;
}

SolverSampling solver_sampling(const AggregateConfig& cfg, uint64_t seed) {
  return {.temperature = cfg.solver_temperature,
          .max_new_tokens = cfg.solver_max_new_tokens,
          .seed = seed,
          .batch = 256};
}

}  // namespace

void check_aggregate_config(const AggregateConfig& cfg) {
  (void)AggregationFormat::from(cfg);
  if (cfg.eval_k.empty())
    throw config::ConfigError("aggregate.eval_k", "needs at least one candidate count");
}

AggregationPool build_pool(const AggregateSetup& setup, const model::Model& solver,
                           const std::vector<data::PromptRecord>& problems,
                           int64_t aggregator_max_new_tokens, comm::Communicator& comm) {
  const AggregateConfig& cfg = *setup.cfg;
  const int64_t k = cfg.k, sets = cfg.sets_per_problem;
  std::string mine;
  comm::run_agreed(comm, [&] {
    const std::vector<inference::PresentedPrompt> share = share_of(problems, problems.size(), comm);
    const auto candidates = sample_candidates(
        solver, share, k * sets,
        solver_sampling(
            cfg, config::mix_seed({setup.seed, kPoolSeedTag, static_cast<uint64_t>(comm.rank())})),
        *setup.tokenizer);
    std::ostringstream lines;
    for (size_t p = 0; p < share.size(); ++p) {
      const size_t problem = comm.rank() + p * comm.size();
      for (int64_t s = 0; s < sets; ++s) {
        const std::span<const rewards::Response> set(candidates[p].data() + s * k,
                                                     static_cast<size_t>(k));
        const inference::Vote vote = inference::majority_vote(
            candidate_answers(set, setup.answer.forms), setup.answer.match);
        const data::PromptRecord record =
            aggregation_record(problems[problem], set, setup.format, *setup.tokenizer, setup.model);
        check_fits(record, aggregator_max_new_tokens, setup.model, "aggregate.candidate_max_tokens",
                   aggregator_over(k));
        int64_t correct = 0;
        for (const rewards::Response& c : set)
          correct += rewards::is_correct(c, setup.answer) ? 1 : 0;
        lines << json{{"problem", problem},
                      {"set", s},
                      {"prompt", record.prompt},
                      {"answer", record.answer},
                      {"majority", vote.answer ? json(*vote.answer) : json(nullptr)},
                      {"votes", vote.votes},
                      {"hard", inference::is_hard(vote, record.answer, setup.answer.match)},
                      {"correct_candidates", correct},
                      {"think_tokens", think_sum(set)}}
                     .dump(-1, ' ', false, json::error_handler_t::replace)
              << "\n";
      }
    }
    mine = lines.str();
  });

  std::vector<json> all;
  for (const std::string& part : comm::all_gather_bytes(comm, mine)) {
    std::istringstream in(part);
    for (std::string line; std::getline(in, line);)
      all.push_back(json::parse(line));
  }
  std::sort(all.begin(), all.end(), [](const json& a, const json& b) {
    return std::pair(a["problem"].get<size_t>(), a["set"].get<int64_t>()) <
           std::pair(b["problem"].get<size_t>(), b["set"].get<int64_t>());
  });
  std::vector<bool> hard;
  double correct = 0, think = 0;
  for (const json& set : all) {
    hard.push_back(set["hard"].get<bool>());
    correct += set["correct_candidates"].get<double>();
    think += set["think_tokens"].get<double>();
  }
  const std::vector<size_t> chosen =
      select_sets(hard, cfg.easy_share, config::mix_seed({setup.seed, kSelectSeedTag}));
  const auto n_hard = std::count(hard.begin(), hard.end(), true);

  AggregationPool pool;
  std::vector<bool> selected(all.size(), false);
  for (size_t i : chosen) {
    selected[i] = true;
    const json& set = all[i];
    pool.records.push_back(aggregation_record_from_prompt(problems[set["problem"].get<size_t>()],
                                                          set["prompt"].get<std::string>(),
                                                          *setup.tokenizer, setup.model));
  }
  for (size_t i = 0; i < all.size(); ++i) {
    all[i]["selected"] = static_cast<bool>(selected[i]);
    pool.sets_jsonl += all[i].dump() + "\n";
  }
  const double n_sets = std::max<double>(1, static_cast<double>(all.size()));
  pool.summary.add("step", int64_t{0})
      .add("eval", "aggregation_pool")
      .add("accuracy", correct / (n_sets * static_cast<double>(k)))
      .add("think_tokens_mean", think / (n_sets * static_cast<double>(k)))
      .add("majority_accuracy", 1.0 - static_cast<double>(n_hard) / n_sets)
      .add("sets", static_cast<int64_t>(all.size()))
      .add("hard_sets", static_cast<int64_t>(n_hard))
      .add("selected_sets", static_cast<int64_t>(chosen.size()))
      .add("k", k);
  return pool;
}

std::vector<telemetry::Record> evaluate_contemplation(
    const AggregateSetup& setup, const model::Model& solver, const model::Model& aggregator,
    const std::vector<data::PromptRecord>& problems, int64_t max_new_tokens, int64_t step,
    comm::Communicator& comm, std::vector<telemetry::Record>* per_problem) {
  const AggregateConfig& cfg = *setup.cfg;
  const size_t n = cfg.eval_problems > 0
                       ? std::min(problems.size(), static_cast<size_t>(cfg.eval_problems))
                       : problems.size();
  const int64_t k_max = *std::max_element(cfg.eval_k.begin(), cfg.eval_k.end());
  std::vector<int64_t> rounds = {0};  // refinement rounds evaluated, none first
  for (const int64_t r : cfg.eval_refine_rounds)
    rounds.push_back(r);
  std::sort(rounds.begin(), rounds.end());
  rounds.erase(std::unique(rounds.begin(), rounds.end()), rounds.end());
  const model::Model& refiner = cfg.refine_by == "aggregator" ? aggregator : solver;
  // Sums: the problems, one sample's [correct, think, tokens], the greedy
  // solver's [correct, think, tokens], then per K and refinement round
  // majority [correct, pass@K, think, tokens, seconds, distinct answers] and aggregator
  // [correct, think, tokens, own think, own tokens, truncated, seconds].
  // Think and tokens count every candidate and revision; seconds are this
  // rank's time per method, candidate sampling shared out by K / max K.
  enum : size_t {
    kProblems,
    kSingleCorrect,
    kSingleThink,
    kSingleTokens,
    kGreedyCorrect,
    kGreedyThink,
    kGreedyTokens,
    kHead
  };
  enum : size_t { kMajCorrect, kPassAtK, kMajThink, kMajTokens, kMajSeconds, kDistinct };
  enum : size_t {
    kAggCorrect = 6,
    kAggThink,
    kAggTokens,
    kAggOwnThink,
    kAggOwnTokens,
    kAggTrunc,
    kAggSeconds,
    kPerBlock
  };
  const auto block = [&](size_t ki, size_t ri) {
    return kHead + kPerBlock * (ki * rounds.size() + ri);
  };
  std::vector<double> sums(block(cfg.eval_k.size(), 0), 0.0);
  if (per_problem) per_problem->clear();
  const SolverSampling refine_sampling = solver_sampling(
      cfg, config::mix_seed({setup.seed, kRefineSeedTag, static_cast<uint64_t>(comm.rank())}));
  comm::run_agreed(comm, [&] {
    const std::vector<inference::PresentedPrompt> share = share_of(problems, n, comm);
    if (share.empty()) return;
    const Clock::time_point sampling_start = Clock::now();
    const auto candidates = sample_candidates(
        solver, share, k_max,
        solver_sampling(
            cfg, config::mix_seed({setup.seed, kEvalSeedTag, static_cast<uint64_t>(comm.rank())})),
        *setup.tokenizer);
    const double sampling_s = seconds_since(sampling_start);
    // Progress: an evaluation of thousands of problems takes an hour on a CPU.
    const auto progress = [&](const std::string& what, double seconds) {
      telemetry::log_info("contemplation eval, " + std::to_string(share.size()) +
                          " problems: " + what + " in " + telemetry::format_number(seconds) + " s");
    };
    progress(std::to_string(k_max) + " candidates each sampled", sampling_s);
    sums[kProblems] = static_cast<double>(share.size());
    // Each problem's record, when asked for: correctness and answer per method.
    std::vector<telemetry::Record> mine(per_problem ? share.size() : 0);
    const auto note = [&](size_t p, const std::string& method, bool correct,
                          const std::string& answer) {
      if (mine.empty()) return;
      mine[p].add(method, correct).add(method + "_answer", answer);
    };
    for (size_t p = 0; p < mine.size(); ++p) {
      mine[p]
          .add("index", static_cast<int64_t>(share[p].record - problems.data()))
          .add("reference", share[p].record->answer);
    }
    for (size_t p = 0; p < candidates.size(); ++p) {
      const auto& set = candidates[p];
      int64_t right = 0;
      for (const rewards::Response& c : set) {
        const bool correct = rewards::is_correct(c, setup.answer);
        sums[kSingleCorrect] += correct ? 1.0 / k_max : 0;
        right += correct ? 1 : 0;
      }
      sums[kSingleThink] += static_cast<double>(think_sum(set)) / k_max;
      sums[kSingleTokens] += static_cast<double>(token_sum(set)) / k_max;
      if (!mine.empty()) mine[p].add("single", static_cast<double>(right) / k_max);
    }
    std::vector<data::PromptRecord> own;
    for (const inference::PresentedPrompt& p : share)
      own.push_back(*p.record);
    const Clock::time_point greedy_start = Clock::now();
    const std::vector<rewards::Response> greedy =
        aggregate(solver, own, {.temperature = 0, .max_new_tokens = cfg.solver_max_new_tokens},
                  *setup.tokenizer);
    for (size_t p = 0; p < greedy.size(); ++p) {
      const rewards::Response& g = greedy[p];
      const bool correct = rewards::is_correct(g, setup.answer);
      sums[kGreedyCorrect] += correct ? 1 : 0;
      sums[kGreedyThink] += static_cast<double>(g.think_tokens);
      sums[kGreedyTokens] += static_cast<double>(g.total_tokens);
      note(p, "greedy", correct, answer_of(g, setup.answer.forms));
    }
    progress("the solver's greedy answers", seconds_since(greedy_start));
    for (size_t ki = 0; ki < cfg.eval_k.size(); ++ki) {
      const int64_t k = cfg.eval_k[ki];
      // The first K candidates of each problem, then their revisions.
      std::vector<std::vector<rewards::Response>> sets;
      for (const auto& all : candidates)
        sets.emplace_back(all.begin(), all.begin() + k);
      double spent_think = 0, spent_tokens = 0;
      for (const auto& set : sets) {
        spent_think += static_cast<double>(think_sum(set));
        spent_tokens += static_cast<double>(token_sum(set));
      }
      double spent_s = sampling_s * static_cast<double>(k) / static_cast<double>(k_max);
      int64_t done_rounds = 0;
      for (size_t ri = 0; ri < rounds.size(); ++ri) {
        const Clock::time_point refine_start = Clock::now();
        for (; done_rounds < rounds[ri]; ++done_rounds) {
          sets = refine_candidates(refiner, share, sets, setup.format, refine_sampling,
                                   *setup.tokenizer);
          for (const auto& set : sets) {
            spent_think += static_cast<double>(think_sum(set));
            spent_tokens += static_cast<double>(token_sum(set));
          }
        }
        spent_s += seconds_since(refine_start);
        double* s = sums.data() + block(ki, ri);
        const std::string suffix = method_suffix(k, rounds[ri]);
        std::vector<data::PromptRecord> records;
        for (size_t p = 0; p < share.size(); ++p) {
          const auto answers = candidate_answers(sets[p], setup.answer.forms);
          const inference::Vote vote = inference::majority_vote(answers, setup.answer.match);
          const bool majority_right =
              !inference::is_hard(vote, share[p].record->answer, setup.answer.match);
          s[kMajCorrect] += majority_right ? 1 : 0;
          note(p, "majority@" + suffix, majority_right, vote.answer.value_or(""));
          s[kDistinct] +=
              static_cast<double>(inference::distinct_answers(answers, setup.answer.match));
          s[kPassAtK] +=
              std::any_of(sets[p].begin(), sets[p].end(),
                          [&](const auto& c) { return rewards::is_correct(c, setup.answer); })
                  ? 1
                  : 0;
          records.push_back(aggregation_record(*share[p].record, sets[p], setup.format,
                                               *setup.tokenizer, setup.model));
          check_fits(records.back(), max_new_tokens, setup.model, "aggregate.eval_k",
                     aggregator_over(k));
        }
        s[kMajThink] = spent_think;
        s[kMajTokens] = spent_tokens;
        s[kMajSeconds] = spent_s;
        const Clock::time_point aggregate_start = Clock::now();
        const std::vector<rewards::Response> answers = aggregate(
            aggregator, records, {.temperature = 0, .max_new_tokens = max_new_tokens, .seed = 0},
            *setup.tokenizer);
        for (size_t p = 0; p < answers.size(); ++p) {
          const rewards::Response& a = answers[p];
          const bool correct = rewards::is_correct(a, setup.answer);
          s[kAggCorrect] += correct ? 1 : 0;
          note(p, aggregator_name(step) + suffix, correct, answer_of(a, setup.answer.forms));
          s[kAggOwnThink] += static_cast<double>(a.think_tokens);
          s[kAggOwnTokens] += static_cast<double>(a.total_tokens);
          s[kAggTrunc] += a.truncated ? 1 : 0;
        }
        s[kAggThink] = s[kMajThink] + s[kAggOwnThink];
        s[kAggTokens] = s[kMajTokens] + s[kAggOwnTokens];
        s[kAggSeconds] = spent_s + seconds_since(aggregate_start);
        progress("majority@" + suffix + " and " + aggregator_name(step) + suffix,
                 seconds_since(refine_start));
      }
    }
    if (per_problem) *per_problem = std::move(mine);
  });
  sums = comm::sum_over_ranks(comm, sums);

  const double problems_n = std::max(1.0, sums[kProblems]);
  // A record with the keys every method has: sums per problem.
  const auto record = [&](const std::string& name, int64_t k, double correct, double think,
                          double tokens) {
    telemetry::Record r;
    r.add("step", step)
        .add("eval", name)
        .add("k", k)
        .add("accuracy", correct / problems_n)
        .add("think_tokens_mean", think / problems_n)
        .add("tokens_per_answer", tokens / problems_n)
        .add("prompts", static_cast<int64_t>(sums[kProblems]));
    return r;
  };
  std::vector<telemetry::Record> out = {
      record("single", 1, sums[kSingleCorrect], sums[kSingleThink], sums[kSingleTokens]),
      record("greedy", 1, sums[kGreedyCorrect], sums[kGreedyThink], sums[kGreedyTokens])};
  for (size_t ki = 0; ki < cfg.eval_k.size(); ++ki) {
    for (size_t ri = 0; ri < rounds.size(); ++ri) {
      const int64_t k = cfg.eval_k[ki];
      const double* s = sums.data() + block(ki, ri);
      const std::string suffix = method_suffix(k, rounds[ri]);
      out.push_back(record("majority@" + suffix, k, s[kMajCorrect], s[kMajThink], s[kMajTokens]));
      out.back()
          .add("pass_at_k", s[kPassAtK] / problems_n)
          .add("distinct_answers_mean", s[kDistinct] / problems_n)
          .add("refine_rounds", rounds[ri])
          .add("seconds_per_problem", s[kMajSeconds] / problems_n);
      out.push_back(
          record(aggregator_name(step) + suffix, k, s[kAggCorrect], s[kAggThink], s[kAggTokens]));
      out.back()
          .add("refine_rounds", rounds[ri])
          .add("aggregator_think_tokens_mean", s[kAggOwnThink] / problems_n)
          .add("aggregator_tokens_mean", s[kAggOwnTokens] / problems_n)
          .add("truncated_fraction", s[kAggTrunc] / problems_n)
          .add("seconds_per_problem", s[kAggSeconds] / problems_n);
    }
  }
  return out;
}

}  // namespace muse::contemplate
