#include "model/weights.h"

#include <algorithm>
#include <cmath>

#include <ATen/CPUGeneratorImpl.h>

#include "config/splitmix64.h"

namespace muse::model {
namespace {

uint64_t param_seed(uint64_t seed, int64_t unit_index, int64_t param_index) {
  using config::splitmix64;
  return splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(unit_index)) ^
                    static_cast<uint64_t>(param_index));
}

// The view of parameter `id`, passed through `as`.
struct Views {
  const UnitLayout& unit;
  const at::Tensor& flat;
  const ViewFn& as;
  at::Tensor operator()(ParamId id) const {
    const at::Tensor v = param_view(unit, flat, id);
    return as ? as(v) : v;
  }
  // An optional parameter's view, undefined when the unit has none.
  at::Tensor optional(ParamId id) const { return unit.has(id) ? (*this)(id) : at::Tensor(); }
};

}  // namespace

at::Tensor param_view(const UnitLayout& unit, const at::Tensor& flat, ParamId id) {
  const ParamSpec& p = unit.param(id);
  return flat.narrow(0, p.offset, p.numel).view(p.shape);
}

EmbedWeights embed_weights(const UnitLayout& unit, const at::Tensor& flat, const ViewFn& as) {
  const Views view{unit, flat, as};
  return {.tok_embed = view(ParamId::kTokEmbed),
          .patch_proj_weight = view(ParamId::kPatchProjWeight),
          .patch_proj_bias = view(ParamId::kPatchProjBias),
          .patch_pos = view(ParamId::kPatchPos)};
}

BlockWeights block_weights(const UnitLayout& unit, const at::Tensor& flat, const ViewFn& as) {
  const Views view{unit, flat, as};
  return {.attn_norm = view(ParamId::kAttnNorm),
          .wq = view(ParamId::kAttnQ),
          .wk = view(ParamId::kAttnK),
          .wv = view(ParamId::kAttnV),
          .bq = view.optional(ParamId::kAttnQBias),
          .bk = view.optional(ParamId::kAttnKBias),
          .bv = view.optional(ParamId::kAttnVBias),
          .q_norm = view.optional(ParamId::kAttnQNorm),
          .k_norm = view.optional(ParamId::kAttnKNorm),
          .wo = view(ParamId::kAttnOut),
          .ffn_norm = view(ParamId::kFfnNorm),
          .w_gate = view(ParamId::kFfnGate),
          .w_up = view(ParamId::kFfnUp),
          .w_down = view(ParamId::kFfnDown)};
}

HeadWeights head_weights(const UnitLayout& unit, const at::Tensor& flat,
                         const at::Tensor& tok_embed, const ViewFn& as) {
  const Views view{unit, flat, as};
  const bool tied = std::none_of(unit.params.begin(), unit.params.end(),
                                 [](const ParamSpec& p) { return p.id == ParamId::kOutput; });
  at::Tensor norm = view(ParamId::kOutputNorm);
  return {.norm = norm, .output = tied ? tok_embed : view(ParamId::kOutput)};
}

at::Tensor init_unit(const ModelConfig& cfg, const UnitLayout& unit, int64_t unit_index,
                     uint64_t seed) {
  at::Tensor flat = at::empty({unit.numel}, at::kFloat);
  for (size_t j = 0; j < unit.params.size(); ++j) {
    const ParamSpec& p = unit.params[j];
    at::Tensor v = flat.narrow(0, p.offset, p.numel);
    const ParamInit init = p.row->init;
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
