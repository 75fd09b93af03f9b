#include "rl/policy_trainer.h"

#include "data/prompts.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "checkpoints/checkpoint.h"
#include "comm/agree.h"
#include "config/schema.h"
#include "config/splitmix64.h"
#include "data/prompts.h"
#include "formats/model_source.h"
#include "rewards/registry.h"
#include "rewards/terms.h"
#include "rl/fault_point.h"
#include "rl/rl_compute.h"
#include "telemetry/log.h"
#include "telemetry/progress.h"
#include "trainer/step_loop.h"

namespace muse::rl {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

trainer::FsdpOptions fsdp_options(const trainer::TrainJob& job, const comm::Communicator& comm,
                                  at::Device device) {
  trainer::FsdpOptions o = trainer::fsdp_options(job.trainer, comm.backend());
  o.device = device;
  return o;
}

double value(const telemetry::Record& r, const std::string& key) {
  return std::get<double>(*r.find(key));
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
  kGroupsTrained,
  kRolloutFlops,  // rl/rl_compute.h
  kUpdateFlops,
  kTermsBegin
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

}  // namespace

void check_launch(trainer::Stage stage, const RlConfig& rl, const rewards::RewardsConfig& rewards,
                  int world_size) {
  if (rl.prompts.empty()) {
    throw config::ConfigError(
        "rl.prompts", "the " + std::string(trainer::stage_name(stage)) +
                          " stage needs a prompt set" +
                          (stage == trainer::Stage::kAggregate ? " (the solvers' problems)" : ""));
  }
  if (rl.prompts_per_step % world_size != 0) {
    throw config::ConfigError("rl.prompts_per_step", std::to_string(rl.prompts_per_step) +
                                                         " prompts do not split over " +
                                                         std::to_string(world_size) + " ranks");
  }
  if (rl.dynamic_sampling_rounds > 1 && !rl.dynamic_sampling) {
    throw config::ConfigError("rl.dynamic_sampling_rounds",
                              std::to_string(rl.dynamic_sampling_rounds) +
                                  " rounds need rl.dynamic_sampling: true (rounds look for "
                                  "groups whose rewards differ)");
  }
  (void)make_advantage(rl.advantage);
  rewards::check_length_limits(rewards.length, rl.max_new_tokens);
}

void check_positions(const std::string& key, int64_t need, int64_t max_seq_len) {
  if (need <= max_seq_len) return;
  throw config::ConfigError(key, "the longest prompt plus the new tokens is " +
                                     std::to_string(need) + " positions, more than " +
                                     "model.max_seq_len (" + std::to_string(max_seq_len) + ")");
}

int64_t longest(const std::vector<int64_t>& lengths) {
  return lengths.empty() ? int64_t{0} : *std::max_element(lengths.begin(), lengths.end());
}

PolicyTrainer::PolicyTrainer(const RlJob& job, comm::Communicator& comm,
                             telemetry::Metrics& metrics)
    : job_(job),
      base_(job.base),
      comm_(comm),
      metrics_(metrics),
      device_(trainer::pick_device(base_.trainer, base_.local_rank, comm)),
      state_(base_.model, base_.seed, comm, fsdp_options(base_, comm, device_), base_.optim),
      schedule_(trainer::make_lr_schedule(base_.optim, base_.trainer.steps)),
      rewards_(job.rewards),
      advantage_(make_advantage(job.rl.advantage)),
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
                     .max_consecutive_skips = base_.trainer.max_consecutive_skips,
                     .loss_chunk_tokens = base_.trainer.loss_chunk_tokens};
  tokenizer_.emplace(data::open_tokenizer(base_.data));
  if (!base_.eval.prompts.empty()) {
    eval_records_ = data::load_prompts(base_.eval.prompts, *tokenizer_,
                                       {.image_tokens = base_.model.n_patches(),
                                        .image_size = base_.model.image_size,
                                        .image_channels = base_.model.image_channels});
    for (const data::PromptRecord& record : eval_records_) {
      const inference::PresentedPrompt p =
          present(record, rewards_.uses_budget() ? rewards_.eval_budget() : 0);
      eval_prompts_.push_back(
          {.tokens = p.tokens, .images = record.images, .prompt = p.text, .answer = record.answer});
    }
  }
}

void PolicyTrainer::set_prompts(std::vector<data::PromptRecord> prompts) {
  prompts_ = std::move(prompts);
  schedule_prompts_.emplace(prompts_.size(), base_.seed);
}

void PolicyTrainer::check_lengths() const {
  std::vector<int64_t> train_lengths, eval_lengths;
  const int64_t budget = rewards_.uses_budget() ? job_.rewards.length.budget_max : 0;
  for (const data::PromptRecord& record : prompts_)
    train_lengths.push_back(static_cast<int64_t>(present(record, budget).tokens.size()));
  for (const data::PromptRecord& record : eval_prompts_)
    eval_lengths.push_back(static_cast<int64_t>(record.tokens.size()));
  check_positions("rl.max_new_tokens", longest(train_lengths) + job_.rl.max_new_tokens,
                  base_.model.max_seq_len);
  check_positions("eval.max_new_tokens", longest(eval_lengths) + base_.eval.max_new_tokens,
                  base_.model.max_seq_len);
}

void PolicyTrainer::start() {
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

const model::Model& PolicyTrainer::policy() {
  // The step after an evaluation reuses the evaluation's copy.
  if (copy_step_ != step_) {
    state_.model().gather_into(policy_copy_);
    copy_step_ = step_;
  }
  return policy_copy_;
}

void PolicyTrainer::add_compute(telemetry::Record& r, bool parts) const {
  if (!compute_known_) return;
  if (parts)
    r.add("compute_rollout_flops", rollout_flops_).add("compute_update_flops", update_flops_);
  r.add("compute_flops", rollout_flops_ + update_flops_);
}

model::Model PolicyTrainer::load_model(const std::string& from, const std::string& key) const {
  model::Model m = formats::load_model_from(from, key, base_.model, base_.seed, device_);
  if (m.config().vocab_size != base_.model.vocab_size) {
    throw config::ConfigError(
        key, from + " has a vocabulary of " + std::to_string(m.config().vocab_size) +
                 " tokens, model.vocab_size is " + std::to_string(base_.model.vocab_size));
  }
  return m;
}

void PolicyTrainer::train(const std::function<void()>& evaluate) {
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
      .evaluate = evaluate,
      .save = [&] { save(); }};
  trainer::run_steps(
      std::string(trainer::stage_name(base_.stage)), step_,
      trainer::step_schedule(base_.trainer, base_.checkpoint, base_.eval, base_.telemetry), comm_,
      metrics_, hooks);
}

// One step's rollouts over its rounds: the sums of StepSum (one per reward
// term after kTermsBegin), the histogram of think lengths, and this rank's
// groups kept for the update, each as its G samples.
struct PolicyTrainer::StepRollouts {
  std::vector<double> sums;
  std::vector<double> think_histogram;
  double length_weight = 0;
  std::vector<std::vector<Sample>> kept;
};

void PolicyTrainer::roll_out(int64_t round, StepRollouts& out) {
  const RlConfig& rl = job_.rl;
  const int64_t G = rl.group_size;
  // Round 0 follows the prompt schedule; a further round of dynamic
  // sampling draws from a schedule of its own, so the step alone still
  // fixes every prompt and seed of a resumed run.
  const auto with_round = [&](uint64_t seed) {
    return round == 0 ? seed : config::mix_seed({seed, static_cast<uint64_t>(round)});
  };
  const std::vector<size_t> chosen =
      round == 0 ? schedule_prompts_->step_prompts(step_, rl.prompts_per_step)
                 : PromptSchedule(prompts_.size(), with_round(base_.seed))
                       .step_prompts(step_, rl.prompts_per_step);

  // This rank's share of the prompts, G samples each, from the current
  // policy gathered into a full copy on every rank.
  std::vector<inference::PresentedPrompt> prompts;
  for (size_t i = comm_.rank(); i < chosen.size(); i += comm_.size()) {
    const int64_t budget =
        rewards_.uses_budget()
            ? rewards::draw_budget(job_.rewards.length,
                                   with_round(config::mix_seed(
                                       {base_.seed, static_cast<uint64_t>(step_), chosen[i]})))
            : 0;
    prompts.push_back(present(prompts_[chosen[i]], budget));
  }
  const model::Model& policy_now = policy();
  model::GenerateOptions sampling;
  sampling.sampling = {.temperature = rl.temperature, .top_k = 0, .top_p = rl.top_p};
  sampling.stop_tokens = tokenizer_->roles().stop_tokens();
  sampling.seed = with_round(config::mix_seed(
      {base_.seed, static_cast<uint64_t>(step_), static_cast<uint64_t>(comm_.rank())}));
  const std::vector<model::Generation> generations =
      inference::sample_groups(policy_now, prompts, G, rl.max_new_tokens, sampling);

  // Reward each group together (group-relative terms compare its
  // responses), then turn rewards into advantages within the group.
  const rewards::Context context{.step = step_, .max_new_tokens = rl.max_new_tokens};
  std::vector<double>& sums = out.sums;
  for (size_t p = 0; p < prompts.size(); ++p) {
    std::vector<rewards::Response> group;
    for (int64_t j = 0; j < G; ++j)
      group.push_back(inference::to_response(prompts[p], generations[p * G + j], *tokenizer_));
    const rewards::Scores scores = rewards_.score(group, context);
    out.length_weight = scores.length_weight;
    const std::vector<double> advantages = advantage_->group(scores.total);
    const bool all_equal = std::all_of(scores.total.begin(), scores.total.end(),
                                       [&](double r) { return r == scores.total.front(); });
    const bool keep = !(rl.dynamic_sampling && all_equal);
    std::vector<Sample> samples;
    for (int64_t j = 0; j < G; ++j) {
      const rewards::Response& r = group[j];
      sums[kReward] += scores.total[j];
      sums[kCorrect] += scores.correct[j];
      sums[kThink] += static_cast<double>(r.think_tokens);
      sums[kResponseTokens] += static_cast<double>(r.total_tokens);
      sums[kTruncated] += r.truncated ? 1 : 0;
      out.think_histogram[std::min(r.think_tokens, rl.max_new_tokens)] += 1;
      for (size_t t = kTermsBegin; t < sums.size(); ++t)
        sums[t] += scores.terms[t - kTermsBegin].second[j];
      sums[kRolloutFlops] +=
          rollout_flops(base_.model, static_cast<int64_t>(prompts[p].tokens.size()),
                        static_cast<int64_t>(generations[p * G + j].tokens.size()));
      if (!keep || (rl.mask_truncated && r.truncated)) continue;
      samples.push_back({.prompt = prompts[p].tokens,
                         .images = prompts[p].record->images,
                         .response = generations[p * G + j].tokens,
                         .advantage = advantages[j]});
    }
    sums[kResponses] += static_cast<double>(G);
    sums[kGroupsKept] += keep ? 1 : 0;
    sums[kGroups] += 1;
    if (keep) out.kept.push_back(std::move(samples));
  }
}

int64_t PolicyTrainer::roll_out_step(StepRollouts& out) {
  const RlConfig& rl = job_.rl;
  const int64_t rounds = rl.dynamic_sampling ? rl.dynamic_sampling_rounds : 1;
  int64_t found = 0;  // kept groups over all ranks in the rounds before
  for (int64_t round = 0; round < rounds; ++round) {
    const size_t before = out.kept.size();
    roll_out(round, out);
    if (rounds == 1) return 1;
    // Every rank's kept groups of this round, to stop at prompts_per_step
    // groups: the last round keeps the first ones found, in rank order.
    std::vector<double> counts(comm_.size(), 0.0);
    counts[comm_.rank()] = static_cast<double>(out.kept.size() - before);
    counts = comm::sum_over_ranks(comm_, counts);
    int64_t earlier = found;
    for (int rank = 0; rank < comm_.rank(); ++rank)
      earlier += static_cast<int64_t>(counts[rank]);
    for (double c : counts)
      found += static_cast<int64_t>(c);
    if (found >= rl.prompts_per_step) {
      const int64_t room = std::max<int64_t>(0, rl.prompts_per_step - earlier);
      out.kept.resize(before + std::min<int64_t>(room, out.kept.size() - before));
      return round + 1;
    }
  }
  return rounds;
}

telemetry::Record PolicyTrainer::rl_step() {
  const Clock::time_point start = Clock::now();
  const RlConfig& rl = job_.rl;
  const std::vector<std::string> terms = rewards_.term_names();
  StepRollouts rollouts{.sums = std::vector<double>(kTermsBegin + terms.size(), 0.0),
                        .think_histogram = std::vector<double>(rl.max_new_tokens + 1, 0.0),
                        .kept = {}};
  fault_point("rollout", step_ + 1);
  const int64_t rounds = roll_out_step(rollouts);
  const double rollout_seconds = seconds_since(start);
  std::vector<double>& sums = rollouts.sums;
  std::vector<double>& think_histogram = rollouts.think_histogram;
  const double length_weight = rollouts.length_weight;
  std::vector<Sample> samples;
  for (std::vector<Sample>& group : rollouts.kept)
    for (Sample& s : group)
      samples.push_back(std::move(s));
  sums[kGroupsTrained] = static_cast<double>(rollouts.kept.size());
  if (advantage_->whitens_batch()) {
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
  fault_point("update", step_ + 1);
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
      .add("groups_trained", sums[kGroupsTrained])
      .add("rollout_rounds", rounds)
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

inference::PresentedPrompt PolicyTrainer::present(const data::PromptRecord& record,
                                                  int64_t budget) const {
  return inference::present_prompt(record, budget, *tokenizer_, base_.model.image_token_id,
                                   base_.model.n_patches());
}

void PolicyTrainer::save() {
  json own;
  if (compute_known_) {
    own["compute_rollout_flops"] = rollout_flops_;
    own["compute_update_flops"] = update_flops_;
  }
  std::vector<checkpoints::ShardedTensor> reference;
  if (reference_) {
    const int rank = comm_.rank();
    for (const trainer::FsdpUnit& unit : reference_->units()) {
      reference.push_back({trainer::unit_tensor_name(unit, "reference"), unit.shards.numel,
                           unit.shards.begin(rank),
                           unit.param.narrow(0, 0, unit.shards.valid(rank))});
    }
  }
  trainer::save_training(base_, step_, state_, own, std::move(reference), comm_);
}

void PolicyTrainer::resume(const std::filesystem::path& dir) {
  const checkpoints::Checkpoint ckpt(dir);
  const json state = trainer::resume_training(ckpt, state_, comm_);
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
    trainer::read_units(ckpt, *reference_, "reference", comm_.rank());
  }
  telemetry::log_info("resumed from " + dir.string() + " at step " + std::to_string(step_));
}

}  // namespace muse::rl
