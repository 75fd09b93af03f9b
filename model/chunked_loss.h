// The output projection, log-softmax and gather fused over chunks of tokens,
// so that the (N, V) logits never exist at once: forward keeps only its inputs
// and backward recomputes each chunk's logits. With real vocabularies the
// logits dominate a step's memory (4,096 tokens x 151,936 x 4 bytes = 2.5 GB,
// and the log-softmax keeps a second copy); here one (K, V) block lives at a
// time. docs/memory.md compares the two; trainer.loss_chunk_tokens picks K.
//
// Shapes: N tokens, C model width, V vocab, K chunk tokens, B batch, T time.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

#include "model/forward.h"

namespace muse::model {

// log softmax(hidden output^T)[n, tokens[n]] for every row n: (N), computed K =
// `chunk_tokens` rows at a time and differentiable in `hidden` (N, C) and
// `output` (V, C). The logits are in the dtype of `hidden` and `output`, as
// head_forward's; the softmax is in fp32, as text_loss's (fp64 for fp64
// inputs), and so is the result. `tokens` (N) integer in [0, V). With
// `entropy`, it also receives each row's entropy (N), without gradient.
at::Tensor chunked_token_logprobs(const at::Tensor& hidden, const at::Tensor& output,
                                  const at::Tensor& tokens, int64_t chunk_tokens,
                                  at::Tensor* entropy = nullptr);

// Log-probabilities of `tokens` at the positions `where` marks, under the
// logits of `head` (hidden (..., C)), chunk_tokens at a time; 0 elsewhere.
// Only the marked positions are projected.
struct TokenLogprobs {
  at::Tensor logp;     // (...) differentiable
  at::Tensor entropy;  // (...) without gradient, or undefined unless asked for
};
TokenLogprobs head_token_logprobs(const HeadOutput& head, const at::Tensor& tokens /*(...)*/,
                                  const at::Tensor& where /*(...) bool*/, int64_t chunk_tokens,
                                  bool with_entropy = false);

// text_loss(head.logits(), targets, image_token_id) when chunk_tokens is 0;
// otherwise the same loss without the logits, chunk_tokens at a time.
TextLoss head_text_loss(const HeadOutput& head, const at::Tensor& targets /*(B,T)*/,
                        int64_t image_token_id, int64_t chunk_tokens);

}  // namespace muse::model
