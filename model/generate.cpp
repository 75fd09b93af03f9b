#include "model/generate.h"

// Shapes: B batch (prompts), L longest prompt (the padded width), S key
// positions, V vocab, C model width, KV kv-heads, D head dim, S_img image side,
// Ch image channels, N_img images.

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include <ATen/CPUGeneratorImpl.h>

#include "model/linear.h"

namespace muse::model {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

void check(bool ok, const std::string& message) {
  if (!ok) throw ModelError(message);
}

}  // namespace

Inputs left_padded_inputs(const ModelConfig& cfg, const std::vector<Prompt>& prompts, int64_t width,
                          const at::Device& device) {
  const int64_t B = static_cast<int64_t>(prompts.size()), np = cfg.n_patches();
  at::Tensor tokens = at::zeros({B, width}, at::kLong);    // (B,L)
  at::Tensor segments = at::zeros({B, width}, at::kLong);  // (B,L)
  std::vector<at::Tensor> images;
  std::vector<int64_t> slots;  // (row, position) pairs
  for (int64_t b = 0; b < B; ++b) {
    const auto& ids = prompts[b].tokens;
    const int64_t n = static_cast<int64_t>(ids.size()), pad = width - n;
    tokens[b].narrow(0, pad, n).copy_(at::tensor(ids, at::kLong));
    segments[b].narrow(0, pad, n).fill_(1);
    int64_t n_slots = 0;
    for (int64_t t = 0; t < n;) {
      if (ids[t] != cfg.image_token_id) {
        ++t;
        continue;
      }
      int64_t run = 0;
      while (t + run < n && ids[t + run] == cfg.image_token_id)
        ++run;
      check(run % np == 0, "prompt " + std::to_string(b) + ": a run of " + std::to_string(run) +
                               " <image> placeholders at position " + std::to_string(t) +
                               " is not a whole number of images of " + std::to_string(np) +
                               " patches");
      for (int64_t k = 0; k < run / np; ++k, ++n_slots)
        slots.insert(slots.end(), {b, pad + t + k * np});
      t += run;
    }
    const at::Tensor& img = prompts[b].images;
    const int64_t n_images = img.defined() ? img.size(0) : 0;
    check(n_images == n_slots, "prompt " + std::to_string(b) + " has placeholders for " +
                                   std::to_string(n_slots) + " images but " +
                                   std::to_string(n_images) + " images");
    if (n_images > 0) images.push_back(img);
  }
  Inputs in{.tokens = tokens.to(device), .segment_ids = segments.to(device)};
  if (!images.empty()) {
    in.images = at::cat(images).to(device);  // (N_img,S_img,S_img,Ch)
    in.image_slots = at::tensor(slots, at::kLong).view({-1, 2}).to(device);  // (N_img,2)
  }
  return in;
}

namespace {

// Sum of x[0, n) in fp64, in eight interleaved partial sums so that it
// vectorises.
double sum_fp64(const float* x, int64_t n) {
  double part[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k)
      part[k] += x[i + k];
  double total = 0;
  for (; i < n; ++i)
    total += x[i];
  for (const double p : part)
    total += p;
  return total;
}

// (B) int64: one token per row of `probs` (B, V) fp32 on the CPU, by inverse
// transform sampling: a uniform u from `gen` per row, and the first token at
// which the cumulative probability exceeds u times the row's total. That is
// one random number per row where torch.multinomial draws one per vocabulary
// entry, the costliest part of a decode step of a small model. Sums run in
// fp64, block by block until the block that holds the threshold, then token
// by token. A token of probability 0 is never chosen: should rounding leave
// the threshold unreached, the last token of positive probability is.
at::Tensor draw(const at::Tensor& probs, at::Generator& gen) {
  constexpr int64_t kBlock = 256;
  const at::Tensor p = probs.contiguous();
  const int64_t B = p.size(0), V = p.size(1);
  const at::Tensor u = at::rand({B}, gen, at::TensorOptions().dtype(at::kDouble));  // (B)
  at::Tensor next = at::empty({B}, at::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const float* row = p.const_data_ptr<float>() + b * V;
    const double total = sum_fp64(row, V);
    check(std::isfinite(total) && total > 0, "the sampling distribution of sequence " +
                                                 std::to_string(b) +
                                                 " is not finite (logits hold NaN or inf)");
    int64_t chosen = V - 1;
    while (chosen > 0 && !(row[chosen] > 0))
      --chosen;
    const double threshold = u.const_data_ptr<double>()[b] * total;
    double cumulative = 0;
    for (int64_t start = 0; start < chosen; start += kBlock) {
      const int64_t n = std::min(kBlock, V - start);
      const double block = sum_fp64(row + start, n);
      if (cumulative + block <= threshold) {
        cumulative += block;
        continue;
      }
      int64_t i = start;
      for (; i < start + n; ++i) {
        cumulative += row[i];
        if (cumulative > threshold && row[i] > 0) break;
      }
      if (i < start + n) {
        chosen = std::min(chosen, i);
        break;
      }
    }
    next.mutable_data_ptr<int64_t>()[b] = chosen;
  }
  return next;
}

// (B, V) fp32 logits on the CPU -> the sampled ids (B).
at::Tensor sample(const at::Tensor& logits, const SamplingOptions& opt, int64_t image_token_id,
                  at::Generator& gen) {
  at::Tensor l = logits.clone();
  if (image_token_id >= 0) l.select(1, image_token_id).fill_(kNegInf);
  if (opt.temperature == 0) return l.argmax(-1);
  if (opt.temperature != 1) l = l / opt.temperature;
  const int64_t V = l.size(-1);
  if (opt.top_k > 0 && opt.top_k < V) {
    const at::Tensor kth = std::get<0>(l.topk(opt.top_k, -1)).narrow(-1, opt.top_k - 1, 1);
    l = l.masked_fill(l < kth, kNegInf);
  }
  if (opt.top_p < 1) {
    const auto [sorted, order] = l.sort(-1, /*descending=*/true);  // (B,V)
    const at::Tensor probs = sorted.softmax(-1);
    // Drop a token when the more likely ones already reach top_p (the first always stays).
    const at::Tensor drop = (probs.cumsum(-1) - probs) >= opt.top_p;
    l = l.scatter(-1, order, sorted.masked_fill(drop, kNegInf));
  }
  return draw(l.softmax(-1), gen);
}

}  // namespace

Decoder::Decoder(const Model& model, const std::vector<Prompt>& prompts, int64_t max_new_tokens)
    : model_(&model) {
  at::NoGradGuard no_grad;
  const ModelConfig& cfg = model.config();
  check(!prompts.empty(), "no prompts");
  check(max_new_tokens >= 0, "max_new_tokens must be >= 0");
  int64_t width = 0;
  std::vector<int64_t> pads;
  for (size_t b = 0; b < prompts.size(); ++b) {
    check(!prompts[b].tokens.empty(), "prompt " + std::to_string(b) + " is empty");
    width = std::max<int64_t>(width, static_cast<int64_t>(prompts[b].tokens.size()));
  }
  for (const auto& p : prompts)
    pads.push_back(width - static_cast<int64_t>(p.tokens.size()));
  const at::Tensor& flat = model.flat_params()[kEmbedUnit];
  pad_ = at::tensor(pads, at::kLong).to(flat.device());

  const int64_t B = static_cast<int64_t>(prompts.size()), s_max = width + max_new_tokens;
  for (int64_t il = 0; il < cfg.n_layers; ++il) {
    const auto opts = flat.options();
    cache_.push_back({at::zeros({B, cfg.n_kv_heads, s_max, cfg.head_dim()}, opts),
                      at::zeros({B, cfg.n_kv_heads, s_max, cfg.head_dim()}, opts)});
  }
  const Inputs in = left_padded_inputs(cfg, prompts, width, flat.device());
  const AttnContext ctx = attn_context(cfg, in);
  at::Tensor x = embed_forward(model.embed_weights(), cfg, in);  // (B,L,C)
  for (int64_t il = 0; il < cfg.n_layers; ++il)
    x = block_forward(model.block_weights(il), cfg, x, ctx, &cache_[il]);
  logits_ = head_forward(model.head_weights(), cfg, x.narrow(1, width - 1, 1))
                .select(1, 0)
                .to(at::kFloat);  // (B,V)
  length_ = width;

  // What the steps share: rotary tables of positions [0, S_max) and each
  // sequence's keys [pad, S_max) open to its queries.
  const int64_t D = cfg.head_dim();
  const AttnContext table = attn_context(cfg, at::arange(s_max, pad_.options()).view({1, s_max}),
                                         /*mask=*/{}, 0);
  cos_ = table.cos.view({s_max, D});
  sin_ = table.sin.view({s_max, D});
  const at::Tensor open = at::arange(s_max, pad_.options()).unsqueeze(0) >= pad_.unsqueeze(1);
  mask_ = at::zeros({B, s_max}, flat.options())
              .masked_fill_(open.logical_not(), kNegInf)
              .view({B, 1, 1, s_max});
}

void Decoder::step(const at::Tensor& tokens) {
  at::NoGradGuard no_grad;
  const ModelConfig& cfg = model_->config();
  const int64_t B = pad_.size(0), s = length_, D = cfg.head_dim();
  check(tokens.dim() == 1 && tokens.size(0) == B,
        "step needs one token per sequence (" + std::to_string(B) + ")");
  check(s < cos_.size(0),
        "KV cache full: " + std::to_string(s + 1) + " positions > " + std::to_string(cos_.size(0)));
  if (packed_.empty()) {
    // Packed on the first step: a decoder that never steps (one new token)
    // does not pay for it.
    for (int64_t il = 0; il < cfg.n_layers; ++il)
      packed_.push_back(pack_block(model_->block_weights(il), B));
    packed_output_ = pack_linear(model_->head_weights().output, B);
  }
  const Inputs in{.tokens = tokens.to(pad_.device(), at::kLong).view({B, 1})};  // (B,1)
  const at::Tensor positions = s - pad_;                                        // (B)
  const AttnContext ctx{.cos = cos_.index_select(0, positions).view({B, 1, 1, D}),
                        .sin = sin_.index_select(0, positions).view({B, 1, 1, D}),
                        .mask = mask_.narrow(3, 0, s + 1),  // (B,1,1,s+1)
                        .cache_start = s};
  at::Tensor x = embed_forward(model_->embed_weights(), cfg, in);  // (B,1,C)
  for (int64_t il = 0; il < cfg.n_layers; ++il)
    x = block_forward(model_->block_weights(il), cfg, x, ctx, &cache_[il], &packed_[il]);
  logits_ = head_forward(model_->head_weights(), cfg, x, packed_output_)
                .select(1, 0)
                .to(at::kFloat);  // (B,V)
  length_ = s + 1;
}

std::vector<Generation> generate(const Model& model, const std::vector<Prompt>& prompts,
                                 const GenerateOptions& options) {
  const ModelConfig& cfg = model.config();
  const SamplingOptions& so = options.sampling;
  check(so.temperature >= 0, "temperature must be >= 0");
  check(so.top_k >= 0, "top_k must be >= 0");
  check(so.top_p > 0 && so.top_p <= 1, "top_p must be in (0, 1]");
  int64_t max_new = 0;
  for (size_t b = 0; b < prompts.size(); ++b) {
    const Prompt& p = prompts[b];
    check(!p.tokens.empty(), "prompt " + std::to_string(b) + " is empty");
    check(p.max_new_tokens >= 0, "prompt " + std::to_string(b) + ": max_new_tokens < 0");
    check(p.think_limit >= 0, "prompt " + std::to_string(b) + ": think_limit < 0");
    check(static_cast<int64_t>(p.tokens.size()) + p.max_new_tokens <= cfg.max_seq_len,
          "prompt " + std::to_string(b) + ": " + std::to_string(p.tokens.size()) + " tokens + " +
              std::to_string(p.max_new_tokens) + " new tokens exceed model.max_seq_len (" +
              std::to_string(cfg.max_seq_len) + ")");
    max_new = std::max(max_new, p.max_new_tokens);
  }
  const int64_t B = static_cast<int64_t>(prompts.size());
  std::vector<Generation> out(prompts.size());
  std::vector<bool> done(prompts.size());
  int64_t n_done = 0;
  for (int64_t b = 0; b < B; ++b) {
    done[b] = prompts[b].max_new_tokens == 0;
    n_done += done[b];
  }
  if (n_done == B) return out;

  check(options.think_end_token >= 0 ||
            std::all_of(prompts.begin(), prompts.end(),
                        [](const Prompt& p) { return p.think_limit == 0; }),
        "a prompt's think_limit needs GenerateOptions::think_end_token");
  Decoder decoder(model, prompts, max_new);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  std::vector<bool> thinking(prompts.size(), true);  // think_end_token not generated yet
  while (true) {
    const at::Tensor logits = decoder.logits().to(at::kCPU);
    at::Tensor next =
        sample(logits, so, cfg.image_token_id, gen).to(at::kLong).contiguous();  // (B)
    int64_t* ids = next.mutable_data_ptr<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      if (!done[b] && thinking[b] && prompts[b].think_limit > 0 &&
          static_cast<int64_t>(out[b].tokens.size()) == prompts[b].think_limit &&
          ids[b] != options.think_end_token) {
        ids[b] = options.think_end_token;
        out[b].forced_think_end = static_cast<int64_t>(out[b].tokens.size());
      }
    }
    // Log-probabilities (and entropies) under the unmodified distribution,
    // forced tokens included.
    const at::Tensor logsm = logits.log_softmax(-1);  // (B,V)
    const at::Tensor next_logp = logsm.gather(-1, next.unsqueeze(-1)).squeeze(-1).contiguous();
    const at::Tensor entropy = options.record_entropy
                                   ? (-(logsm.exp() * logsm).nan_to_num(0).sum(-1)).contiguous()
                                   : at::Tensor();
    const float* logps = next_logp.data_ptr<float>();
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      Generation& g = out[b];
      const int64_t token = ids[b];
      g.tokens.push_back(token);
      g.logprobs.push_back(logps[b]);
      if (options.record_entropy) g.entropies.push_back(entropy.data_ptr<float>()[b]);
      if (token == options.think_end_token) thinking[b] = false;
      const bool stop = std::find(options.stop_tokens.begin(), options.stop_tokens.end(), token) !=
                        options.stop_tokens.end();
      if (stop || static_cast<int64_t>(g.tokens.size()) == prompts[b].max_new_tokens) {
        g.stop_reason = stop ? StopReason::kStopToken : StopReason::kLength;
        done[b] = true;
        ++n_done;
      }
    }
    if (n_done == B) return out;
    // Finished sequences keep decoding (their tokens are ignored) so the batch stays rectangular.
    decoder.step(next);
  }
}

}  // namespace muse::model
