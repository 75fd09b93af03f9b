#include "model/linear.h"

#include <optional>
#include <string_view>

#include <ATen/Context.h>
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

}  // namespace

at::Tensor pack_linear(const at::Tensor& w, int64_t rows) {
  const OneDnnLinear& ops = onednn();
  const int64_t min_numel = rows > 1 ? int64_t{1} << 18 : int64_t{1} << 20;
  if (!w.device().is_cpu() || w.scalar_type() != at::kFloat || !ops.reorder ||
      w.numel() < min_numel)
    return w.contiguous();
  return ops.reorder->call(w.contiguous(), rows);
}

at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  const std::optional<at::Tensor> b = bias.defined() ? std::optional(bias) : std::nullopt;
  if (!w.is_mkldnn()) return at::linear(x, w, b);
  return onednn().linear->call(x, w, b, "none", c10::List<std::optional<at::Scalar>>(),
                               std::nullopt);
}

}  // namespace muse::model
