#include "checkpoints/manifest.h"

#include <cstdint>
#include <cstdio>
#include <set>
#include <type_traits>

#include "checkpoints/checkpoint.h"
#include "config/schema.h"
#include "model/layout.h"

namespace muse::checkpoints::detail {
namespace {

// Fields that do not change the shape of the weights: a checkpoint loads
// into a config that differs only in these.
const std::set<std::string, std::less<>> kNonArchitectureFields = {"preset", "init_std"};

// model.* keys newer than the first manifests: a manifest without one means
// the default (a Llama decoder of width dim / n_heads per head, unscaled rotary).
const std::set<std::string, std::less<>> kKeysWithDefaults = {"family",
                                                              "head_dim",
                                                              "rope_scaling",
                                                              "rope_factor",
                                                              "rope_low_freq_factor",
                                                              "rope_high_freq_factor",
                                                              "rope_original_max_len"};

struct ToJson {
  Json& j;
  template <class T>
  void field(std::string_view name, T& value, const config::FieldSpec&) {
    j[std::string(name)] = value;
  }
};

struct FromJson {
  const Json& j;
  std::string error;  // the first problem, or empty

  template <class T>
  void field(std::string_view name, T& value, const config::FieldSpec&) {
    if (!error.empty()) return;
    const std::string key = config::join_key("model", name);
    const auto it = j.find(std::string(name));
    if (it == j.end()) {
      if (!kKeysWithDefaults.count(name)) error = key + " is missing";
      return;
    }
    bool ok = false;
    if constexpr (std::is_same_v<T, bool>) {
      ok = it->is_boolean();
    } else if constexpr (std::is_same_v<T, int64_t>) {
      ok = it->is_number_integer();
    } else if constexpr (std::is_same_v<T, double>) {
      ok = it->is_number();
    } else if constexpr (std::is_same_v<T, std::string>) {
      ok = it->is_string();
    } else {
      static_assert(std::is_same_v<T, bool>, "add this field type to FromJson");
    }
    if (!ok) {
      error = key + ": expected " + std::string(config::type_name<T>()) + ", got " + it->dump();
      return;
    }
    value = it->template get<T>();
  }
};

struct Formatter {
  std::vector<std::pair<std::string, std::string>> fields;
  template <class T>
  void field(std::string_view name, T& value, const config::FieldSpec&) {
    if (kNonArchitectureFields.count(name)) return;
    fields.emplace_back(config::join_key("model", name), config::format_value(value));
  }
};

}  // namespace

std::string step_dir_name(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step_%08lld", static_cast<long long>(step));
  return name;
}

std::string rank_file_name(int rank) {
  char name[32];
  std::snprintf(name, sizeof name, "rank_%05d.bin", rank);
  return name;
}

std::optional<StepEntry> parse_step_entry(std::string_view name) {
  constexpr std::string_view kPrefix = "step_";
  if (!name.starts_with(kPrefix)) return std::nullopt;
  name.remove_prefix(kPrefix.size());
  StepEntry entry;
  size_t digits = 0;
  while (digits < name.size() && name[digits] >= '0' && name[digits] <= '9') {
    if (entry.step > (INT64_MAX - 9) / 10) return std::nullopt;
    entry.step = entry.step * 10 + (name[digits] - '0');
    ++digits;
  }
  if (digits < 8) return std::nullopt;
  if (digits == name.size()) return entry;
  if (name[digits] != '.') return std::nullopt;
  entry.leftover = true;
  return entry;
}

Json model_to_json(const model::ModelConfig& cfg) {
  Json j = Json::object();
  model::ModelConfig copy = cfg;  // visit() is not const
  ToJson visitor{j};
  copy.visit(visitor);
  return j;
}

model::ModelConfig model_from_json(const Json& j, const std::string& where) {
  if (!j.is_object()) throw CheckpointError(where + ": model: expected an object");
  model::ModelConfig cfg;
  FromJson visitor{j, {}};
  cfg.visit(visitor);
  if (!visitor.error.empty()) throw CheckpointError(where + ": " + visitor.error);
  try {
    cfg.validate();
  } catch (const config::ConfigError& e) {
    const std::string key = e.key().empty() ? "model" : e.key();
    throw CheckpointError(where + ": " + key + ": " + e.what());
  }
  return cfg;
}

Json units_to_json(const model::ModelConfig& cfg) {
  Json units = Json::array();
  for (const model::UnitLayout& unit : model::model_layout(cfg)) {
    Json params = Json::array();
    for (const model::ParamSpec& p : unit.params) {
      params.push_back(
          {{"name", p.name}, {"shape", p.shape}, {"offset", p.offset}, {"numel", p.numel}});
    }
    units.push_back({{"name", unit.name}, {"numel", unit.numel}, {"params", std::move(params)}});
  }
  return units;
}

std::vector<std::pair<std::string, std::string>> architecture_fields(
    const model::ModelConfig& cfg) {
  model::ModelConfig copy = cfg;
  Formatter visitor;
  copy.visit(visitor);
  return visitor.fields;
}

}  // namespace muse::checkpoints::detail
