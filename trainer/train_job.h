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

// How held-out answers are checked in `stage`: eval.match (auto: caption
// when pretraining, the RL reward's rewards.correctness.match in every other
// stage), reading answers where the reward does (`reward_rule`, from
// rewards.correctness).
inline rewards::AnswerRule eval_answer_rule(const EvalConfig& eval, Stage stage,
                                            const rewards::AnswerRule& reward_rule) {
  rewards::AnswerRule rule = reward_rule;
  if (eval.match != "auto") {
    rule.match = rewards::parse_match_mode(eval.match);
  } else if (stage == Stage::kPretrain) {
    rule.match = rewards::MatchMode::kCaption;
  }
  return rule;
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
  // How held-out answers are checked (eval_answer_rule), resolved by the
  // caller, which knows the stage and rewards.correctness.
  rewards::AnswerRule eval_rule = {.match = rewards::MatchMode::kCaption, .forms = {}};
  telemetry::TelemetryConfig telemetry;
  int local_rank = 0;  // picks the GPU with trainer.device auto/cuda
};

}  // namespace muse::trainer
