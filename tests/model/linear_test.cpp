// model/linear.h: project() over dense and packed weights, and its own
// one-row product (matvec) against at::linear.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include "model/linear.h"

namespace muse::model {
namespace {

// K = 37 leaves a tail after the 16-lane blocks; N = 300 spans several
// 64-row tasks.
constexpr int64_t kOut = 300, kIn = 37;

at::Tensor random(std::vector<int64_t> shape, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randn(shape, gen, at::kFloat);
}

TEST(Linear, OneRowMatchesAtLinear) {
  at::NoGradGuard no_grad;
  const at::Tensor w = random({kOut, kIn}, 1), b = random({kOut}, 2);
  for (const auto& shape : std::vector<std::vector<int64_t>>{{kIn}, {1, kIn}, {1, 1, kIn}}) {
    const at::Tensor x = random(shape, 3);
    for (const at::Tensor& bias : {at::Tensor(), b}) {
      const at::Tensor y = project(x, pack_linear(w, 1), bias);
      const at::Tensor ref = bias.defined() ? at::linear(x, w, bias) : at::linear(x, w);
      ASSERT_EQ(y.sizes(), ref.sizes());
      EXPECT_TRUE(at::allclose(y, ref, /*rtol=*/1e-5, /*atol=*/1e-5));
    }
  }
}

// The documented order of the one-row product: each output summed by one
// thread in 16 interleaved partial sums, then the tail, then the partial
// sums in order, then the bias.
TEST(Linear, OneRowSumsInSixteenInterleavedPartialSums) {
  at::NoGradGuard no_grad;
  const at::Tensor w = random({kOut, kIn}, 10), x = random({kIn}, 11), b = random({kOut}, 12);
  const at::Tensor y = project(x, w, b);
  const float *wp = w.const_data_ptr<float>(), *xp = x.const_data_ptr<float>();
  for (int64_t n = 0; n < kOut; ++n) {
    float part[16] = {};
    int64_t k = 0;
    for (; k + 16 <= kIn; k += 16)
      for (int64_t l = 0; l < 16; ++l)
        part[l] += wp[n * kIn + k + l] * xp[k + l];
    float sum = 0;
    for (; k < kIn; ++k)
      sum += wp[n * kIn + k] * xp[k];
    for (const float p : part)
      sum += p;
    ASSERT_EQ(y[n].item<float>(), sum + b[n].item<float>()) << "output " << n;
  }
}

TEST(Linear, OneRowDoesNotDependOnTheThreadCount) {
  at::NoGradGuard no_grad;
  const at::Tensor w = random({kOut, kIn}, 4), x = random({1, 1, kIn}, 5);
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = project(x, w);
  at::set_num_threads(2);
  const at::Tensor two = project(x, w);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one, two));
}

TEST(Linear, OneRowWithGradientsTakesAutograd) {
  const at::Tensor w = random({kOut, kIn}, 6).requires_grad_(), x = random({1, kIn}, 7);
  const at::Tensor y = project(x, w);
  ASSERT_TRUE(y.requires_grad());
  y.sum().backward();
  EXPECT_TRUE(at::allclose(w.grad(), x.expand({kOut, kIn})));
}

TEST(Linear, ManyRowsOverAPackedWeightMatchAtLinear) {
  at::NoGradGuard no_grad;
  const at::Tensor w = random({1024, 512}, 8), x = random({8, 512}, 9);
  EXPECT_TRUE(at::allclose(project(x, pack_linear(w, 8)), at::linear(x, w), 1e-4, 1e-4));
}

}  // namespace
}  // namespace muse::model
