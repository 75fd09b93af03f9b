#include "model/model.h"

// Shapes: B batch, T time, C model width, V vocab.

namespace muse::model {
namespace {

ModelConfig validated(ModelConfig cfg) {
  cfg.validate();
  return cfg;
}

}  // namespace

Model::Model(ModelConfig cfg, uint64_t seed, at::Device device)
    : cfg_(validated(std::move(cfg))), layout_(model_layout(cfg_)) {
  for (size_t u = 0; u < layout_.size(); ++u) {
    at::Tensor flat = init_unit(cfg_, layout_[u], static_cast<int64_t>(u), seed).to(device);
    flat.set_requires_grad(true);
    flat_.push_back(flat);
  }
}

EmbedWeights Model::embed_weights() const {
  return model::embed_weights(layout_[kEmbedUnit], flat_[kEmbedUnit]);
}

BlockWeights Model::block_weights(int64_t layer) const {
  const int64_t u = block_unit(layer);
  return model::block_weights(layout_[u], flat_[u]);
}

HeadWeights Model::head_weights() const {
  const int64_t u = head_unit(cfg_);
  return model::head_weights(
      layout_[u], flat_[u], param_view(layout_[kEmbedUnit], flat_[kEmbedUnit], ParamId::kTokEmbed));
}

at::Tensor Model::forward(const Inputs& in) const {
  at::Tensor x = embed_forward(embed_weights(), cfg_, in);  // (B,T,C)
  const AttnContext ctx = attn_context(cfg_, in);
  for (int64_t il = 0; il < cfg_.n_layers; ++il)
    x = block_forward(block_weights(il), cfg_, x, ctx);
  return head_forward(head_weights(), cfg_, x);  // (B,T,V)
}

at::Tensor Model::loss(const Inputs& in, const at::Tensor& targets) const {
  const TextLoss l = text_loss(forward(in), targets, cfg_.image_token_id);
  return l.sum / l.count.clamp_min(1);
}

}  // namespace muse::model
