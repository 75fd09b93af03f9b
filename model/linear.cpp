#include "model/linear.h"

#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>

#include "model/forward.h"

// LibTorch's oneDNN matrix product, result = beta * result + alpha * mat1 @ mat2
// (exported by libtorch_cpu, declared in a header the wheel does not ship).
namespace at::native {
TORCH_API void mkldnn_matmul(const at::Tensor& mat1, const at::Tensor& mat2,
                             const at::Tensor& result, float beta, float alpha);
}  // namespace at::native

namespace muse::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// From this many rows oneDNN's fp32 product measured 0.96x (the narrow k, v)
// to 1.4x MKL's (at::linear) on SmolLM2's projections, and 1.04-1.36x on the
// small preset's training step (AVX-512 CPU, 2 threads; docs/model.md).
constexpr int64_t kOneDnnMinRows = 256;

bool fp32_cpu(const at::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.layout() == at::kStrided;
}

// How dense fp32 products of kOneDnnMinRows rows or more are made, decided
// once: MUSE_CPU_MATMUL=auto (the default) takes oneDNN when this LibTorch
// has it and it runs on this CPU (LibTorch asks for AVX-512 or
// AVX-NE-CONVERT); =aten keeps at::linear (MKL) everywhere, e.g. for results
// that must match across CPUs.
struct CpuProducts {
  bool onednn = false;
  std::string summary;
};

const CpuProducts& cpu_products() {
  static const CpuProducts products = [] {
    const char* env = std::getenv("MUSE_CPU_MATMUL");
    const std::string mode = env ? env : "auto";
    if (mode == "aten") return CpuProducts{false, "MKL (MUSE_CPU_MATMUL=aten)"};
    if (mode != "auto")
      throw ModelError("MUSE_CPU_MATMUL must be auto or aten, got '" + mode + "'");
    if (!at::hasMKLDNN()) return CpuProducts{false, "MKL (this LibTorch has no oneDNN)"};
    try {
      const at::Tensor a = at::ones({2, 2}), out = at::empty({2, 2});
      at::native::mkldnn_matmul(a, a, out, 0, 1);
      if (!out.equal(at::full({2, 2}, 2.0f))) throw std::logic_error("wrong product");
    } catch (const std::exception&) {
      return CpuProducts{false, "MKL (LibTorch's oneDNN product does not run on this CPU)"};
    }
    return CpuProducts{true, "oneDNN from " + std::to_string(kOneDnnMinRows) +
                                 " rows, MKL below (MUSE_CPU_MATMUL=auto)"};
  }();
  return products;
}

// Whether a product of `rows` rows of `a` by `b` takes oneDNN.
bool onednn_product(int64_t rows, const at::Tensor& a, const at::Tensor& b) {
  return fp32_cpu(a) && fp32_cpu(b) && rows >= kOneDnnMinRows && cpu_products().onednn;
}

// x (..., K) times w (N, K)^T, + bias (N), by oneDNN, outside autograd.
at::Tensor onednn_linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  const at::Tensor rows = x.reshape({-1, x.size(-1)});  // (M,K)
  at::Tensor y = at::empty({rows.size(0), w.size(0)}, rows.options());
  at::native::mkldnn_matmul(rows, w.t(), y, 0, 1);
  if (bias.defined()) y.add_(bias);
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = w.size(0);
  return y.view(shape);
}

// onednn_linear without bias under autograd: backward takes the same
// products, dx = dy w and dw = dy^T x, over the rows flattened.
struct OneDnnLinearFunction : public torch::autograd::Function<OneDnnLinearFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w) {
    ctx->save_for_backward({x, w});
    return onednn_linear(x, w, at::Tensor());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1];
    const at::Tensor dy = grads[0].reshape({-1, w.size(0)});  // (M,N)
    at::Tensor dx, dw;
    if (ctx->needs_input_grad(0)) {
      dx = at::empty({dy.size(0), w.size(1)}, dy.options());
      matmul_into(dx, dy, w, /*accumulate=*/false);
      dx = dx.view(x.sizes());
    }
    if (ctx->needs_input_grad(1)) {
      dw = at::empty(w.sizes(), dy.options());
      matmul_into(dw, dy.t(), x.reshape({-1, x.size(-1)}), /*accumulate=*/false);
    }
    return {dx, dw};
  }
};

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

bool differentiable(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  return at::GradMode::is_enabled() &&
         (x.requires_grad() || w.requires_grad() || (bias.defined() && bias.requires_grad()));
}

// Whether project() multiplies `x` by `w` with matvec: one fp32 row on the
// CPU by a dense weight, outside autograd (matvec has no backward).
bool one_row_product(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  return !differentiable(x, w, bias) && fp32_cpu(x) && fp32_cpu(w) && w.dim() == 2 &&
         x.numel() == w.size(1) && (!bias.defined() || fp32_cpu(bias));
}

// Whether project() multiplies `x` by the dense `w` with oneDNN.
bool onednn_projection(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  return w.dim() == 2 && x.dim() >= 2 && x.size(-1) > 0 && (!bias.defined() || fp32_cpu(bias)) &&
         onednn_product(x.numel() / x.size(-1), x, w);
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

std::string cpu_matmul_summary() {
  return cpu_products().summary;
}

void matmul_into(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, bool accumulate) {
  if (onednn_product(a.size(0), a, b) && fp32_cpu(out))
    at::native::mkldnn_matmul(a, b, out, accumulate ? 1 : 0, 1);
  else if (accumulate)
    out.addmm_(a, b);
  else
    at::mm_out(out, a, b);
}

at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  const std::optional<at::Tensor> b = bias.defined() ? std::optional(bias) : std::nullopt;
  if (!w.is_mkldnn()) {
    if (one_row_product(x, w, bias)) return matvec(x, w, bias);
    if (!onednn_projection(x, w, bias)) return at::linear(x, w, b);
    if (!differentiable(x, w, bias)) return onednn_linear(x, w, bias);
    const at::Tensor y = OneDnnLinearFunction::apply(x, w);
    return bias.defined() ? y + bias : y;
  }
  return onednn().linear->call(x, w, b, "none", c10::List<std::optional<at::Scalar>>(),
                               std::nullopt);
}

}  // namespace muse::model
