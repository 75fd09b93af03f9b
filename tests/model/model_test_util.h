// Small shapes and inputs shared by the model tests.
//
// Shapes: B batch, T time, S_img image side, Ch image channels, N_img images.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "model/model_config.h"

namespace muse::model::testing {

// A model small enough that every test runs in milliseconds, with grouped
// heads (4 query heads over 2 kv heads) and 4 patches per 8x8 RGB image.
inline ModelConfig test_config(bool tied = true) {
  ModelConfig c;
  c.preset = "custom";
  c.vocab_size = 64;
  c.dim = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.ffn_hidden = 48;
  c.max_seq_len = 64;
  c.image_size = 8;
  c.patch_size = 4;
  c.image_channels = 3;
  c.image_token_id = 3;
  c.tie_embeddings = tied;
  c.init_std = 0.1;  // larger than usual so that logits vary visibly between tokens
  return c;
}

// (B, T) int64 random text tokens, none of them a special token (ids 0..3).
inline at::Tensor text_tokens(const ModelConfig& cfg, int64_t B, int64_t T, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(4, cfg.vocab_size, {B, T}, gen, at::kLong);
}

// (N_img, S_img, S_img, Ch) uint8 random images.
inline at::Tensor random_images(const ModelConfig& cfg, int64_t n, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(0, 256, {n, cfg.image_size, cfg.image_size, cfg.image_channels}, gen,
                     at::kByte);
}

inline std::vector<int64_t> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kLong).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

}  // namespace muse::model::testing
