// The model.* config section: presets and validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>

#include "config/schema.h"
#include "model/model_config.h"

namespace muse::model {
namespace {

// "path=value" for every field, to compare whole configs.
std::vector<std::string> flatten(const ModelConfig& cfg) {
  std::vector<std::string> out;
  for (const auto& f : config::describe_fields(cfg))
    out.push_back(f.path + "=" + f.value);
  return out;
}

TEST(ModelConfig, DefaultsAreTheTinyPreset) {
  EXPECT_EQ(flatten(ModelConfig{}), flatten(preset_config("tiny")));
  const ModelConfig tiny;
  EXPECT_EQ(tiny.image_size, 8);  // scikit-learn's 8x8 grayscale digits
  EXPECT_EQ(tiny.image_channels, 1);
  EXPECT_EQ(tiny.n_patches(), 4);
}

TEST(ModelConfig, EveryPresetIsValid) {
  for (const auto& name : preset_names()) {
    const ModelConfig c = preset_config(name);
    EXPECT_EQ(c.preset, name);
    EXPECT_NO_THROW(c.validate()) << name;
  }
}

TEST(ModelConfig, EightBIsLlama3Shaped) {
  const ModelConfig c = preset_config("8b");
  EXPECT_EQ(c.dim, 4096);
  EXPECT_EQ(c.n_layers, 32);
  EXPECT_EQ(c.n_heads, 32);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.ffn_hidden, 14336);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.rope_theta, 500000);
  EXPECT_FALSE(c.tie_embeddings);
}

TEST(ModelConfig, PresetFillsTheKeysNotSetExplicitly) {
  ModelConfig c;
  c.preset = "8b";
  c.dim = 1024;       // set explicitly: kept
  c.n_layers = 3;     // changed in code but not named as set: the preset's value wins
  c.max_seq_len = 2;  // likewise
  const ModelConfig r = apply_preset(c, {"model.preset", "model.dim"});
  EXPECT_EQ(r.preset, "8b");
  EXPECT_EQ(r.dim, 1024);
  EXPECT_EQ(r.n_layers, 32);
  EXPECT_EQ(r.max_seq_len, 8192);
  EXPECT_EQ(r.vocab_size, 128256);
  EXPECT_FALSE(r.tie_embeddings);
  EXPECT_EQ(r.rope_theta, 500000);
}

TEST(ModelConfig, PresetWithoutExplicitKeysIsThePreset) {
  ModelConfig c;
  c.preset = "small";
  EXPECT_EQ(flatten(apply_preset(c, {})), flatten(preset_config("small")));
}

TEST(ModelConfig, CustomKeepsTheFieldsAsGiven) {
  ModelConfig c;
  c.preset = "custom";
  c.dim = 64;
  c.n_layers = 7;
  EXPECT_EQ(flatten(apply_preset(c, {})), flatten(c));
}

TEST(ModelConfig, UnknownPresetIsAnError) {
  ModelConfig c;
  c.preset = "huge";
  try {
    apply_preset(c, {});
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(e.key(), "model.preset");
    EXPECT_NE(std::string(e.what()).find("huge"), std::string::npos);
  }
  EXPECT_THROW(c.validate(), config::ConfigError);
}

struct BadCase {
  std::string what;
  std::function<void(ModelConfig&)> change;
  std::string key;
  std::string fragment;
};

TEST(ModelConfig, ValidateNamesTheKeyAtFault) {
  const std::vector<BadCase> cases = {
      {"width not divisible by heads", [](ModelConfig& c) { c.dim = 130; }, "model.dim",
       "not divisible by model.n_heads"},
      {"odd head dim", [](ModelConfig& c) { c.dim = 12; }, "model.dim", "must be even"},
      {"kv heads do not divide heads", [](ModelConfig& c) { c.n_kv_heads = 3; }, "model.n_kv_heads",
       "does not divide model.n_heads"},
      {"patch does not divide image", [](ModelConfig& c) { c.patch_size = 3; }, "model.patch_size",
       "does not divide model.image_size"},
      {"placeholder outside vocab", [](ModelConfig& c) { c.image_token_id = 4096; },
       "model.image_token_id", "outside the vocabulary"},
      {"image longer than a sequence",
       [](ModelConfig& c) {
         c.image_size = 64;
         c.patch_size = 2;
       },
       "model.image_size", "more than model.max_seq_len"},
      {"zero heads", [](ModelConfig& c) { c.n_heads = 0; }, "model.n_heads", "out of range"},
      {"rope base 1", [](ModelConfig& c) { c.rope_theta = 1; }, "model.rope_theta", "out of range"},
      {"five channels", [](ModelConfig& c) { c.image_channels = 5; }, "model.image_channels",
       "out of range"},
  };
  for (const auto& bad : cases) {
    ModelConfig c;
    bad.change(c);
    try {
      c.validate();
      ADD_FAILURE() << bad.what << ": no error";
    } catch (const config::ConfigError& e) {
      EXPECT_EQ(e.key(), bad.key) << bad.what;
      EXPECT_NE(std::string(e.what()).find(bad.fragment), std::string::npos)
          << bad.what << ": " << e.what();
    }
  }
}

TEST(ModelConfig, AdoptsACheckpointsArchitectureUnlessSetExplicitly) {
  ModelConfig theirs;
  theirs.family = "qwen3";
  theirs.dim = 256;
  theirs.head_dim_override = 96;
  theirs.max_seq_len = 4096;
  theirs.image_size = 32;  // a run choice: never taken from a checkpoint
  ModelConfig mine;
  mine.max_seq_len = 512;
  const AdoptedArchitecture a =
      adopt_architecture(mine, theirs, {"model.max_seq_len"}, "DIR/config.json");
  EXPECT_EQ(a.config.family, "qwen3");
  EXPECT_EQ(a.config.dim, 256);
  EXPECT_EQ(a.config.head_dim(), 96);
  EXPECT_EQ(a.config.max_seq_len, 512);  // shorter than the checkpoint's: allowed
  EXPECT_EQ(a.config.image_size, mine.image_size);
  EXPECT_NE(std::find(a.keys.begin(), a.keys.end(), "model.dim"), a.keys.end());
  EXPECT_EQ(std::find(a.keys.begin(), a.keys.end(), "model.max_seq_len"), a.keys.end());

  mine.dim = 128;
  try {
    adopt_architecture(mine, theirs, {"model.dim"}, "DIR/config.json");
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(e.key(), "model.dim");
    EXPECT_STREQ(e.what(), "128 disagrees with DIR/config.json, which gives 256");
  }
  mine.max_seq_len = 8192;
  EXPECT_THROW(adopt_architecture(mine, theirs, {"model.max_seq_len"}, "DIR/config.json"),
               config::ConfigError);
  // head_dim compares as the width it means: 32 on width 256 over 8 heads is
  // the default, however either side spells it.
  theirs.head_dim_override = 0;
  theirs.n_heads = 8;
  ModelConfig spelled = mine;
  spelled.dim = 256;
  spelled.n_heads = 8;
  spelled.head_dim_override = 32;
  spelled.max_seq_len = 512;
  EXPECT_NO_THROW(adopt_architecture(spelled, theirs, {"model.head_dim"}, "DIR/config.json"));
  spelled.head_dim_override = 64;
  try {
    adopt_architecture(spelled, theirs, {"model.head_dim"}, "DIR/config.json");
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_STREQ(e.what(), "64 disagrees with DIR/config.json, which gives 32");
  }
  // A preset's config spells the default head_dim as 0.
  ModelConfig custom;
  custom.preset = "custom";
  custom.head_dim_override = custom.dim / custom.n_heads;
  EXPECT_EQ(apply_preset(custom, {"model.head_dim"}).head_dim_override, 0);
}

TEST(ModelConfig, HeadDimAndRopeScalingAreChecked) {
  ModelConfig cfg;
  cfg.head_dim_override = 33;
  try {
    cfg.validate();
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(e.key(), "model.head_dim");
  }
  cfg.head_dim_override = 0;
  cfg.rope_scaling = "llama3";
  cfg.rope_low_freq_factor = 4;
  cfg.rope_high_freq_factor = 4;
  try {
    cfg.validate();
    FAIL() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_EQ(e.key(), "model.rope_low_freq_factor");
  }
}

}  // namespace
}  // namespace muse::model
