#include "rl/rl_loop.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "checkpoints/checkpoint.h"
#include "comm/agree.h"
#include "config/files.h"
#include "config/schema.h"
#include "data/prompts.h"
#include "data/tokenizer.h"
#include "formats/model_source.h"
#include "model/model.h"
#include "rewards/registry.h"
#include "rewards/reward_set.h"
#include "rewards/terms.h"
#include "rl/adaptive.h"
#include "rl/advantages.h"
#include "rl/aggregate_stage.h"
#include "rl/policy_update.h"
#include "rl/rl_compute.h"
#include "rl/rollout.h"
#include "telemetry/log.h"
#include "telemetry/progress.h"
#include "trainer/lr_schedule.h"
#include "trainer/memory.h"
#include "trainer/prompt_eval.h"
#include "trainer/step_loop.h"
#include "trainer/training_state.h"

namespace muse::rl {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

// The adaptive evaluation's sampling seed (adaptive.samples > 1), apart from
// the rollouts'.
constexpr uint64_t kAdaptiveSeedTag = 0xADA7;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

trainer::FsdpOptions fsdp_options(const trainer::TrainJob& job, const comm::Communicator& comm,
                                  at::Device device) {
  trainer::FsdpOptions o = trainer::fsdp_options(job.trainer, comm.backend());
  o.device = device;
  return o;
}

// Sums over one step's responses, all-reduced as one vector; one sum per
// reward term follows kTermsBegin.
enum StepSum : size_t {
  kReward,
  kCorrect,
  kThink,
  kResponseTokens,
  kTruncated,
  kResponses,
  kGroupsKept,
  kGroups,
  kRolloutFlops,  // rl/rl_compute.h
  kUpdateFlops,
  kTermsBegin
};

// Sums over the evaluated prompts.
enum EvalSum : size_t {
  kEvalCorrect,
  kEvalThink,
  kEvalResponseTokens,
  kEvalTruncated,
  kEvalPrompts,
  kEvalSums
};

// The q-quantile (nearest rank) of a histogram of counts per value.
double histogram_quantile(const std::vector<double>& histogram, double q) {
  double total = 0;
  for (double c : histogram)
    total += c;
  double seen = 0;
  for (size_t v = 0; v < histogram.size(); ++v) {
    seen += histogram[v];
    if (seen >= q * total && seen > 0) return static_cast<double>(v);
  }
  return 0;
}

class Run {
 public:
  Run(const RlJob& job, comm::Communicator& comm, telemetry::Metrics& metrics)
      : job_(job),
        base_(job.base),
        comm_(comm),
        metrics_(metrics),
        device_(trainer::pick_device(base_.trainer, base_.local_rank, comm)),
        state_(base_.model, base_.seed, comm, fsdp_options(base_, comm, device_), base_.optim),
        schedule_(trainer::make_lr_schedule(base_.optim, base_.trainer.steps)),
        rewards_(job.rewards),
        advantage_(parse_advantage(job.rl.advantage)),
        policy_copy_(base_.model, base_.seed, device_) {
    // muse-train checks these before starting; another caller may not.
    check_launch(base_.stage, job.rl, job.rewards, comm.size());
    if (job.rl.kl.coef > 0) {
      reference_ = std::make_unique<trainer::FsdpModel>(base_.model, base_.seed, comm,
                                                        fsdp_options(base_, comm, device_));
    }
    update_options_ = {.loss = {.clip_low = job.rl.clip_low,
                                .clip_high = job.rl.clip_high,
                                .clip_dual = job.rl.clip_dual,
                                .kl_coef = job.rl.kl.coef,
                                .kl = parse_kl_estimator(job.rl.kl.estimator),
                                .agg = parse_loss_agg(job.rl.loss_agg)},
                       .mini_batches = job.rl.mini_batches,
                       .epochs = job.rl.epochs,
                       .micro_batch = job.rl.micro_batch,
                       .loss_constant = static_cast<double>(
                           job.rl.loss_constant > 0 ? job.rl.loss_constant : job.rl.max_new_tokens),
                       .max_consecutive_skips = base_.trainer.max_consecutive_skips};
    tokenizer_.emplace(data::Tokenizer::load(base_.data.tokenizer));
    if (aggregating_) {
      check_aggregate_config(job.aggregate);
      aggregate_.emplace(AggregateSetup{.cfg = &job.aggregate,
                                        .format = AggregationFormat::from(job.aggregate),
                                        .tokenizer = &*tokenizer_,
                                        .model = base_.model,
                                        .match = job.rewards.correctness.mode(),
                                        .seed = base_.seed});
    }
    const data::PromptOptions options{.image_tokens = base_.model.n_patches(),
                                      .image_size = base_.model.image_size,
                                      .image_channels = base_.model.image_channels};
    // The aggregate stage asks its aggregation prompts about these problems
    // (build_pool), once the solver is loaded.
    (aggregating_ ? problems_ : prompts_) =
        data::load_prompts(job.rl.prompts, *tokenizer_, options);
    if (!base_.eval.prompts.empty()) {
      for (const data::PromptRecord& record :
           data::load_prompts(base_.eval.prompts, *tokenizer_, options)) {
        // The adaptive evaluation states its own budgets.
        if (job.adaptive.eval && !aggregating_) adaptive_prompts_.push_back(record);
        const PresentedPrompt p =
            present(record, rewards_.uses_budget() ? rewards_.eval_budget() : 0);
        eval_prompts_.push_back({.tokens = p.tokens,
                                 .images = record.images,
                                 .prompt = p.text,
                                 .answer = record.answer});
      }
    }
    if (!aggregating_) schedule_prompts_.emplace(prompts_.size(), base_.seed);
    check_lengths();
  }

  void start() {
    if (aggregating_ && !job_.aggregate.solver.empty()) {
      solver_ =
          std::make_unique<model::Model>(load_solver(job_.aggregate.solver, "aggregate.solver"));
    }
    const std::filesystem::path latest = checkpoints::latest_checkpoint(base_.run_dir);
    if (!latest.empty()) {
      resume(latest);
      return;
    }
    if (!base_.init_from.empty()) {
      telemetry::log_info("initialised from " + state_.init_from(base_.init_from));
    }
    if (reference_) {
      // The reference is the policy RL starts from, frozen.
      at::NoGradGuard no_grad;
      for (size_t u = 0; u < reference_->units().size(); ++u)
        reference_->units()[u].param.copy_(state_.model().units()[u].param);
    }
  }

  // The aggregate stage's training prompts: AggLM's candidate sets from the
  // separate solver, or from the starting weights when one model does both.
  // Collective.
  void build_aggregation_prompts() {
    std::unique_ptr<model::Model> starting;
    const model::Model* solver = solver_.get();
    comm::run_agreed(comm_, [&] {
      if (solver) return;
      if (step_ == 0) {
        refresh_policy_copy();
        solver = &policy_copy_;
      } else if (base_.init_from.empty()) {
        starting = std::make_unique<model::Model>(base_.model, base_.seed, device_);
      } else {
        starting = std::make_unique<model::Model>(load_solver(base_.init_from, "init_from"));
      }
      if (!solver) solver = starting.get();
    });
    AggregationPool pool =
        build_pool(*aggregate_, *solver, problems_, job_.rl.max_new_tokens, comm_);
    prompts_ = std::move(pool.records);
    schedule_prompts_.emplace(prompts_.size(), base_.seed);
    comm::run_agreed(comm_, [&] {
      check_lengths();  // the aggregation prompts, with any budget sentence
      if (comm_.rank() != 0) return;
      config::write_file_atomic(base_.run_dir / "aggregation_sets.jsonl", pool.sets_jsonl);
      if (step_ == 0) metrics_.write(pool.summary);
      telemetry::log_info(
          "aggregation sets: " + std::to_string(std::get<int64_t>(*pool.summary.find("sets"))) +
          ", hard " + std::to_string(std::get<int64_t>(*pool.summary.find("hard_sets"))) +
          ", training on " + std::to_string(prompts_.size()) + " (aggregation_sets.jsonl)");
    });
  }

  void train() {
    const trainer::StepHooks hooks{
        .on_start =
            [&] {
              // The starting policy's held-out numbers, the baseline of the run.
              if (step_ == 0 && base_.eval.every > 0) evaluate();
            },
        .step = [&] { return rl_step(); },
        .progress =
            [&](const telemetry::Record& r) {
              return trainer::ProgressFields{
                  {"reward", telemetry::format_number(value(r, "reward_mean"))},
                  {"acc", telemetry::format_number(value(r, "accuracy"))},
                  {"think", telemetry::format_number(value(r, "think_tokens_mean"))}};
            },
        .evaluate = [&] { evaluate(); },
        .save = [&] { save(); }};
    trainer::run_steps(
        "rl", step_,
        trainer::step_schedule(base_.trainer, base_.checkpoint, base_.eval, base_.telemetry), comm_,
        metrics_, hooks);
  }

 private:
  // One RL step, top to bottom: rollout -> reward -> advantage -> loss and
  // update. Returns its record.
  telemetry::Record rl_step() {
    const Clock::time_point start = Clock::now();
    const RlConfig& rl = job_.rl;
    const int64_t G = rl.group_size;

    // Rollout: this rank's share of the step's prompts, G samples each, from
    // the current policy gathered into a full copy on every rank.
    std::vector<PresentedPrompt> prompts;
    const std::vector<size_t> chosen = schedule_prompts_->step_prompts(step_, rl.prompts_per_step);
    for (size_t i = comm_.rank(); i < chosen.size(); i += comm_.size()) {
      const int64_t budget =
          rewards_.uses_budget()
              ? rewards::draw_budget(
                    job_.rewards.length,
                    config::mix_seed({base_.seed, static_cast<uint64_t>(step_), chosen[i]}))
              : 0;
      prompts.push_back(present(prompts_[chosen[i]], budget));
    }
    refresh_policy_copy();
    model::GenerateOptions sampling;
    sampling.sampling = {.temperature = rl.temperature, .top_k = 0, .top_p = rl.top_p};
    sampling.stop_tokens = {tokenizer_->special_id(data::kEndOfText)};
    sampling.seed = config::mix_seed(
        {base_.seed, static_cast<uint64_t>(step_), static_cast<uint64_t>(comm_.rank())});
    const std::vector<model::Generation> generations =
        sample_groups(policy_copy_, prompts, G, rl.max_new_tokens, sampling);
    const double rollout_seconds = seconds_since(start);

    // Reward each group together (group-relative terms compare its
    // responses), then turn rewards into advantages within the group.
    const rewards::Context context{.step = step_, .max_new_tokens = rl.max_new_tokens};
    const std::vector<std::string> terms = rewards_.term_names();
    std::vector<double> sums(kTermsBegin + terms.size(), 0.0);
    std::vector<double> think_histogram(rl.max_new_tokens + 1, 0.0);
    double length_weight = 0;
    std::vector<Sample> samples;
    for (size_t p = 0; p < prompts.size(); ++p) {
      std::vector<rewards::Response> group;
      for (int64_t j = 0; j < G; ++j)
        group.push_back(to_response(prompts[p], generations[p * G + j], *tokenizer_));
      const rewards::Scores scores = rewards_.score(group, context);
      length_weight = scores.length_weight;
      const std::vector<double> advantages = group_advantages(advantage_, scores.total);
      const bool all_equal = std::all_of(scores.total.begin(), scores.total.end(),
                                         [&](double r) { return r == scores.total.front(); });
      const bool keep = !(rl.dynamic_sampling && all_equal);
      for (int64_t j = 0; j < G; ++j) {
        const rewards::Response& r = group[j];
        sums[kReward] += scores.total[j];
        sums[kCorrect] += scores.correct[j];
        sums[kThink] += static_cast<double>(r.think_tokens);
        sums[kResponseTokens] += static_cast<double>(r.total_tokens);
        sums[kTruncated] += r.truncated ? 1 : 0;
        think_histogram[std::min(r.think_tokens, rl.max_new_tokens)] += 1;
        for (size_t t = 0; t < terms.size(); ++t)
          sums[kTermsBegin + t] += scores.terms[t].second[j];
        if (!keep || (rl.mask_truncated && r.truncated)) continue;
        samples.push_back({.prompt = prompts[p].tokens,
                           .images = prompts[p].record->images,
                           .response = generations[p * G + j].tokens,
                           .advantage = advantages[j]});
      }
      for (int64_t j = 0; j < G; ++j) {
        sums[kRolloutFlops] +=
            rollout_flops(base_.model, static_cast<int64_t>(prompts[p].tokens.size()),
                          static_cast<int64_t>(generations[p * G + j].tokens.size()));
      }
      sums[kResponses] += static_cast<double>(G);
      sums[kGroupsKept] += keep ? 1 : 0;
      sums[kGroups] += 1;
    }
    if (advantage_ == AdvantageKind::kReinforcePPBaseline) {
      // REINFORCE++-baseline whitens over every loss token of the global batch.
      std::vector<double> adv, counts;
      for (const Sample& s : samples) {
        adv.push_back(s.advantage);
        counts.push_back(static_cast<double>(s.response.size()));
      }
      const Moments local = token_moments(adv, counts);
      const std::vector<double> g =
          comm::sum_over_ranks(comm_, {local.weight, local.sum, local.sum_sq});
      whiten(adv, {.weight = g[0], .sum = g[1], .sum_sq = g[2]});
      for (size_t i = 0; i < samples.size(); ++i)
        samples[i].advantage = adv[i];
    }

    // Loss and update: the clipped surrogate (+ KL) over the kept responses.
    const Clock::time_point train_start = Clock::now();
    const double lr = schedule_(step_);
    const UpdateStats update =
        policy_update(state_, reference_.get(), samples, update_options_, lr, step_ + 1, comm_);
    const double train_seconds = seconds_since(train_start);
    for (const Sample& s : samples) {
      sums[kUpdateFlops] += update_flops(base_.model, update_options_, reference_ != nullptr,
                                         static_cast<int64_t>(s.prompt.size()),
                                         static_cast<int64_t>(s.response.size()));
    }
    ++step_;

    sums = comm::sum_over_ranks(comm_, sums);
    rollout_flops_ += sums[kRolloutFlops];
    update_flops_ += sums[kUpdateFlops];
    think_histogram = comm::sum_over_ranks(comm_, think_histogram);
    const double responses = std::max(1.0, sums[kResponses]);
    const double seconds = seconds_since(start);
    const int64_t generated = static_cast<int64_t>(sums[kResponseTokens]);
    telemetry::Record r;
    r.add("step", step_)
        .add("reward_mean", sums[kReward] / responses)
        .add("accuracy", sums[kCorrect] / responses)
        .add("think_tokens_mean", sums[kThink] / responses)
        .add("think_tokens_p50", histogram_quantile(think_histogram, 0.5))
        .add("think_tokens_p90", histogram_quantile(think_histogram, 0.9))
        .add("response_tokens_mean", sums[kResponseTokens] / responses)
        .add("truncated_fraction", sums[kTruncated] / responses);
    for (size_t t = 0; t < terms.size(); ++t)
      r.add("reward_" + terms[t] + "_mean", sums[kTermsBegin + t] / responses);
    r.add("length_weight", length_weight)
        .add("groups_kept", sums[kGroupsKept] / std::max(1.0, sums[kGroups]))
        .add("loss", update.loss)
        .add("grad_norm", update.grad_norm)
        .add("lr", lr)
        .add("kl", update.kl_mean)
        .add("entropy", update.entropy_mean)
        .add("clip_fraction", update.clip_fraction)
        .add("ratio_mean", update.ratio_mean)
        .add("optimizer_steps", update.optimizer_steps)
        .add("tokens", generated);
    add_compute(r);
    r.add("rollout_tokens_per_s", sums[kResponseTokens] / rollout_seconds)
        .add("train_tokens_per_s",
             update.tokens * static_cast<double>(job_.rl.epochs) / std::max(train_seconds, 1e-9))
        .add("step_time_s", seconds)
        .add("rollout_time_s", rollout_seconds)
        .add("peak_rss_bytes", telemetry::peak_rss_bytes())
        .add("shard_bytes", state_.shard_bytes())
        .add("skipped", update.skipped_steps > 0)
        .add("skipped_total", state_.skipped_total());
    return r;
  }

  // The cumulative compute of the run so far, over all ranks (with `parts`,
  // also its rollout and update shares); left out when the run resumed from a
  // checkpoint that did not keep it.
  void add_compute(telemetry::Record& r, bool parts = true) const {
    if (!compute_known_) return;
    if (parts)
      r.add("compute_rollout_flops", rollout_flops_).add("compute_update_flops", update_flops_);
    r.add("compute_flops", rollout_flops_ + update_flops_);
  }

  static double value(const telemetry::Record& r, const std::string& key) {
    return std::get<double>(*r.find(key));
  }

  // policy_copy_ = the current weights; the step after an evaluation reuses
  // the evaluation's copy.
  void refresh_policy_copy() {
    if (copy_step_ == step_) return;
    state_.model().gather_into(policy_copy_);
    copy_step_ = step_;
  }

  // Prompt + generation limit must fit the model's positions; the generator
  // would otherwise fail in the middle of the run.
  void check_lengths() const {
    const auto longest = [](const std::vector<int64_t>& lengths) {
      return lengths.empty() ? int64_t{0} : *std::max_element(lengths.begin(), lengths.end());
    };
    std::vector<int64_t> train_lengths, eval_lengths, problem_lengths;
    const int64_t budget = rewards_.uses_budget() ? job_.rewards.length.budget_max : 0;
    for (const data::PromptRecord& record : prompts_)
      train_lengths.push_back(static_cast<int64_t>(present(record, budget).tokens.size()));
    for (const data::PromptRecord& record : eval_prompts_)
      eval_lengths.push_back(static_cast<int64_t>(record.tokens.size()));
    for (const data::PromptRecord& record : problems_)
      problem_lengths.push_back(static_cast<int64_t>(record.tokens.size()));
    // The aggregate stage's solvers answer the training and held-out problems.
    const int64_t solver_need = aggregating_
                                    ? std::max(longest(problem_lengths), longest(eval_lengths)) +
                                          job_.aggregate.solver_max_new_tokens
                                    : 0;
    const std::pair<const char*, int64_t> checks[] = {
        {"rl.max_new_tokens", longest(train_lengths) + job_.rl.max_new_tokens},
        {"eval.max_new_tokens", longest(eval_lengths) + base_.eval.max_new_tokens},
        {"aggregate.solver_max_new_tokens", solver_need}};
    for (const auto& [key, need] : checks) {
      if (need > base_.model.max_seq_len) {
        throw config::ConfigError(key, "the longest prompt plus the new tokens is " +
                                           std::to_string(need) + " positions, more than " +
                                           "model.max_seq_len (" +
                                           std::to_string(base_.model.max_seq_len) + ")");
      }
    }
  }

  PresentedPrompt present(const data::PromptRecord& record, int64_t budget) const {
    return present_prompt(record, budget, *tokenizer_, base_.model.image_token_id,
                          base_.model.n_patches());
  }

  // A full copy of the weights `from` names (a checkpoint or run directory,
  // or hf:DIR), with the run's vocabulary.
  model::Model load_solver(const std::string& from, const std::string& key) const {
    model::Model m = formats::load_model_from(from, key, base_.model, base_.seed, device_);
    if (m.config().vocab_size != base_.model.vocab_size) {
      throw config::ConfigError(
          key, from + " has a vocabulary of " + std::to_string(m.config().vocab_size) +
                   " tokens, model.vocab_size is " + std::to_string(base_.model.vocab_size));
    }
    return m;
  }

  // One sample, majority vote and the aggregator over the same candidates.
  void evaluate_aggregation() {
    refresh_policy_copy();
    const std::vector<telemetry::Record> records =
        evaluate_contemplation(*aggregate_, solver_ ? *solver_ : policy_copy_, policy_copy_,
                               eval_prompts_, base_.eval.max_new_tokens, step_, comm_);
    if (comm_.rank() != 0) return;
    std::string line = "eval at step " + std::to_string(step_) + ":";
    for (const telemetry::Record& r : records) {
      metrics_.write(r);
      line += " " + std::get<std::string>(*r.find("eval")) + " " +
              telemetry::format_number(value(r, "accuracy"));
    }
    telemetry::log_info(line);
  }

  // Greedy answers to eval.prompts: accuracy and reasoning length.
  void evaluate() {
    if (aggregating_) {
      evaluate_aggregation();
      return;
    }
    refresh_policy_copy();
    const trainer::PromptAnswers answers =
        trainer::answer_prompts(policy_copy_, *tokenizer_, eval_prompts_, base_.eval.max_new_tokens,
                                comm_.rank(), comm_.size());
    std::vector<double> sums(kEvalSums, 0.0);
    const rewards::MatchMode mode = base_.eval_match;
    for (size_t i = 0; i < answers.generations.size(); ++i) {
      const data::PromptRecord& record = *answers.records[i];
      const PresentedPrompt shown{
          .record = &record, .tokens = record.tokens, .text = record.prompt, .budget = 0};
      const rewards::Response resp = to_response(shown, answers.generations[i], *tokenizer_);
      sums[kEvalCorrect] += rewards::is_correct(resp, mode) ? 1 : 0;
      sums[kEvalThink] += static_cast<double>(resp.think_tokens);
      sums[kEvalResponseTokens] += static_cast<double>(resp.total_tokens);
      sums[kEvalTruncated] += resp.truncated ? 1 : 0;
      sums[kEvalPrompts] += 1;
    }
    sums = comm::sum_over_ranks(comm_, sums);
    const double n = std::max(1.0, sums[kEvalPrompts]);
    telemetry::Record r;
    r.add("step", step_)
        .add("eval", "heldout")
        .add("accuracy", sums[kEvalCorrect] / n)
        .add("think_tokens_mean", sums[kEvalThink] / n)
        .add("response_tokens_mean", sums[kEvalResponseTokens] / n)
        .add("truncated_fraction", sums[kEvalTruncated] / n)
        .add("prompts", static_cast<int64_t>(sums[kEvalPrompts]));
    add_compute(r, false);
    if (comm_.rank() == 0) {
      metrics_.write(r);
      telemetry::log_info("eval heldout at step " + std::to_string(step_) + ": accuracy " +
                          telemetry::format_number(sums[kEvalCorrect] / n) + ", think tokens " +
                          telemetry::format_number(sums[kEvalThink] / n) + " on " +
                          std::to_string(static_cast<int64_t>(sums[kEvalPrompts])) + " prompts");
    }
    if (job_.adaptive.eval) evaluate_adaptive_budgets(mode);
  }

  // adaptive.eval: each fixed budget and adaptive re-expansion on eval.prompts.
  void evaluate_adaptive_budgets(rewards::MatchMode mode) {
    const AdaptiveSetup setup{
        .cfg = &job_.adaptive,
        .tokenizer = &*tokenizer_,
        .match = mode,
        .budget_prompt = states_budget(job_.adaptive, job_.rewards.length.kind),
        .seed = config::mix_seed({static_cast<uint64_t>(base_.seed), kAdaptiveSeedTag})};
    const std::vector<telemetry::Record> records =
        evaluate_adaptive(policy_copy_, adaptive_prompts_, setup, step_, comm_);
    if (comm_.rank() != 0) return;
    std::string line = "eval at step " + std::to_string(step_) + ":";
    for (const telemetry::Record& r : records) {
      metrics_.write(r);
      line += " " + std::get<std::string>(*r.find("eval")) + " " +
              telemetry::format_number(value(r, "accuracy")) + " (" +
              telemetry::format_number(value(r, "think_tokens_mean")) + " tokens)";
    }
    telemetry::log_info(line);
  }

  void save() {
    json train_state{{"stage", base_.stage},
                     {"step", step_},
                     {"optimizer_steps", state_.optimizer_steps()},
                     {"skipped_total", state_.skipped_total()},
                     {"consecutive_skips", state_.consecutive_skips()}};
    if (compute_known_) {
      train_state["compute_rollout_flops"] = rollout_flops_;
      train_state["compute_update_flops"] = update_flops_;
    }
    checkpoints::SaveRequest request{.step = step_,
                                     .model = base_.model,
                                     .config_yaml = base_.config_yaml,
                                     .train_state = train_state.dump(),
                                     .rank_state = trainer::cpu_rng_state(),
                                     .tensors = {}};
    state_.add_to_checkpoint(request);
    if (reference_) {
      const int rank = comm_.rank();
      for (const trainer::FsdpUnit& unit : reference_->units()) {
        request.tensors.push_back({trainer::unit_tensor_name(unit, "reference"), unit.shards.numel,
                                   unit.shards.begin(rank),
                                   unit.param.narrow(0, 0, unit.shards.valid(rank))});
      }
    }
    const std::filesystem::path dir =
        checkpoints::save_checkpoint(base_.run_dir, request, comm_, base_.checkpoint.keep);
    telemetry::log_info("checkpoint: " + dir.string());
  }

  void resume(const std::filesystem::path& dir) {
    const checkpoints::Checkpoint ckpt(dir);
    const json state = json::parse(ckpt.train_state());
    state_.resume(ckpt, state.at("optimizer_steps").get<int64_t>(),
                  state.at("skipped_total").get<int64_t>(),
                  state.at("consecutive_skips").get<int64_t>());
    step_ = state.at("step").get<int64_t>();
    // Rollout lengths vary, so the compute so far cannot be recomputed from
    // the step: it comes back from the checkpoint or stays unknown.
    compute_known_ = state.contains("compute_rollout_flops");
    if (compute_known_) {
      rollout_flops_ = state.at("compute_rollout_flops").get<double>();
      update_flops_ = state.at("compute_update_flops").get<double>();
    } else if (comm_.rank() == 0) {
      telemetry::log_warning(dir.string() +
                             " does not record the compute so far: records leave out compute_*");
    }
    if (reference_) {
      const auto names = ckpt.tensor_names();
      const std::string first = trainer::unit_tensor_name(reference_->units().front(), "reference");
      if (std::find(names.begin(), names.end(), first) == names.end()) {
        throw config::ConfigError(
            "rl.kl.coef",
            dir.string() + " holds no reference policy (it was saved with rl.kl.coef = 0)");
      }
      at::NoGradGuard no_grad;
      for (trainer::FsdpUnit& unit : reference_->units())
        unit.param.copy_(state_.read_shard(ckpt, unit, "reference"));
    }
    if (ckpt.world_size() == comm_.size())
      trainer::set_cpu_rng_state(ckpt.rank_state(comm_.rank()));
    telemetry::log_info("resumed from " + dir.string() + " at step " + std::to_string(step_));
  }

  const RlJob& job_;
  const trainer::TrainJob& base_;
  const bool aggregating_ = job_.base.stage == "aggregate";
  comm::Communicator& comm_;
  telemetry::Metrics& metrics_;
  at::Device device_;
  trainer::TrainingState state_;
  trainer::LrSchedule schedule_;
  rewards::RewardSet rewards_;
  AdvantageKind advantage_;
  UpdateOptions update_options_;
  std::unique_ptr<trainer::FsdpModel> reference_;  // null without a KL penalty
  model::Model policy_copy_;                       // the full weights, for rollouts and evaluation
  int64_t copy_step_ = -1;                         // the step whose weights policy_copy_ holds
  std::optional<data::Tokenizer> tokenizer_;
  std::vector<data::PromptRecord> prompts_;
  std::vector<data::PromptRecord> eval_prompts_;      // as presented (with any budget sentence)
  std::vector<data::PromptRecord> adaptive_prompts_;  // eval.prompts as loaded, for adaptive.eval
  std::optional<PromptSchedule> schedule_prompts_;
  int64_t step_ = 0;
  // Cumulative FLOPs over all ranks since the run started (rl/rl_compute.h).
  double rollout_flops_ = 0;
  double update_flops_ = 0;
  bool compute_known_ = true;
  // The aggregate stage: its setup, training problems and separate solver.
  std::optional<AggregateSetup> aggregate_;
  std::vector<data::PromptRecord> problems_;
  std::unique_ptr<model::Model> solver_;  // null when the policy solves too
};

}  // namespace

void check_launch(const std::string& stage, const RlConfig& rl,
                  const rewards::RewardsConfig& rewards, int world_size) {
  if (rl.prompts.empty()) {
    throw config::ConfigError("rl.prompts",
                              "the " + stage + " stage needs a prompt set" +
                                  (stage == "aggregate" ? " (the solvers' problems)" : ""));
  }
  if (rl.prompts_per_step % world_size != 0) {
    throw config::ConfigError("rl.prompts_per_step", std::to_string(rl.prompts_per_step) +
                                                         " prompts do not split over " +
                                                         std::to_string(world_size) + " ranks");
  }
  rewards::check_length_limits(rewards.length, rl.max_new_tokens);
}

void train_rl(const RlJob& job, comm::Communicator& comm, telemetry::Metrics& metrics) {
  std::unique_ptr<Run> run;
  comm::run_agreed(comm, [&] { run = std::make_unique<Run>(job, comm, metrics); });
  comm::run_agreed(comm, [&] { run->start(); });
  if (job.base.stage == "aggregate") run->build_aggregation_prompts();
  run->train();
}

}  // namespace muse::rl
