// The block's matrix products, at::linear or over a weight packed once for
// the CPU's oneDNN. A decode step multiplies B rows by every weight; MKL
// (behind at::linear) repacks the weight on every call once there are 2 or
// more rows, which a weight reordered once into oneDNN's blocked layout
// avoids (the pair of operators torch.compile's CPU backend uses). Products
// of many rows by dense fp32 weights on the CPU (training, prefill) take
// oneDNN's matrix product, forward and backward: on an AVX-512 CPU it ran
// a training step's products 1.04-1.36x faster than MKL's (docs/model.md).
//
// Shapes: N output features, K input features.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/ATen.h>

namespace muse::model {

// x[0, n) . y[0, n) in 16 interleaved partial sums, so that it vectorises.
// The order is fixed: the tail past the last block of 16 is summed first,
// then the 16 partial sums are added in lane order; every call rounds alike.
inline float dot(const float* x, const float* y, int64_t n) {
  constexpr int64_t kLanes = 16;
  float part[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l)
      part[l] += x[i + l] * y[i + l];
  float sum = 0;
  for (; i < n; ++i)
    sum += x[i] * y[i];
  for (const float p : part)
    sum += p;
  return sum;
}

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
// From 256 rows by a dense fp32 weight on the CPU, the product is oneDNN's
// (with its own backward under autograd) unless MUSE_CPU_MATMUL=aten, or
// this LibTorch or CPU lacks it; throws ModelError for another value of
// MUSE_CPU_MATMUL.
at::Tensor project(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias = {});

// How project() multiplies many rows on the CPU, with the reason, for the
// startup log; throws ModelError for a bad MUSE_CPU_MATMUL.
std::string cpu_matmul_summary();

// out (M, N) = a (M, K) @ b (K, N), or out += a @ b when `accumulate`: the
// product project() would choose for a and b, outside autograd.
void matmul_into(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, bool accumulate);

}  // namespace muse::model
