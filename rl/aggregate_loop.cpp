#include "rl/aggregate_loop.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "comm/agree.h"
#include "config/files.h"
#include "contemplate/candidate_sets.h"
#include "telemetry/log.h"
#include "telemetry/progress.h"

namespace muse::rl {
namespace {

class AggregateRun {
 public:
  AggregateRun(const RlJob& job, comm::Communicator& comm, telemetry::Metrics& metrics)
      : job_(job), trainer_(job, comm, metrics) {
    contemplate::check_aggregate_config(job.aggregate);
    setup_.emplace(
        contemplate::AggregateSetup{.cfg = &job.aggregate,
                                    .format = contemplate::AggregationFormat::from(job.aggregate),
                                    .tokenizer = &trainer_.tokenizer(),
                                    .model = job.base.model,
                                    .answer = job.rewards.correctness.rule(),
                                    .seed = job.base.seed});
    // The aggregation prompts ask about these problems (build_prompts), once
    // the solver is loaded.
    problems_ = data::load_prompts(job.rl.prompts, trainer_.tokenizer(),
                                   {.image_tokens = job.base.model.n_patches(),
                                    .image_size = job.base.model.image_size,
                                    .image_channels = job.base.model.image_channels});
    // Every problem costs k x sets_per_problem solver samples at start.
    const auto wanted = static_cast<size_t>(job.aggregate.train_problems);
    if (wanted > 0 && problems_.size() > wanted)
      problems_.erase(problems_.begin() + static_cast<std::ptrdiff_t>(wanted), problems_.end());
    check_lengths();
  }

  void start() {
    if (!job_.aggregate.solver.empty()) {
      solver_ = std::make_unique<model::Model>(
          trainer_.load_model(job_.aggregate.solver, "aggregate.solver"));
    }
    trainer_.start();
  }

  // AggLM's candidate sets from the separate solver, or from the starting
  // weights when one model does both. Collective.
  void build_prompts() {
    comm::Communicator& comm = trainer_.comm();
    std::unique_ptr<model::Model> starting;
    const model::Model* solver = solver_.get();
    comm::run_agreed(comm, [&] {
      if (solver) return;
      if (trainer_.step() == 0) {
        solver = &trainer_.policy();
      } else if (job_.base.init_from.empty()) {
        starting =
            std::make_unique<model::Model>(job_.base.model, job_.base.seed, trainer_.device());
      } else {
        starting =
            std::make_unique<model::Model>(trainer_.load_model(job_.base.init_from, "init_from"));
      }
      if (!solver) solver = starting.get();
    });
    contemplate::AggregationPool pool =
        contemplate::build_pool(*setup_, *solver, problems_, job_.rl.max_new_tokens, comm);
    if (std::get<int64_t>(*pool.summary.find("hard_sets")) == 0) {
      throw trainer::TrainError(
          "aggregate: the majority of every candidate set is right, so there is no hard set to "
          "train on; raise aggregate.solver_temperature or aggregate.k, or use harder rl.prompts");
    }
    const size_t n_prompts = pool.records.size();
    trainer_.set_prompts(std::move(pool.records));
    comm::run_agreed(comm, [&] {
      check_lengths();  // the aggregation prompts, with any budget sentence
      if (comm.rank() != 0) return;
      config::write_file_atomic(job_.base.run_dir / "aggregation_sets.jsonl", pool.sets_jsonl);
      if (trainer_.step() == 0) trainer_.metrics().write(pool.summary);
      telemetry::log_info(
          "aggregation sets: " + std::to_string(std::get<int64_t>(*pool.summary.find("sets"))) +
          ", hard " + std::to_string(std::get<int64_t>(*pool.summary.find("hard_sets"))) +
          ", training on " + std::to_string(n_prompts) + " (aggregation_sets.jsonl)");
    });
  }

  void train() {
    trainer_.train([&] { evaluate(); });
  }

 private:
  // The trainer's checks, then the solvers', which answer the training and
  // held-out problems.
  void check_lengths() const {
    trainer_.check_lengths();
    std::vector<int64_t> lengths;
    for (const data::PromptRecord& record : problems_)
      lengths.push_back(static_cast<int64_t>(record.tokens.size()));
    for (const data::PromptRecord& record : trainer_.eval_prompts())
      lengths.push_back(static_cast<int64_t>(record.tokens.size()));
    check_positions("aggregate.solver_max_new_tokens",
                    longest(lengths) + job_.aggregate.solver_max_new_tokens,
                    job_.base.model.max_seq_len);
  }

  // One sample, majority vote and the aggregator over the same candidates.
  void evaluate() {
    const model::Model& aggregator = trainer_.policy();
    const std::vector<telemetry::Record> records = contemplate::evaluate_contemplation(
        *setup_, solver_ ? *solver_ : aggregator, aggregator, trainer_.eval_prompts(),
        job_.base.eval.max_new_tokens, trainer_.step(), trainer_.comm());
    if (trainer_.comm().rank() != 0) return;
    std::string line = "eval at step " + std::to_string(trainer_.step()) + ":";
    for (const telemetry::Record& r : records) {
      trainer_.metrics().write(r);
      line += " " + std::get<std::string>(*r.find("eval")) + " " +
              telemetry::format_number(std::get<double>(*r.find("accuracy")));
    }
    telemetry::log_info(line);
  }

  const RlJob& job_;
  PolicyTrainer trainer_;
  std::optional<contemplate::AggregateSetup> setup_;
  std::vector<data::PromptRecord> problems_;
  std::unique_ptr<model::Model> solver_;  // null when the policy solves too
};

}  // namespace

void train_aggregator(const RlJob& job, comm::Communicator& comm, telemetry::Metrics& metrics) {
  std::unique_ptr<AggregateRun> run;
  comm::run_agreed(comm, [&] { run = std::make_unique<AggregateRun>(job, comm, metrics); });
  comm::run_agreed(comm, [&] { run->start(); });
  run->build_prompts();
  run->train();
}

}  // namespace muse::rl
