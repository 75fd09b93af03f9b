#include "rl/rl_loop.h"

#include <algorithm>
#include <string>
#include <vector>

#include "comm/agree.h"
#include "config/splitmix64.h"
#include "inference/adaptive.h"
#include "rewards/terms.h"
#include "telemetry/log.h"
#include "telemetry/progress.h"
#include "trainer/prompt_eval.h"

namespace muse::rl {
namespace {

// The adaptive evaluation's sampling seed (adaptive.samples > 1), apart from
// the rollouts'.
constexpr uint64_t kAdaptiveSeedTag = 0xADA7;

// Sums over the evaluated prompts, in the order they are all-reduced.
enum EvalSum : size_t {
  kEvalCorrect,
  kEvalThink,
  kEvalResponseTokens,
  kEvalTruncated,
  kEvalPrompts
};

double value(const telemetry::Record& r, const std::string& key) {
  return std::get<double>(*r.find(key));
}

// Greedy answers to eval.prompts: accuracy and reasoning length; then, with
// adaptive.eval, each fixed budget against adaptive re-expansion.
void evaluate(PolicyTrainer& trainer) {
  const RlJob& job = trainer.job();
  comm::Communicator& comm = trainer.comm();
  const model::Model& policy = trainer.policy();
  const trainer::PromptAnswers answers =
      trainer::answer_prompts(policy, trainer.tokenizer(), trainer.eval_prompts(),
                              job.base.eval.max_new_tokens, comm.rank(), comm.size());
  const rewards::AnswerRule& rule = job.base.eval_rule;
  inference::AnswerTally tally;
  for (size_t i = 0; i < answers.generations.size(); ++i) {
    const data::PromptRecord& record = *answers.records[i];
    const inference::PresentedPrompt shown{
        .record = &record, .tokens = record.tokens, .text = record.prompt, .budget = 0};
    tally.add(inference::to_response(shown, answers.generations[i], trainer.tokenizer()), rule);
  }
  const std::vector<double> sums = comm::sum_over_ranks(
      comm, {tally.correct, tally.think, tally.response_tokens, tally.truncated, tally.prompts});
  const double n = std::max(1.0, sums[kEvalPrompts]);
  telemetry::Record r;
  r.add("step", trainer.step())
      .add("eval", "heldout")
      .add("accuracy", sums[kEvalCorrect] / n)
      .add("think_tokens_mean", sums[kEvalThink] / n)
      .add("response_tokens_mean", sums[kEvalResponseTokens] / n)
      .add("truncated_fraction", sums[kEvalTruncated] / n)
      .add("prompts", static_cast<int64_t>(sums[kEvalPrompts]));
  trainer.add_compute(r, false);
  if (comm.rank() == 0) {
    trainer.metrics().write(r);
    telemetry::log_info("eval heldout at step " + std::to_string(trainer.step()) + ": accuracy " +
                        telemetry::format_number(sums[kEvalCorrect] / n) + ", think tokens " +
                        telemetry::format_number(sums[kEvalThink] / n) + " on " +
                        std::to_string(static_cast<int64_t>(sums[kEvalPrompts])) + " prompts");
  }
  if (!job.adaptive.eval) return;
  const inference::AdaptiveSetup setup{
      .cfg = &job.adaptive,
      .tokenizer = &trainer.tokenizer(),
      .answer = rule,
      .budget_prompt = inference::states_budget(job.adaptive, job.rewards.length.kind),
      .seed = config::mix_seed({static_cast<uint64_t>(job.base.seed), kAdaptiveSeedTag})};
  const std::vector<telemetry::Record> records =
      inference::evaluate_adaptive(policy, trainer.eval_records(), setup, trainer.step(), comm);
  if (comm.rank() != 0) return;
  std::string line = "eval at step " + std::to_string(trainer.step()) + ":";
  for (const telemetry::Record& rec : records) {
    trainer.metrics().write(rec);
    line += " " + std::get<std::string>(*rec.find("eval")) + " " +
            telemetry::format_number(value(rec, "accuracy")) + " (" +
            telemetry::format_number(value(rec, "think_tokens_mean")) + " tokens)";
  }
  telemetry::log_info(line);
}

}  // namespace

void train_rl(const RlJob& job, comm::Communicator& comm, telemetry::Metrics& metrics) {
  std::unique_ptr<PolicyTrainer> trainer;
  comm::run_agreed(comm, [&] {
    trainer = std::make_unique<PolicyTrainer>(job, comm, metrics);
    trainer->set_prompts(data::load_prompts(job.rl.prompts, trainer->tokenizer(),
                                            {.image_tokens = job.base.model.n_patches(),
                                             .image_size = job.base.model.image_size,
                                             .image_channels = job.base.model.image_channels}));
    trainer->check_lengths();
  });
  comm::run_agreed(comm, [&] { trainer->start(); });
  trainer->train([&] { evaluate(*trainer); });
}

}  // namespace muse::rl
