#include "model/weights.h"

#include <algorithm>
#include <cmath>

#include <ATen/CPUGeneratorImpl.h>

namespace muse::model {
namespace {

// SplitMix64's finaliser: nearby inputs give unrelated outputs.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t param_seed(uint64_t seed, int64_t unit_index, int64_t param_index) {
  return mix(mix(mix(seed) ^ static_cast<uint64_t>(unit_index)) ^
             static_cast<uint64_t>(param_index));
}

}  // namespace

at::Tensor param_view(const UnitLayout& unit, const at::Tensor& flat, ParamId id) {
  const ParamSpec& p = unit.param(id);
  return flat.narrow(0, p.offset, p.numel).view(p.shape);
}

EmbedWeights embed_weights(const UnitLayout& unit, const at::Tensor& flat) {
  return {.tok_embed = param_view(unit, flat, ParamId::kTokEmbed),
          .patch_proj_weight = param_view(unit, flat, ParamId::kPatchProjWeight),
          .patch_proj_bias = param_view(unit, flat, ParamId::kPatchProjBias),
          .patch_pos = param_view(unit, flat, ParamId::kPatchPos)};
}

BlockWeights block_weights(const UnitLayout& unit, const at::Tensor& flat) {
  return {.attn_norm = param_view(unit, flat, ParamId::kAttnNorm),
          .wq = param_view(unit, flat, ParamId::kAttnQ),
          .wk = param_view(unit, flat, ParamId::kAttnK),
          .wv = param_view(unit, flat, ParamId::kAttnV),
          .wo = param_view(unit, flat, ParamId::kAttnOut),
          .ffn_norm = param_view(unit, flat, ParamId::kFfnNorm),
          .w_gate = param_view(unit, flat, ParamId::kFfnGate),
          .w_up = param_view(unit, flat, ParamId::kFfnUp),
          .w_down = param_view(unit, flat, ParamId::kFfnDown)};
}

HeadWeights head_weights(const UnitLayout& unit, const at::Tensor& flat,
                         const at::Tensor& tok_embed) {
  const bool tied = std::none_of(unit.params.begin(), unit.params.end(),
                                 [](const ParamSpec& p) { return p.id == ParamId::kOutput; });
  return {.norm = param_view(unit, flat, ParamId::kOutputNorm),
          .output = tied ? tok_embed : param_view(unit, flat, ParamId::kOutput)};
}

at::Tensor init_unit(const ModelConfig& cfg, const UnitLayout& unit, int64_t unit_index,
                     uint64_t seed) {
  at::Tensor flat = at::empty({unit.numel}, at::kFloat);
  for (size_t j = 0; j < unit.params.size(); ++j) {
    const ParamSpec& p = unit.params[j];
    at::Tensor v = flat.narrow(0, p.offset, p.numel);
    const ParamInit init = param_kind(p.id).init;
    if (init == ParamInit::kOnes) {
      v.fill_(1);
    } else if (init == ParamInit::kZeros) {
      v.zero_();
    } else {
      // Scaled projections keep the residual stream's variance independent of depth (GPT-2).
      const double std = init == ParamInit::kNormalScaled
                             ? cfg.init_std / std::sqrt(2.0 * static_cast<double>(cfg.n_layers))
                             : cfg.init_std;
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(
          param_seed(seed, unit_index, static_cast<int64_t>(j)));
      v.normal_(0.0, std, gen);
    }
  }
  return flat;
}

}  // namespace muse::model
