// The `model.*` config section: the transformer's shape, its image patching,
// and named presets that fill in every key the user did not set.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/schema.h"

namespace muse::model {

// Defaults are the `tiny` preset, so a default-constructed config is valid.
struct ModelConfig {
  std::string preset = "tiny";
  std::string family = "llama";  // the text decoder's family (model/family.h)
  int64_t vocab_size = 4096;
  int64_t dim = 128;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 2;
  int64_t ffn_hidden = 384;
  int64_t max_seq_len = 256;
  int64_t head_dim_override = 0;  // model.head_dim; 0 = dim / n_heads
  double rope_theta = 10000;
  // Rotary frequency scaling (transformers' rope_scaling / rope_parameters).
  std::string rope_scaling = "none";
  double rope_factor = 1;
  double rope_low_freq_factor = 1;
  double rope_high_freq_factor = 4;
  int64_t rope_original_max_len = 8192;
  double norm_eps = 1e-5;
  bool tie_embeddings = true;
  int64_t image_size = 8;
  int64_t patch_size = 4;
  int64_t image_channels = 1;
  int64_t image_token_id = 3;
  double init_std = 0.02;

  template <class V>
  void visit(V& v) {
    v.field("preset", preset,
            {.help = "named shape that sets every model.* key not given explicitly: tiny (a "
                     "laptop CPU), small (~40M parameters), 1b and 8b (Llama-3 shapes), or custom "
                     "(the keys as given, defaults for the rest)",
             .choices = {"tiny", "small", "1b", "8b", "custom"}});
    v.field("family", family,
            {.help = "the text decoder: llama (Llama 2/3.x, SmolLM2), mistral, qwen2 (Qwen2/2.5: "
                     "q/k/v biases) or qwen3 (per-head q/k RMSNorm); hf:DIR checkpoints set it "
                     "from config.json",
             .choices = {"llama", "mistral", "qwen2", "qwen3"}});
    v.field(
        "vocab_size", vocab_size,
        {.help = "token vocabulary size (must match the tokenizer)", .unit = "tokens", .ge = 1});
    v.field("dim", dim, {.help = "model width (residual stream)", .ge = 2});
    v.field("n_layers", n_layers, {.help = "transformer blocks", .ge = 1});
    v.field("n_heads", n_heads, {.help = "attention query heads", .ge = 1});
    v.field(
        "n_kv_heads", n_kv_heads,
        {.help = "key/value heads (grouped-query attention; must divide model.n_heads)", .ge = 1});
    v.field("ffn_hidden", ffn_hidden, {.help = "hidden width of the SwiGLU MLP", .ge = 1});
    v.field("max_seq_len", max_seq_len,
            {.help = "longest sequence (text tokens plus image patches) the model accepts",
             .unit = "tokens",
             .ge = 1});
    v.field("head_dim", head_dim_override,
            {.help = "width of one attention head; 0 = model.dim / model.n_heads (Qwen3 sets "
                     "its own)",
             .ge = 0});
    v.field("rope_theta", rope_theta, {.help = "base of the rotary position frequencies", .gt = 1});
    v.field("rope_scaling", rope_scaling,
            {.help = "rotary frequency scaling: none, linear (frequencies / rope_factor) or "
                     "llama3 (Llama 3.1's low/high-frequency blend)",
             .choices = {"none", "linear", "llama3"}});
    v.field("rope_factor", rope_factor,
            {.help = "the scaling factor of rope_scaling linear or llama3", .ge = 1});
    v.field("rope_low_freq_factor", rope_low_freq_factor,
            {.help = "llama3 scaling: wavelengths above original_max_len / low_freq_factor are "
                     "divided by rope_factor",
             .gt = 0});
    v.field("rope_high_freq_factor", rope_high_freq_factor,
            {.help = "llama3 scaling: wavelengths below original_max_len / high_freq_factor are "
                     "kept",
             .gt = 0});
    v.field("rope_original_max_len", rope_original_max_len,
            {.help = "llama3 scaling: the context length the model was pretrained with",
             .unit = "tokens",
             .ge = 1});
    v.field("norm_eps", norm_eps, {.help = "epsilon of RMSNorm", .gt = 0, .lt = 1});
    v.field("tie_embeddings", tie_embeddings,
            {.help = "reuse the token embedding as the output projection"});
    v.field("image_size", image_size,
            {.help = "side of the square input images", .unit = "pixels", .ge = 1});
    v.field("patch_size", patch_size,
            {.help = "side of the square patches an image is cut into (must divide "
                     "model.image_size); each patch fills one sequence position",
             .unit = "pixels",
             .ge = 1});
    v.field("image_channels", image_channels,
            {.help = "channels per pixel: 1 (grayscale) or 3 (RGB)", .ge = 1, .le = 4});
    v.field("image_token_id", image_token_id,
            {.help = "id of the <image> placeholder token; an image fills (image_size / "
                     "patch_size)^2 consecutive placeholders; -1: the model takes no images (a "
                     "model imported with hf: whose tokenizer has no data.tokens.image)",
             .ge = -1});
    v.field(
        "init_std", init_std,
        {.help = "standard deviation of the normal initialisation of weight matrices", .gt = 0});
  }

  // Checks every field's bounds and the relations between fields; throws
  // config::ConfigError naming the key ("model.dim").
  void validate() const;

  int64_t head_dim() const {  // D
    return head_dim_override > 0 ? head_dim_override : dim / n_heads;
  }
  int64_t n_patches() const { return grid() * grid(); }                           // per image
  int64_t patch_dim() const { return patch_size * patch_size * image_channels; }  // P*P*channels
  int64_t grid() const { return image_size / patch_size; }  // patches per image side
};

// The names `model.preset` accepts (except "custom").
const std::vector<std::string>& preset_names();

// The full config of a named preset; throws config::ConfigError for an
// unknown name.
ModelConfig preset_config(std::string_view name);

// `cfg` with every field that `explicitly_set_keys` does not name (keys such
// as "model.dim", e.g. the keys of config::Origins) taken from the preset
// `cfg.preset`; with "custom", `cfg` unchanged.
ModelConfig apply_preset(ModelConfig cfg, const std::set<std::string>& explicitly_set_keys);

// What a model checkpoint's own config fixes: the family, the sizes and
// heads, head_dim, norm_eps, rope_theta and rope_*, tie_embeddings, and the
// longest sequence it was trained for.
struct AdoptedArchitecture {
  ModelConfig config;
  std::vector<std::string> keys;  // the model.* keys taken from `from`
};

// `cfg` with every architecture field of `from` (above) that
// `explicitly_set_keys` does not name. An explicit one that differs from
// `from` throws config::ConfigError naming the key and `source` (the file
// `from` was read from); an explicit model.max_seq_len may be shorter.
AdoptedArchitecture adopt_architecture(const ModelConfig& cfg, const ModelConfig& from,
                                       const std::set<std::string>& explicitly_set_keys,
                                       const std::string& source);

}  // namespace muse::model
