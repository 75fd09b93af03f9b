#include "model/forward.h"

// Shapes: B batch, T time (new positions), S key positions, C model width,
// V vocab, H heads, KV kv-heads, D head dim, F ffn hidden, P patch size,
// S_img image side, Ch image channels, Np patches per image, N_img images,
// N_seg segments of packed rows, N_g segments of one length.

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>
#include <string>

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#ifdef MUSE_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

#include "model/linear.h"

namespace muse::model {
namespace {

// Pixel normalisation: [0, 1] -> [-1, 1].
constexpr double kPixelMean = 0.5;
constexpr double kPixelStd = 0.5;

void check(bool ok, const std::string& message) {
  if (!ok) throw ModelError(message);
}

std::string shape_of(const at::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

// In fp32 whatever the compute dtype, as Hugging Face Llama does.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor normed = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

// (x1, x2) -> (-x2, x1) on the two halves of the head dim.
at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// (B, h, T, D) -> (B, h, T, D) rotated by each position's angles.
at::Tensor apply_rope(const at::Tensor& x, const AttnContext& ctx) {
  return x * ctx.cos.to(x.scalar_type()) + rotate_half(x) * ctx.sin.to(x.scalar_type());
}

// (N_img, S_img, S_img, Ch) uint8 -> (N_img, Np, P*P*Ch) normalised patch vectors.
at::Tensor patchify(const at::Tensor& images, const ModelConfig& cfg, at::ScalarType dtype) {
  const int64_t n = images.size(0), g = cfg.grid(), p = cfg.patch_size, ch = cfg.image_channels;
  const at::Tensor x =
      images.to(dtype).div(255.0).sub(kPixelMean).div(kPixelStd);  // (N_img,S_img,S_img,Ch)
  return x.view({n, g, p, g, p, ch})
      .permute({0, 1, 3, 2, 4, 5})  // (N, grid row, grid col, P, P, Ch)
      .reshape({n, g * g, p * p * ch});
}

void check_tokens(const ModelConfig& cfg, const at::Tensor& tokens) {
  check(tokens.defined() && tokens.dim() == 2 && tokens.size(1) >= 1,
        "tokens must be (B, T) with T >= 1, got " +
            (tokens.defined() ? shape_of(tokens) : std::string("none")));
  check(tokens.scalar_type() == at::kLong || tokens.scalar_type() == at::kInt,
        "tokens must be int64 or int32");
  check(tokens.size(1) <= cfg.max_seq_len, "sequence of " + std::to_string(tokens.size(1)) +
                                               " positions is longer than model.max_seq_len (" +
                                               std::to_string(cfg.max_seq_len) + ")");
  const at::Tensor range = at::stack({tokens.min(), tokens.max()}).to(at::kCPU, at::kLong);
  const int64_t lo = range[0].item<int64_t>(), hi = range[1].item<int64_t>();
  check(lo >= 0 && hi < cfg.vocab_size, "token id " + std::to_string(lo < 0 ? lo : hi) +
                                            " is outside the vocabulary [0, " +
                                            std::to_string(cfg.vocab_size) + ")");
}

// The (row, position) index pairs, each (N_img * Np) int64, of every patch of
// every image, after checking that the images fill exactly the placeholders.
std::pair<at::Tensor, at::Tensor> image_positions(const ModelConfig& cfg, const Inputs& in) {
  const at::Tensor& img = in.images;
  const int64_t B = in.tokens.size(0), T = in.tokens.size(1), np = cfg.n_patches();
  check(img.dim() == 4 && img.size(1) == cfg.image_size && img.size(2) == cfg.image_size &&
            img.size(3) == cfg.image_channels && img.scalar_type() == at::kByte,
        "images must be (N_img, " + std::to_string(cfg.image_size) + ", " +
            std::to_string(cfg.image_size) + ", " + std::to_string(cfg.image_channels) +
            ") uint8, got " + shape_of(img) + " " + std::string(c10::toString(img.scalar_type())));
  const int64_t n = img.size(0);
  check(in.image_slots.defined() && in.image_slots.dim() == 2 && in.image_slots.size(0) == n &&
            in.image_slots.size(1) == 2,
        "image_slots must be (N_img, 2) = (" + std::to_string(n) + ", 2)");
  const at::Tensor slots = in.image_slots.to(at::kCPU, at::kLong);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t row = slots[i][0].item<int64_t>(), start = slots[i][1].item<int64_t>();
    check(row >= 0 && row < B && start >= 0 && start + np <= T,
          "image " + std::to_string(i) + " at (row " + std::to_string(row) + ", position " +
              std::to_string(start) + ") does not fit in (B, T) = (" + std::to_string(B) + ", " +
              std::to_string(T) + ") with its " + std::to_string(np) + " patches");
  }
  const at::Tensor dev_slots = slots.to(in.tokens.device());
  const at::Tensor rows = dev_slots.select(1, 0).repeat_interleave(np);  // (N_img*Np)
  const at::Tensor cols =
      (dev_slots.select(1, 1).unsqueeze(1) + at::arange(np, dev_slots.options())).flatten();
  // Each placeholder filled by exactly one patch, and nothing else.
  const at::Tensor placeholders = (in.tokens == cfg.image_token_id).to(at::kLong);  // (B,T)
  const at::Tensor cover = at::zeros_like(placeholders)
                               .index_put_({rows, cols}, at::ones({n * np}, placeholders.options()),
                                           /*accumulate=*/true);
  check(at::equal(cover, placeholders), std::to_string(n) + " images x " + std::to_string(np) +
                                            " patches do not fill exactly the " +
                                            std::to_string(placeholders.sum().item<int64_t>()) +
                                            " <image> placeholders (id " +
                                            std::to_string(cfg.image_token_id) + ") of the tokens");
  return {rows, cols};
}

// model.rope_scaling applied to the frequencies (D/2), as transformers'
// ROPE_INIT_FUNCTIONS compute them (modeling_rope_utils.py): linear divides
// every frequency by the factor; llama3 (Llama 3.1) divides the low
// frequencies (wavelength above L / low_freq_factor), keeps the high ones
// (below L / high_freq_factor) and blends in between.
at::Tensor scaled_inv_freq(const ModelConfig& cfg, const at::Tensor& inv_freq) {
  if (cfg.rope_scaling == "linear") return inv_freq / cfg.rope_factor;
  if (cfg.rope_scaling != "llama3") return inv_freq;
  const double f = cfg.rope_factor, lo = cfg.rope_low_freq_factor, hi = cfg.rope_high_freq_factor;
  const double L = static_cast<double>(cfg.rope_original_max_len);
  const at::Tensor wavelen = 2 * M_PI / inv_freq;
  const at::Tensor smooth = (L / wavelen - lo) / (hi - lo);
  const at::Tensor blended = (1 - smooth) * inv_freq / f + smooth * inv_freq;
  at::Tensor out = at::where(wavelen > L / lo, inv_freq / f, inv_freq);
  const at::Tensor medium = (wavelen >= L / hi).logical_and(wavelen <= L / lo);
  return at::where(medium, blended, out);
}

// grouped_decode_attention for fp32 on the CPU with an additive mask: one
// task per (sequence, key/value head) reads that head's S cached keys, then
// its S values, once for its G query heads; ATen's vectorised softmax runs
// between the two. MKL's batched product of these small matrices reached
// 7.5 GB/s of cache reads on an AMD EPYC, a third of the read bandwidth.
at::Tensor grouped_decode_attention_cpu(const at::Tensor& qg /*(B,KV,G,D) scaled*/,
                                        const at::Tensor& k, const at::Tensor& v,
                                        const at::Tensor& mask /*(B,1,1,S) additive*/) {
  const int64_t B = qg.size(0), KV = qg.size(1), G = qg.size(2), D = qg.size(3), S = k.size(2);
  const float* qp = qg.const_data_ptr<float>();
  at::Tensor scores = at::empty({B, KV, G, S}, qg.options());
  float* sp = scores.mutable_data_ptr<float>();
  const float* kp = k.const_data_ptr<float>();
  const float* mp = mask.const_data_ptr<float>();
  const int64_t kb = k.stride(0), kh = k.stride(1), ks = k.stride(2), mb = mask.stride(0);
  at::parallel_for(0, B * KV, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const float* keys = kp + (task / KV) * kb + (task % KV) * kh;
      const float* m = mp + (task / KV) * mb;
      for (int64_t s = 0; s < S; ++s)
        for (int64_t g = 0; g < G; ++g)
          sp[(task * G + g) * S + s] = dot(qp + (task * G + g) * D, keys + s * ks, D) + m[s];
    }
  });
  const at::Tensor probs = scores.softmax(-1);  // (B,KV,G,S)
  const float* pp = probs.const_data_ptr<float>();
  const float* vp = v.const_data_ptr<float>();
  at::Tensor out = at::zeros({B, KV, G, D}, qg.options());
  float* op = out.mutable_data_ptr<float>();
  const int64_t vb = v.stride(0), vh = v.stride(1), vs = v.stride(2);
  at::parallel_for(0, B * KV, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const float* values = vp + (task / KV) * vb + (task % KV) * vh;
      for (int64_t s = 0; s < S; ++s)
        for (int64_t g = 0; g < G; ++g) {
          const float p = pp[(task * G + g) * S + s];
          const float* __restrict row = values + s * vs;
          float* __restrict o = op + (task * G + g) * D;
          for (int64_t d = 0; d < D; ++d)
            o[d] += p * row[d];
        }
    }
  });
  return out;
}

// One new position's attention over cached keys with grouped-query heads:
// the G = H / KV query heads of each key/value head as G rows of one product
// with its keys, where SDPA on the CPU first copies every cached key and
// value head G times (enable_gqa repeats them): 10% less time at the
// SmolLM2 shape (128 sequences, 120 positions), and no copy. Head h reads
// key/value head h / G, as SDPA pairs them. q (B, H, 1, D), k and v
// (B, KV, S, D), mask (B, 1, 1, S) bool or additive.
at::Tensor grouped_decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& mask) {
  const int64_t B = q.size(0), H = q.size(1), D = q.size(3), KV = k.size(1);
  const at::Tensor qg = q.reshape({B, KV, H / KV, D}) * (1.0 / std::sqrt(static_cast<double>(D)));
  const auto fp32_cpu = [](const at::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.stride(-1) == 1;
  };
  if (fp32_cpu(qg) && fp32_cpu(k) && fp32_cpu(v) && fp32_cpu(mask) && mask.size(0) == B &&
      mask.size(-1) == k.size(2) && !at::GradMode::is_enabled())
    return grouped_decode_attention_cpu(qg.contiguous(), k, v, mask).view({B, H, 1, D});
  at::Tensor scores = at::matmul(qg, k.transpose(-1, -2));  // (B,KV,G,S)
  if (mask.scalar_type() == at::kBool)
    scores.masked_fill_(mask.logical_not(), -std::numeric_limits<double>::infinity());
  else
    scores.add_(mask);
  return at::matmul(scores.softmax(-1), v).view({B, H, 1, D});  // (B,KV,G,D) -> (B,H,1,D)
}

// The segments of packed rows from the (B,T) bool marks of each segment's
// first position. One copy to the host: flash takes the longest segment as
// a number, and the groups of equal length are arranged there.
Segments segments_of(const at::Tensor& starts) {
  const int64_t n_tokens = starts.numel();
  const at::Device device = starts.device();
  const at::Tensor first = starts.flatten().nonzero().flatten().to(at::kCPU);  // (N_seg) int64
  std::vector<int64_t> bounds(first.data_ptr<int64_t>(), first.data_ptr<int64_t>() + first.numel());
  bounds.push_back(n_tokens);
  Segments out;
  std::map<int64_t, std::vector<int64_t>> firsts_by_length;  // first flat token of each segment
  for (size_t i = 0; i + 1 < bounds.size(); ++i) {
    const int64_t length = bounds[i + 1] - bounds[i];
    out.max_len = std::max(out.max_len, length);
    firsts_by_length[length].push_back(bounds[i]);
  }
  out.cu_seqlens = at::tensor(std::vector<int32_t>(bounds.begin(), bounds.end()), at::kInt)
                       .to(device);  // (N_seg+1)
  std::vector<int64_t> slot(n_tokens);
  int64_t next_slot = 0;
  for (const auto& [length, firsts] : firsts_by_length) {
    std::vector<int64_t> positions;
    positions.reserve(firsts.size() * length);
    for (const int64_t f : firsts) {
      for (int64_t t = f; t < f + length; ++t) {
        positions.push_back(t);
        slot[t] = next_slot++;
      }
    }
    out.lengths.push_back(length);
    out.positions.push_back(at::tensor(positions, at::kLong).to(device));  // (N_g*length)
  }
  out.group_slot = at::tensor(slot, at::kLong).to(device);  // (B*T)
  return out;
}

// Causal attention within each segment of packed rows, with no (T,T)
// tensor: q (B,H,T,D), k and v (B,KV,T,D) -> (B,H,T,D). The flash kernel
// reads the segments' boundaries; otherwise SDPA runs causally on each group
// of equal-length segments, gathered into a batch, and the groups' outputs
// go back to their tokens. Both are differentiable.
at::Tensor varlen_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const Segments& segments) {
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3), KV = k.size(1);
  const bool gqa = KV != H;
  // Rows that are one segment each: plain causal attention, no gather.
  if (segments.lengths == std::vector<int64_t>{T})
    return at::scaled_dot_product_attention(q, k, v, std::nullopt, /*dropout_p=*/0.0,
                                            /*is_causal=*/true, /*scale=*/std::nullopt, gqa);
  // Token-major (B*T, h, D): views of the projections' (B,T,h,D) layout.
  const at::Tensor qt = q.transpose(1, 2).reshape({B * T, H, D});
  const at::Tensor kt = k.transpose(1, 2).reshape({B * T, KV, D});
  const at::Tensor vt = v.transpose(1, 2).reshape({B * T, KV, D});
#ifdef MUSE_WITH_CUDA
  if (uses_flash_varlen(q)) {
    const at::Tensor out = std::get<0>(at::_flash_attention_forward(
        qt, kt, vt, segments.cu_seqlens, segments.cu_seqlens, segments.max_len, segments.max_len,
        /*dropout_p=*/0.0, /*is_causal=*/true, /*return_debug_mask=*/false));  // (B*T,H,D)
    return out.view({B, T, H, D}).transpose(1, 2);
  }
#endif
  std::vector<at::Tensor> outs;  // per group (N_g*L, H, D)
  for (size_t g = 0; g < segments.lengths.size(); ++g) {
    const int64_t L = segments.lengths[g], n = segments.positions[g].numel() / L;
    const auto gather = [&](const at::Tensor& x) {  // (B*T,h,D) -> (N_g,h,L,D)
      return x.index_select(0, segments.positions[g]).view({n, L, x.size(1), D}).transpose(1, 2);
    };
    const at::Tensor o = at::scaled_dot_product_attention(gather(qt), gather(kt), gather(vt),
                                                          std::nullopt, /*dropout_p=*/0.0,
                                                          /*is_causal=*/true, std::nullopt, gqa);
    outs.push_back(o.transpose(1, 2).reshape({n * L, H, D}));
  }
  return at::cat(outs).index_select(0, segments.group_slot).view({B, T, H, D}).transpose(1, 2);
}

}  // namespace

PackedAttention packed_attention_for(at::Device device, int64_t T) {
  return device.is_cpu() && T <= kDenseMaskMaxLen ? PackedAttention::kDenseMask
                                                  : PackedAttention::kVarlen;
}

bool flash_attention_supports(at::ScalarType dtype, int64_t head_dim) {
  return (dtype == at::kHalf || dtype == at::kBFloat16) && head_dim % 8 == 0 && head_dim <= 256;
}

bool uses_flash_varlen([[maybe_unused]] const at::Tensor& q) {
#ifdef MUSE_WITH_CUDA
  return q.is_cuda() && flash_attention_supports(q.scalar_type(), q.size(-1)) &&
         at::cuda::getDeviceProperties(q.device().index())->major >= 8;
#else
  return false;
#endif
}

AttnContext attn_context(const ModelConfig& cfg, const Inputs& in, PackedAttention form) {
  const int64_t B = in.tokens.size(0), T = in.tokens.size(1);
  const auto opts = at::TensorOptions().dtype(at::kLong).device(in.tokens.device());
  const at::Tensor idx = at::arange(T, opts).expand({B, T});  // (B,T)
  if (!in.segment_ids.defined()) return attn_context(cfg, idx, {}, 0);
  const at::Tensor& seg = in.segment_ids;
  check(seg.sizes() == in.tokens.sizes(),
        "segment_ids " + shape_of(seg) + " must have the shape of tokens " + shape_of(in.tokens));
  // A segment starts at t = 0 and wherever the id changes.
  const at::Tensor starts = at::cat(
      {at::ones({B, 1}, opts.dtype(at::kBool)), seg.narrow(1, 1, T - 1) != seg.narrow(1, 0, T - 1)},
      1);  // (B,T)
  const at::Tensor first =
      std::get<0>(at::cummax(at::where(starts, idx, 0), 1));  // (B,T) its segment's start
  if (form == PackedAttention::kAuto) form = packed_attention_for(in.tokens.device(), T);
  if (form == PackedAttention::kVarlen) {
    AttnContext ctx = attn_context(cfg, idx - first, {}, 0);
    ctx.segments = segments_of(starts);
    return ctx;
  }
  const at::Tensor segment = starts.cumsum(1);  // (B,T) index of each position's segment
  const at::Tensor causal = at::ones({T, T}, opts.dtype(at::kBool)).tril();  // (T,T)
  const at::Tensor mask =
      (segment.unsqueeze(2) == segment.unsqueeze(1)).logical_and(causal).unsqueeze(1);  // (B,1,T,T)
  return attn_context(cfg, idx - first, mask, 0);
}

at::Tensor rope_inv_freq(const ModelConfig& cfg, bool scaled) {
  const int64_t D = cfg.head_dim();
  // Hugging Face Llama's frequencies, computed the same way in fp32 so that
  // exported models see the same angles.
  const at::Tensor exponents =
      at::arange(0, D, 2, at::kLong).to(at::kFloat) / static_cast<double>(D);
  const at::Tensor inv_freq = 1.0 / at::pow(cfg.rope_theta, exponents);
  return scaled ? scaled_inv_freq(cfg, inv_freq) : inv_freq;
}

AttnContext attn_context(const ModelConfig& cfg, const at::Tensor& positions,
                         const at::Tensor& mask, int64_t cache_start) {
  const at::Tensor inv_freq = rope_inv_freq(cfg).to(positions.device());
  const at::Tensor angles = positions.to(at::kFloat).unsqueeze(-1) * inv_freq;  // (B,T,D/2)
  const at::Tensor emb = at::cat({angles, angles}, -1).unsqueeze(1);            // (B,1,T,D)
  return {.cos = emb.cos(), .sin = emb.sin(), .mask = mask, .cache_start = cache_start};
}

at::Tensor embed_forward(const EmbedWeights& w, const ModelConfig& cfg, const Inputs& in) {
  check_tokens(cfg, in.tokens);
  const at::Tensor x = at::embedding(w.tok_embed, in.tokens);  // (B,T,C)
  if (!in.images.defined()) {
    check(!(in.tokens == cfg.image_token_id).any().item<bool>(),
          "tokens hold <image> placeholders (id " + std::to_string(cfg.image_token_id) +
              ") but no images were given");
    return x;
  }
  const auto [rows, cols] = image_positions(cfg, in);  // each (N_img*Np)
  const at::Tensor patches =
      patchify(in.images, cfg, w.patch_proj_weight.scalar_type());  // (N_img,Np,P*P*Ch)
  const at::Tensor vecs =
      at::linear(patches, w.patch_proj_weight, w.patch_proj_bias) + w.patch_pos;  // (N_img,Np,C)
  return at::index_put(x, {rows, cols}, vecs.reshape({-1, cfg.dim}));
}

PackedBlock pack_block(const BlockWeights& w, int64_t rows) {
  return {.wqkv = pack_linear(at::cat({w.wq, w.wk, w.wv}), rows),
          .bqkv = w.bq.defined() ? at::cat({w.bq, w.bk, w.bv}).contiguous() : at::Tensor(),
          .wo = pack_linear(w.wo, rows),
          .w_gate_up = pack_linear(at::cat({w.w_gate, w.w_up}), rows),
          .w_down = pack_linear(w.w_down, rows)};
}

at::Tensor attention(const at::Tensor& q, at::Tensor k, at::Tensor v, const AttnContext& ctx,
                     LayerCache* cache) {
  const int64_t T = q.size(2);
  check(!(cache && ctx.segments.defined()),
        "attention over a KV cache takes packed segments as a dense mask");
  if (!cache && ctx.segments.defined()) return varlen_attention(q, k, v, ctx.segments);
  if (cache && ctx.cache_index.defined()) {
    check(T == 1 && ctx.mask.defined(), "a cache index takes one new position and a mask");
    cache->k.index_copy_(2, ctx.cache_index, k);
    cache->v.index_copy_(2, ctx.cache_index, v);
    k = cache->k;  // (B,KV,S_max,D)
    v = cache->v;
  } else if (cache) {
    const int64_t end = ctx.cache_start + T;
    check(end <= cache->k.size(2), "KV cache full: " + std::to_string(end) + " positions > " +
                                       std::to_string(cache->k.size(2)));
    cache->k.narrow(2, ctx.cache_start, T).copy_(k);
    cache->v.narrow(2, ctx.cache_start, T).copy_(v);
    k = cache->k.narrow(2, 0, end);  // (B,KV,S,D)
    v = cache->v.narrow(2, 0, end);
  }
  // Without a mask, SDPA's causal flag aligns queries and keys at position 0,
  // which is only right when the keys are exactly the new positions.
  check(ctx.mask.defined() || k.size(2) == T, "attention over cached keys needs a mask");
  // Grouped-query decode steps share each key/value head without copying it;
  // SDPA keeps the other cases. The tiny presets (4 heads over 2) give the
  // same bits either way.
  if (cache && T == 1 && k.size(1) != q.size(1) && ctx.mask.defined())
    return grouped_decode_attention(q, k, v, ctx.mask);
  return at::scaled_dot_product_attention(
      q, k, v, ctx.mask.defined() ? std::optional<at::Tensor>(ctx.mask) : std::nullopt,
      /*dropout_p=*/0.0, /*is_causal=*/!ctx.mask.defined(), /*scale=*/std::nullopt,
      /*enable_gqa=*/k.size(1) != q.size(1));
}

at::Tensor block_forward(const BlockWeights& w, const ModelConfig& cfg, const at::Tensor& x,
                         const AttnContext& ctx, LayerCache* cache, const PackedBlock* packed) {
  const int64_t B = x.size(0), T = x.size(1), H = cfg.n_heads, KV = cfg.n_kv_heads,
                D = cfg.head_dim(), F = cfg.ffn_hidden;
  // Attention.
  const at::Tensor h = rms_norm(x, w.attn_norm, cfg.norm_eps);  // (B,T,C)
  at::Tensor q, k, v;                                           // (B,T,H*D), (B,T,KV*D) x 2
  if (packed) {
    const at::Tensor qkv = project(h, packed->wqkv, packed->bqkv);  // (B,T,(H+2KV)*D)
    q = qkv.narrow(-1, 0, H * D);
    k = qkv.narrow(-1, H * D, KV * D);
    v = qkv.narrow(-1, (H + KV) * D, KV * D);
  } else {
    q = project(h, w.wq, w.bq);
    k = project(h, w.wk, w.bk);
    v = project(h, w.wv, w.bv);
  }
  q = q.view({B, T, H, D});  // (B,T,H,D)
  k = k.view({B, T, KV, D});
  if (w.q_norm.defined()) {
    q = rms_norm(q, w.q_norm, cfg.norm_eps);
    k = rms_norm(k, w.k_norm, cfg.norm_eps);
  }
  const at::Tensor q_rot = apply_rope(q.transpose(1, 2), ctx);             // (B,H,T,D)
  k = apply_rope(k.transpose(1, 2), ctx);                                  // (B,KV,T,D)
  v = v.view({B, T, KV, D}).transpose(1, 2);                               // (B,KV,T,D)
  const at::Tensor a = attention(q_rot, k, v, ctx, cache);                 // (B,H,T,D)
  const at::Tensor attn_out = a.transpose(1, 2).reshape({B, T, H * D});    // (B,T,H*D)
  const at::Tensor y = x + project(attn_out, packed ? packed->wo : w.wo);  // (B,T,C)
  // SwiGLU MLP.
  const at::Tensor g = rms_norm(y, w.ffn_norm, cfg.norm_eps);  // (B,T,C)
  at::Tensor gate, up;                                         // (B,T,F) each
  if (packed) {
    const at::Tensor gu = project(g, packed->w_gate_up);  // (B,T,2F)
    gate = gu.narrow(-1, 0, F);
    up = gu.narrow(-1, F, F);
  } else {
    gate = project(g, w.w_gate);
    up = project(g, w.w_up);
  }
  return y + project(at::silu(gate) * up, packed ? packed->w_down : w.w_down);
}

at::Tensor head_forward(const HeadWeights& w, const ModelConfig& cfg, const at::Tensor& x,
                        const at::Tensor& packed_output) {
  return project(rms_norm(x, w.norm, cfg.norm_eps),
                 packed_output.defined() ? packed_output : w.output);  // (B,T,V)
}

HeadOutput head_output(const HeadWeights& w, const ModelConfig& cfg, const at::Tensor& x) {
  return {.hidden = rms_norm(x, w.norm, cfg.norm_eps), .output = w.output};
}

at::Tensor HeadOutput::logits() const {
  return project(hidden, output);  // (B,T,V)
}

at::Tensor counted_targets(const at::Tensor& targets, int64_t image_token_id) {
  return (targets != -100).logical_and(targets != image_token_id);
}

TextLoss text_loss(const at::Tensor& logits, const at::Tensor& targets, int64_t image_token_id) {
  check(
      targets.dim() == 2 && targets.size(0) == logits.size(0) && targets.size(1) == logits.size(1),
      "targets " + shape_of(targets) + " must be (B, T) of logits " + shape_of(logits));
  const at::Tensor counted = counted_targets(targets, image_token_id);     // (B,T)
  const at::Tensor tgt = at::where(counted, targets.to(at::kLong), -100);  // (B,T)
  const at::Tensor sum =
      at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}).to(at::kFloat),
                             tgt.reshape({-1}), /*weight=*/{}, at::Reduction::Sum,
                             /*ignore_index=*/-100);
  return {.sum = sum, .count = counted.sum()};
}

}  // namespace muse::model
