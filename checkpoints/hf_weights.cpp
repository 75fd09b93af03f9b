#include "checkpoints/hf_weights.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "checkpoints/checkpoint.h"
#include "checkpoints/posix_file.h"

namespace muse::checkpoints {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

json read_json(const fs::path& path) {
  try {
    return json::parse(detail::read_file(path));
  } catch (const json::exception& e) {
    throw CheckpointError(path.string() + ": not valid JSON (" + e.what() + ")");
  }
}

// config.json against the run's model config: one error naming the key.
void check_config(const fs::path& path, const json& c, const model::ModelConfig& m) {
  const auto number = [&](const char* key, const json& fallback) -> json {
    const json v = c.contains(key) ? c[key] : fallback;
    if (!v.is_number())
      throw CheckpointError(path.string() + ": " + key + " is missing or not a number");
    return v;
  };
  const std::pair<const char*, int64_t> ints[] = {{"vocab_size", m.vocab_size},
                                                  {"hidden_size", m.dim},
                                                  {"num_hidden_layers", m.n_layers},
                                                  {"num_attention_heads", m.n_heads},
                                                  {"intermediate_size", m.ffn_hidden}};
  for (const auto& [key, want] : ints) {
    const int64_t got = number(key, nullptr).get<int64_t>();
    if (got != want) {
      throw CheckpointError(path.string() + ": " + key + " is " + std::to_string(got) +
                            ", the model config has " + std::to_string(want));
    }
  }
  const int64_t kv =
      number("num_key_value_heads", c.value("num_attention_heads", 0)).get<int64_t>();
  if (kv != m.n_kv_heads) {
    throw CheckpointError(path.string() + ": num_key_value_heads is " + std::to_string(kv) +
                          ", model.n_kv_heads is " + std::to_string(m.n_kv_heads));
  }
  const int64_t head_dim = number("head_dim", m.dim / m.n_heads).get<int64_t>();
  if (head_dim != m.head_dim()) {
    throw CheckpointError(path.string() + ": head_dim is " + std::to_string(head_dim) +
                          ", the model's is " + std::to_string(m.head_dim()));
  }
  const std::pair<const char*, double> reals[] = {{"rope_theta", m.rope_theta},
                                                  {"rms_norm_eps", m.norm_eps}};
  for (const auto& [key, want] : reals) {
    const double got = number(key, nullptr).get<double>();
    if (std::fabs(got - want) > 1e-6 * std::fabs(want)) {
      throw CheckpointError(path.string() + ": " + key + " is " + std::to_string(got) +
                            ", the model config has " + std::to_string(want));
    }
  }
  if (c.value("tie_word_embeddings", false) != m.tie_embeddings) {
    throw CheckpointError(path.string() +
                          ": tie_word_embeddings disagrees with model.tie_embeddings");
  }
  if (c.value("attention_bias", false) || c.value("mlp_bias", false))
    throw CheckpointError(path.string() + ": attention_bias and mlp_bias are not supported");
  if (c.contains("rope_scaling") && !c["rope_scaling"].is_null())
    throw CheckpointError(path.string() + ": rope_scaling is not supported");
  if (c.value("hidden_act", "silu") != "silu")
    throw CheckpointError(path.string() + ": hidden_act must be silu");
}

}  // namespace

struct HfWeights::Impl {
  fs::path dir;
  std::vector<SafetensorsFile> files;
  std::map<std::string, size_t> file_of;  // tensor -> index into files
  bool projector = false;
};

HfWeights::HfWeights(fs::path dir, const model::ModelConfig& model)
    : impl_(std::make_unique<Impl>()) {
  impl_->dir = dir;
  if (!fs::is_directory(dir)) throw CheckpointError(dir.string() + ": no such directory");
  check_config(dir / "config.json", read_json(dir / "config.json"), model);

  std::vector<fs::path> paths;
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    const json j = read_json(index);
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw CheckpointError(index.string() + ": no weight_map");
    for (const auto& [name, file] : j["weight_map"].items()) {
      const fs::path p = dir / file.get<std::string>();
      if (std::find(paths.begin(), paths.end(), p) == paths.end()) paths.push_back(p);
    }
  } else {
    paths.push_back(dir / "model.safetensors");
  }
  const fs::path projector = dir / "multi_modal_projector.safetensors";
  impl_->projector = fs::exists(projector);
  if (impl_->projector) paths.push_back(projector);
  for (const fs::path& p : paths) {
    impl_->files.emplace_back(p);
    for (const SafetensorsEntry& e : impl_->files.back().entries()) {
      if (!impl_->file_of.emplace(e.name, impl_->files.size() - 1).second)
        throw CheckpointError(p.string() + ": tensor '" + e.name + "' is also in another file");
    }
  }
  for (const model::UnitLayout& unit : model::model_layout(model)) {
    for (const model::ParamSpec& p : unit.params) {
      const bool is_projector = p.name.starts_with("multi_modal_projector.");
      const auto it = impl_->file_of.find(p.name);
      if (it == impl_->file_of.end()) {
        if (is_projector && !impl_->projector) continue;
        throw CheckpointError((is_projector ? projector : paths.front()).string() +
                              ": no tensor '" + p.name + "'");
      }
      const SafetensorsFile& f = impl_->files[it->second];
      const SafetensorsEntry& e = *f.find(p.name);
      if (e.shape != p.shape) {
        throw CheckpointError(f.path().string() + ": tensor '" + p.name + "' has shape " +
                              shape_text(e.shape) + ", config.json gives " + shape_text(p.shape));
      }
    }
  }
}

HfWeights::~HfWeights() = default;
HfWeights::HfWeights(HfWeights&&) noexcept = default;

const fs::path& HfWeights::dir() const {
  return impl_->dir;
}

bool HfWeights::has_projector() const {
  return impl_->projector;
}

void HfWeights::read_unit(const model::UnitLayout& unit, int64_t begin,
                          const at::Tensor& out) const {
  const int64_t end = begin + out.numel();
  for (const model::ParamSpec& p : unit.params) {
    const int64_t lo = std::max(begin, p.offset), hi = std::min(end, p.offset + p.numel);
    if (lo >= hi) continue;
    const auto it = impl_->file_of.find(p.name);
    if (it == impl_->file_of.end()) continue;  // a projector the directory lacks
    const at::Tensor values = impl_->files[it->second].read(p.name).reshape({-1});
    out.narrow(0, lo - begin, hi - lo).copy_(values.narrow(0, lo - p.offset, hi - lo));
  }
}

}  // namespace muse::checkpoints
