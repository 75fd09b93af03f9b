// Generation for inference and RL rollouts: batched prompts of different
// lengths (optionally with images), a preallocated per-layer KV cache,
// greedy / temperature / top-k / top-p sampling from a seeded generator, stop
// tokens and per-sequence length limits.
//
// Prompts are left-padded to a common length; pad positions form their own
// segment, so each prompt's rotary positions start at 0 and no real position
// ever attends to a pad. Decoding then appends one position per sequence per
// step at the same cache index. Cached decoding gives the logits of a full
// forward over prompt + generated tokens (up to floating-point order).
//
// Log-probability convention: the log-probability reported for a sampled
// token is under the model's unmodified distribution, log_softmax(logits) at
// temperature 1 without top-k/top-p, which is what an RL loss recomputes from
// a forward pass. The <image> placeholder is never sampled (the model cannot
// emit images); its probability is removed from the sampling distribution
// only.
//
// Shapes: B batch (prompts), V vocab, S_img image side, Ch image channels,
// N_img images, KV kv-heads, D head dim.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "model/forward.h"
#include "model/model.h"

namespace muse::model {

struct Prompt {
  // May hold runs of <image> placeholders; each Np consecutive ones take one
  // image, in order.
  std::vector<int64_t> tokens = {};
  at::Tensor images = {};  // (N_img, S_img, S_img, Ch) uint8; undefined without placeholders
  int64_t max_new_tokens = 256;
};

struct SamplingOptions {
  double temperature = 1.0;  // 0 = greedy (argmax)
  int64_t top_k = 0;         // keep only the k most likely tokens; 0 = all
  double top_p = 1.0;        // keep the fewest most likely tokens whose mass reaches top_p; 1 = all
};

struct GenerateOptions {
  SamplingOptions sampling;
  std::vector<int64_t> stop_tokens;  // a sequence ends after generating any of these
  uint64_t seed = 0;                 // the same seed, prompts and model give the same tokens
};

enum class StopReason { kStopToken, kLength };

struct Generation {
  std::vector<int64_t> tokens;  // generated tokens, the stop token included
  std::vector<float> logprobs;  // per token: log_softmax(logits)[token] at temperature 1
  StopReason stop_reason = StopReason::kLength;
};

// The cache-free inputs of `prompts` left-padded to `width` (>= the longest):
// tokens, segment ids (0 on pads, 1 on the prompt, so positions start at 0
// where each prompt starts) and the images with their slots. Also the shape
// of a batch of whole sequences (prompt + response) for scoring them. Throws
// ModelError when a prompt's images do not match its placeholders.
Inputs left_padded_inputs(const ModelConfig& cfg, const std::vector<Prompt>& prompts, int64_t width,
                          const at::Device& device);

// A batch of sequences decoded step by step with a KV cache. Runs without
// autograd. Rotary positions past model.max_seq_len are computed but were
// never trained: keep prompt + new tokens within it.
class Decoder {
 public:
  // Runs the prompts (each non-empty) through the model, with room in the
  // cache for `max_new_tokens` more positions per sequence. Throws ModelError.
  Decoder(const Model& model, const std::vector<Prompt>& prompts, int64_t max_new_tokens);

  // (B, V) fp32 logits of the next token of each sequence.
  const at::Tensor& logits() const { return logits_; }
  // Appends one token per sequence, (B) integer, and computes the next logits.
  void step(const at::Tensor& tokens);

 private:
  const Model* model_;             // [not null] must outlive the decoder
  at::Tensor pad_;                 // (B) int64: left-padding of each sequence
  std::vector<LayerCache> cache_;  // [n_layers], each (B, KV, longest prompt + max_new_tokens, D)
  int64_t length_ = 0;             // cache positions filled (padded prompt + steps)
  at::Tensor logits_;              // (B, V)
};

// Generates for every prompt until a stop token or its max_new_tokens
// (prompt length + max_new_tokens must fit in model.max_seq_len). Throws
// ModelError for bad prompts or options.
std::vector<Generation> generate(const Model& model, const std::vector<Prompt>& prompts,
                                 const GenerateOptions& options);

}  // namespace muse::model
