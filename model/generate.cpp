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
#include <ATen/Parallel.h>

#ifdef MUSE_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

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

// The token of one row of sampling weights `w` (V, fp32, unnormalised, >= 0)
// for the uniform number `u`, by inverse transform sampling: the first token
// at which the cumulative weight exceeds u times the row's total. That is
// one random number per row where torch.multinomial draws one per vocabulary
// entry. Sums run in fp64, block by block until the block that holds the
// threshold, then token by token. A token of weight 0 is never chosen: should
// rounding leave the threshold unreached, the last token of positive weight
// is. `row` names the sequence in the error for weights that are not finite.
int64_t draw(const float* w, int64_t V, double u, int64_t row) {
  constexpr int64_t kBlock = 256;
  const double total = sum_fp64(w, V);
  check(std::isfinite(total) && total > 0, "the sampling distribution of sequence " +
                                               std::to_string(row) +
                                               " is not finite (logits hold NaN or inf)");
  int64_t chosen = V - 1;
  while (chosen > 0 && !(w[chosen] > 0))
    --chosen;
  const double threshold = u * total;
  double cumulative = 0;
  for (int64_t start = 0; start < chosen; start += kBlock) {
    const int64_t n = std::min(kBlock, V - start);
    const double block = sum_fp64(w + start, n);
    if (cumulative + block <= threshold) {
      cumulative += block;
      continue;
    }
    for (int64_t i = start; i < start + n; ++i) {
      cumulative += w[i];
      if (cumulative > threshold && w[i] > 0) return std::min(chosen, i);
    }
  }
  return chosen;
}

struct Sampled {
  at::Tensor tokens;    // (n) int64
  at::Tensor log_norm;  // (n) fp32: log sum exp(logits), the temperature-1 normaliser
  at::Tensor entropy;   // (n) fp32 nats of the temperature-1 distribution, or undefined
};

// One token per row of `logits` (n, V) fp32 on the CPU, with `u` (n) fp64 the
// rows' uniform numbers (unused when greedy). exp(logits - max) is computed
// once: at temperature 1 without top-k/top-p it is the sampling weights as
// well as the normaliser's and the entropy's terms.
Sampled sample(const at::Tensor& logits, const at::Tensor& u, const SamplingOptions& opt,
               int64_t image_token_id, bool with_entropy) {
  const int64_t n = logits.size(0), V = logits.size(1);
  const at::Tensor max = logits.amax(-1, /*keepdim=*/true);  // (n,1)
  const at::Tensor shifted = logits - max;                   // (n,V) <= 0
  at::Tensor e = shifted.exp();                              // (n,V)
  const at::Tensor total = e.sum(-1);                        // (n)
  Sampled out{.tokens = {}, .log_norm = max.squeeze(1) + total.log(), .entropy = {}};
  // H = -sum p log p = log total - sum e (logits - max) / total.
  if (with_entropy) out.entropy = total.log() - (e * shifted).sum(-1) / total;
  if (opt.temperature == 0) {
    at::Tensor l = logits.clone();
    if (image_token_id >= 0) l.select(1, image_token_id).fill_(kNegInf);
    out.tokens = l.argmax(-1);
    return out;
  }
  at::Tensor weights = e;  // (n,V)
  const bool filtered = (opt.top_k > 0 && opt.top_k < V) || opt.top_p < 1;
  if (opt.temperature != 1 || filtered) {
    at::Tensor l = opt.temperature == 1 ? shifted.clone() : shifted / opt.temperature;
    if (image_token_id >= 0) l.select(1, image_token_id).fill_(kNegInf);
    if (opt.top_k > 0 && opt.top_k < V) {
      const at::Tensor kth = std::get<0>(l.topk(opt.top_k, -1)).narrow(-1, opt.top_k - 1, 1);
      l.masked_fill_(l < kth, kNegInf);
    }
    if (opt.top_p < 1) {
      const auto [sorted, order] = l.sort(-1, /*descending=*/true);  // (n,V)
      const at::Tensor probs = sorted.softmax(-1);
      // Drop a token when the more likely ones already reach top_p (the first always stays).
      const at::Tensor drop = (probs.cumsum(-1) - probs) >= opt.top_p;
      l = l.scatter(-1, order, sorted.masked_fill(drop, kNegInf));
    }
    weights = l.exp_();
  } else if (image_token_id >= 0) {
    weights.select(1, image_token_id).zero_();  // e's sums are taken
  }
  out.tokens = at::empty({n}, at::kLong);
  const float* w = weights.const_data_ptr<float>();
  const double* uu = u.const_data_ptr<double>();
  int64_t* tokens = out.tokens.mutable_data_ptr<int64_t>();
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      tokens[r] = draw(w + r * V, V, uu[r], r);
  });
  return out;
}

// Per prompt, the index of the first prompt equal to it (the same tokens and
// images): a GRPO group's samples share one prompt.
std::vector<int64_t> first_equal(const std::vector<Prompt>& prompts) {
  const auto same = [](const Prompt& a, const Prompt& b) {
    if (a.tokens != b.tokens || a.images.defined() != b.images.defined()) return false;
    return !a.images.defined() ||
           (a.images.sizes() == b.images.sizes() && at::equal(a.images, b.images));
  };
  std::vector<int64_t> first(prompts.size()), distinct;
  for (size_t b = 0; b < prompts.size(); ++b) {
    // Groups are consecutive: the latest distinct prompt is the likeliest match.
    auto it = std::find_if(distinct.rbegin(), distinct.rend(),
                           [&](int64_t d) { return same(prompts[d], prompts[b]); });
    first[b] = it != distinct.rend() ? *it : static_cast<int64_t>(b);
    if (it == distinct.rend()) distinct.push_back(static_cast<int64_t>(b));
  }
  return first;
}

}  // namespace

#ifdef MUSE_WITH_CUDA
struct Decoder::Graph {
  at::cuda::CUDAGraph graph;
  at::Tensor logits;  // (rows, V): what a replay writes
};
#else
struct Decoder::Graph {};
#endif

StepForm default_step_form(const at::Device& device) {
#ifdef MUSE_WITH_CUDA
  if (device.is_cuda()) return StepForm::kCudaGraph;
#endif
  (void)device;
  return StepForm::kDynamic;
}

Decoder::~Decoder() = default;

Decoder::Decoder(const Model& model, const std::vector<Prompt>& prompts, int64_t max_new_tokens,
                 StepForm form)
    : model_(&model), form_(form) {
  at::NoGradGuard no_grad;
  const ModelConfig& cfg = model.config();
  check(!prompts.empty(), "no prompts");
  check(max_new_tokens >= 0, "max_new_tokens must be >= 0");
  int64_t width = 0;
  std::vector<int64_t> pads;
  for (size_t b = 0; b < prompts.size(); ++b) {
    check(!prompts[b].tokens.empty(), "prompt " + std::to_string(b) + " is empty");
    width = std::max<int64_t>(width, static_cast<int64_t>(prompts[b].tokens.size()));
    sequences_.push_back(static_cast<int64_t>(b));
  }
  for (const auto& p : prompts)
    pads.push_back(width - static_cast<int64_t>(p.tokens.size()));
  const at::Tensor& flat = model.flat_params()[kEmbedUnit];
  pad_ = at::tensor(pads, at::kLong).to(flat.device());

  const int64_t B = static_cast<int64_t>(prompts.size()), s_max = width + max_new_tokens;
  const int64_t KV = cfg.n_kv_heads, D = cfg.head_dim();
#ifndef MUSE_WITH_CUDA
  check(form != StepForm::kCudaGraph, "CUDA graphs need a CUDA build of muse-train");
#endif
  check(form != StepForm::kCudaGraph || flat.device().is_cuda(),
        "CUDA graphs need the model on a GPU, not " + flat.device().str());
  // The static forms read every cache position (masked): unwritten ones must
  // be finite, since 0 x NaN is NaN.
  const bool whole_cache = form != StepForm::kDynamic;
  for (int64_t il = 0; il < cfg.n_layers; ++il) {
    const auto make = [&] {
      return whole_cache ? at::zeros({B, KV, s_max, D}, flat.options())
                         : at::empty({B, KV, s_max, D}, flat.options());
    };
    cache_.push_back({make(), make()});
  }

  // The distinct prompts run through the model once, into a cache of their own
  // when some are shared.
  const std::vector<int64_t> first = first_equal(prompts);
  std::vector<Prompt> distinct;
  std::vector<int64_t> owner;  // [B] row of each prompt among the distinct ones
  for (int64_t b = 0; b < B; ++b) {
    if (first[b] == b) distinct.push_back(prompts[b]);
    owner.push_back(first[b] == b ? static_cast<int64_t>(distinct.size()) - 1 : owner[first[b]]);
  }
  const int64_t U = static_cast<int64_t>(distinct.size());
  std::vector<LayerCache> prefill_cache;
  for (int64_t il = 0; il < cfg.n_layers; ++il)
    prefill_cache.push_back(U == B ? cache_[il]
                                   : LayerCache{at::empty({U, KV, width, D}, flat.options()),
                                                at::empty({U, KV, width, D}, flat.options())});
  const Inputs in = left_padded_inputs(cfg, distinct, width, flat.device());
  // The cache is written through attention's cache branch, which reads the
  // left padding as a dense mask.
  const AttnContext ctx = attn_context(cfg, in, PackedAttention::kDenseMask);
  at::Tensor x = embed_forward(model.embed_weights(), cfg, in);  // (U,L,C)
  for (int64_t il = 0; il < cfg.n_layers; ++il)
    x = block_forward(model.block_weights(il), cfg, x, ctx, &prefill_cache[il]);
  logits_ = head_forward(model.head_weights(), cfg, x.narrow(1, width - 1, 1))
                .select(1, 0)
                .to(at::kFloat);  // (U,V)
  if (U < B) {
    const at::Tensor rows = at::tensor(owner, at::kLong).to(flat.device());  // (B)
    for (int64_t il = 0; il < cfg.n_layers; ++il) {
      cache_[il].k.narrow(2, 0, width).copy_(prefill_cache[il].k.index_select(0, rows));
      cache_[il].v.narrow(2, 0, width).copy_(prefill_cache[il].v.index_select(0, rows));
    }
    logits_ = logits_.index_select(0, rows);  // (B,V)
  }
  length_ = width;

  // What the steps share: rotary tables of positions [0, S_max) and each
  // sequence's keys [pad, S_max) open to its queries.
  const AttnContext table = attn_context(cfg, at::arange(s_max, pad_.options()).view({1, s_max}),
                                         /*mask=*/{}, 0);
  cos_ = table.cos.view({s_max, D});
  sin_ = table.sin.view({s_max, D});
  const at::Tensor open = at::arange(s_max, pad_.options()).unsqueeze(0) >= pad_.unsqueeze(1);
  mask_ = at::zeros({B, s_max}, flat.options())
              .masked_fill_(open.logical_not(), kNegInf)
              .view({B, 1, 1, s_max});
  if (whole_cache) {
    static_tokens_ = at::zeros({B}, pad_.options());
    static_index_ = at::zeros({1}, pad_.options());
    positions_ = at::arange(s_max, pad_.options());
  }
}

void Decoder::pack() {
  // At the first step (a decoder that never steps does not pay for it), and
  // again when one row is left (drop).
  const ModelConfig& cfg = model_->config();
  const int64_t n = static_cast<int64_t>(sequences_.size());
  packed_.clear();
  for (int64_t il = 0; il < cfg.n_layers; ++il)
    packed_.push_back(pack_block(model_->block_weights(il), n));
  packed_output_ = pack_linear(model_->head_weights().output, n);
  packed_rows_ = n;
}

int64_t Decoder::static_rows(int64_t n) const {
  int64_t rows = 1;
  while (rows < n)
    rows *= 2;
  return std::min(rows, pad_.size(0));
}

at::Tensor Decoder::static_step(int64_t rows) {
  // Only device operations on tensors that live as long as the decoder: a
  // CUDA graph replays exactly these.
  const ModelConfig& cfg = model_->config();
  const int64_t D = cfg.head_dim(), s_max = cos_.size(0);
  const at::Tensor pad = pad_.narrow(0, 0, rows);                    // (rows)
  const at::Tensor positions = static_index_ - pad;                  // (rows)
  const at::Tensor seen = positions_.unsqueeze(0) <= static_index_;  // (1,S_max)
  const at::Tensor mask =
      mask_.narrow(0, 0, rows).masked_fill(seen.logical_not().view({1, 1, 1, s_max}), kNegInf);
  const AttnContext ctx{.cos = cos_.index_select(0, positions).view({rows, 1, 1, D}),
                        .sin = sin_.index_select(0, positions).view({rows, 1, 1, D}),
                        .mask = mask,  // (rows,1,1,S_max)
                        .cache_start = 0,
                        .cache_index = static_index_};
  // Embedding without embed_forward's checks, which read values back to the
  // host (a graph cannot): the tokens come from the sampler.
  at::Tensor x = at::embedding(model_->embed_weights().tok_embed,
                               static_tokens_.narrow(0, 0, rows).view({rows, 1}));  // (rows,1,C)
  for (int64_t il = 0; il < cfg.n_layers; ++il) {
    LayerCache live{cache_[il].k.narrow(0, 0, rows), cache_[il].v.narrow(0, 0, rows)};
    x = block_forward(model_->block_weights(il), cfg, x, ctx, &live, &packed_[il]);
  }
  return head_forward(model_->head_weights(), cfg, x, packed_output_)
      .select(1, 0)
      .to(at::kFloat);  // (rows,V)
}

void Decoder::step(const at::Tensor& tokens) {
  at::NoGradGuard no_grad;
  const ModelConfig& cfg = model_->config();
  const int64_t n = static_cast<int64_t>(sequences_.size()), s = length_, D = cfg.head_dim();
  check(tokens.dim() == 1 && tokens.size(0) == n,
        "step needs one token per sequence (" + std::to_string(n) + ")");
  check(s < cos_.size(0),
        "KV cache full: " + std::to_string(s + 1) + " positions > " + std::to_string(cos_.size(0)));
  if (packed_.empty()) pack();
  length_ = s + 1;
  if (form_ != StepForm::kDynamic) {
    static_tokens_.narrow(0, 0, n).copy_(tokens);
    static_index_.fill_(s);
    const int64_t rows = static_rows(n);
    if (form_ == StepForm::kStatic) {
      logits_ = static_step(rows).narrow(0, 0, n);
      return;
    }
#ifdef MUSE_WITH_CUDA
    std::unique_ptr<Graph>& graph = graphs_[rows];
    if (!graph) {
      // Captured on a side stream after one eager run (the allocator and the
      // libraries set themselves up outside the capture); the capture writes
      // the cache at the same index as the eager run, so it changes nothing.
      graph = std::make_unique<Graph>();
      c10::cuda::device_synchronize();  // the side stream sees the tokens and index
      {
        const c10::cuda::CUDAStreamGuard guard(c10::cuda::getStreamFromPool());
        static_step(rows);
        graph->graph.capture_begin();
        graph->logits = static_step(rows);
        graph->graph.capture_end();
      }
      c10::cuda::device_synchronize();
    }
    graph->graph.replay();
    logits_ = graph->logits.narrow(0, 0, n);
#endif
    return;
  }
  const Inputs in{.tokens = tokens.to(pad_.device(), at::kLong).view({n, 1})};  // (n,1)
  const at::Tensor positions = s - pad_.narrow(0, 0, n);                        // (n)
  const AttnContext ctx{.cos = cos_.index_select(0, positions).view({n, 1, 1, D}),
                        .sin = sin_.index_select(0, positions).view({n, 1, 1, D}),
                        .mask = mask_.narrow(0, 0, n).narrow(3, 0, s + 1),  // (n,1,1,s+1)
                        .cache_start = s};
  at::Tensor x = embed_forward(model_->embed_weights(), cfg, in);  // (n,1,C)
  for (int64_t il = 0; il < cfg.n_layers; ++il) {
    LayerCache live{cache_[il].k.narrow(0, 0, n), cache_[il].v.narrow(0, 0, n)};
    x = block_forward(model_->block_weights(il), cfg, x, ctx, &live, &packed_[il]);
  }
  logits_ = head_forward(model_->head_weights(), cfg, x, packed_output_)
                .select(1, 0)
                .to(at::kFloat);  // (n,V)
}

void Decoder::drop(std::vector<int64_t> rows) {
  const int64_t n = static_cast<int64_t>(sequences_.size());
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  if (rows.empty()) return;
  check(rows.front() >= 0 && rows.back() < n, "drop: a row outside [0, " + std::to_string(n) + ")");
  const int64_t keep = n - static_cast<int64_t>(rows.size());
  // Rows at or past `keep` that stay fill the dropped rows below `keep`.
  std::vector<int64_t> holes, movers;
  auto dropped = rows.begin();
  for (int64_t r = 0; r < n; ++r) {
    const bool gone = dropped != rows.end() && *dropped == r;
    if (gone) ++dropped;
    if (gone && r < keep) holes.push_back(r);
    if (!gone && r >= keep) movers.push_back(r);
  }
  if (!holes.empty()) {
    at::NoGradGuard no_grad;
    const auto device = pad_.device();
    const at::Tensor dst = at::tensor(holes, at::kLong).to(device);
    const at::Tensor src = at::tensor(movers, at::kLong).to(device);
    const auto move = [&](const at::Tensor& t) { t.index_copy_(0, dst, t.index_select(0, src)); };
    for (LayerCache& c : cache_) {
      move(c.k.narrow(2, 0, length_));
      move(c.v.narrow(2, 0, length_));
    }
    move(pad_);
    move(mask_);
    move(logits_);
    for (size_t i = 0; i < holes.size(); ++i)
      sequences_[holes[i]] = sequences_[movers[i]];
  }
  sequences_.resize(keep);
  logits_ = logits_.narrow(0, 0, keep);
  // One row multiplies faster by the dense weights (MKL's matrix-vector
  // product) than by weights reordered for many rows: 31.6 against 40.9 ms
  // per SmolLM2 step. A ragged batch's last sequence often runs on alone.
  if (keep == 1 && packed_rows_ > 1 && form_ == StepForm::kDynamic) pack();
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
  if (max_new == 0) return out;

  check(options.think_end_token >= 0 ||
            std::all_of(prompts.begin(), prompts.end(),
                        [](const Prompt& p) { return p.think_limit == 0; }),
        "a prompt's think_limit needs GenerateOptions::think_end_token");
  const at::Device device = model.flat_params()[kEmbedUnit].device();
  Decoder decoder(model, prompts, max_new, options.step_form.value_or(default_step_form(device)));
  std::vector<int64_t> finished;  // rows of the decoder whose sequence ended
  for (int64_t b = 0; b < B; ++b)
    if (prompts[b].max_new_tokens == 0) finished.push_back(b);
  decoder.drop(finished);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  std::vector<bool> thinking(prompts.size(), true);  // think_end_token not generated yet
  while (true) {
    const std::vector<int64_t>& seqs = decoder.sequences();
    const int64_t n = static_cast<int64_t>(seqs.size());
    const at::Tensor logits = decoder.logits().to(at::kCPU).contiguous();  // (n,V)
    at::Tensor u;
    if (so.temperature > 0)
      u = at::rand({B}, gen, at::TensorOptions().dtype(at::kDouble))
              .index_select(0, at::tensor(seqs, at::kLong));  // (n)
    const Sampled sampled = sample(logits, u, so, cfg.image_token_id, options.record_entropy);
    const int64_t* ids = sampled.tokens.const_data_ptr<int64_t>();
    const float* log_norm = sampled.log_norm.const_data_ptr<float>();
    const float* rows = logits.const_data_ptr<float>();
    const int64_t V = logits.size(1);
    const float* entropy =
        options.record_entropy ? sampled.entropy.const_data_ptr<float>() : nullptr;
    finished.clear();
    for (int64_t r = 0; r < n; ++r) {
      const int64_t b = seqs[r];
      Generation& g = out[b];
      int64_t token = ids[r];
      if (thinking[b] && prompts[b].think_limit > 0 &&
          static_cast<int64_t>(g.tokens.size()) == prompts[b].think_limit &&
          token != options.think_end_token) {
        token = options.think_end_token;
        g.forced_think_end = static_cast<int64_t>(g.tokens.size());
      }
      // Log-probabilities (and entropies) under the unmodified distribution,
      // forced tokens included.
      g.tokens.push_back(token);
      g.logprobs.push_back(rows[r * V + token] - log_norm[r]);
      if (entropy) g.entropies.push_back(entropy[r]);
      if (token == options.think_end_token) thinking[b] = false;
      const bool stop = std::find(options.stop_tokens.begin(), options.stop_tokens.end(), token) !=
                        options.stop_tokens.end();
      if (stop || static_cast<int64_t>(g.tokens.size()) == prompts[b].max_new_tokens) {
        g.stop_reason = stop ? StopReason::kStopToken : StopReason::kLength;
        finished.push_back(r);
      }
    }
    if (static_cast<int64_t>(finished.size()) == n) return out;
    decoder.drop(finished);
    std::vector<int64_t> tokens;
    for (const int64_t b : decoder.sequences())
      tokens.push_back(out[b].tokens.back());
    decoder.step(at::tensor(tokens, at::kLong));
  }
}

}  // namespace muse::model
