#include "formats/hf_weights.h"

#include <nlohmann/json.hpp>

#include "checkpoints/checkpoint.h"
#include "checkpoints/posix_file.h"
#include "formats/hf_config.h"
#include "model/family.h"

namespace muse::formats {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
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
  if (!fs::is_directory(dir))
    throw checkpoints::CheckpointError(dir.string() + ": no such directory");
  check_hf_config(dir / "config.json", read_hf_config(dir / "config.json"), model);

  std::vector<fs::path> paths;
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    json j;
    try {
      j = json::parse(checkpoints::detail::read_file(index));
    } catch (const json::exception& e) {
      throw checkpoints::CheckpointError(index.string() + ": not valid JSON (" + e.what() + ")");
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw checkpoints::CheckpointError(index.string() + ": no weight_map");
    for (const auto& [name, file] : j["weight_map"].items()) {
      // A shard is a file beside the index, never a path out of the directory.
      const std::string shard = file.is_string() ? file.get<std::string>() : "";
      if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos)
        throw checkpoints::CheckpointError(
            index.string() + ": weight_map[\"" + name +
            "\"] is not a file name in the directory: " + file.dump());
      const fs::path p = dir / shard;
      if (std::find(paths.begin(), paths.end(), p) == paths.end()) paths.push_back(p);
    }
  } else {
    paths.push_back(dir / "model.safetensors");
  }
  // Exports before the projector moved into muse/ keep it beside config.json.
  fs::path projector = dir / model::projector_family().hf_file;
  if (!fs::exists(projector) && fs::exists(dir / projector.filename()))
    projector = dir / projector.filename();
  impl_->projector = fs::exists(projector);
  if (impl_->projector) paths.push_back(projector);
  for (const fs::path& p : paths) {
    impl_->files.emplace_back(p);
    for (const SafetensorsEntry& e : impl_->files.back().entries()) {
      if (!impl_->file_of.emplace(e.name, impl_->files.size() - 1).second)
        throw checkpoints::CheckpointError(p.string() + ": tensor '" + e.name +
                                           "' is also in another file");
    }
  }
  for (const model::UnitLayout& unit : model::model_layout(model)) {
    for (const model::ParamSpec& p : unit.params) {
      const bool is_projector = &model::family_of(*p.row) == &model::projector_family();
      const auto it = impl_->file_of.find(p.name);
      if (it == impl_->file_of.end()) {
        if (is_projector && !impl_->projector) continue;
        throw checkpoints::CheckpointError((is_projector ? projector : paths.front()).string() +
                                           ": no tensor '" + p.name + "'");
      }
      const SafetensorsFile& f = impl_->files[it->second];
      const SafetensorsEntry& e = *f.find(p.name);
      if (e.shape != p.shape) {
        throw checkpoints::CheckpointError(f.path().string() + ": tensor '" + p.name +
                                           "' has shape " + shape_text(e.shape) +
                                           ", config.json gives " + shape_text(p.shape));
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

}  // namespace muse::formats
