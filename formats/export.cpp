#include "formats/export.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "checkpoints/manifest.h"
#include "checkpoints/posix_file.h"
#include "data/tokenizer.h"
#include "formats/gguf.h"
#include "formats/hf_config.h"
#include "formats/safetensors.h"
#include "model/family.h"
#include "model/forward.h"
#include "model/layout.h"
#include "muse/version.h"

namespace muse::formats {
namespace {

using checkpoints::detail::Json;
namespace fs = std::filesystem;

constexpr const char* kMuseConfigFile = "muse_config.json";
// The transformers release the exported files are tested with.
constexpr const char* kTransformersVersion = "5.23.0";

// One parameter of the model and where it lives in the checkpoint.
struct Param {
  model::ParamSpec spec;
  std::string unit;  // the checkpoint tensor is UNIT/param
};

std::vector<Param> params_of(const model::ModelConfig& cfg) {
  std::vector<Param> out;
  for (const model::UnitLayout& unit : model::model_layout(cfg))
    for (const model::ParamSpec& p : unit.params)
      out.push_back({p, unit.name});
  return out;
}

bool is_projector(const Param& p) {
  return &model::family_of(*p.spec.row) == &model::projector_family();
}

at::Tensor read_param(const ExportSource& source, const Param& p) {
  return source.read(p.unit, p.spec);
}

int64_t bytes_of(const Param& p, at::ScalarType dtype) {
  return p.spec.numel * static_cast<int64_t>(c10::elementSize(dtype));
}

// What an exporter needs of a tokenizer.json: the tokens by id (added ones
// included), which are special, the merges, the roles of its tokens, and the
// files beside it that travel with it.
struct TokenizerFacts {
  std::string text;                 // the file, to ship unchanged
  std::vector<std::string> tokens;  // by id
  std::vector<int32_t> types;  // GGUF token types: 1 normal, 3 control, 4 user-defined, 5 unused
  std::vector<std::string> merges;  // "left right"
  int64_t bos = -1, pad = -1;       // -1: none
  std::vector<int64_t> stop;        // the end token first
  std::string pre;                  // llama.cpp's pre-tokenizer name; empty: it has none
  std::string config_text;          // tokenizer_config.json beside it; empty: none
  std::string chat_template;        // chat_template.jinja beside it; empty: none
};

// The text of `path` if it exists, else "".
std::string optional_file(const fs::path& path) {
  return fs::exists(path) ? checkpoints::detail::read_file(path) : std::string();
}

TokenizerFacts read_tokenizer(const fs::path& path, int64_t vocab_size,
                              const data::TokenRolesConfig& roles_config) {
  TokenizerFacts t;
  try {
    const data::Tokenizer tokenizer = data::Tokenizer::load(path.string(), roles_config);
    const data::TokenRoles& roles = tokenizer.roles();
    t.bos = roles.bos.empty() ? -1 : roles.bos.front();
    t.stop = roles.stop_tokens();
    t.pad = roles.pad.value_or(-1);
    t.pre = tokenizer.llama_cpp_pre_tokenizer();
  } catch (const data::TokenizerError& e) {
    throw checkpoints::CheckpointError(e.what());
  }
  t.config_text = optional_file(path.parent_path() / "tokenizer_config.json");
  t.chat_template = optional_file(path.parent_path() / "chat_template.jinja");
  t.text = checkpoints::detail::read_file(path);
  Json j;
  try {
    j = Json::parse(t.text);
    t.tokens.assign(vocab_size, "");
    t.types.assign(vocab_size, 5);
    const auto place = [&](int64_t id, const std::string& token, int32_t type) {
      if (id < 0 || id >= vocab_size) {
        throw checkpoints::CheckpointError(path.string() + ": token '" + token + "' has id " +
                                           std::to_string(id) + ", outside model.vocab_size " +
                                           std::to_string(vocab_size));
      }
      t.tokens[id] = token;
      t.types[id] = type;
    };
    for (const auto& [token, id] : j.at("model").at("vocab").items())
      place(id.get<int64_t>(), token, 1);
    for (const Json& added : j.at("added_tokens")) {
      const std::string content = added.at("content").get<std::string>();
      place(added.at("id").get<int64_t>(), content, added.value("special", false) ? 3 : 4);
    }
    for (const Json& m : j.at("model").at("merges")) {
      t.merges.push_back(m.is_string()
                             ? m.get<std::string>()
                             : m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
    }
  } catch (const Json::exception& e) {
    throw checkpoints::CheckpointError(path.string() + ": not a byte-level BPE tokenizer.json (" +
                                       e.what() + ")");
  }
  for (size_t id = 0; id < t.tokens.size(); ++id)
    if (t.types[id] == 5) t.tokens[id] = "[PAD" + std::to_string(id) + "]";
  return t;
}

// The chat template llama.cpp applies: chat_template.jinja, else
// tokenizer_config.json's (as transformers picks it).
std::string chat_template_of(const TokenizerFacts& tok) {
  if (!tok.chat_template.empty() || tok.config_text.empty()) return tok.chat_template;
  try {
    const Json config = Json::parse(tok.config_text);
    const auto it = config.find("chat_template");
    return it != config.end() && it->is_string() ? it->get<std::string>() : std::string();
  } catch (const Json::exception& e) {
    throw checkpoints::CheckpointError("tokenizer_config.json: malformed JSON (" +
                                       std::string(e.what()) + ")");
  }
}

Json optional_id(int64_t id) {
  return id >= 0 ? Json(id) : Json(nullptr);
}

// transformers' eos_token_id: one id, or the list generation stops at.
Json stop_ids(const TokenizerFacts& tok) {
  return tok.stop.size() == 1 ? Json(tok.stop.front()) : Json(tok.stop);
}

void write_json(const fs::path& path, const Json& j) {
  checkpoints::detail::write_file_synced(path, j.dump(2) + "\n");
}

Json hf_config(const model::ModelConfig& cfg, const TokenizerFacts& tok, at::ScalarType dtype) {
  const char* dtype_name = dtype == at::kFloat  ? "float32"
                           : dtype == at::kHalf ? "float16"
                                                : "bfloat16";
  const model::Family& family = model::text_family(cfg);
  Json j;
  j["architectures"] = {family.hf_architecture};
  j["model_type"] = family.hf_model_type;
  for (const model::HfConfigKey& key : family.hf_config) {
    const std::string name(key.hf_key);
    switch (key.kind) {
      case model::HfConfigKey::kInt:
        j[name] = static_cast<int64_t>(key.value(cfg));
        break;
      case model::HfConfigKey::kReal:
        j[name] = key.value(cfg);
        break;
      case model::HfConfigKey::kBool:
        j[name] = key.value(cfg) != 0;
        break;
      case model::HfConfigKey::kFixed:
        j[name] = Json::parse(key.fixed);
        break;
      case model::HfConfigKey::kRopeScaling:
        j[name] = rope_scaling_json(cfg);
        break;
      case model::HfConfigKey::kWindow:
        j[name] = nullptr;  // full attention
        break;
    }
  }
  j["bos_token_id"] = optional_id(tok.bos);
  j["eos_token_id"] = stop_ids(tok);
  j["pad_token_id"] = optional_id(tok.pad);
  j["torch_dtype"] = dtype_name;
  j["transformers_version"] = kTransformersVersion;
  return j;
}

// `out`'s contents are replaced only if it is absent, empty, or an earlier
// export (it holds muse_config.json): a mistyped --out never deletes data.
void check_replaceable(const fs::path& out) {
  if (!fs::exists(out)) return;
  if (!fs::is_directory(out))
    throw checkpoints::CheckpointError(out.string() + ": exists and is not a directory");
  if (fs::is_empty(out) || fs::exists(out / kMuseConfigFile)) return;
  throw checkpoints::CheckpointError(
      out.string() + ": exists and is not a muse-train export; choose another --out");
}

}  // namespace

at::Tensor interleave_rotary_rows(const at::Tensor& w, int64_t n_heads) {
  const int64_t rows = w.size(0), half = rows / n_heads / 2;
  // (heads, 2 halves, D/2, C) -> (heads, D/2, 2, C): half c row i -> row 2i + c.
  return w.reshape({n_heads, 2, half, -1}).transpose(1, 2).reshape(w.sizes());
}

ExportSource ExportSource::checkpoint(const checkpoints::Checkpoint& ckpt) {
  ExportSource s;
  s.config_ = &ckpt.model();
  s.checkpoint_ = &ckpt;
  s.name_ = ckpt.dir().string();
  s.step_ = ckpt.step();
  return s;
}

ExportSource ExportSource::in_memory(const model::Model& model, std::string name) {
  ExportSource s;
  s.config_ = &model.config();
  s.model_ = &model;
  s.name_ = std::move(name);
  return s;
}

at::Tensor ExportSource::read(const std::string& unit, const model::ParamSpec& p) const {
  if (checkpoint_) {
    const at::Tensor flat = at::empty({p.numel}, at::kFloat);
    checkpoint_->read(checkpoints::unit_tensor_name(unit, "param"), p.offset, flat);
    return flat.view(p.shape);
  }
  for (size_t u = 0; u < model_->layout().size(); ++u) {
    if (model_->layout()[u].name == unit)
      return model_->flat_params()[u].narrow(0, p.offset, p.numel).view(p.shape).to(at::kFloat);
  }
  throw checkpoints::CheckpointError(name_ + ": the model has no unit '" + unit + "'");
}

ExportSummary export_hf(const ExportSource& source, const fs::path& out_arg,
                        const ExportOptions& options) {
  // "exports/x/" names the directory x: its temporary twin is "exports/x.tmp".
  fs::path out = out_arg.lexically_normal();
  if (!out.has_filename()) out = out.parent_path();
  const model::ModelConfig& cfg = source.config();
  const TokenizerFacts tok = read_tokenizer(options.tokenizer, cfg.vocab_size, options.tokens);
  check_replaceable(out);
  const fs::path tmp = out.string() + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  // A failed export leaves neither OUT.tmp nor a changed OUT behind.
  struct RemoveUnlessDone {
    fs::path dir;
    bool done = false;
    ~RemoveUnlessDone() {
      std::error_code ignored;
      if (!done) fs::remove_all(dir, ignored);
    }
  } cleanup{tmp};

  ExportSummary summary;
  const std::vector<Param> params = params_of(cfg);
  std::vector<Param> text, projector;
  for (const Param& p : params)
    (is_projector(p) ? projector : text).push_back(p);

  // The text backbone, in shards of at most max_shard_bytes (a tensor larger
  // than that gets a shard of its own).
  std::vector<std::vector<Param>> shards(1);
  int64_t shard_bytes = 0, total_bytes = 0;
  for (const Param& p : text) {
    const int64_t b = bytes_of(p, options.dtype);
    if (!shards.back().empty() && shard_bytes + b > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(p);
    shard_bytes += b;
    total_bytes += b;
  }
  const auto write_group = [&](const std::string& file, const std::vector<Param>& group) {
    std::vector<SafetensorsWriter::Tensor> specs;
    for (const Param& p : group)
      specs.push_back({p.spec.name, p.spec.shape});
    SafetensorsWriter writer(tmp / file, specs, options.dtype);
    for (const Param& p : group)
      writer.write(p.spec.name, read_param(source, p));
    writer.finish();
    summary.tensors += static_cast<int64_t>(group.size());
    summary.bytes += writer.data_bytes();
    summary.files.push_back(out / file);
  };
  Json weight_map;
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    const std::string file = shards.size() == 1 ? "model.safetensors" : name;
    write_group(file, shards[s]);
    for (const Param& p : shards[s])
      weight_map[p.spec.name] = file;
  }
  if (shards.size() > 1) {
    write_json(tmp / "model.safetensors.index.json",
               Json{{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}});
  }
  const std::string projector_file(model::projector_family().hf_file);
  fs::create_directories((tmp / projector_file).parent_path());
  write_group(projector_file, projector);
  checkpoints::detail::sync_dir((tmp / projector_file).parent_path());

  write_json(tmp / "config.json", hf_config(cfg, tok, options.dtype));
  Json generation{{"bos_token_id", optional_id(tok.bos)},
                  {"eos_token_id", stop_ids(tok)},
                  {"do_sample", false},
                  {"transformers_version", kTransformersVersion}};
  if (tok.pad >= 0) generation["pad_token_id"] = tok.pad;
  write_json(tmp / "generation_config.json", generation);
  checkpoints::detail::write_file_synced(tmp / "tokenizer.json", tok.text);
  // A checkpoint's own tokenizer_config.json (its chat template, its special
  // tokens) travels unchanged; muse-data's tokenizers get one written.
  if (!tok.config_text.empty()) {
    checkpoints::detail::write_file_synced(tmp / "tokenizer_config.json", tok.config_text);
  } else {
    Json tok_config{{"tokenizer_class", "PreTrainedTokenizerFast"},
                    {"eos_token", tok.tokens[static_cast<size_t>(tok.stop.front())]},
                    {"model_max_length", cfg.max_seq_len},
                    {"clean_up_tokenization_spaces", false}};
    if (tok.bos >= 0) tok_config["bos_token"] = tok.tokens[static_cast<size_t>(tok.bos)];
    if (tok.pad >= 0) tok_config["pad_token"] = tok.tokens[static_cast<size_t>(tok.pad)];
    write_json(tmp / "tokenizer_config.json", tok_config);
  }
  if (!tok.chat_template.empty()) {
    checkpoints::detail::write_file_synced(tmp / "chat_template.jinja", tok.chat_template);
    summary.files.push_back(out / "chat_template.jinja");
  }
  Json projector_tensors;
  for (const Param& p : projector)
    projector_tensors[p.spec.name] = p.spec.shape;
  write_json(tmp / kMuseConfigFile,
             Json{{"format", "muse-train-export"},
                  {"muse_train_version", MUSE_VERSION},
                  {"source", {{"checkpoint", source.name()}, {"step", source.step()}}},
                  {"model", checkpoints::detail::model_to_json(cfg)},
                  {"multi_modal_projector",
                   {{"file", projector_file},
                    {"image_token_id", cfg.image_token_id},
                    {"image_size", cfg.image_size},
                    {"patch_size", cfg.patch_size},
                    {"image_channels", cfg.image_channels},
                    {"patches_per_image", cfg.n_patches()},
                    {"tensors", projector_tensors}}}});
  for (const char* f : {"config.json", "generation_config.json", "tokenizer.json",
                        "tokenizer_config.json", kMuseConfigFile})
    summary.files.push_back(out / f);
  if (shards.size() > 1) summary.files.push_back(out / "model.safetensors.index.json");

  checkpoints::detail::sync_dir(tmp);
  fs::remove_all(out);
  fs::rename(tmp, out);
  cleanup.done = true;
  checkpoints::detail::sync_dir(out.has_parent_path() ? out.parent_path() : fs::path("."));
  return summary;
}

ExportSummary export_gguf(const ExportSource& source, const fs::path& out,
                          const ExportOptions& options) {
  const model::ModelConfig& cfg = source.config();
  const TokenizerFacts tok = read_tokenizer(options.tokenizer, cfg.vocab_size, options.tokens);
  GgufWriter w(out);
  const model::Family& family = model::text_family(cfg);
  const std::string arch(family.gguf_architecture);
  // llama.cpp reads Llama 3.1's scaling as per-frequency factors, which only
  // its llama architecture loads.
  const bool rope_factors = cfg.rope_scaling == "llama3";
  if (rope_factors && arch != "llama") {
    throw checkpoints::CheckpointError(source.name() + ": model.rope_scaling llama3 has no " +
                                       arch + " GGUF form (llama.cpp reads its rope_freqs only " +
                                       "for llama); export --format hf");
  }
  w.add_string("general.architecture", arch);
  w.add_string("general.type", "model");
  w.add_string("general.name", "muse");
  w.add_uint32("general.file_type", options.dtype == at::kFloat  ? 0
                                    : options.dtype == at::kHalf ? 1
                                                                 : 32);
  w.add_uint32("general.quantization_version", 2);
  w.add_uint32("general.alignment", static_cast<uint32_t>(kGgufAlignment));
  const auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  for (const model::GgufKey& key : family.gguf_keys) {
    const std::string name = arch + "." + std::string(key.suffix);
    if (key.kind == model::GgufKey::kUint32)
      w.add_uint32(name, u32(static_cast<int64_t>(key.value(cfg))));
    if (key.kind == model::GgufKey::kFloat32)
      w.add_float32(name, static_cast<float>(key.value(cfg)));
  }
  if (cfg.rope_scaling == "linear") {
    w.add_string(arch + ".rope.scaling.type", "linear");
    w.add_float32(arch + ".rope.scaling.factor", static_cast<float>(cfg.rope_factor));
  }
  w.add_string("tokenizer.ggml.model", "gpt2");
  if (tok.pre.empty()) {
    throw checkpoints::CheckpointError(
        options.tokenizer.string() +
        ": pre_tokenizer has no llama.cpp name (llama.cpp splits text as "
        "Llama 3's, Qwen2's or GPT-2's pre-tokenizer; GGUF needs one of those)");
  }
  w.add_string("tokenizer.ggml.pre", tok.pre);
  w.add_string_array("tokenizer.ggml.tokens", tok.tokens);
  w.add_int32_array("tokenizer.ggml.token_type", tok.types);
  w.add_string_array("tokenizer.ggml.merges", tok.merges);
  if (tok.bos >= 0) w.add_uint32("tokenizer.ggml.bos_token_id", u32(tok.bos));
  w.add_uint32("tokenizer.ggml.eos_token_id", u32(tok.stop.front()));
  if (tok.pad >= 0) w.add_uint32("tokenizer.ggml.padding_token_id", u32(tok.pad));
  // llama.cpp prepends BOS exactly when muse-train's prompts start with it.
  w.add_bool("tokenizer.ggml.add_bos_token", tok.bos >= 0);
  w.add_bool("tokenizer.ggml.add_eos_token", false);
  if (const std::string chat = chat_template_of(tok); !chat.empty())
    w.add_string("tokenizer.chat_template", chat);

  struct Planned {
    Param param;
    std::string name;
  };
  std::vector<Planned> planned;
  // The projector has no GGUF name: a llama GGUF has no place for it.
  for (const model::UnitLayout& unit : model::model_layout(cfg)) {
    for (const model::ParamSpec& p : unit.params) {
      if (p.row->gguf_name.empty()) continue;
      const std::string name = model::layer_name(p.row->gguf_name, p.layer);
      // Norms (every 1-D tensor) stay F32, as llama.cpp's converter keeps them.
      const at::ScalarType dtype = p.shape.size() == 1 ? at::kFloat : options.dtype;
      w.add_tensor({.name = name, .shape = p.shape, .dtype = dtype});
      planned.push_back({{p, unit.name}, name});
    }
  }
  // What llama.cpp divides each rotary frequency by (D/2): the scaling.
  const at::Tensor rope_freqs = model::rope_inv_freq(cfg, false) / model::rope_inv_freq(cfg);
  if (rope_factors) {
    w.add_tensor({.name = "rope_freqs.weight", .shape = {rope_freqs.size(0)}, .dtype = at::kFloat});
  }
  w.write_header();
  ExportSummary summary;
  for (const Planned& p : planned) {
    at::Tensor t = read_param(source, p.param);
    const model::Rotary rotary =
        family.gguf_interleaves_rotary ? p.param.spec.row->rotary : model::Rotary::kNone;
    if (rotary == model::Rotary::kQueryRows) t = interleave_rotary_rows(t, cfg.n_heads);
    if (rotary == model::Rotary::kKeyRows) t = interleave_rotary_rows(t, cfg.n_kv_heads);
    w.write_tensor(p.name, t);
    ++summary.tensors;
  }
  if (rope_factors) {
    w.write_tensor("rope_freqs.weight", rope_freqs);
    ++summary.tensors;
  }
  w.finish();
  summary.bytes = w.data_bytes();
  summary.files.push_back(out);
  return summary;
}

}  // namespace muse::formats
