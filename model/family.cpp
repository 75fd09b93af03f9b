#include "model/family.h"

#include <stdexcept>

namespace muse::model {
namespace {

using enum Dim;
using enum UnitKind;

// The text decoder's rows: Hugging Face names of LlamaForCausalLM (Mistral,
// Qwen2 and Qwen3 use the same names); GGUF names are llama.cpp's
// (LLM_TENSOR_NAMES, the same in its llama, qwen2 and qwen3 architectures).
constexpr ParamRow kTextParams[] = {
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
    // Qwen2's q/k/v biases. Families with them keep GGUF's rotate_half
    // layout (Family::gguf_interleaves_rotary false), so the rotary layout
    // of these rows never has to be changed.
    {ParamId::kAttnQBias,
     kBlock,
     "model.layers.{i}.self_attn.q_proj.bias",
     "blk.{i}.attn_q.bias",
     {kQueryWidth},
     1,
     Presence::kQkvBias,
     Rotary::kQueryRows,
     ParamInit::kZeros,
     false},
    {ParamId::kAttnKBias,
     kBlock,
     "model.layers.{i}.self_attn.k_proj.bias",
     "blk.{i}.attn_k.bias",
     {kKvWidth},
     1,
     Presence::kQkvBias,
     Rotary::kKeyRows,
     ParamInit::kZeros,
     false},
    {ParamId::kAttnVBias,
     kBlock,
     "model.layers.{i}.self_attn.v_proj.bias",
     "blk.{i}.attn_v.bias",
     {kKvWidth},
     1,
     Presence::kQkvBias,
     Rotary::kNone,
     ParamInit::kZeros,
     false},
    // Qwen3's per-head RMSNorm of q and k, before rotary.
    {ParamId::kAttnQNorm,
     kBlock,
     "model.layers.{i}.self_attn.q_norm.weight",
     "blk.{i}.attn_q_norm.weight",
     {kHeadDim},
     1,
     Presence::kQkNorm,
     Rotary::kNone,
     ParamInit::kOnes,
     false},
    {ParamId::kAttnKNorm,
     kBlock,
     "model.layers.{i}.self_attn.k_norm.weight",
     "blk.{i}.attn_k_norm.weight",
     {kHeadDim},
     1,
     Presence::kQkNorm,
     Rotary::kNone,
     ParamInit::kOnes,
     false},
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

template <size_t A, size_t B>
constexpr std::array<HfConfigKey, A + B> join(const std::array<HfConfigKey, A>& a,
                                              const std::array<HfConfigKey, B>& b) {
  std::array<HfConfigKey, A + B> out{};
  for (size_t k = 0; k < A; ++k)
    out[k] = a[k];
  for (size_t k = 0; k < B; ++k)
    out[A + k] = b[k];
  return out;
}

int64_t as_int(double v) {
  return static_cast<int64_t>(v);
}

// config.json keys every text family's transformers config has.
constexpr std::array<HfConfigKey, 15> kTextConfig = {{
    {.hf_key = "vocab_size",
     .kind = HfConfigKey::kInt,
     .value = [](const ModelConfig& m) { return as_double(m.vocab_size); },
     .model_key = "model.vocab_size",
     .set = [](ModelConfig& m, double v) { m.vocab_size = as_int(v); }},
    {.hf_key = "hidden_size",
     .kind = HfConfigKey::kInt,
     .value = [](const ModelConfig& m) { return as_double(m.dim); },
     .model_key = "model.dim",
     .set = [](ModelConfig& m, double v) { m.dim = as_int(v); }},
    {.hf_key = "intermediate_size",
     .kind = HfConfigKey::kInt,
     .value = [](const ModelConfig& m) { return as_double(m.ffn_hidden); },
     .model_key = "model.ffn_hidden",
     .set = [](ModelConfig& m, double v) { m.ffn_hidden = as_int(v); }},
    {.hf_key = "num_hidden_layers",
     .kind = HfConfigKey::kInt,
     .value = [](const ModelConfig& m) { return as_double(m.n_layers); },
     .model_key = "model.n_layers",
     .set = [](ModelConfig& m, double v) { m.n_layers = as_int(v); }},
    {.hf_key = "num_attention_heads",
     .kind = HfConfigKey::kInt,
     .value = [](const ModelConfig& m) { return as_double(m.n_heads); },
     .model_key = "model.n_heads",
     .set = [](ModelConfig& m, double v) { m.n_heads = as_int(v); }},
    {.hf_key = "num_key_value_heads",
     .kind = HfConfigKey::kInt,
     .value = [](const ModelConfig& m) { return as_double(m.n_kv_heads); },
     .model_key = "model.n_kv_heads",
     .absent = [](const ModelConfig& m) { return as_double(m.n_heads); },
     .set = [](ModelConfig& m, double v) { m.n_kv_heads = as_int(v); }},
    {.hf_key = "hidden_act", .kind = HfConfigKey::kFixed, .fixed = "\"silu\""},
    {.hf_key = "max_position_embeddings",
     .kind = HfConfigKey::kInt,
     .value = [](const ModelConfig& m) { return as_double(m.max_seq_len); },
     .model_key = "model.max_seq_len",
     .checked = false,  // a run may train on shorter sequences
     .set = [](ModelConfig& m, double v) { m.max_seq_len = as_int(v); }},
    {.hf_key = "rms_norm_eps",
     .kind = HfConfigKey::kReal,
     .value = [](const ModelConfig& m) { return m.norm_eps; },
     .model_key = "model.norm_eps",
     .set = [](ModelConfig& m, double v) { m.norm_eps = v; }},
    {.hf_key = "rope_theta",
     .kind = HfConfigKey::kReal,
     .value = [](const ModelConfig& m) { return m.rope_theta; },
     .model_key = "model.rope_theta",
     .set = [](ModelConfig& m, double v) { m.rope_theta = v; }},
    {.hf_key = "rope_scaling", .kind = HfConfigKey::kRopeScaling},
    {.hf_key = "tie_word_embeddings",
     .kind = HfConfigKey::kBool,
     .value = [](const ModelConfig& m) { return m.tie_embeddings ? 1.0 : 0.0; },
     .model_key = "model.tie_embeddings",
     .absent = [](const ModelConfig&) { return 0.0; },
     .set = [](ModelConfig& m, double v) { m.tie_embeddings = v != 0; }},
    {.hf_key = "attention_dropout", .kind = HfConfigKey::kFixed, .fixed = "0.0", .checked = false},
    {.hf_key = "initializer_range",
     .kind = HfConfigKey::kReal,
     .value = [](const ModelConfig& m) { return m.init_std; },
     .model_key = "model.init_std",
     .checked = false},
    {.hf_key = "use_cache", .kind = HfConfigKey::kFixed, .fixed = "true", .checked = false},
}};

// dim / n_heads; 0 while config.json is read in and n_heads may still be
// 0 (ModelConfig::validate then names model.n_heads).
int64_t dim_per_head(const ModelConfig& m) {
  return m.n_heads > 0 ? m.dim / m.n_heads : 0;
}

// head_dim as a config.json key; absent, `absent` is the family's default.
constexpr HfConfigKey head_dim_key(double (*absent)(const ModelConfig&)) {
  return {.hf_key = "head_dim",
          .kind = HfConfigKey::kInt,
          .value = [](const ModelConfig& m) { return as_double(m.head_dim()); },
          .model_key = "model.head_dim",
          .absent = absent,
          .set =
              [](ModelConfig& m, double v) {
                const int64_t head_dim = as_int(v);
                m.head_dim_override = head_dim == dim_per_head(m) ? 0 : head_dim;
              }};
}

double width_per_head(const ModelConfig& m) {
  return as_double(dim_per_head(m));
}

// transformers' LlamaConfig: attention_bias and mlp_bias put biases on every
// projection, which muse's decoder does not have.
constexpr auto kLlamaConfig = join(
    kTextConfig,
    std::array<HfConfigKey, 4>{{
        head_dim_key(width_per_head),
        {.hf_key = "attention_bias", .kind = HfConfigKey::kFixed, .fixed = "false"},
        {.hf_key = "mlp_bias", .kind = HfConfigKey::kFixed, .fixed = "false"},
        {.hf_key = "pretraining_tp", .kind = HfConfigKey::kFixed, .fixed = "1", .checked = false},
    }});

// MistralConfig: sliding_window defaults to 4096 for every layer.
constexpr auto kMistralConfig =
    join(kTextConfig, std::array<HfConfigKey, 2>{{
                          head_dim_key(width_per_head),
                          {.hf_key = "sliding_window",
                           .kind = HfConfigKey::kWindow,
                           .absent = [](const ModelConfig&) { return 4096.0; }},
                      }});

// Qwen2Config: the q/k/v biases have no key; a sliding window only with
// use_sliding_window.
constexpr auto kQwen2Config =
    join(kTextConfig,
         std::array<HfConfigKey, 2>{{
             head_dim_key(width_per_head),
             {.hf_key = "use_sliding_window", .kind = HfConfigKey::kFixed, .fixed = "false"},
         }});

// Qwen3Config: head_dim defaults to 128, not hidden_size / heads.
constexpr auto kQwen3Config =
    join(kTextConfig,
         std::array<HfConfigKey, 3>{{
             head_dim_key([](const ModelConfig&) { return 128.0; }),
             {.hf_key = "attention_bias", .kind = HfConfigKey::kFixed, .fixed = "false"},
             {.hf_key = "use_sliding_window", .kind = HfConfigKey::kFixed, .fixed = "false"},
         }});

// llama.cpp's LLM_KV names ("ARCH." + suffix; the same suffixes in the
// llama, qwen2 and qwen3 architectures).
constexpr GgufKey kTextGguf[] = {
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

// GGUF: llama.cpp runs llama (and Mistral, converted as llama) with
// interleaved rotary pairs, qwen2 and qwen3 with rotate_half (NEOX).
constexpr Family kLlama{.name = "llama",
                        .hf_architecture = "LlamaForCausalLM",
                        .hf_model_type = "llama",
                        .gguf_architecture = "llama",
                        .hf_file = "",
                        .params = kTextParams,
                        .hf_config = kLlamaConfig,
                        .gguf_keys = kTextGguf,
                        .gguf_interleaves_rotary = true};

constexpr Family kMistral{.name = "mistral",
                          .hf_architecture = "MistralForCausalLM",
                          .hf_model_type = "mistral",
                          .gguf_architecture = "llama",
                          .hf_file = "",
                          .params = kTextParams,
                          .hf_config = kMistralConfig,
                          .gguf_keys = kTextGguf,
                          .gguf_interleaves_rotary = true};

constexpr Family kQwen2{.name = "qwen2",
                        .hf_architecture = "Qwen2ForCausalLM",
                        .hf_model_type = "qwen2",
                        .gguf_architecture = "qwen2",
                        .hf_file = "",
                        .params = kTextParams,
                        .hf_config = kQwen2Config,
                        .gguf_keys = kTextGguf,
                        .qkv_bias = true};

constexpr Family kQwen3{.name = "qwen3",
                        .hf_architecture = "Qwen3ForCausalLM",
                        .hf_model_type = "qwen3",
                        .gguf_architecture = "qwen3",
                        .hf_file = "",
                        .params = kTextParams,
                        .hf_config = kQwen3Config,
                        .gguf_keys = kTextGguf,
                        .qk_norm = true};

constexpr const Family* kTextFamilies[] = {&kLlama, &kMistral, &kQwen2, &kQwen3};

constexpr Family kProjector{.name = "muse-projector",
                            .hf_architecture = "",
                            .hf_model_type = "",
                            .gguf_architecture = "",
                            // In a subdirectory: vLLM loads every *.safetensors
                            // file beside config.json and would find tensors
                            // its model class does not have.
                            .hf_file = "muse/multi_modal_projector.safetensors",
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
    case kHeadDim:
      return cfg.head_dim();
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

const Family& projector_family() {
  return kProjector;
}

std::span<const Family* const> text_families() {
  return kTextFamilies;
}

const Family& text_family(const ModelConfig& cfg) {
  for (const Family* f : kTextFamilies)
    if (f->name == cfg.family) return *f;
  throw std::out_of_range("no text family '" + cfg.family + "'");
}

const Family* family_by_architecture(std::string_view hf_architecture) {
  for (const Family* f : kTextFamilies)
    if (f->hf_architecture == hf_architecture) return f;
  return nullptr;
}

std::vector<const Family*> model_families(const ModelConfig& cfg) {
  return {&text_family(cfg), &kProjector};
}

// Rows are shared by the text families: a row's family is the first that
// lists it (llama for the text rows), which only names its table.
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
  switch (row.presence) {
    case Presence::kAlways:
      return true;
    case Presence::kUntied:
      return !cfg.tie_embeddings;
    case Presence::kQkvBias:
      return text_family(cfg).qkv_bias;
    case Presence::kQkNorm:
      return text_family(cfg).qk_norm;
  }
  return false;
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
