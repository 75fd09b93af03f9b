// The block's matrix products, at::linear or over a weight packed once for
// the CPU's oneDNN. A decode step multiplies B rows by every weight; MKL
// (behind at::linear) repacks the weight on every call once there are 2 or
// more rows, which a weight reordered once into oneDNN's blocked layout
// avoids (the pair of operators torch.compile's CPU backend uses).
//
// Shapes: N output features, K input features.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

namespace muse::model {

// `w` (N, K) for products with `rows` input rows: on the CPU, reordered for
// oneDNN where that beats at::linear (from 2^18 elements, timed on an
// AVX-512 CPU). For one row, and off the CPU, the weight stays dense
// (contiguous): project() multiplies one row by it with its own
// matrix-vector product.
at::Tensor pack_linear(const at::Tensor& w, int64_t rows);

// (..., K) -> (..., N): at::linear(x, w, bias) for `w` dense or packed by
// pack_linear; `bias` (N) or undefined. One fp32 row on the CPU outside
// autograd (a decode step of one sequence) takes a matrix-vector product
// that streams the weight at the memory bandwidth.
at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias = {});

}  // namespace muse::model
