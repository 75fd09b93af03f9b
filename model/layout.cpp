#include "model/layout.h"

#include <stdexcept>

namespace muse::model {
namespace {

// Appends the parameter `id` of `shape` at the end of `unit`.
void append(UnitLayout& unit, ParamId id, int64_t layer, std::vector<int64_t> shape) {
  int64_t numel = 1;
  for (int64_t s : shape)
    numel *= s;
  unit.params.push_back({id, param_name(id, layer), std::move(shape), unit.numel, numel,
                         param_kind(id).weight_decay});
  unit.numel += numel;
}

}  // namespace

const ParamKind& param_kind(ParamId id) {
  for (const auto& k : kParamKinds) {
    if (k.id == id) return k;
  }
  throw std::out_of_range("no such ParamId");
}

std::string param_name(ParamId id, int64_t layer) {
  std::string name(param_kind(id).name);
  const size_t at = name.find("{i}");
  if (at != std::string::npos) name.replace(at, 3, std::to_string(layer));
  return name;
}

const ParamSpec& UnitLayout::param(ParamId id) const {
  for (const auto& p : params) {
    if (p.id == id) return p;
  }
  throw std::out_of_range("unit " + name + " has no parameter " + param_name(id));
}

std::vector<UnitLayout> model_layout(const ModelConfig& cfg) {
  const int64_t C = cfg.dim, V = cfg.vocab_size, F = cfg.ffn_hidden;
  const int64_t HD = cfg.n_heads * cfg.head_dim(), KVD = cfg.n_kv_heads * cfg.head_dim();
  std::vector<UnitLayout> units;

  UnitLayout embed{.name = "embed"};
  append(embed, ParamId::kTokEmbed, 0, {V, C});
  append(embed, ParamId::kPatchProjWeight, 0, {C, cfg.patch_dim()});
  append(embed, ParamId::kPatchProjBias, 0, {C});
  append(embed, ParamId::kPatchPos, 0, {cfg.n_patches(), C});
  units.push_back(std::move(embed));

  for (int64_t il = 0; il < cfg.n_layers; ++il) {
    UnitLayout block{.name = "block." + std::to_string(il)};
    append(block, ParamId::kAttnNorm, il, {C});
    append(block, ParamId::kAttnQ, il, {HD, C});
    append(block, ParamId::kAttnK, il, {KVD, C});
    append(block, ParamId::kAttnV, il, {KVD, C});
    append(block, ParamId::kAttnOut, il, {C, HD});
    append(block, ParamId::kFfnNorm, il, {C});
    append(block, ParamId::kFfnGate, il, {F, C});
    append(block, ParamId::kFfnUp, il, {F, C});
    append(block, ParamId::kFfnDown, il, {C, F});
    units.push_back(std::move(block));
  }

  UnitLayout head{.name = "head"};
  append(head, ParamId::kOutputNorm, 0, {C});
  if (!cfg.tie_embeddings) append(head, ParamId::kOutput, 0, {V, C});
  units.push_back(std::move(head));
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
