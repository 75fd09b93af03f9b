// The loop both RL-trained stages share: the rl stage, and the aggregate
// stage, which trains the aggregator on AggLM's candidate sets. One step is
// rollout -> reward -> advantage -> clipped policy update, on the same
// FSDP-sharded model, sharded AdamW and checkpoint layout as pretraining.
// A stage gives it the prompts to train on and its evaluation
// (rl/rl_loop.cpp, rl/aggregate_loop.cpp); docs/rl.md describes a step, its
// metrics and the config.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "contemplate/aggregate_config.h"
#include "data/prompts.h"
#include "data/tokenizer.h"
#include "inference/adaptive_config.h"
#include "inference/prompting.h"
#include "model/model.h"
#include "rewards/reward_set.h"
#include "rewards/rewards_config.h"
#include "rl/advantages.h"
#include "rl/policy_update.h"
#include "rl/prompt_schedule.h"
#include "rl/rl_config.h"
#include "telemetry/metrics.h"
#include "trainer/fsdp.h"
#include "trainer/lr_schedule.h"
#include "trainer/train_job.h"
#include "trainer/training_state.h"

namespace muse::rl {

struct RlJob {
  trainer::TrainJob base;  // stage (rl or aggregate), seed, run directory, init_from, model...
  RlConfig rl;
  rewards::RewardsConfig rewards;
  contemplate::AggregateConfig aggregate;  // the aggregate stage only
  inference::AdaptiveConfig adaptive;      // the rl stage's adaptive evaluation (adaptive.eval)
};

// What can be checked before an RL-trained stage starts: a prompt set,
// prompts per step that split over the ranks, a registered advantage
// estimator and reward length limits that fit the generation limit. Throws
// config::ConfigError naming the key (without it in the message).
void check_launch(trainer::Stage stage, const RlConfig& rl, const rewards::RewardsConfig& rewards,
                  int world_size);

// Throws config::ConfigError naming `key` when `need` positions (the
// longest prompt plus its new tokens) exceed model.max_seq_len: the
// generator would otherwise fail in the middle of the run.
void check_positions(const std::string& key, int64_t need, int64_t max_seq_len);

// The longest of `lengths`, 0 for none.
int64_t longest(const std::vector<int64_t>& lengths);

class PolicyTrainer {
 public:
  // The sharded policy, its optimizer and (with rl.kl.coef > 0) the frozen
  // reference, the tokenizer and eval.prompts. Collective.
  PolicyTrainer(const RlJob& job, comm::Communicator& comm, telemetry::Metrics& metrics);

  const RlJob& job() const { return job_; }
  comm::Communicator& comm() const { return comm_; }
  telemetry::Metrics& metrics() const { return metrics_; }
  at::Device device() const { return device_; }
  const data::Tokenizer& tokenizer() const { return *tokenizer_; }
  int64_t step() const { return step_; }

  // eval.prompts as loaded, and as presented (with the budget sentence
  // rewards.length's eval budget asks for).
  const std::vector<data::PromptRecord>& eval_records() const { return eval_records_; }
  const std::vector<data::PromptRecord>& eval_prompts() const { return eval_prompts_; }

  // The prompts the steps train on, used in the seeded order of
  // rl/prompt_schedule.h.
  void set_prompts(std::vector<data::PromptRecord> prompts);

  // The training prompts (with the largest budget sentence) plus
  // rl.max_new_tokens, and eval.prompts plus eval.max_new_tokens, must fit
  // the model's positions; config::ConfigError naming the key otherwise.
  void check_lengths() const;

  // Continues from the run directory's LATEST checkpoint when there is one,
  // else starts from init_from's weights (which the reference copies).
  void start();

  // The policy's current weights, whole, on every rank. Collective when they
  // changed since the last call.
  const model::Model& policy();

  // The cumulative compute of the run so far, over all ranks (with `parts`,
  // also its rollout and update shares); left out when the run resumed from a
  // checkpoint that did not keep it.
  void add_compute(telemetry::Record& r, bool parts = true) const;

  // A full copy of the weights `from` names (a checkpoint or run directory,
  // or hf:DIR), with the run's vocabulary; config::ConfigError naming `key`.
  model::Model load_model(const std::string& from, const std::string& key) const;

  // Runs steps to trainer.steps: `evaluate` at step 0 (when eval.every > 0),
  // every eval.every steps and at the end; checkpoints as checkpoint.* says.
  // Collective; rank 0 writes the records and the progress line.
  void train(const std::function<void()>& evaluate);

 private:
  struct StepRollouts;
  telemetry::Record rl_step();
  // Rolls out round `round` of this step (rl.prompts_per_step prompts, this
  // rank's share), rewards each group and adds to `out`.
  void roll_out(int64_t round, StepRollouts& out);
  // The step's rounds: one, or with rl.dynamic_sampling up to
  // rl.dynamic_sampling_rounds until rl.prompts_per_step groups are kept
  // over all ranks (the excess of the last round dropped). Returns the
  // rounds used. Collective.
  int64_t roll_out_step(StepRollouts& out);
  inference::PresentedPrompt present(const data::PromptRecord& record, int64_t budget) const;
  void save();
  void resume(const std::filesystem::path& dir);

  const RlJob& job_;
  const trainer::TrainJob& base_;
  comm::Communicator& comm_;
  telemetry::Metrics& metrics_;
  at::Device device_;
  trainer::TrainingState state_;
  trainer::LrSchedule schedule_;
  rewards::RewardSet rewards_;
  std::unique_ptr<AdvantageEstimator> advantage_;
  UpdateOptions update_options_;
  std::unique_ptr<trainer::FsdpModel> reference_;  // null without a KL penalty
  model::Model policy_copy_;                       // the full weights, for rollouts and evaluation
  int64_t copy_step_ = -1;                         // the step whose weights policy_copy_ holds
  std::optional<data::Tokenizer> tokenizer_;
  std::vector<data::PromptRecord> prompts_;
  std::vector<data::PromptRecord> eval_records_;  // eval.prompts as loaded
  std::vector<data::PromptRecord> eval_prompts_;  // as presented (with any budget sentence)
  std::optional<PromptSchedule> schedule_prompts_;
  int64_t step_ = 0;
  // Cumulative FLOPs over all ranks since the run started (rl/rl_compute.h).
  double rollout_flops_ = 0;
  double update_flops_ = 0;
  bool compute_known_ = true;
};

}  // namespace muse::rl
