// config.json as transformers 4 and 5 write it, read as a model config; the
// checks of a run's model config against it.
#include "formats/hf_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "checkpoints/checkpoint_error.h"
#include "formats/hf_weights.h"

namespace muse::formats {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

class HfConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("hf_config_test_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // `c` written as config.json, read back.
  json round(const json& c) {
    const fs::path p = dir_ / "config.json";
    std::ofstream(p) << c.dump(2);
    return read_hf_config(p);
  }
  model::ModelConfig read(const json& c) {
    return hf_model_config(dir_ / "config.json", round(c), {});
  }
  // The CheckpointError message of reading `c`.
  std::string error_of(const json& c) {
    try {
      read(c);
    } catch (const checkpoints::CheckpointError& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
};

// A Llama 3.1-shaped config in transformers 4's form.
json llama31_v4() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"vocab_size", 1000},
          {"hidden_size", 64},
          {"intermediate_size", 128},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"max_position_embeddings", 512},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 500000.0},
          {"rope_scaling",
           {{"rope_type", "llama3"},
            {"factor", 8.0},
            {"low_freq_factor", 1.0},
            {"high_freq_factor", 4.0},
            {"original_max_position_embeddings", 64}}},
          {"tie_word_embeddings", true}};
}

TEST_F(HfConfig, TransformersFourAndFiveFormsGiveOneModel) {
  json v5 = llama31_v4();
  json params = v5["rope_scaling"];
  params["rope_theta"] = 500000.0;
  v5.erase("rope_scaling");
  v5.erase("rope_theta");
  v5["rope_parameters"] = params;
  const model::ModelConfig a = read(llama31_v4()), b = read(v5);
  EXPECT_EQ(a.family, "llama");
  EXPECT_EQ(a.rope_scaling, "llama3");
  EXPECT_EQ(a.rope_factor, 8);
  EXPECT_EQ(a.rope_original_max_len, 64);
  EXPECT_EQ(a.rope_theta, 500000);
  EXPECT_EQ(a.max_seq_len, 512);
  EXPECT_EQ(rope_scaling_json(a), rope_scaling_json(b));
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.dim, b.dim);
}

TEST_F(HfConfig, FamiliesTakeTheirDefaults) {
  json qwen3 = llama31_v4();
  qwen3["architectures"] = {"Qwen3ForCausalLM"};
  qwen3.erase("rope_scaling");
  qwen3.erase("num_key_value_heads");
  const model::ModelConfig q = read(qwen3);
  EXPECT_EQ(q.family, "qwen3");
  EXPECT_EQ(q.head_dim(), 128);  // Qwen3Config's default, not 64 / 4
  EXPECT_EQ(q.n_kv_heads, 4);    // absent: one per query head
  EXPECT_EQ(q.rope_scaling, "none");
  json llama = qwen3;
  llama["architectures"] = {"LlamaForCausalLM"};
  EXPECT_EQ(read(llama).head_dim(), 16);
}

TEST_F(HfConfig, WhatMuseCannotComputeIsAnErrorNamingTheKey) {
  json c = llama31_v4();
  c["architectures"] = {"GPTNeoXForCausalLM"};
  EXPECT_THAT(error_of(c), HasSubstr("config.json: architectures names GPTNeoXForCausalLM; "
                                     "muse-train reads LlamaForCausalLM"));
  c = llama31_v4();
  c["rope_scaling"]["rope_type"] = "dynamic";
  EXPECT_THAT(error_of(c), HasSubstr("rope_scaling type 'dynamic' is not supported"));
  c = llama31_v4();
  c["rope_scaling"].erase("factor");
  EXPECT_THAT(error_of(c), HasSubstr("rope_scaling.factor is missing"));
  c = llama31_v4();
  c["hidden_size"] = "wide";
  EXPECT_THAT(error_of(c), HasSubstr("hidden_size is \"wide\", not a number"));
  c = llama31_v4();
  c.erase("intermediate_size");
  EXPECT_THAT(error_of(c), HasSubstr("intermediate_size is missing"));
  c = llama31_v4();
  c["num_attention_heads"] = 3;
  EXPECT_THAT(error_of(c), HasSubstr("gives model.dim that cannot work"));
  // Found by fuzz_hf_config: each once crashed the reading (a division by
  // zero, a double too large for an integer, an uncaught JSON type error).
  c = llama31_v4();
  c["num_attention_heads"] = 0;
  EXPECT_THAT(error_of(c), HasSubstr("gives model.n_heads that cannot work"));
  c = llama31_v4();
  c["hidden_size"] = 1e300;
  EXPECT_THAT(error_of(c), HasSubstr("hidden_size is 1e+300, not an integer"));
  c = llama31_v4();
  c["hidden_size"] = 64.5;
  EXPECT_THAT(error_of(c), HasSubstr("hidden_size is 64.5, not an integer"));
  c = llama31_v4();
  c["rope_scaling"]["original_max_position_embeddings"] = -1e19;
  EXPECT_THAT(error_of(c),
              HasSubstr("rope_scaling.original_max_position_embeddings is -1e+19, not an integer"));
  c = llama31_v4();
  c["rope_scaling"]["rope_type"] = 3;
  EXPECT_THAT(error_of(c), HasSubstr("rope_scaling.rope_type is 3, not a string"));
  c = llama31_v4();
  c.erase("rope_scaling");
  c["rope_parameters"] = {{"type", nullptr}};
  EXPECT_THAT(error_of(c), HasSubstr("rope_parameters.type is null, not a string"));
}

TEST_F(HfConfig, ChecksCompareEveryKeyOfTheFamily) {
  json c = llama31_v4();
  const fs::path p = dir_ / "config.json";
  const model::ModelConfig m = read(c);
  EXPECT_NO_THROW(check_hf_config(p, round(c), m));
  json other = c;
  other["attention_bias"] = true;
  try {
    check_hf_config(p, round(other), m);
    FAIL() << "no error";
  } catch (const checkpoints::CheckpointError& e) {
    EXPECT_THAT(e.what(),
                HasSubstr("attention_bias is true; the llama family supports only false"));
  }
  other = c;
  other["rope_scaling"]["factor"] = 4.0;
  EXPECT_THROW(check_hf_config(p, round(other), m), checkpoints::CheckpointError);
  other = c;
  other["architectures"] = {"Qwen2ForCausalLM"};
  EXPECT_THROW(check_hf_config(p, round(other), m), checkpoints::CheckpointError);
  // Mistral's window must cover the sequence; absent, it is 4096.
  json mistral = c;
  mistral["architectures"] = {"MistralForCausalLM"};
  mistral.erase("rope_scaling");
  model::ModelConfig mm = read(mistral);
  mm.max_seq_len = 8192;
  EXPECT_THROW(check_hf_config(p, round(mistral), mm), checkpoints::CheckpointError);
  mm.max_seq_len = 4096;
  EXPECT_NO_THROW(check_hf_config(p, round(mistral), mm));
}

// model.safetensors.index.json maps each tensor to a shard file beside it:
// anything else is one error naming the index and the entry, not a crash or
// a read outside the directory.
TEST_F(HfConfig, IndexEntriesMustBeFileNamesInTheDirectory) {
  const model::ModelConfig cfg = read(llama31_v4());
  for (const json& file : {json(7), json(nullptr), json(""), json("../secret.safetensors"),
                           json("/etc/passwd"), json("..")}) {
    std::ofstream(dir_ / "model.safetensors.index.json")
        << json{{"weight_map", {{"model.norm.weight", file}}}}.dump();
    try {
      HfWeights weights(dir_, cfg);
      ADD_FAILURE() << "accepted " << file.dump();
    } catch (const checkpoints::CheckpointError& e) {
      EXPECT_THAT(e.what(),
                  HasSubstr("model.safetensors.index.json: weight_map[\"model.norm.weight\"] "
                            "is not a file name in the directory"));
    }
  }
}

}  // namespace
}  // namespace muse::formats
