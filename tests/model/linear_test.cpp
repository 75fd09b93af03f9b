// model/linear.h: project() over dense and packed weights, its own one-row
// product (matvec) and its oneDNN products for many rows, against at::linear.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include "model/linear.h"

// LibTorch's oneDNN product, which project() takes for many rows (declared
// as model/linear.cpp declares it).
namespace at::native {
TORCH_API void mkldnn_matmul(const at::Tensor& mat1, const at::Tensor& mat2,
                             const at::Tensor& result, float beta, float alpha);
}  // namespace at::native

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

// Many rows by a dense weight under autograd: the output and the gradients of
// the input, the weight and the bias agree with at::linear's to fp32
// rounding, over 300 rows (oneDNN's product where it runs) and 30 (MKL's).
TEST(Linear, ManyRowsMatchAtLinearForwardAndBackward) {
  for (const int64_t T : {100, 10}) {
    const at::Tensor x0 = random({3, T, kIn}, 13), w0 = random({kOut, kIn}, 14),
                     b0 = random({kOut}, 15), dy = random({3, T, kOut}, 16);
    for (const bool with_bias : {false, true}) {
      const auto run = [&](bool reference) {
        const at::Tensor x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_();
        const at::Tensor b = with_bias ? b0.clone().requires_grad_() : at::Tensor();
        const at::Tensor y = reference ? at::linear(x, w, b) : project(x, w, b);
        y.backward(dy);
        return std::vector<at::Tensor>{y.detach(), x.grad(), w.grad(),
                                       with_bias ? b.grad() : at::zeros({1})};
      };
      const std::vector<at::Tensor> got = run(false), want = run(true);
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i].sizes(), want[i].sizes()) << "T " << T << " tensor " << i;
        EXPECT_TRUE(at::allclose(got[i], want[i], /*rtol=*/1e-5, /*atol=*/1e-5))
            << "T " << T << " bias " << with_bias << " tensor " << i;
      }
    }
  }
}

// Which product project() takes for a dense fp32 weight: below 256 rows
// at::linear's bits; from 256 rows oneDNN's bits when the startup summary
// names oneDNN, else at::linear's.
TEST(Linear, ManyRowsTakeTheProductTheSummaryNames) {
  at::NoGradGuard no_grad;
  const bool onednn = cpu_matmul_summary().starts_with("oneDNN");
  const at::Tensor w = random({kOut, 64}, 17);
  for (const int64_t rows : {255, 256}) {
    const at::Tensor x = random({rows, 64}, 18);
    at::Tensor want = at::empty({rows, kOut});
    if (onednn && rows >= 256)
      at::native::mkldnn_matmul(x, w.t(), want, 0, 1);
    else
      want = at::linear(x, w);
    EXPECT_TRUE(at::equal(project(x, w), want)) << rows << " rows";
  }
}

// matmul_into over 300 rows, written and accumulated, against at::mm.
TEST(Linear, MatmulIntoWritesOrAccumulates) {
  at::NoGradGuard no_grad;
  const at::Tensor a = random({300, kIn}, 19), b = random({kIn, 40}, 20), c = random({300, 40}, 21);
  at::Tensor out = at::full({300, 40}, 7.0f);
  matmul_into(out, a, b, /*accumulate=*/false);
  EXPECT_TRUE(at::allclose(out, at::mm(a, b), 1e-5, 1e-5));
  out.copy_(c);
  matmul_into(out, a, b, /*accumulate=*/true);
  EXPECT_TRUE(at::allclose(out, c + at::mm(a, b), 1e-5, 1e-5));
}

}  // namespace
}  // namespace muse::model
