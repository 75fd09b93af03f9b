#include "trainer/pretrain.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "checkpoints/checkpoint.h"
#include "comm/agree.h"
#include "config/schema.h"
#include "data/loader.h"
#include "data/prompts.h"
#include "data/tokenizer.h"
#include "model/chunked_loss.h"
#include "model/forward.h"
#include "model/generate.h"
#include "model/model.h"
#include "rewards/verify.h"
#include "telemetry/log.h"
#include "telemetry/progress.h"
#include "trainer/adamw.h"
#include "trainer/fsdp.h"
#include "trainer/grad_clip.h"
#include "trainer/lr_schedule.h"
#include "trainer/memory_meter.h"
#include "trainer/memory_plan.h"
#include "trainer/prompt_eval.h"
#include "trainer/step_loop.h"
#include "trainer/training_state.h"

namespace muse::trainer {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

PlanInputs plan_of(const TrainJob& job, const comm::Communicator& comm) {
  return plan_inputs(job.trainer, job.data.batch_size, job.data.seq_len, comm.size(),
                     comm.backend());
}

FsdpOptions fsdp_options(const PlanInputs& plan, at::Device device) {
  FsdpOptions o = plan.fsdp;
  o.device = device;
  return o;
}

data::LoaderOptions loader_options_for(const data::DataConfig& data_cfg,
                                       const model::ModelConfig& m, int64_t batch_size) {
  data::LoaderOptions o = data::loader_options(data_cfg);
  o.batch_size = batch_size;
  o.image_tokens = m.n_patches();
  o.vocab_size = m.vocab_size;
  o.image_size = m.image_size;
  o.image_channels = m.image_channels;
  return o;
}

model::Inputs inputs_of(const data::Batch& b, at::Device device) {
  return {.tokens = b.tokens.to(device),
          .segment_ids = b.segment_ids.to(device),
          .images = b.images.to(device),
          .image_slots = b.image_slots.to(device)};
}

// One run of the loop: the sharded model, its optimizer and the data, with
// the counters a checkpoint saves.
class Run {
 public:
  Run(const TrainJob& job, comm::Communicator& comm, telemetry::Metrics& metrics)
      : job_(job),
        comm_(comm),
        metrics_(metrics),
        plan_(plan_of(job, comm)),
        device_(pick_device(job.trainer, job.local_rank, comm)),
        state_(job.model, job.seed, comm, fsdp_options(plan_, device_), job.optim),
        model_(state_.model()),
        schedule_(make_lr_schedule(job.optim, job.trainer.steps)),
        loader_(loader_options_for(job.data, job.model, plan_.batch_rows * comm.size()),
                comm.rank(), comm.size(), static_cast<int64_t>(job.seed)) {}

  void start() {
    const std::filesystem::path latest = checkpoints::latest_checkpoint(job_.run_dir);
    if (!latest.empty()) {
      resume(latest);
    } else if (!job_.init_from.empty()) {
      init_weights(job_.init_from);
    }
  }

  void train() {
    const StepHooks hooks{.on_start =
                              [&] {
                                if (comm_.rank() == 0)
                                  telemetry::log_info(format_memory_plan(job_.model, plan_));
                              },
                          .step = [&] { return train_step(); },
                          .progress =
                              [&](const telemetry::Record& r) {
                                return ProgressFields{
                                    {"loss", format_loss(r)},
                                    {"lr", telemetry::format_number(schedule_(step_ - 1))}};
                              },
                          .evaluate = [&] { evaluate(); },
                          .save = [&] { save(); }};
    run_steps(std::string(stage_name(job_.stage)), step_,
              step_schedule(job_.trainer, job_.checkpoint, job_.eval, job_.telemetry), comm_,
              metrics_, hooks);
  }

 private:
  // One optimizer step over grad_accum micro-batches; returns its record.
  telemetry::Record train_step() {
    const Clock::time_point start = Clock::now();
    const comm::CommStats before = comm_.stats();
    reset_peak_cpu_memory();
    std::vector<data::Batch> batches;
    int64_t local_count = 0;
    comm::run_agreed(comm_, [&] {
      for (int64_t m = 0; m < job_.trainer.grad_accum; ++m) {
        batches.push_back(loader_.next());
        local_count += model::counted_targets(batches.back().targets, job_.model.image_token_id)
                           .sum()
                           .item<int64_t>();
      }
    });
    // The loss is the mean over every counted target of the global batch:
    // each micro-batch's sum is divided by the global count, so the summed
    // gradients do not depend on how the batch is split over ranks.
    const double global_count =
        std::max(1.0, comm::sum_over_ranks(comm_, {double(local_count)})[0]);

    model_.zero_grad();
    double local_loss = 0;
    for (const data::Batch& batch : batches) {
      const at::Tensor targets = batch.targets.to(device_);
      const at::Tensor loss =
          model_.forward_backward(inputs_of(batch, device_), [&](const model::HeadOutput& head) {
            const model::TextLoss l = model::head_text_loss(
                head, targets, job_.model.image_token_id, job_.trainer.loss_chunk_tokens);
            return l.sum / global_count;
          });
      local_loss += loss.item<double>();
    }
    const double loss = comm::sum_over_ranks(comm_, {local_loss})[0];

    const double lr = schedule_(step_);
    const Update update = state_.step(loss, lr, job_.trainer.max_consecutive_skips, step_ + 1);
    ++step_;

    const double seconds = seconds_since(start);
    const int64_t tokens = job_.data.batch_size * job_.data.seq_len;
    const int64_t wire = comm_.stats().total_wire_bytes() - before.total_wire_bytes();
    telemetry::Record r;
    r.add("step", step_)
        .add("loss", loss)
        .add("lr", lr)
        .add("grad_norm", update.norm.norm)
        .add("tokens", tokens)
        .add("tokens_per_s", static_cast<double>(tokens) / seconds)
        .add("step_time_s", seconds)
        .add("peak_cpu_bytes", cpu_memory_stats().peak_bytes)
        .add("peak_rss_bytes", telemetry::peak_rss_bytes())
        .add("shard_bytes", state_.shard_bytes())
        .add("comm_bytes", wire)
        .add("skipped", update.skipped)
        .add("skipped_total", state_.skipped_total());
    return r;
  }

  // The held-out evaluation: one "heldout" record with the loss over
  // eval.shards and the accuracy of greedy answers to eval.prompts.
  void evaluate() {
    telemetry::Record r;
    r.add("step", step_).add("eval", "heldout");
    std::string summary = "eval heldout at step " + std::to_string(step_) + ":";
    if (!job_.eval.shards.empty()) {
      const double loss = heldout_loss();
      r.add("loss", loss);
      summary += " loss " + telemetry::format_number(loss);
    }
    if (!job_.eval.prompts.empty()) {
      const auto [correct, total] = prompt_accuracy();
      r.add("accuracy", correct / total).add("prompts", static_cast<int64_t>(total));
      summary += " accuracy " + telemetry::format_number(correct / total) + " on " +
                 std::to_string(static_cast<int64_t>(total)) + " prompts";
    }
    if (comm_.rank() == 0) {
      metrics_.write(r);
      telemetry::log_info(summary);
    }
  }

  // Mean loss over the held-out shards (the same batches every time).
  double heldout_loss() {
    data::DataConfig eval_data = job_.data;
    eval_data.shards = job_.eval.shards;
    eval_data.shuffle = false;
    std::vector<data::Batch> batches;
    comm::run_agreed(comm_, [&] {
      data::Loader loader(loader_options_for(eval_data, job_.model, job_.data.batch_size),
                          comm_.rank(), comm_.size(), static_cast<int64_t>(job_.seed));
      for (int64_t b = 0; b < job_.eval.batches; ++b)
        batches.push_back(loader.next());
    });
    double sum = 0, count = 0;
    for (const data::Batch& batch : batches) {
      const model::TextLoss l = model::head_text_loss(
          model_.forward_head(inputs_of(batch, device_)), batch.targets.to(device_),
          job_.model.image_token_id, job_.trainer.loss_chunk_tokens);
      sum += l.sum.item<double>();
      count += static_cast<double>(l.count.item<int64_t>());
    }
    const std::vector<double> total = comm::sum_over_ranks(comm_, {sum, count});
    return total[0] / std::max(1.0, total[1]);
  }

  // (correct, total) over eval.prompts: each rank answers every N-th prompt
  // greedily with the full weights gathered into one model.
  std::pair<double, double> prompt_accuracy() {
    if (!eval_model_) {
      comm::run_agreed(comm_, [&] {
        tokenizer_.emplace(data::open_tokenizer(job_.data));
        const data::PromptOptions options{.image_tokens = job_.model.n_patches(),
                                          .image_size = job_.model.image_size,
                                          .image_channels = job_.model.image_channels};
        prompts_ = data::load_prompts(job_.eval.prompts, *tokenizer_, options);
      });
      eval_model_.emplace(job_.model, job_.seed, device_);
    }
    model_.gather_into(*eval_model_);
    const PromptAnswers answers = answer_prompts(
        *eval_model_, *tokenizer_, prompts_, job_.eval.max_new_tokens, comm_.rank(), comm_.size());
    double correct = 0;
    for (size_t i = 0; i < answers.generations.size(); ++i) {
      const std::string text = decode_generation(*tokenizer_, answers.generations[i]);
      correct += rewards::answer_correct(text, answers.records[i]->answer, job_.eval_rule) ? 1 : 0;
    }
    const std::vector<double> total =
        comm::sum_over_ranks(comm_, {correct, static_cast<double>(answers.records.size())});
    return {total[0], std::max(1.0, total[1])};
  }

  void save() {
    save_training(job_, step_, state_, {{"loader", json::parse(loader_.state().to_json())}}, {},
                  comm_);
  }

  // init_from: the weights only; the optimizer, data and step start afresh.
  void init_weights(const std::string& from) {
    telemetry::log_info("initialised from " + state_.init_from(from));
  }

  // The whole training state, so the run continues as if never stopped.
  void resume(const std::filesystem::path& dir) {
    const checkpoints::Checkpoint ckpt(dir);
    const json state = resume_training(ckpt, state_, comm_);
    step_ = state.at("step").get<int64_t>();
    loader_.restore(data::LoaderState::from_json(state.at("loader").dump()));
    telemetry::log_info(
        "resumed from " + dir.string() + " at step " + std::to_string(step_) +
        (ckpt.world_size() == comm_.size()
             ? std::string()
             : " (saved on " + std::to_string(ckpt.world_size()) + " ranks, resharded)"));
  }

  static std::string format_loss(const telemetry::Record& r) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4f", std::get<double>(*r.find("loss")));
    return buf;
  }

  const TrainJob& job_;
  comm::Communicator& comm_;
  telemetry::Metrics& metrics_;
  PlanInputs plan_;  // the batch split and FSDP options, as the dry run plans them
  at::Device device_;
  TrainingState state_;
  FsdpModel& model_;  // state_'s
  LrSchedule schedule_;
  data::Loader loader_;
  int64_t step_ = 0;
  // Evaluation prompts, loaded on first use.
  std::optional<data::Tokenizer> tokenizer_;
  std::vector<data::PromptRecord> prompts_;
  std::optional<model::Model> eval_model_;
};

}  // namespace

void train(const TrainJob& job, comm::Communicator& comm, telemetry::Metrics& metrics) {
  std::unique_ptr<Run> run;
  comm::run_agreed(comm, [&] { run = std::make_unique<Run>(job, comm, metrics); });
  comm::run_agreed(comm, [&] { run->start(); });
  run->train();
}

}  // namespace muse::trainer
