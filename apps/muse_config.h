// The whole config tree of muse-train: the sections of every subsystem under
// one root, so one YAML file (and --set overrides) configures a run.
#pragma once

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "checkpoints/checkpoint.h"
#include "checkpoints/checkpoint_error.h"
#include "comm/dist_config.h"
#include "config/loader.h"
#include "config/schema.h"
#include "contemplate/aggregate_config.h"
#include "data/data_config.h"
#include "data/tokenizer.h"
#include "formats/hf_config.h"
#include "formats/model_source.h"
#include "inference/adaptive_config.h"
#include "model/model_config.h"
#include "rewards/rewards_config.h"
#include "rl/rl_config.h"
#include "telemetry/telemetry_config.h"
#include "telemetry/wandb_config.h"
#include "trainer/optim_config.h"
#include "trainer/train_config.h"
#include "trainer/train_job.h"

namespace muse {

struct RunConfig {
  std::string name = "run";
  std::string dir = "runs";

  template <class V>
  void visit(V& v) {
    v.field("name", name, {.help = "run name; the run directory is run.dir/run.name"});
    v.field("dir", dir, {.help = "directory that holds run directories"});
  }
};

// The launch a config is meant for, which `muse-train --plan` checks it
// against without starting it.
struct PlanConfig {
  int64_t world_size = 0;

  template <class V>
  void visit(V& v) {
    v.field("world_size", world_size,
            {.help = "ranks (one per GPU) the config is meant to run on: muse-train --plan checks "
                     "it for this many unless --world-size is given; 0 = not declared",
             .unit = "ranks",
             .ge = 0});
  }
};

struct MuseConfig {
  std::string stage = "pretrain";
  int64_t seed = 1234;
  std::string init_from;
  RunConfig run;
  model::ModelConfig model;
  data::DataConfig data;
  trainer::TrainerConfig trainer;
  trainer::OptimConfig optim;
  trainer::CheckpointConfig checkpoint;
  trainer::EvalConfig eval;
  comm::DistConfig dist;
  PlanConfig plan;
  telemetry::TelemetryConfig telemetry;
  telemetry::WandbConfig wandb;
  rl::RlConfig rl;
  rewards::RewardsConfig rewards;
  contemplate::AggregateConfig aggregate;
  inference::AdaptiveConfig adaptive;

  // `stage` as a value (the config's choices make it one of the four).
  trainer::Stage run_stage() const { return trainer::parse_stage(stage); }

  template <class V>
  void visit(V& v) {
    v.field("stage", stage,
            {.help = "what to run: pretrain, sft, rl or aggregate",
             .choices = {"pretrain", "sft", "rl", "aggregate"}});
    v.field("seed", seed, {.help = "seed of initialisation, data order and sampling", .ge = 0});
    v.field("init_from", init_from,
            {.help = "start from: a checkpoint directory, a run directory (its LATEST), hf:DIR, "
                     "or empty for a fresh model"});
    v.section("run", run, "Naming and placing the run directory.");
    v.section("model", model, "The multimodal transformer's shape (see docs/model.md).");
    v.section("data", data, "Training data and batching (see docs/data.md).");
    v.section("trainer", trainer, "The training loop.");
    v.section("optim", optim, "The optimizer.");
    v.section("checkpoint", checkpoint, "Saving training state.");
    v.section("eval", eval, "Periodic evaluation on held-out data.");
    v.section("dist", dist, "Distributed communication.");
    v.section("plan", plan, "The launch the config is meant for (muse-train --plan).");
    v.section("telemetry", telemetry, "Progress, metrics and logs.");
    v.section("wandb", wandb, "Logging to Weights & Biases over its HTTP API (docs/wandb.md).");
    v.section("rl", rl, "The RL stage: rollouts, advantages and the policy loss (docs/rl.md).");
    v.section("rewards", rewards,
              "The RL reward: correctness, format and length shaping (docs/rewards.md).");
    v.section("aggregate", aggregate,
              "Contemplating mode: solver candidates, the aggregator prompt and the aggregate "
              "stage's data and evaluation (docs/contemplate.md).");
    v.section("adaptive", adaptive,
              "Test-time compute: adaptive re-expansion of compressed reasoning in muse-generate "
              "--adaptive (docs/inference.md).");
  }

  // Fills every model.* key the config did not set from the chosen preset,
  // then, when init_from is hf:DIR, every architecture key from DIR's
  // config.json (an explicit one must agree with it).
  void resolve(config::Origins& origins) {
    std::set<std::string> set_keys;
    for (const auto& entry : origins)
      set_keys.insert(entry.first);
    model = model::apply_preset(model, set_keys);
    if (model.preset != "custom") {
      for (const auto& field : config::describe_fields(model)) {
        const std::string key = config::join_key("model", field.path);
        if (!set_keys.contains(key)) origins[key] = "preset " + model.preset;
      }
    }
    if (init_from.empty()) return;
    if (!init_from.starts_with("hf:")) {
      adopt_checkpoint(set_keys, origins);
      return;
    }
    const std::filesystem::path path = std::filesystem::path(init_from.substr(3)) / "config.json";
    model::ModelConfig theirs;
    try {
      theirs = formats::hf_model_config(path, formats::read_hf_config(path), model);
    } catch (const checkpoints::CheckpointError& e) {
      throw config::ConfigError("init_from", e.what());
    }
    model::AdoptedArchitecture adopted =
        model::adopt_architecture(model, theirs, set_keys, path.string());
    model = std::move(adopted.config);
    for (const std::string& key : adopted.keys)
      origins[key] = path.string();
    adopt_tokenizer(path.parent_path(), set_keys, origins);
  }

  // A muse-train checkpoint's architecture (its manifest, the image projector
  // included) and its run's text format (data.tokenizer, data.chat*,
  // data.tokens.*), each unless set here. A checkpoint that does not exist
  // yet is left for the run to report.
  void adopt_checkpoint(const std::set<std::string>& set_keys, config::Origins& origins) {
    std::filesystem::path dir;
    try {
      dir = checkpoints::resolve_checkpoint(init_from);
    } catch (const checkpoints::CheckpointError&) {
      return;
    }
    try {
      const checkpoints::Checkpoint ckpt(dir);
      model::AdoptedArchitecture adopted =
          model::adopt_architecture(model, ckpt.model(), set_keys, dir.string());
      model = std::move(adopted.config);
      for (const std::string& key : adopted.keys)
        origins[key] = dir.string();
      adopt_projector(ckpt.model(), set_keys, dir.string(), origins);
      if (ckpt.config_yaml().empty()) return;
      MuseConfig run;
      config::Origins ignored;
      config::apply_yaml(run, YAML::Load(ckpt.config_yaml()), dir.string(), ignored);
      adopt_text_format(run.data, set_keys, dir.string(), origins);
    } catch (const checkpoints::CheckpointError& e) {
      throw config::ConfigError("init_from", e.what());
    }
  }

  void adopt_projector(const model::ModelConfig& from, const std::set<std::string>& set_keys,
                       const std::string& source, config::Origins& origins) {
    const std::pair<const char*, int64_t model::ModelConfig::*> fields[] = {
        {"model.image_size", &model::ModelConfig::image_size},
        {"model.patch_size", &model::ModelConfig::patch_size},
        {"model.image_channels", &model::ModelConfig::image_channels},
        {"model.image_token_id", &model::ModelConfig::image_token_id}};
    for (const auto& [key, field] : fields) {
      if (set_keys.contains(key) || model.*field == from.*field) continue;
      model.*field = from.*field;
      origins[key] = source;
    }
  }

  void adopt_text_format(const data::DataConfig& from, const std::set<std::string>& set_keys,
                         const std::string& source, config::Origins& origins) {
    const auto adopt = [&](const std::string& key, auto& mine, const auto& theirs) {
      if (set_keys.contains(key) || mine == theirs) return;
      mine = theirs;
      origins[key] = source;
    };
    adopt("data.tokenizer", data.tokenizer, from.tokenizer);
    adopt("data.chat", data.chat, from.chat);
    adopt("data.chat_template", data.chat_template, from.chat_template);
    adopt("data.chat_system", data.chat_system, from.chat_system);
    adopt("data.tokens.bos", data.tokens.bos, from.tokens.bos);
    adopt("data.tokens.eos", data.tokens.eos, from.tokens.eos);
    adopt("data.tokens.image", data.tokens.image, from.tokens.image);
    adopt("data.tokens.think_begin", data.tokens.think_begin, from.tokens.think_begin);
    adopt("data.tokens.think_end", data.tokens.think_end, from.tokens.think_end);
    adopt("data.tokens.answer_begin", data.tokens.answer_begin, from.tokens.answer_begin);
    adopt("data.tokens.answer_end", data.tokens.answer_end, from.tokens.answer_end);
  }

  // The checkpoint's own tokenizer.json unless data.tokenizer is set, and the
  // image placeholder it has (none: model.image_token_id -1, a text model).
  void adopt_tokenizer(const std::filesystem::path& dir, const std::set<std::string>& set_keys,
                       config::Origins& origins) {
    if (!set_keys.contains("data.tokenizer") && std::filesystem::exists(dir / "tokenizer.json")) {
      data.tokenizer = (dir / "tokenizer.json").string();
      origins["data.tokenizer"] = dir.string();
    }
    if (set_keys.contains("model.image_token_id")) return;
    try {
      model.image_token_id =
          data::Tokenizer::load(data.tokenizer, data.tokens).roles().image.value_or(-1);
    } catch (const data::TokenizerError& e) {
      throw config::ConfigError("data.tokenizer", e.what());
    }
    origins["model.image_token_id"] = data.tokenizer;
  }

  // Checks that involve more than one field's declaration.
  void validate() const {
    model.validate();
    rewards.validate();
    if (data.seq_len > model.max_seq_len) {
      throw config::ConfigError("data.seq_len", std::to_string(data.seq_len) +
                                                    " is longer than model.max_seq_len (" +
                                                    std::to_string(model.max_seq_len) + ")");
    }
    if (run.name.empty() || run.name == "." || run.name == ".." ||
        run.name.find('/') != std::string::npos) {
      throw config::ConfigError("run.name", "\"" + run.name + "\" is not a directory name");
    }
    if (run.dir.empty()) throw config::ConfigError("run.dir", "must not be empty");
  }

  // Settings that are valid but probably not what was meant, each with a hint.
  std::vector<std::string> likely_mistakes() const {
    std::vector<std::string> out;
    if (checkpoint.every > trainer.steps) {
      out.push_back("checkpoint.every (" + std::to_string(checkpoint.every) +
                    ") > trainer.steps (" + std::to_string(trainer.steps) +
                    "): only the final step will be saved");
    }
    if (telemetry.log_every > trainer.steps) {
      out.push_back("telemetry.log_every (" + std::to_string(telemetry.log_every) +
                    ") > trainer.steps: nothing is logged until the end");
    }
    if (run_stage() != trainer::Stage::kPretrain && init_from.empty()) {
      out.push_back("stage " + stage + " starts from a freshly initialised model: set init_from " +
                    "to the run or checkpoint it should continue");
    }
    if (dist.collective_timeout_s < 10) {
      out.push_back(
          "dist.collective_timeout_s is " + config::format_value(dist.collective_timeout_s) +
          " s: a slow but healthy collective (a large first all-gather) will abort the job");
    }
    return out;
  }
};

// The config a run was trained with, from its resolved YAML (a checkpoint's
// config.yaml); `origin` names it in errors.
inline MuseConfig config_from_yaml(const std::string& yaml, const std::string& origin) {
  MuseConfig cfg;
  config::Origins origins;
  config::apply_yaml(cfg, YAML::Load(yaml), origin, origins);
  return cfg;
}

// What an executable's --checkpoint names: a muse-train checkpoint (its
// run's config and step), or hf:DIR (DIR's architecture and tokenizer, every
// other setting at its default). Errors are ConfigErrors naming `key`.
struct SourceConfig {
  MuseConfig cfg;
  int64_t step = 0;
};

inline SourceConfig source_config(const std::string& from, const std::string& key) {
  SourceConfig s;
  if (from.starts_with("hf:")) {
    s.cfg.init_from = from;
    config::Origins origins;
    try {
      s.cfg.resolve(origins);
    } catch (const config::ConfigError& e) {
      // Name the option, not the config key resolve() checked it as.
      throw config::ConfigError(key, e.what());
    }
    return s;
  }
  const checkpoints::Checkpoint ckpt(formats::resolve_init_from(from, key));
  s.cfg = config_from_yaml(ckpt.config_yaml(), ckpt.dir().string());
  s.step = ckpt.step();
  return s;
}

}  // namespace muse
