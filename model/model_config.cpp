#include "model/model_config.h"

#include <variant>

namespace muse::model {
namespace {

constexpr std::string_view kSection = "model";

// Checks each field against its declared bounds, as the loader does, so a
// config built in code gets the same errors as one read from YAML.
struct BoundsChecker {
  template <class T>
  void field(std::string_view name, T& value, const config::FieldSpec& spec) {
    config::check_value(config::join_key(kSection, name), spec, value);
  }
};

// Pointers to every field of a config, in declaration order.
struct FieldPointers {
  using Ptr = std::variant<bool*, int64_t*, double*, std::string*>;
  std::vector<std::string> names;
  std::vector<Ptr> ptrs;

  template <class T>
  void field(std::string_view name, T& value, const config::FieldSpec&) {
    names.emplace_back(name);
    ptrs.emplace_back(&value);
  }
};

// Each preset's shape. image_token_id 3 is where data/'s tokenizer training
// puts `<image>` (the fourth of its special tokens, ids 0..7).
ModelConfig make_tiny() {
  return ModelConfig{};  // the defaults are tiny: 8x8 grayscale digits, 4 patches per image
}

ModelConfig make_small() {
  ModelConfig c;
  c.preset = "small";
  c.vocab_size = 32768;
  c.dim = 512;
  c.n_layers = 8;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.ffn_hidden = 1408;
  c.max_seq_len = 1024;
  c.rope_theta = 10000;
  c.tie_embeddings = true;
  c.image_size = 224;  // 14x14 patches of 16x16 RGB, as ViT-B/16
  c.patch_size = 16;
  c.image_channels = 3;
  return c;
}

// Llama-3.2-1B's text shape.
ModelConfig make_1b() {
  ModelConfig c;
  c.preset = "1b";
  c.vocab_size = 128256;
  c.dim = 2048;
  c.n_layers = 16;
  c.n_heads = 32;
  c.n_kv_heads = 8;
  c.ffn_hidden = 8192;
  c.max_seq_len = 8192;
  c.rope_theta = 500000;
  c.tie_embeddings = true;
  c.image_size = 336;  // 24x24 patches of 14x14 RGB
  c.patch_size = 14;
  c.image_channels = 3;
  return c;
}

// Llama-3-8B's text shape.
ModelConfig make_8b() {
  ModelConfig c = make_1b();
  c.preset = "8b";
  c.dim = 4096;
  c.n_layers = 32;
  c.n_heads = 32;
  c.n_kv_heads = 8;
  c.ffn_hidden = 14336;
  c.tie_embeddings = false;
  return c;
}

struct Preset {
  std::string_view name;
  ModelConfig (*make)();
};
constexpr Preset kPresets[] = {
    {"tiny", make_tiny}, {"small", make_small}, {"1b", make_1b}, {"8b", make_8b}};

}  // namespace

void ModelConfig::validate() const {
  BoundsChecker checker;
  ModelConfig copy = *this;  // visit() is not const
  copy.visit(checker);
  if (preset != "custom") preset_config(preset);  // throws for an unknown name
  if (head_dim_override == 0 && dim % n_heads != 0) {
    throw config::ConfigError("model.dim", std::to_string(dim) +
                                               " is not divisible by model.n_heads (" +
                                               std::to_string(n_heads) + ")");
  }
  if (head_dim() % 2 != 0) {
    throw config::ConfigError(head_dim_override > 0 ? "model.head_dim" : "model.dim",
                              "head dim " + std::to_string(head_dim()) +
                                  " must be even (rotary embeddings rotate pairs)");
  }
  if (rope_scaling == "llama3" && rope_low_freq_factor >= rope_high_freq_factor) {
    throw config::ConfigError("model.rope_low_freq_factor",
                              std::to_string(rope_low_freq_factor) +
                                  " must be below model.rope_high_freq_factor (" +
                                  std::to_string(rope_high_freq_factor) + ")");
  }
  if (n_heads % n_kv_heads != 0) {
    throw config::ConfigError("model.n_kv_heads", std::to_string(n_kv_heads) +
                                                      " does not divide model.n_heads (" +
                                                      std::to_string(n_heads) + ")");
  }
  if (image_size % patch_size != 0) {
    throw config::ConfigError("model.patch_size", std::to_string(patch_size) +
                                                      " does not divide model.image_size (" +
                                                      std::to_string(image_size) + ")");
  }
  if (image_token_id >= vocab_size) {
    throw config::ConfigError("model.image_token_id",
                              std::to_string(image_token_id) + " is outside the vocabulary (" +
                                  "model.vocab_size = " + std::to_string(vocab_size) + ")");
  }
  if (n_patches() > max_seq_len) {
    throw config::ConfigError("model.image_size", "an image fills " + std::to_string(n_patches()) +
                                                      " positions, more than model.max_seq_len (" +
                                                      std::to_string(max_seq_len) + ")");
  }
}

const std::vector<std::string>& preset_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& p : kPresets)
      out.emplace_back(p.name);
    return out;
  }();
  return names;
}

ModelConfig preset_config(std::string_view name) {
  std::string known;
  for (const auto& p : kPresets) {
    if (p.name == name) return p.make();
    known += std::string(p.name) + "|";
  }
  throw config::ConfigError("model.preset", "unknown preset \"" + std::string(name) +
                                                "\": must be one of " + known + "custom");
}

AdoptedArchitecture adopt_architecture(const ModelConfig& cfg, const ModelConfig& from,
                                       const std::set<std::string>& explicitly_set_keys,
                                       const std::string& source) {
  // Everything but the run's choices: the preset name, the image projector
  // and the initialisation.
  static const std::set<std::string, std::less<>> kRunChoices = {
      "preset", "image_size", "patch_size", "image_channels", "image_token_id", "init_std"};
  AdoptedArchitecture out{.config = cfg, .keys = {}};
  ModelConfig theirs = from;
  FieldPointers mine, given;
  out.config.visit(mine);
  theirs.visit(given);
  const std::vector<config::FieldInfo> here = config::describe_fields(cfg);
  const std::vector<config::FieldInfo> there = config::describe_fields(from);
  for (size_t i = 0; i < mine.names.size(); ++i) {
    const std::string& name = mine.names[i];
    if (kRunChoices.count(name)) continue;
    const std::string key = config::join_key(kSection, name);
    if (!explicitly_set_keys.count(key)) {
      std::visit(
          [&](auto* dst) {
            *dst = *std::get<std::remove_reference_t<decltype(dst)>>(given.ptrs[i]);
          },
          mine.ptrs[i]);
      out.keys.push_back(key);
    } else if (name == "head_dim") {
      // Compared as the width it means (0 = dim / n_heads on either side).
      if (out.config.head_dim() != from.head_dim()) {
        throw config::ConfigError(key, std::to_string(out.config.head_dim()) + " disagrees with " +
                                           source + ", which gives " +
                                           std::to_string(from.head_dim()));
      }
    } else if (here[i].value != there[i].value &&
               !(name == "max_seq_len" && cfg.max_seq_len <= from.max_seq_len)) {
      throw config::ConfigError(
          key, here[i].value + " disagrees with " + source + ", which gives " + there[i].value);
    }
  }
  return out;
}

ModelConfig apply_preset(ModelConfig cfg, const std::set<std::string>& explicitly_set_keys) {
  // model.head_dim equal to dim / n_heads is the default, spelled one way so
  // that configs and checkpoints of one model compare equal.
  if (cfg.n_heads > 0 && cfg.dim % cfg.n_heads == 0 &&
      cfg.head_dim_override == cfg.dim / cfg.n_heads)
    cfg.head_dim_override = 0;
  if (cfg.preset == "custom") return cfg;
  ModelConfig preset = preset_config(cfg.preset);
  FieldPointers out, from;
  cfg.visit(out);
  preset.visit(from);
  for (size_t i = 0; i < out.names.size(); ++i) {
    if (out.names[i] == "preset") continue;
    if (explicitly_set_keys.count(config::join_key(kSection, out.names[i]))) continue;
    std::visit(
        [&](auto* dst) { *dst = *std::get<std::remove_reference_t<decltype(dst)>>(from.ptrs[i]); },
        out.ptrs[i]);
  }
  return cfg;
}

}  // namespace muse::model
