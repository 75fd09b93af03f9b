#include "model/layout.h"

#include <stdexcept>

namespace muse::model {
namespace {

// The unit of `kind` (layer `layer` for a block): every present row of the
// model's families for that unit, back to back in table order.
UnitLayout make_unit(const ModelConfig& cfg, UnitKind kind, int64_t layer, std::string name) {
  UnitLayout unit{.name = std::move(name)};
  for (const Family* family : model_families(cfg)) {
    for (const ParamRow& row : family->params) {
      if (row.unit != kind || !present(row, cfg)) continue;
      std::vector<int64_t> shape = param_shape(row, cfg);
      int64_t numel = 1;
      for (int64_t s : shape)
        numel *= s;
      unit.params.push_back({.id = row.id,
                             .row = &row,
                             .layer = layer,
                             .name = layer_name(row.hf_name, layer),
                             .shape = std::move(shape),
                             .offset = unit.numel,
                             .numel = numel,
                             .weight_decay = row.weight_decay});
      unit.numel += numel;
    }
  }
  return unit;
}

}  // namespace

std::string param_name(ParamId id, int64_t layer) {
  return layer_name(param_row(id).hf_name, layer);
}

const ParamSpec& UnitLayout::param(ParamId id) const {
  for (const auto& p : params) {
    if (p.id == id) return p;
  }
  throw std::out_of_range("unit " + name + " has no parameter " + param_name(id));
}

bool UnitLayout::has(ParamId id) const {
  for (const auto& p : params)
    if (p.id == id) return true;
  return false;
}

std::vector<UnitLayout> model_layout(const ModelConfig& cfg) {
  std::vector<UnitLayout> units;
  units.push_back(make_unit(cfg, UnitKind::kEmbed, 0, "embed"));
  for (int64_t il = 0; il < cfg.n_layers; ++il)
    units.push_back(make_unit(cfg, UnitKind::kBlock, il, "block." + std::to_string(il)));
  units.push_back(make_unit(cfg, UnitKind::kHead, 0, "head"));
  return units;
}

int64_t param_count(const ModelConfig& cfg) {
  int64_t n = 0;
  for (const auto& u : model_layout(cfg))
    n += u.numel;
  return n;
}

int64_t flops_per_token(const ModelConfig& cfg, int64_t seq_len) {
  const auto units = model_layout(cfg);
  const int64_t tables = units[kEmbedUnit].param(ParamId::kTokEmbed).numel +
                         units[kEmbedUnit].param(ParamId::kPatchPos).numel;
  const int64_t head_matmul = cfg.vocab_size * cfg.dim;  // the output projection, tied or not
  const int64_t n_matmul = param_count(cfg) - tables + (cfg.tie_embeddings ? head_matmul : 0);
  const int64_t attention = 12 * cfg.n_layers * cfg.n_heads * cfg.head_dim() * seq_len;
  return 6 * n_matmul + attention;
}

}  // namespace muse::model
