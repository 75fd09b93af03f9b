#include "model/generate.h"

// Shapes: B batch (prompts), L longest prompt (the padded width), S key
// positions, V vocab, C model width, KV kv-heads, D head dim, S_img image side,
// Ch image channels, N_img images.

#include <algorithm>
#include <limits>
#include <string>
#include <utility>

#include <ATen/CPUGeneratorImpl.h>

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

// (B, V) fp32 logits on the CPU -> the sampled ids (B) and their
// log-probabilities (B) under the unmodified softmax.
std::pair<at::Tensor, at::Tensor> sample(const at::Tensor& logits, const SamplingOptions& opt,
                                         int64_t image_token_id, at::Generator& gen) {
  at::Tensor l = logits.clone();
  l.select(1, image_token_id).fill_(kNegInf);
  at::Tensor next;  // (B)
  if (opt.temperature == 0) {
    next = l.argmax(-1);
  } else {
    l = l / opt.temperature;
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
    next = at::multinomial(l.softmax(-1), 1, /*replacement=*/false, gen).squeeze(-1);
  }
  const at::Tensor logp = logits.log_softmax(-1).gather(-1, next.unsqueeze(-1)).squeeze(-1);
  return {next, logp};
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

  const int64_t B = static_cast<int64_t>(prompts.size());
  for (int64_t il = 0; il < cfg.n_layers; ++il) {
    const auto opts = flat.options();
    cache_.push_back(
        {at::zeros({B, cfg.n_kv_heads, width + max_new_tokens, cfg.head_dim()}, opts),
         at::zeros({B, cfg.n_kv_heads, width + max_new_tokens, cfg.head_dim()}, opts)});
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
}

void Decoder::step(const at::Tensor& tokens) {
  at::NoGradGuard no_grad;
  const ModelConfig& cfg = model_->config();
  const int64_t B = pad_.size(0), s = length_;
  check(tokens.dim() == 1 && tokens.size(0) == B,
        "step needs one token per sequence (" + std::to_string(B) + ")");
  const Inputs in{.tokens = tokens.to(pad_.device(), at::kLong).view({B, 1})};  // (B,1)
  // The new position of each sequence sees its own positions [pad, s].
  const at::Tensor keys = at::arange(s + 1, pad_.options());  // (S)
  const at::Tensor mask = (keys.unsqueeze(0) >= pad_.unsqueeze(1)).view({B, 1, 1, s + 1});
  const AttnContext ctx = attn_context(cfg, (s - pad_).unsqueeze(1), mask, s);
  at::Tensor x = embed_forward(model_->embed_weights(), cfg, in);  // (B,1,C)
  for (int64_t il = 0; il < cfg.n_layers; ++il)
    x = block_forward(model_->block_weights(il), cfg, x, ctx, &cache_[il]);
  logits_ = head_forward(model_->head_weights(), cfg, x).select(1, 0).to(at::kFloat);  // (B,V)
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

  Decoder decoder(model, prompts, max_new);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  while (true) {
    const auto [next, logp] = sample(decoder.logits().to(at::kCPU), so, cfg.image_token_id, gen);
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      Generation& g = out[b];
      const int64_t token = next[b].item<int64_t>();
      g.tokens.push_back(token);
      g.logprobs.push_back(logp[b].item<float>());
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
