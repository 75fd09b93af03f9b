#include "model/linear.h"

#include <optional>
#include <string_view>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>

namespace muse::model {
namespace {

// LibTorch's oneDNN linear over a reordered weight, when this LibTorch has it.
struct OneDnnLinear {
  using Reorder = at::Tensor(const at::Tensor&, std::optional<int64_t>);
  using Linear = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                            std::string_view, c10::List<std::optional<at::Scalar>>,
                            std::optional<std::string_view>);
  std::optional<c10::TypedOperatorHandle<Reorder>> reorder;
  std::optional<c10::TypedOperatorHandle<Linear>> linear;
};

const OneDnnLinear& onednn() {
  static const OneDnnLinear ops = [] {
    OneDnnLinear o;
    if (!at::hasMKLDNN()) return o;
    const auto reorder =
        c10::Dispatcher::singleton().findSchema({"mkldnn::_reorder_linear_weight", ""});
    const auto linear = c10::Dispatcher::singleton().findSchema({"mkldnn::_linear_pointwise", ""});
    if (reorder && linear) {
      o.reorder = reorder->typed<OneDnnLinear::Reorder>();
      o.linear = linear->typed<OneDnnLinear::Linear>();
    }
    return o;
  }();
  return ops;
}

// Whether project() multiplies `x` by `w` with matvec: one fp32 row on the
// CPU by a dense weight, outside autograd (matvec has no backward).
bool one_row_product(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  const auto fp32_cpu = [](const at::Tensor& t) {
    return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.layout() == at::kStrided;
  };
  const bool differentiable =
      at::GradMode::is_enabled() &&
      (x.requires_grad() || w.requires_grad() || (bias.defined() && bias.requires_grad()));
  return !differentiable && fp32_cpu(x) && fp32_cpu(w) && w.dim() == 2 && x.numel() == w.size(1) &&
         (!bias.defined() || fp32_cpu(bias));
}

// x (..., K) with one row times w (N, K)^T, + bias (N). Each output is one
// row of `w` dotted with x by one thread in 16 interleaved partial sums, so
// it vectorises and does not depend on the thread count. A one-row product
// only streams the weight: this reaches about 85% of the measured memory
// bandwidth where MKL's matrix-vector product and oneDNN's reach 35-55%
// (docs/performance.md).
at::Tensor matvec(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  constexpr int64_t kGrainRows = 64;
  const at::Tensor wc = w.contiguous(), xc = x.contiguous();
  const int64_t N = wc.size(0), K = wc.size(1);
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = N;
  at::Tensor y = at::empty(shape, xc.options());
  const float* wp = wc.const_data_ptr<float>();
  const float* xp = xc.const_data_ptr<float>();
  const at::Tensor bc = bias.defined() ? bias.contiguous() : at::Tensor();
  const float* bp = bc.defined() ? bc.const_data_ptr<float>() : nullptr;
  float* yp = y.mutable_data_ptr<float>();
  at::parallel_for(0, N, kGrainRows, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n)
      yp[n] = bp ? dot(wp + n * K, xp, K) + bp[n] : dot(wp + n * K, xp, K);
  });
  return y;
}

}  // namespace

at::Tensor pack_linear(const at::Tensor& w, int64_t rows) {
  const OneDnnLinear& ops = onednn();
  if (rows == 1 || !w.device().is_cpu() || w.scalar_type() != at::kFloat || !ops.reorder ||
      w.numel() < (int64_t{1} << 18))
    return w.contiguous();
  return ops.reorder->call(w.contiguous(), rows);
}

at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  const std::optional<at::Tensor> b = bias.defined() ? std::optional(bias) : std::nullopt;
  if (!w.is_mkldnn()) return one_row_product(x, w, bias) ? matvec(x, w, bias) : at::linear(x, w, b);
  return onednn().linear->call(x, w, b, "none", c10::List<std::optional<at::Scalar>>(),
                               std::nullopt);
}

}  // namespace muse::model
