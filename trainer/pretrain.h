// The pretraining and supervised fine-tuning loop: FSDP forward/backward over
// the packed batches of the loader, sharded AdamW, loss guards, metrics,
// periodic evaluation and checkpoints, resumable from the run directory.
// docs/trainer.md describes what a run does and writes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "comm/communicator.h"
#include "data/data_config.h"
#include "model/model_config.h"
#include "rewards/verify.h"
#include "telemetry/metrics.h"
#include "telemetry/telemetry_config.h"
#include "trainer/optim_config.h"
#include "trainer/train_config.h"
#include "trainer/training_state.h"

namespace muse::trainer {

// Everything a run needs, from the config's sections.
struct TrainJob {
  std::string stage = "pretrain";  // "pretrain" or "sft": a label; the data decides what counts
  uint64_t seed = 0;
  std::filesystem::path run_dir;  // holds metrics.jsonl, checkpoints/ and LATEST
  std::string init_from;          // checkpoint or run directory, or empty
  std::string config_yaml;        // the resolved config, saved with every checkpoint
  model::ModelConfig model;
  data::DataConfig data;
  TrainerConfig trainer;
  OptimConfig optim;
  CheckpointConfig checkpoint;
  EvalConfig eval;
  // eval.match resolved by the caller (EvalConfig::match_mode), which knows the
  // stage and rewards.correctness.match.
  rewards::MatchMode eval_match = rewards::MatchMode::kCaption;
  telemetry::TelemetryConfig telemetry;
  int local_rank = 0;  // picks the GPU with trainer.device auto/cuda
};

// Trains `job` to trainer.steps, continuing from the run directory's LATEST
// checkpoint when there is one, else from init_from's weights, else from the
// seeded initialisation. Collective over `comm`. Rank 0 writes records to
// `metrics` and the progress line to stdout. Throws TrainError,
// checkpoints::CheckpointError, data::DataError or config::ConfigError.
void train(const TrainJob& job, comm::Communicator& comm, telemetry::Metrics& metrics);

}  // namespace muse::trainer
