// The one description of a model family: every parameter with its Hugging
// Face and GGUF names, its presence rule, its shape rule, its rotary layout,
// initialisation and weight decay, and the config.json and GGUF metadata keys
// that fix its shape. The unit layout (layout.h), the weight views
// (weights.h), FSDP, both exporters, the Hugging Face importer and the config
// checks all read these tables; no tensor name, presence rule or q/k
// permutation lives anywhere else. llama.cpp's per-architecture tensor-name
// table (src/llama-arch.cpp) and torchtitan's per-model state-dict adapters
// are the models for this.
//
// A muse model is a text family (Llama, Mistral, Qwen2 or Qwen3: one
// decoder whose optional parameters, q/k/v biases and q/k norms, are rows
// with a presence rule) with muse's image projector in its embed unit.
//
// Shapes: C model width, V vocab, H heads, KV kv-heads, D head dim,
// F ffn hidden, P patch size, Ch image channels, Np patches per image.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/model_config.h"

namespace muse::model {

// Every kind of parameter a family may have; the code's handle on a row.
enum class ParamId {
  kTokEmbed,         // (V, C)
  kPatchProjWeight,  // (C, P*P*Ch)
  kPatchProjBias,    // (C)
  kPatchPos,         // (Np, C)
  kAttnNorm,         // (C)
  kAttnQ,            // (H*D, C)
  kAttnK,            // (KV*D, C)
  kAttnV,            // (KV*D, C)
  kAttnQBias,        // (H*D)
  kAttnKBias,        // (KV*D)
  kAttnVBias,        // (KV*D)
  kAttnQNorm,        // (D)
  kAttnKNorm,        // (D)
  kAttnOut,          // (C, H*D)
  kFfnNorm,          // (C)
  kFfnGate,          // (F, C)
  kFfnUp,            // (F, C)
  kFfnDown,          // (C, F)
  kOutputNorm,       // (C)
  kOutput,           // (V, C)
};

enum class ParamInit {
  kOnes,          // norm gains
  kZeros,         // biases
  kNormal,        // N(0, init_std)
  kNormalScaled,  // N(0, init_std / sqrt(2 * n_layers)): projections back into the residual stream
};

// Which unit holds the parameter: the embed unit, every block (its names
// hold "{i}", the layer index), or the head.
enum class UnitKind { kEmbed, kBlock, kHead };

// A size a shape rule names, read from the model config.
enum class Dim {
  kVocab,       // V
  kWidth,       // C
  kQueryWidth,  // H*D
  kKvWidth,     // KV*D
  kHeadDim,     // D
  kFfn,         // F
  kPatchDim,    // P*P*Ch
  kPatches,     // Np
};

// When the parameter exists.
enum class Presence {
  kAlways,
  kUntied,   // only with model.tie_embeddings false (the output projection)
  kQkvBias,  // only in families with q/k/v biases (Qwen2)
  kQkNorm,   // only in families with per-head q/k RMSNorm before rotary (Qwen3)
};

// How the rows of a q or k projection are ordered. muse-train and Hugging
// Face pair dimension i of a head with i + D/2 ("rotate_half"); GGML pairs
// 2i with 2i + 1, so GGUF takes such rows interleaved.
enum class Rotary {
  kNone,
  kQueryRows,  // H heads of D rows, half-split
  kKeyRows,    // KV heads of D rows, half-split
};

struct ParamRow {
  ParamId id;
  UnitKind unit;
  std::string_view hf_name;    // "{i}" is the layer index
  std::string_view gguf_name;  // "{i}" is the layer index; empty: not in a GGUF
  std::array<Dim, 2> dims;     // the first `rank` are the shape
  int rank;
  Presence presence;
  Rotary rotary;
  ParamInit init;
  bool weight_decay;  // matrices yes; norms, biases and position tables of the projector as listed
};

// A config.json key of the family, in the order the exporter writes them:
// a number of the model config, or a value the family supports at one
// setting only (absent counts as that setting, the transformers default).
// The importer compares every `checked` key with the run's model config.
struct HfConfigKey {
  std::string_view hf_key;
  // kRopeScaling: rope_scaling from model.rope_* (null when none).
  // kWindow: a sliding window, written null; read, it must be null or cover
  // model.max_seq_len (absent means `absent`).
  enum Kind { kInt, kReal, kBool, kFixed, kRopeScaling, kWindow } kind = kInt;
  double (*value)(const ModelConfig&) = nullptr;  // kInt, kReal, kBool
  std::string_view model_key = {};                // the model.* key it maps to, for messages
  // The value config.json means when it lacks the key, or nullptr when the
  // key is required.
  double (*absent)(const ModelConfig&) = nullptr;
  std::string_view fixed = {};  // kFixed: the JSON text of the one setting
  bool checked = true;          // false: the run's setting, written only
  // kInt, kReal, kBool with a model key: sets it from config.json's number
  // (a Hugging Face directory's architecture read in).
  void (*set)(ModelConfig&, double) = nullptr;
};

// A GGUF metadata number ("ARCH.<suffix>").
struct GgufKey {
  std::string_view suffix;
  enum Kind { kUint32, kFloat32 } kind;
  double (*value)(const ModelConfig&);
};

struct Family {
  std::string_view name;               // model.family of a text family
  std::string_view hf_architecture;    // config.json "architectures"
  std::string_view hf_model_type;      // config.json "model_type"
  std::string_view gguf_architecture;  // GGUF general.architecture; empty: no GGUF form
  // The safetensors file of a Hugging Face directory holding the family's
  // tensors; empty: the model's own (model.safetensors or its shards).
  std::string_view hf_file;
  std::span<const ParamRow> params;  // in unit order
  std::span<const HfConfigKey> hf_config;
  std::span<const GgufKey> gguf_keys;
  bool qkv_bias = false;  // Presence::kQkvBias rows exist
  bool qk_norm = false;   // Presence::kQkNorm rows exist
  // llama.cpp pairs rotary dimensions 2i, 2i+1 in this GGUF architecture, so
  // kQueryRows/kKeyRows are interleaved on export (false: rotate_half, kept).
  bool gguf_interleaves_rotary = false;
};

// The text families by model.family: llama, mistral, qwen2, qwen3.
std::span<const Family* const> text_families();
// The text family of `cfg` (model.family).
const Family& text_family(const ModelConfig& cfg);
// The text family whose transformers class is `hf_architecture`
// ("Qwen2ForCausalLM"), or nullptr.
const Family* family_by_architecture(std::string_view hf_architecture);
// muse's image projector: patch projection and patch positions, in the embed
// unit after the token table, in its own safetensors file of an export.
const Family& projector_family();
// The families that make up a muse model, in layout order.
std::vector<const Family*> model_families(const ModelConfig& cfg);

// The row of `id` in the model's families; throws std::out_of_range.
const ParamRow& param_row(ParamId id);
// The family whose table holds `row` (llama for the rows the text families share).
const Family& family_of(const ParamRow& row);
// Whether the row is part of a model of `cfg`.
bool present(const ParamRow& row, const ModelConfig& cfg);
// The row's shape under `cfg`.
std::vector<int64_t> param_shape(const ParamRow& row, const ModelConfig& cfg);
// A name of the table with "{i}" replaced by `layer`.
std::string layer_name(std::string_view pattern, int64_t layer);

}  // namespace muse::model
