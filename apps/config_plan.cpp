#include "apps/config_plan.h"

#include <algorithm>
#include <climits>
#include <filesystem>
#include <optional>
#include <utility>

#include "apps/launch_checks.h"
#include "apps/muse_config.h"
#include "checkpoints/checkpoint.h"
#include "comm/communicator.h"
#include "config/loader.h"
#include "config/render.h"
#include "data/data_error.h"
#include "data/prompts.h"
#include "inference/prompting.h"
#include "model/layout.h"
#include "rewards/reward_set.h"
#include "rl/policy_trainer.h"
#include "rl/rl_compute.h"
#include "telemetry/log.h"
#include "telemetry/progress.h"
#include "trainer/memory_plan.h"

namespace muse {
namespace {

namespace fs = std::filesystem;

constexpr int kExitConfig = 2;

// What one plan found. Errors are reported as a launch reports them; the
// inputs this machine lacks are warnings, printed together before them.
class Findings {
 public:
  Findings(std::string file, int world_size) : file_(std::move(file)), world_size_(world_size) {}

  int world_size() const { return world_size_; }

  // A check's error: "FILE: key: message" (the key once, when the message
  // starts with it already).
  void fail(const std::string& key, const std::string& message) {
    const bool named = key.empty() || message.starts_with(key + ":");
    errors_.push_back(file_ + ": " + (named ? message : key + ": " + message));
  }
  void fail(const config::ConfigError& e) { fail(e.key(), e.what()); }
  // An error that names its origin itself (the loader's "FILE:LINE: key: ...").
  void fail_located(const std::string& message) { errors_.push_back(message); }

  // `what` could not be checked because an input is not on this machine.
  void not_checked(std::string what) { not_checked_.push_back(std::move(what)); }

  // The warnings, every error and the verdict; returns the exit code.
  int finish() const {
    for (const std::string& what : not_checked_)
      telemetry::log_warning("not checked: " + what);
    for (const std::string& error : errors_)
      telemetry::log_error(error);
    const std::string launch = "on " + std::to_string(world_size_) + " rank(s)";
    if (!errors_.empty()) {
      telemetry::log_info("plan: " + std::to_string(errors_.size()) +
                          " error(s): the config would not start " + launch);
      return kExitConfig;
    }
    telemetry::log_info("plan: the config would start " + launch +
                        (not_checked_.empty() ? std::string()
                                              : "; " + std::to_string(not_checked_.size()) +
                                                    " input(s) not checked here (warnings above)"));
    return 0;
  }

 private:
  std::string file_;
  int world_size_;
  std::vector<std::string> errors_;
  std::vector<std::string> not_checked_;
};

// Whether this machine has `path`: a file or directory, or the directory of
// a glob pattern (data.shards may be one).
bool on_this_machine(const std::string& path) {
  fs::path p(path);
  if (path.find_first_of("*?[") != std::string::npos) p = p.parent_path();
  std::error_code ec;
  return fs::exists(p.empty() ? fs::path(".") : p, ec);
}

// Where init_from points and whether this machine has it.
struct InitSource {
  bool hf = false;      // hf:DIR
  bool absent = false;  // set, but not here: a launch reads the architecture from it
};

InitSource init_source(const std::string& init_from) {
  if (init_from.empty()) return {};
  if (init_from.starts_with("hf:")) {
    return {.hf = true, .absent = !on_this_machine(init_from.substr(3) + "/config.json")};
  }
  return {.hf = false, .absent = !on_this_machine(init_from)};
}

// The backend a launch picks for dist.backend auto: NCCL in a CUDA build.
std::string planned_backend(const std::string& backend) {
  if (backend != "auto") return backend;
  return comm::has_nccl() ? "nccl" : "mpi";
}

// The tokenizer (and chat template) a launch opens, when this machine has
// them (data::check_text_format).
std::optional<data::Tokenizer> open_text_format(const MuseConfig& cfg,
                                                const config::Origins& origins,
                                                const InitSource& source, Findings& found) {
  const data::DataConfig& d = cfg.data;
  const std::string consequence = " (the text format and the prompts' lengths)";
  // An hf: directory or a run brings its tokenizer; the default is the tiny
  // model's.
  if (source.absent && !origins.contains("data.tokenizer")) {
    found.not_checked("data.tokenizer: a launch takes init_from's tokenizer" + consequence);
    return std::nullopt;
  }
  const std::pair<std::string, std::string> files[] = {
      {"data.tokenizer", d.tokenizer}, {"data.chat_template", d.chat ? d.chat_template : ""}};
  for (const auto& [key, path] : files) {
    if (!path.empty() && !on_this_machine(path)) {
      found.not_checked(key + " " + path + " is not on this machine" + consequence);
      return std::nullopt;
    }
  }
  try {
    return data::check_text_format(d);
  } catch (const config::ConfigError& e) {
    found.fail(e);
    return std::nullopt;
  }
}

// Pretraining and SFT: the batch over the ranks, the data, and the step's
// memory and FLOPs.
void plan_training(const MuseConfig& cfg, const std::string& backend, Findings& found) {
  std::optional<trainer::PlanInputs> inputs;
  try {
    inputs = trainer::plan_inputs(cfg.trainer, cfg.data.batch_size, cfg.data.seq_len,
                                  found.world_size(), backend);
  } catch (const config::ConfigError& e) {
    found.fail(e);
    return;
  }
  if (!on_this_machine(cfg.data.shards)) {
    found.not_checked("data.shards " + cfg.data.shards +
                      " is not on this machine (the shards, their fit to the model, the first "
                      "batch)");
  } else {
    try {
      telemetry::log_info(check_training_data(cfg, 0, found.world_size()));
    } catch (const data::DataError& e) {
      found.fail("data.shards", e.what());
    } catch (const config::ConfigError& e) {
      found.fail(e);
    }
  }
  telemetry::log_info(trainer::format_memory_plan(cfg.model, *inputs));
}

// The longest prompt of the JSON Lines file of `key` as the RL stages
// present it (with a budget sentence when `budget` > 0), in tokens; none
// when the tokenizer or the file is not on this machine or it is bad.
std::optional<int64_t> longest_prompt(const MuseConfig& cfg, const data::Tokenizer* tokenizer,
                                      const std::string& key, const std::string& path,
                                      int64_t budget, Findings& found) {
  if (tokenizer == nullptr) return std::nullopt;  // reported with the tokenizer
  if (!on_this_machine(path)) {
    found.not_checked(key + " " + path + " is not on this machine (its prompts' lengths)");
    return std::nullopt;
  }
  const model::ModelConfig& m = cfg.model;
  std::vector<data::PromptRecord> records;
  try {
    records = data::load_prompts(path, *tokenizer,
                                 {.image_tokens = m.n_patches(),
                                  .image_size = m.image_size,
                                  .image_channels = m.image_channels});
  } catch (const data::DataError& e) {
    found.fail(key, e.what());
    return std::nullopt;
  }
  std::vector<int64_t> lengths;
  for (const data::PromptRecord& record : records) {
    lengths.push_back(static_cast<int64_t>(
        inference::present_prompt(record, budget, *tokenizer, m.image_token_id, m.n_patches())
            .tokens.size()));
  }
  const int64_t longest = rl::longest(lengths);
  telemetry::log_info(key + ": " + std::to_string(records.size()) + " prompt(s), the longest " +
                      std::to_string(longest) + " tokens");
  return longest;
}

// rl::check_positions on the longest prompt, or, when the prompts are not
// known here, on the least any prompt needs: one token.
void check_new_tokens(const std::string& key, const std::optional<int64_t>& longest,
                      int64_t new_tokens, int64_t max_seq_len, Findings& found) {
  try {
    if (longest) {
      rl::check_positions(key, *longest + new_tokens, max_seq_len);
    } else if (new_tokens + 1 > max_seq_len) {
      throw config::ConfigError(key, std::to_string(new_tokens) +
                                         " new tokens after a prompt of at least one token are "
                                         "more than model.max_seq_len (" +
                                         std::to_string(max_seq_len) + ") positions");
    }
  } catch (const config::ConfigError& e) {
    found.fail(e);
  }
}

// The RL stages: what PolicyTrainer and the aggregate stage check of the
// prompts' lengths before training, then the update's memory and the step's
// FLOPs.
void plan_rl(const MuseConfig& cfg, const data::Tokenizer* tokenizer, const std::string& backend,
             Findings& found) {
  const model::ModelConfig& m = cfg.model;
  const rl::RlConfig& r = cfg.rl;
  const bool aggregate = cfg.run_stage() == trainer::Stage::kAggregate;
  std::optional<rewards::RewardSet> rewards;
  try {
    rewards.emplace(cfg.rewards);
  } catch (const config::ConfigError& e) {
    found.fail(e);
    return;
  }
  const int64_t budget = rewards->uses_budget() ? cfg.rewards.length.budget_max : 0;
  const int64_t eval_budget = rewards->uses_budget() ? rewards->eval_budget() : 0;
  // The aggregate stage trains on aggregation prompts made at run time; its
  // solvers answer rl.prompts as they are.
  const std::optional<int64_t> train =
      longest_prompt(cfg, tokenizer, "rl.prompts", r.prompts, aggregate ? 0 : budget, found);
  check_new_tokens("rl.max_new_tokens", aggregate ? std::nullopt : train, r.max_new_tokens,
                   m.max_seq_len, found);
  std::optional<int64_t> solved = train;  // what the aggregate stage's solvers answer
  if (!cfg.eval.prompts.empty()) {
    const std::optional<int64_t> eval =
        longest_prompt(cfg, tokenizer, "eval.prompts", cfg.eval.prompts, eval_budget, found);
    check_new_tokens("eval.max_new_tokens", eval, cfg.eval.max_new_tokens, m.max_seq_len, found);
    if (eval) solved = std::max(solved.value_or(0), *eval);
  }
  if (aggregate) {
    check_new_tokens("aggregate.solver_max_new_tokens", solved, cfg.aggregate.solver_max_new_tokens,
                     m.max_seq_len, found);
  }

  // Sequences of the longest prompt plus rl.max_new_tokens, or of
  // model.max_seq_len when the prompts are not known here; an update
  // micro-batch holds rl.micro_batch of them (at most the rank's share).
  const int n = found.world_size();
  const int64_t responses = r.prompts_per_step * r.group_size;
  const int64_t width =
      !aggregate && train ? std::min(*train + r.max_new_tokens, m.max_seq_len) : m.max_seq_len;
  const trainer::PlanInputs in = trainer::micro_batch_inputs(
      cfg.trainer, std::max<int64_t>(1, std::min(r.micro_batch, responses / n)), width, 1, n,
      backend);
  const trainer::MemoryPlan plan = trainer::plan_memory(m, in);
  int64_t full_numel = 0;
  for (const model::UnitLayout& unit : model::model_layout(m))
    full_numel += unit.numel;
  std::vector<trainer::ExtraMemory> extra = {
      {"policy copy", 4 * full_numel, "fp32 full weights for rollouts and evaluation"}};
  if (r.kl.coef > 0) {
    extra.push_back({"reference policy", plan.param_shard_bytes + plan.grad_shard_bytes,
                     "fp32 shard (rl.kl.coef > 0)"});
  }
  if (aggregate && !cfg.aggregate.solver.empty())
    extra.push_back({"solver", 4 * full_numel, "fp32 full weights (aggregate.solver)"});
  // The rollouts generate the rank's responses in one batch
  // (inference::sample_groups) from the policy copy, their KV cache in its
  // fp32, while the sharded state and the copies stay.
  const int64_t per_rank = responses / n;
  const int64_t kv_cache = per_rank * width * m.n_layers * 2 * m.n_kv_heads * m.head_dim() * 4;
  int64_t rollout_peak = plan.total_bytes - plan.gathered_bytes - plan.activation_bytes + kv_cache;
  for (const trainer::ExtraMemory& e : extra)
    rollout_peak += e.bytes;
  rl::UpdateOptions update;
  update.mini_batches = r.mini_batches;
  update.epochs = r.epochs;
  const int64_t prompt = width - std::min(width, r.max_new_tokens);
  const double step_flops = static_cast<double>(responses) *
                            (rl::rollout_flops(m, prompt, r.max_new_tokens) +
                             rl::update_flops(m, update, r.kl.coef > 0, prompt, r.max_new_tokens));
  telemetry::log_info(
      "RL plan per rank (" + std::to_string(n) + " rank(s), update micro-batches of " +
      std::to_string(in.batch_rows) + " x " + std::to_string(in.seq_len) + " tokens, " +
      (in.fsdp.param_dtype == at::kBFloat16 ? "bf16" : "fp32") + " compute):\n" +
      trainer::format_memory_rows(plan, in, extra) +
      trainer::format_memory_row("rollout KV cache", kv_cache,
                                 std::to_string(per_rank) + " responses x " +
                                     std::to_string(width) + " positions in one batch, fp32") +
      trainer::format_memory_row("rollouts' peak", rollout_peak,
                                 "the KV cache beside the weights and the state") +
      "  FLOPs per step: at most " + telemetry::format_count(step_flops) + " (" +
      telemetry::format_count(step_flops / n) + " per rank), " + std::to_string(responses) +
      " responses of " + std::to_string(prompt) + " + " + std::to_string(r.max_new_tokens) +
      " tokens" + (aggregate ? "\n  (the solvers' candidates are not counted)" : ""));
}

}  // namespace

int plan_config(const std::string& config_path, const std::vector<std::string>& overrides,
                int64_t world_size, const std::string& version_line) {
  config::ConfigErrors errors;
  config::Loaded<MuseConfig> loaded =
      config::read_sources<MuseConfig>(config_path, overrides, errors);
  // Keys that are themselves wrong leave nothing sound to plan with.
  if (!errors.empty()) {
    for (const config::ConfigError& e : errors)
      telemetry::log_error(e.what());
    telemetry::log_info("plan: " + std::to_string(errors.size()) +
                        " error(s) in the config's keys: it would not start");
    return kExitConfig;
  }
  MuseConfig& cfg = loaded.config;
  const int64_t n = world_size > 0 ? world_size : cfg.plan.world_size;
  if (n < 1 || n > INT_MAX) {
    telemetry::log_error(config_path +
                         ": plan.world_size: not declared: set it to the ranks the config is "
                         "meant for, or pass --world-size N");
    return kExitConfig;
  }
  Findings found(config_path, static_cast<int>(n));

  const std::string init_from = cfg.init_from;
  const InitSource source = init_source(init_from);
  if (source.absent) {
    found.not_checked("init_from " + init_from + " is not on this machine: planned with this " +
                      "config's model.* (preset " + cfg.model.preset + ") and data.* instead " +
                      "of what a launch reads from it");
    // resolve() would fail to read an hf: directory (a missing checkpoint it
    // leaves for the run to report).
    if (source.hf) cfg.init_from.clear();
  }
  config::ConfigErrors resolve_errors;
  const bool resolved = config::resolve_sources(loaded, resolve_errors);
  cfg.init_from = init_from;
  for (const config::ConfigError& e : resolve_errors)
    found.fail_located(e.what());
  if (!resolved) return found.finish();
  if (!source.hf && !source.absent && !init_from.empty()) {
    try {
      (void)checkpoints::resolve_checkpoint(init_from);
    } catch (const checkpoints::CheckpointError& e) {
      found.fail("init_from", e.what());
    }
  }

  const std::string backend = planned_backend(cfg.dist.backend);
  telemetry::log_info(version_line);
  telemetry::log_info(
      config::render_table(config::describe_fields(cfg), loaded.origins, kStartupWidth,
                           "values cut with … are whole in muse-train --print-config"));
  telemetry::log_info(model_summary(cfg.model));
  for (const std::string& warning : cfg.likely_mistakes())
    telemetry::log_warning(warning);
  telemetry::log_info("plan: " + std::to_string(n) + " rank(s) (" +
                      (world_size > 0 ? "--world-size" : "plan.world_size") + "), backend " +
                      backend);

  if (cfg.wandb.mode == "online") {
    found.not_checked(
        "wandb.mode online: the W&B key (WANDB_API_KEY) is read from the "
        "launch's environment");
  }
  const std::optional<data::Tokenizer> tokenizer =
      open_text_format(cfg, loaded.origins, source, found);
  try {
    check_stage_config(cfg, static_cast<int>(n));
  } catch (const config::ConfigError& e) {
    found.fail(e);
  }
  if (trainer::is_rl_stage(cfg.run_stage())) {
    plan_rl(cfg, tokenizer ? &*tokenizer : nullptr, backend, found);
  } else {
    plan_training(cfg, backend, found);
  }
  telemetry::log_info("plan: nothing was started (no communicator, no GPU); no weights were read");
  return found.finish();
}

}  // namespace muse
