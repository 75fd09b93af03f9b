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
  int64_t vocab_size = 4096;
  int64_t dim = 128;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 2;
  int64_t ffn_hidden = 384;
  int64_t max_seq_len = 256;
  double rope_theta = 10000;
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
    v.field("rope_theta", rope_theta, {.help = "base of the rotary position frequencies", .gt = 1});
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
                     "patch_size)^2 consecutive placeholders",
             .ge = 0});
    v.field(
        "init_std", init_std,
        {.help = "standard deviation of the normal initialisation of weight matrices", .gt = 0});
  }

  // Checks every field's bounds and the relations between fields; throws
  // config::ConfigError naming the key ("model.dim").
  void validate() const;

  int64_t head_dim() const { return dim / n_heads; }                              // D
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

}  // namespace muse::model
