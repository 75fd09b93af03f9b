#include "model/chunked_loss.h"

// Shapes: N tokens, C model width, V vocab, K chunk tokens, B batch, T time.

#include <algorithm>
#include <stdexcept>

#include <torch/csrc/autograd/custom_function.h>

#include "model/linear.h"

namespace muse::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The softmax's dtype: fp32, or fp64 for fp64 logits.
at::ScalarType softmax_dtype(const at::Tensor& hidden) {
  return hidden.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// One chunk's logits (K, V), shifted by their row maximum, in the softmax's
// dtype; also the maximum (K, 1). In place, so one (K, V) block is the
// largest tensor alive (two while a lower compute dtype is converted).
at::Tensor shifted_logits(const at::Tensor& h, const at::Tensor& output, at::ScalarType dtype) {
  at::Tensor z = project(h, output).to(dtype);  // (K,V)
  return z.sub_(z.amax(1, /*keepdim=*/true));
}

// Autograd function of chunked_token_logprobs: inputs (hidden, output,
// tokens), outputs (logp, entropy); the entropy is empty unless asked for.
struct ChunkedLogprobs : public torch::autograd::Function<ChunkedLogprobs> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden,
                               const at::Tensor& output, const at::Tensor& tokens, int64_t chunk,
                               bool with_entropy) {
    ctx->save_for_backward({hidden, output, tokens});
    ctx->saved_data["chunk"] = chunk;
    const int64_t N = hidden.size(0);
    const at::ScalarType dtype = softmax_dtype(hidden);
    const auto opts = hidden.options().dtype(dtype);
    at::Tensor logp = at::empty({N}, opts);                        // (N)
    at::Tensor entropy = at::empty({with_entropy ? N : 0}, opts);  // (N) or (0)
    for (int64_t s = 0; s < N; s += chunk) {
      const int64_t n = std::min(chunk, N - s);
      at::Tensor z = shifted_logits(hidden.narrow(0, s, n), output, dtype);  // (K,V)
      const at::Tensor target = z.gather(1, tokens.narrow(0, s, n).unsqueeze(1)).squeeze(1);
      at::Tensor lse;  // (K) log sum exp of the shifted logits
      if (with_entropy) {
        // H = log Z - sum(exp(z) z) / Z over the shifted logits z.
        const at::Tensor e = z.exp();  // (K,V)
        const at::Tensor sum = e.sum(1);
        lse = sum.log();
        entropy.narrow(0, s, n).copy_(lse - e.mul_(z).sum(1) / sum);
      } else {
        lse = z.exp_().sum(1).log_();
      }
      logp.narrow(0, s, n).copy_(target - lse);
    }
    ctx->mark_non_differentiable({entropy});
    return {logp, entropy};
  }

  // d logp[n] / d logits[n, v] = onehot(tokens[n])[v] - softmax[n, v]: each
  // chunk's logits and softmax are recomputed, scaled by the incoming
  // gradient and multiplied into both inputs' gradients; the weight's
  // gradient accumulates over the chunks.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &hidden = saved[0], &output = saved[1], &tokens = saved[2];
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const at::Tensor& grad_logp = grads[0];  // (N)
    const bool want_hidden = ctx->needs_input_grad(0), want_output = ctx->needs_input_grad(1);
    at::Tensor grad_hidden = want_hidden ? at::zeros_like(hidden) : at::Tensor();  // (N,C)
    at::Tensor grad_output = want_output ? at::zeros_like(output) : at::Tensor();  // (V,C)
    if (grad_logp.defined()) {
      const int64_t N = hidden.size(0);
      const at::ScalarType dtype = softmax_dtype(hidden);
      for (int64_t s = 0; s < N; s += chunk) {
        const int64_t n = std::min(chunk, N - s);
        const at::Tensor h = hidden.narrow(0, s, n);                            // (K,C)
        const at::Tensor g = grad_logp.narrow(0, s, n).to(dtype).unsqueeze(1);  // (K,1)
        at::Tensor z = shifted_logits(h, output, dtype).exp_();                 // (K,V)
        z.mul_(g.neg() / z.sum(1, /*keepdim=*/true));                           // -g softmax
        z.scatter_add_(1, tokens.narrow(0, s, n).unsqueeze(1), g);              // + g onehot
        const at::Tensor dz = z.to(output.scalar_type());                       // (K,V)
        if (want_hidden) {
          at::Tensor rows = grad_hidden.narrow(0, s, n);  // (K,C)
          matmul_into(rows, dz, output, /*accumulate=*/false);
        }
        if (want_output) matmul_into(grad_output, dz.t(), h, /*accumulate=*/true);
      }
    }
    return {grad_hidden, grad_output, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

void check(bool ok, const std::string& message) {
  if (!ok) throw ModelError(message);
}

}  // namespace

at::Tensor chunked_token_logprobs(const at::Tensor& hidden, const at::Tensor& output,
                                  const at::Tensor& tokens, int64_t chunk_tokens,
                                  at::Tensor* entropy) {
  check(chunk_tokens >= 1, "chunk_tokens must be >= 1, got " + std::to_string(chunk_tokens));
  check(hidden.dim() == 2 && output.dim() == 2 && hidden.size(1) == output.size(1) &&
            tokens.dim() == 1 && tokens.size(0) == hidden.size(0),
        "chunked_token_logprobs needs hidden (N, C), output (V, C) and tokens (N)");
  const variable_list out = ChunkedLogprobs::apply(hidden, output, tokens.to(at::kLong),
                                                   chunk_tokens, entropy != nullptr);
  if (entropy != nullptr) *entropy = out[1];
  return out[0];
}

TokenLogprobs head_token_logprobs(const HeadOutput& head, const at::Tensor& tokens,
                                  const at::Tensor& where, int64_t chunk_tokens,
                                  bool with_entropy) {
  const int64_t C = head.hidden.size(-1);
  check(tokens.sizes() == where.sizes() && head.hidden.dim() == tokens.dim() + 1 &&
            head.hidden.sizes().slice(0, tokens.dim()) == tokens.sizes(),
        "head_token_logprobs needs hidden (..., C) with tokens and where (...)");
  const at::Tensor rows = where.reshape({-1}).nonzero().squeeze(1);         // (M) marked positions
  const at::Tensor h = head.hidden.reshape({-1, C}).index_select(0, rows);  // (M,C)
  const at::Tensor t = tokens.reshape({-1}).index_select(0, rows);          // (M)
  at::Tensor entropy;
  const at::Tensor lp =
      chunked_token_logprobs(h, head.output, t, chunk_tokens, with_entropy ? &entropy : nullptr);
  const at::Tensor zeros = at::zeros({tokens.numel()}, lp.options());  // (N)
  TokenLogprobs out{.logp = zeros.index_copy(0, rows, lp).view(tokens.sizes()), .entropy = {}};
  if (with_entropy) out.entropy = zeros.index_copy(0, rows, entropy).view(tokens.sizes());
  return out;
}

TextLoss head_text_loss(const HeadOutput& head, const at::Tensor& targets, int64_t image_token_id,
                        int64_t chunk_tokens) {
  if (chunk_tokens == 0) return text_loss(head.logits(), targets, image_token_id);
  check(targets.dim() == 2 && head.hidden.dim() == 3 &&
            targets.sizes() == head.hidden.sizes().slice(0, 2),
        "targets must be (B, T) of the head's hidden states (B, T, C)");
  const at::Tensor counted = counted_targets(targets, image_token_id);  // (B,T)
  const TokenLogprobs lp = head_token_logprobs(head, at::where(counted, targets.to(at::kLong), 0),
                                               counted, chunk_tokens);
  return {.sum = -lp.logp.sum(), .count = counted.sum()};
}

}  // namespace muse::model
