// What a training run is: its stage, and everything it needs from the
// config's sections. Every stage's loop takes a TrainJob.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "config/schema.h"
#include "data/data_config.h"
#include "model/model_config.h"
#include "rewards/verify.h"
#include "telemetry/telemetry_config.h"
#include "trainer/optim_config.h"
#include "trainer/train_config.h"

namespace muse::trainer {

// What a run trains. Pretraining and SFT run the loop of trainer/pretrain.h
// (the data decides what counts); rl and aggregate run rl/'s loops.
enum class Stage { kPretrain, kSft, kRl, kAggregate };

// The config's name of each stage ("stage" key, train_state.json).
constexpr std::string_view stage_name(Stage stage) {
  switch (stage) {
    case Stage::kPretrain:
      return "pretrain";
    case Stage::kSft:
      return "sft";
    case Stage::kRl:
      return "rl";
    case Stage::kAggregate:
      return "aggregate";
  }
  return "";
}

// The stage `name`; throws config::ConfigError naming `stage` for another.
inline Stage parse_stage(std::string_view name) {
  for (Stage s : {Stage::kPretrain, Stage::kSft, Stage::kRl, Stage::kAggregate})
    if (stage_name(s) == name) return s;
  throw config::ConfigError("stage", "unknown stage '" + std::string(name) + "'");
}

// eval.match resolved for `stage`: auto is caption when pretraining, the RL
// reward's rewards.correctness.match (`reward_match`) in every other stage.
inline rewards::MatchMode eval_match_mode(const EvalConfig& eval, Stage stage,
                                          rewards::MatchMode reward_match) {
  if (eval.match != "auto") return rewards::parse_match_mode(eval.match);
  return stage == Stage::kPretrain ? rewards::MatchMode::kCaption : reward_match;
}

// Whether `stage` samples rollouts and trains with the RL loop.
constexpr bool is_rl_stage(Stage stage) {
  return stage == Stage::kRl || stage == Stage::kAggregate;
}

// Everything a run needs, from the config's sections.
struct TrainJob {
  Stage stage = Stage::kPretrain;
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

}  // namespace muse::trainer
