#include "model/family.h"

#include <stdexcept>

namespace muse::model {
namespace {

using enum Dim;
using enum UnitKind;

// Hugging Face LlamaForCausalLM names; GGUF names are llama.cpp's
// (LLM_TENSOR_NAMES of the llama architecture).
constexpr ParamRow kLlamaParams[] = {
    {ParamId::kTokEmbed,
     kEmbed,
     "model.embed_tokens.weight",
     "token_embd.weight",
     {kVocab, kWidth},
     2,
     Presence::kAlways,
     Rotary::kNone,
     ParamInit::kNormal,
     true},
    {ParamId::kAttnNorm,
     kBlock,
     "model.layers.{i}.input_layernorm.weight",
     "blk.{i}.attn_norm.weight",
     {kWidth},
     1,
     Presence::kAlways,
     Rotary::kNone,
     ParamInit::kOnes,
     false},
    {ParamId::kAttnQ,
     kBlock,
     "model.layers.{i}.self_attn.q_proj.weight",
     "blk.{i}.attn_q.weight",
     {kQueryWidth, kWidth},
     2,
     Presence::kAlways,
     Rotary::kQueryRows,
     ParamInit::kNormal,
     true},
    {ParamId::kAttnK,
     kBlock,
     "model.layers.{i}.self_attn.k_proj.weight",
     "blk.{i}.attn_k.weight",
     {kKvWidth, kWidth},
     2,
     Presence::kAlways,
     Rotary::kKeyRows,
     ParamInit::kNormal,
     true},
    {ParamId::kAttnV,
     kBlock,
     "model.layers.{i}.self_attn.v_proj.weight",
     "blk.{i}.attn_v.weight",
     {kKvWidth, kWidth},
     2,
     Presence::kAlways,
     Rotary::kNone,
     ParamInit::kNormal,
     true},
    {ParamId::kAttnOut,
     kBlock,
     "model.layers.{i}.self_attn.o_proj.weight",
     "blk.{i}.attn_output.weight",
     {kWidth, kQueryWidth},
     2,
     Presence::kAlways,
     Rotary::kNone,
     ParamInit::kNormalScaled,
     true},
    {ParamId::kFfnNorm,
     kBlock,
     "model.layers.{i}.post_attention_layernorm.weight",
     "blk.{i}.ffn_norm.weight",
     {kWidth},
     1,
     Presence::kAlways,
     Rotary::kNone,
     ParamInit::kOnes,
     false},
    {ParamId::kFfnGate,
     kBlock,
     "model.layers.{i}.mlp.gate_proj.weight",
     "blk.{i}.ffn_gate.weight",
     {kFfn, kWidth},
     2,
     Presence::kAlways,
     Rotary::kNone,
     ParamInit::kNormal,
     true},
    {ParamId::kFfnUp,
     kBlock,
     "model.layers.{i}.mlp.up_proj.weight",
     "blk.{i}.ffn_up.weight",
     {kFfn, kWidth},
     2,
     Presence::kAlways,
     Rotary::kNone,
     ParamInit::kNormal,
     true},
    {ParamId::kFfnDown,
     kBlock,
     "model.layers.{i}.mlp.down_proj.weight",
     "blk.{i}.ffn_down.weight",
     {kWidth, kFfn},
     2,
     Presence::kAlways,
     Rotary::kNone,
     ParamInit::kNormalScaled,
     true},
    {ParamId::kOutputNorm,
     kHead,
     "model.norm.weight",
     "output_norm.weight",
     {kWidth},
     1,
     Presence::kAlways,
     Rotary::kNone,
     ParamInit::kOnes,
     false},
    {ParamId::kOutput,
     kHead,
     "lm_head.weight",
     "output.weight",
     {kVocab, kWidth},
     2,
     Presence::kUntied,
     Rotary::kNone,
     ParamInit::kNormal,
     true},
};

double as_double(int64_t v) {
  return static_cast<double>(v);
}

// transformers' LlamaConfig keys (config.json).
constexpr HfConfigKey kLlamaConfig[] = {
    {.hf_key = "vocab_size",
     .kind = HfConfigKey::kInt,
     .value = [](const ModelConfig& m) { return as_double(m.vocab_size); },
     .model_key = "model.vocab_size"},
    {.hf_key = "hidden_size",
     .kind = HfConfigKey::kInt,
     .value = [](const ModelConfig& m) { return as_double(m.dim); },
     .model_key = "model.dim"},
    {.hf_key = "intermediate_size",
     .kind = HfConfigKey::kInt,
     .value = [](const ModelConfig& m) { return as_double(m.ffn_hidden); },
     .model_key = "model.ffn_hidden"},
    {.hf_key = "num_hidden_layers",
     .kind = HfConfigKey::kInt,
     .value = [](const ModelConfig& m) { return as_double(m.n_layers); },
     .model_key = "model.n_layers"},
    {.hf_key = "num_attention_heads",
     .kind = HfConfigKey::kInt,
     .value = [](const ModelConfig& m) { return as_double(m.n_heads); },
     .model_key = "model.n_heads"},
    {.hf_key = "num_key_value_heads",
     .kind = HfConfigKey::kInt,
     .value = [](const ModelConfig& m) { return as_double(m.n_kv_heads); },
     .model_key = "model.n_kv_heads",
     .absent = [](const ModelConfig& m) { return as_double(m.n_heads); }},
    {.hf_key = "head_dim",
     .kind = HfConfigKey::kInt,
     .value = [](const ModelConfig& m) { return as_double(m.head_dim()); },
     .model_key = "model.dim / model.n_heads",
     .absent = [](const ModelConfig& m) { return as_double(m.head_dim()); }},
    {.hf_key = "hidden_act", .kind = HfConfigKey::kFixed, .fixed = "\"silu\""},
    {.hf_key = "max_position_embeddings",
     .kind = HfConfigKey::kInt,
     .value = [](const ModelConfig& m) { return as_double(m.max_seq_len); },
     .model_key = "model.max_seq_len",
     .checked = false},
    {.hf_key = "rms_norm_eps",
     .kind = HfConfigKey::kReal,
     .value = [](const ModelConfig& m) { return m.norm_eps; },
     .model_key = "model.norm_eps"},
    {.hf_key = "rope_theta",
     .kind = HfConfigKey::kReal,
     .value = [](const ModelConfig& m) { return m.rope_theta; },
     .model_key = "model.rope_theta"},
    {.hf_key = "rope_scaling", .kind = HfConfigKey::kFixed, .fixed = "null"},
    {.hf_key = "tie_word_embeddings",
     .kind = HfConfigKey::kBool,
     .value = [](const ModelConfig& m) { return m.tie_embeddings ? 1.0 : 0.0; },
     .model_key = "model.tie_embeddings",
     .absent = [](const ModelConfig&) { return 0.0; }},
    {.hf_key = "attention_bias", .kind = HfConfigKey::kFixed, .fixed = "false"},
    {.hf_key = "mlp_bias", .kind = HfConfigKey::kFixed, .fixed = "false"},
    {.hf_key = "attention_dropout", .kind = HfConfigKey::kFixed, .fixed = "0.0", .checked = false},
    {.hf_key = "initializer_range",
     .kind = HfConfigKey::kReal,
     .value = [](const ModelConfig& m) { return m.init_std; },
     .model_key = "model.init_std",
     .checked = false},
    {.hf_key = "pretraining_tp", .kind = HfConfigKey::kFixed, .fixed = "1", .checked = false},
    {.hf_key = "use_cache", .kind = HfConfigKey::kFixed, .fixed = "true", .checked = false},
};

// llama.cpp's LLM_KV names of the llama architecture.
constexpr GgufKey kLlamaGguf[] = {
    {"context_length", GgufKey::kUint32,
     [](const ModelConfig& m) { return as_double(m.max_seq_len); }},
    {"embedding_length", GgufKey::kUint32, [](const ModelConfig& m) { return as_double(m.dim); }},
    {"block_count", GgufKey::kUint32, [](const ModelConfig& m) { return as_double(m.n_layers); }},
    {"feed_forward_length", GgufKey::kUint32,
     [](const ModelConfig& m) { return as_double(m.ffn_hidden); }},
    {"attention.head_count", GgufKey::kUint32,
     [](const ModelConfig& m) { return as_double(m.n_heads); }},
    {"attention.head_count_kv", GgufKey::kUint32,
     [](const ModelConfig& m) { return as_double(m.n_kv_heads); }},
    {"attention.key_length", GgufKey::kUint32,
     [](const ModelConfig& m) { return as_double(m.head_dim()); }},
    {"attention.value_length", GgufKey::kUint32,
     [](const ModelConfig& m) { return as_double(m.head_dim()); }},
    {"rope.dimension_count", GgufKey::kUint32,
     [](const ModelConfig& m) { return as_double(m.head_dim()); }},
    {"rope.freq_base", GgufKey::kFloat32, [](const ModelConfig& m) { return m.rope_theta; }},
    {"attention.layer_norm_rms_epsilon", GgufKey::kFloat32,
     [](const ModelConfig& m) { return m.norm_eps; }},
    {"vocab_size", GgufKey::kUint32, [](const ModelConfig& m) { return as_double(m.vocab_size); }},
};

// The image projector has no GGUF form (a llama GGUF has no place for it).
constexpr ParamRow kProjectorParams[] = {
    {ParamId::kPatchProjWeight,
     kEmbed,
     "multi_modal_projector.patch_proj.weight",
     "",
     {kWidth, kPatchDim},
     2,
     Presence::kAlways,
     Rotary::kNone,
     ParamInit::kNormal,
     true},
    {ParamId::kPatchProjBias,
     kEmbed,
     "multi_modal_projector.patch_proj.bias",
     "",
     {kWidth},
     1,
     Presence::kAlways,
     Rotary::kNone,
     ParamInit::kZeros,
     false},
    {ParamId::kPatchPos,
     kEmbed,
     "multi_modal_projector.patch_pos",
     "",
     {kPatches, kWidth},
     2,
     Presence::kAlways,
     Rotary::kNone,
     ParamInit::kNormal,
     true},
};

constexpr Family kLlama{.name = "llama",
                        .hf_architecture = "LlamaForCausalLM",
                        .hf_model_type = "llama",
                        .gguf_architecture = "llama",
                        .hf_file = "",
                        .params = kLlamaParams,
                        .hf_config = kLlamaConfig,
                        .gguf_keys = kLlamaGguf};

constexpr Family kProjector{.name = "muse-projector",
                            .hf_architecture = "",
                            .hf_model_type = "",
                            .gguf_architecture = "",
                            .hf_file = "multi_modal_projector.safetensors",
                            .params = kProjectorParams,
                            .hf_config = {},
                            .gguf_keys = {}};

int64_t dim_size(Dim d, const ModelConfig& cfg) {
  switch (d) {
    case kVocab:
      return cfg.vocab_size;
    case kWidth:
      return cfg.dim;
    case kQueryWidth:
      return cfg.n_heads * cfg.head_dim();
    case kKvWidth:
      return cfg.n_kv_heads * cfg.head_dim();
    case kFfn:
      return cfg.ffn_hidden;
    case kPatchDim:
      return cfg.patch_dim();
    case kPatches:
      return cfg.n_patches();
  }
  throw std::out_of_range("no such Dim");
}

}  // namespace

const Family& llama_family() {
  return kLlama;
}

const Family& projector_family() {
  return kProjector;
}

std::vector<const Family*> model_families(const ModelConfig&) {
  return {&kLlama, &kProjector};
}

const ParamRow& param_row(ParamId id) {
  for (const Family* f : {&kLlama, &kProjector}) {
    for (const ParamRow& row : f->params)
      if (row.id == id) return row;
  }
  throw std::out_of_range("no such ParamId");
}

const Family& family_of(const ParamRow& row) {
  for (const Family* f : {&kLlama, &kProjector}) {
    for (const ParamRow& r : f->params)
      if (&r == &row) return *f;
  }
  throw std::out_of_range("a ParamRow of no family");
}

bool present(const ParamRow& row, const ModelConfig& cfg) {
  return row.presence == Presence::kAlways || !cfg.tie_embeddings;
}

std::vector<int64_t> param_shape(const ParamRow& row, const ModelConfig& cfg) {
  std::vector<int64_t> shape;
  for (int d = 0; d < row.rank; ++d)
    shape.push_back(dim_size(row.dims[d], cfg));
  return shape;
}

std::string layer_name(std::string_view pattern, int64_t layer) {
  std::string name(pattern);
  const size_t at = name.find("{i}");
  if (at != std::string::npos) name.replace(at, 3, std::to_string(layer));
  return name;
}

}  // namespace muse::model
