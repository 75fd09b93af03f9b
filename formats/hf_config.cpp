#include "formats/hf_config.h"

#include <cmath>
#include <optional>
#include <string>

#include "checkpoints/checkpoint_error.h"
#include "checkpoints/posix_file.h"
#include "config/schema.h"
#include "model/family.h"

namespace muse::formats {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

[[noreturn]] void fail(const fs::path& path, const std::string& what) {
  throw checkpoints::CheckpointError(path.string() + ": " + what);
}

std::string number_text(double v, model::HfConfigKey::Kind kind) {
  if (kind == model::HfConfigKey::kBool) return v != 0 ? "true" : "false";
  if (kind == model::HfConfigKey::kInt) return std::to_string(static_cast<int64_t>(v));
  return json(v).dump();
}

// The text family config.json names; an unknown one is an error listing
// those muse reads.
const model::Family& family_of_config(const fs::path& path, const json& c) {
  if (!c.contains("architectures") || !c["architectures"].is_array() ||
      c["architectures"].empty() || !c["architectures"][0].is_string()) {
    fail(path, "architectures is missing or not a list of names");
  }
  const std::string arch = c["architectures"][0].get<std::string>();
  if (const model::Family* f = model::family_by_architecture(arch)) return *f;
  std::string known;
  for (const model::Family* f : model::text_families())
    known += (known.empty() ? "" : ", ") + std::string(f->hf_architecture);
  fail(path, "architectures names " + arch + "; muse-train reads " + known);
}

// `v`, the value of `name`, when it is a whole number an int64 holds.
double whole_number(const fs::path& path, const std::string& name, double v) {
  if (v != std::floor(v) || std::fabs(v) >= 0x1p63)
    fail(path, name + " is " + json(v).dump() + ", not an integer");
  return v;
}

// rope_type (or the older type) of a rope_scaling or rope_parameters object.
std::string rope_type_of(const fs::path& path, const json& r, const std::string& object) {
  for (const char* key : {"rope_type", "type"}) {
    if (!r.contains(key)) continue;
    if (!r[key].is_string())
      fail(path, object + "." + key + " is " + r[key].dump() + ", not a string");
    return r[key].get<std::string>();
  }
  return "default";
}

// The number (or boolean) config.json holds for `key`, or its `absent`
// value; nullopt when it has neither.
std::optional<double> number_of(const fs::path& path, const json& c, const model::HfConfigKey& key,
                                const model::ModelConfig& m) {
  const std::string name(key.hf_key);
  if (!c.contains(name) || c[name].is_null()) {
    if (key.absent) return key.absent(m);
    return std::nullopt;
  }
  const json& v = c[name];
  if (key.kind == model::HfConfigKey::kBool ? !v.is_boolean() : !v.is_number()) {
    fail(path, name + " is " + v.dump() + ", not a " +
                   (key.kind == model::HfConfigKey::kBool ? "boolean" : "number"));
  }
  if (key.kind == model::HfConfigKey::kBool) return v.get<bool>() ? 1.0 : 0.0;
  if (key.kind == model::HfConfigKey::kReal) return v.get<double>();
  return whole_number(path, name, v.get<double>());
}

// rope_scaling's settings as model.rope_* fields of `m`.
void read_rope_scaling(const fs::path& path, const json& r, model::ModelConfig& m) {
  m.rope_scaling = "none";
  if (r.is_null()) return;
  if (!r.is_object()) fail(path, "rope_scaling is " + r.dump() + ", not an object");
  const std::string type = rope_type_of(path, r, "rope_scaling");
  if (type == "default") return;
  if (type != "linear" && type != "llama3") {
    fail(path, "rope_scaling type '" + type +
                   "' is not supported (muse-train computes default, linear and llama3)");
  }
  const auto number = [&](const char* key) {
    if (!r.contains(key) || !r[key].is_number())
      fail(path, std::string("rope_scaling.") + key + " is missing or not a number");
    return r[key].get<double>();
  };
  m.rope_scaling = type;
  m.rope_factor = number("factor");
  if (type == "llama3") {
    m.rope_low_freq_factor = number("low_freq_factor");
    m.rope_high_freq_factor = number("high_freq_factor");
    m.rope_original_max_len =
        static_cast<int64_t>(whole_number(path, "rope_scaling.original_max_position_embeddings",
                                          number("original_max_position_embeddings")));
  }
}

}  // namespace

json rope_scaling_json(const model::ModelConfig& cfg) {
  if (cfg.rope_scaling == "linear") return {{"rope_type", "linear"}, {"factor", cfg.rope_factor}};
  if (cfg.rope_scaling == "llama3") {
    return {{"rope_type", "llama3"},
            {"factor", cfg.rope_factor},
            {"low_freq_factor", cfg.rope_low_freq_factor},
            {"high_freq_factor", cfg.rope_high_freq_factor},
            {"original_max_position_embeddings", cfg.rope_original_max_len}};
  }
  return nullptr;
}

json read_hf_config(const fs::path& path) {
  json c;
  try {
    c = json::parse(checkpoints::detail::read_file(path));
  } catch (const json::exception& e) {
    fail(path, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!c.is_object()) fail(path, "not a JSON object");
  // transformers 5 keeps rope_theta and the scaling in one object.
  if (c.contains("rope_parameters") && c["rope_parameters"].is_object()) {
    json params = c["rope_parameters"];
    if (params.contains("rope_theta") && !c.contains("rope_theta"))
      c["rope_theta"] = params["rope_theta"];
    params.erase("rope_theta");
    const std::string type = rope_type_of(path, params, "rope_parameters");
    if (!c.contains("rope_scaling") || c["rope_scaling"].is_null())
      c["rope_scaling"] = type == "default" ? json(nullptr) : params;
  }
  return c;
}

model::ModelConfig hf_model_config(const fs::path& path, const json& c,
                                   const model::ModelConfig& base) {
  const model::Family& family = family_of_config(path, c);
  model::ModelConfig m = base;
  m.family = std::string(family.name);
  m.head_dim_override = 0;
  for (const model::HfConfigKey& key : family.hf_config) {
    if (key.kind == model::HfConfigKey::kRopeScaling) {
      read_rope_scaling(path, c.value(std::string(key.hf_key), json(nullptr)), m);
      continue;
    }
    if (!key.set) continue;
    const std::optional<double> v = number_of(path, c, key, m);
    if (!v) fail(path, std::string(key.hf_key) + " is missing");
    key.set(m, *v);
  }
  try {
    m.validate();
  } catch (const config::ConfigError& e) {
    fail(path, "gives " + e.key() + " that cannot work: " + e.what());
  }
  return m;
}

void check_hf_config(const fs::path& path, const json& c, const model::ModelConfig& m) {
  const model::Family& family = model::text_family(m);
  const model::Family& theirs = family_of_config(path, c);
  if (&theirs != &family) {
    fail(path, "architectures names " + std::string(theirs.hf_architecture) +
                   ", the model config has model.family " + m.family);
  }
  for (const model::HfConfigKey& key : family.hf_config) {
    if (!key.checked) continue;
    const std::string name(key.hf_key);
    switch (key.kind) {
      case model::HfConfigKey::kFixed:
        if (c.contains(name) && !c[name].is_null() && c[name] != json::parse(key.fixed)) {
          fail(path, name + " is " + c[name].dump() + "; the " + std::string(family.name) +
                         " family supports only " + std::string(key.fixed));
        }
        continue;
      case model::HfConfigKey::kRopeScaling: {
        model::ModelConfig theirs_rope = m;
        read_rope_scaling(path, c.value(name, json(nullptr)), theirs_rope);
        if (rope_scaling_json(theirs_rope) != rope_scaling_json(m)) {
          fail(path, name + " is " + rope_scaling_json(theirs_rope).dump() +
                         ", the model config has " + rope_scaling_json(m).dump() +
                         " (model.rope_*)");
        }
        continue;
      }
      case model::HfConfigKey::kWindow: {
        const std::optional<double> window = number_of(path, c, key, m);
        if (window && *window < static_cast<double>(m.max_seq_len)) {
          fail(path, name + " is " + number_text(*window, model::HfConfigKey::kInt) +
                         ", less than model.max_seq_len (" + std::to_string(m.max_seq_len) +
                         "): muse-train attends over the whole sequence; set model.max_seq_len " +
                         "to at most the window");
        }
        continue;
      }
      case model::HfConfigKey::kInt:
      case model::HfConfigKey::kReal:
      case model::HfConfigKey::kBool:
        break;
    }
    const std::optional<double> got = number_of(path, c, key, m);
    if (!got) fail(path, name + " is missing");
    const double want = key.value(m);
    const bool same = key.kind == model::HfConfigKey::kReal
                          ? std::fabs(*got - want) <= 1e-6 * std::fabs(want)
                          : *got == want;
    if (!same) {
      fail(path, name + " is " + number_text(*got, key.kind) + ", the model config has " +
                     number_text(want, key.kind) + " (" + std::string(key.model_key) + ")");
    }
  }
}

}  // namespace muse::formats
