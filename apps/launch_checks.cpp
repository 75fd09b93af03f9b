#include "apps/launch_checks.h"

#include "contemplate/candidate_sets.h"
#include "data/data_error.h"
#include "data/loader.h"
#include "data/shard.h"
#include "inference/adaptive.h"
#include "model/layout.h"
#include "rl/policy_trainer.h"
#include "telemetry/progress.h"

namespace muse {

std::string model_summary(const model::ModelConfig& m) {
  const auto layout = model::model_layout(m);
  const int64_t image_params = layout[model::kEmbedUnit].numel - m.vocab_size * m.dim;
  // The family and shape (layers x width), not the preset: a model imported
  // with hf: keeps the default preset name although config.json set every key.
  return "model: " + m.family + " " + std::to_string(m.n_layers) + "x" + std::to_string(m.dim) +
         ", " + telemetry::format_count(model::param_count(m)) + " parameters (" +
         telemetry::format_count(image_params) + " image projector), " +
         telemetry::format_count(model::flops_per_token(m, m.max_seq_len)) +
         " training FLOPs/token at " + std::to_string(m.max_seq_len) + " tokens";
}

void check_stage_config(const MuseConfig& cfg, int world_size) {
  if (!trainer::is_rl_stage(cfg.run_stage())) return;
  rl::check_launch(cfg.run_stage(), cfg.rl, cfg.rewards, world_size);
  if (cfg.adaptive.eval) inference::check_adaptive_config(cfg.adaptive);
  if (cfg.run_stage() == trainer::Stage::kAggregate)
    contemplate::check_aggregate_config(cfg.aggregate);
}

std::string check_training_data(const MuseConfig& cfg, int rank, int world_size) {
  data::LoaderOptions options = data::loader_options(cfg.data);
  options.image_tokens = cfg.model.n_patches();
  options.vocab_size = cfg.model.vocab_size;
  options.image_size = cfg.model.image_size;
  options.image_channels = cfg.model.image_channels;
  const data::ShardReader first(options.shards.front());
  if (first.header().n_images > 0 && first.header().image_token_id != cfg.model.image_token_id) {
    throw data::DataError(options.shards.front().string() + ": image_token_id " +
                          std::to_string(first.header().image_token_id) +
                          " differs from model.image_token_id " +
                          std::to_string(cfg.model.image_token_id));
  }
  data::Loader loader(options, rank, world_size, cfg.seed);
  const data::Batch batch = loader.next();
  return "data: " + std::to_string(options.shards.size()) + " shard(s), " +
         telemetry::format_count(static_cast<double>(loader.n_documents())) + " documents, " +
         telemetry::format_count(static_cast<double>(loader.n_tokens())) + " tokens, " +
         std::to_string(loader.sequences_in_epoch(0)) + " sequences of " +
         std::to_string(options.seq_len) +
         " per epoch\n  first batch: " + std::to_string(batch.tokens.size(0)) + " rows per rank, " +
         std::to_string(batch.images.size(0)) + " image(s) on rank " + std::to_string(rank);
}

}  // namespace muse
