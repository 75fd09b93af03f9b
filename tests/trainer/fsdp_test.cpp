// FSDP on N ranks (mpirun -np 1, 2 and 4) against the unsharded model in one
// process: every rank builds the same global batch, takes its rows, runs
// FsdpModel::forward_backward, and the gathered gradient shards must equal the
// gradient of model::Model on the whole batch. Covers every combination of
// recompute and keeping gathered weights, tied and untied embeddings, images,
// bf16 compute, and gradient accumulation over two micro-batches.
//
// Legend: G global batch rows, B rows on this rank, T time, V vocab,
// N_img images.
#include "trainer/fsdp.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "config/schema.h"
#include "model/chunked_loss.h"
#include "model/model.h"
#include "tests/comm/mpi_test_env.h"
#include "tests/model/model_test_util.h"

namespace muse::trainer {
namespace {

constexpr int64_t kGlobalRows = 4;  // G, divisible by 1, 2 and 4 ranks
constexpr int64_t kTime = 12;       // T
constexpr uint64_t kSeed = 7;

// The global batch: random tokens, an image in row 1 at position 2 (its
// n_patches placeholders), targets = tokens shifted by one.
struct GlobalBatch {
  at::Tensor tokens;       // (G, T)
  at::Tensor targets;      // (G, T)
  at::Tensor images;       // (N_img, S, S, Ch)
  at::Tensor image_slots;  // (N_img, 2)
};

GlobalBatch make_batch(const model::ModelConfig& cfg, int salt) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(100 + salt);
  GlobalBatch b;
  // Token ids 8.. avoid the specials, the <image> id among them.
  b.tokens = at::randint(8, cfg.vocab_size, {kGlobalRows, kTime + 1}, gen, at::kLong);
  const int64_t np = cfg.n_patches();
  b.tokens.select(0, 1).narrow(0, 2, np).fill_(cfg.image_token_id);
  b.targets = b.tokens.narrow(1, 1, kTime).contiguous();
  b.tokens = b.tokens.narrow(1, 0, kTime).contiguous();
  b.images =
      at::randint(0, 256, {1, cfg.image_size, cfg.image_size, cfg.image_channels}, gen, at::kByte);
  b.image_slots = at::tensor({1, 2}, at::kLong).reshape({1, 2});
  return b;
}

// This rank's rows [first, first + rows) of `b` as model inputs.
model::Inputs rows_of(const GlobalBatch& b, int64_t first, int64_t rows) {
  model::Inputs in{.tokens = b.tokens.narrow(0, first, rows)};
  const at::Tensor row = b.image_slots.select(1, 0);
  const at::Tensor mine = ((row >= first) & (row < first + rows)).nonzero().squeeze(1);
  in.images = b.images.index_select(0, mine);
  in.image_slots = b.image_slots.index_select(0, mine).clone();
  in.image_slots.select(1, 0).sub_(first);
  return in;
}

class FsdpTest : public ::testing::TestWithParam<std::tuple<bool, bool, bool>> {
 protected:
  void SetUp() override { comm_ = muse::testing::make_test_communicator(); }

  // Runs `micro_batches` global batches through FSDP (its loss
  // `loss_chunk` tokens at a time, or the whole logits with 0) and the
  // reference model and compares the gathered gradient and the losses.
  void check_gradients(const FsdpOptions& options, bool tied, int micro_batches, double tolerance,
                       int64_t loss_chunk = 0) {
    const model::ModelConfig cfg = model::testing::test_config(tied);
    FsdpModel fsdp(cfg, kSeed, *comm_, options);
    const model::Model reference(cfg, kSeed);
    const int64_t rows = kGlobalRows / comm_->size();
    const int64_t first = comm_->rank() * rows;

    std::vector<GlobalBatch> batches;
    int64_t total = 0;
    for (int m = 0; m < micro_batches; ++m) {
      batches.push_back(make_batch(cfg, m));
      total +=
          model::counted_targets(batches.back().targets, cfg.image_token_id).sum().item<int64_t>();
    }
    double fsdp_loss = 0, reference_loss = 0;
    for (const GlobalBatch& b : batches) {
      const at::Tensor targets = b.targets.narrow(0, first, rows);
      const at::Tensor loss =
          fsdp.forward_backward(rows_of(b, first, rows), [&](const model::HeadOutput& head) {
            return model::head_text_loss(head, targets, cfg.image_token_id, loss_chunk).sum /
                   double(total);
          });
      fsdp_loss += loss.item<double>();
      const model::TextLoss l = model::text_loss(reference.forward(rows_of(b, 0, kGlobalRows)),
                                                 b.targets, cfg.image_token_id);
      const at::Tensor ref = l.sum / double(total);
      ref.backward();
      reference_loss += ref.item<double>();
    }
    const at::Tensor loss_sum = at::tensor({fsdp_loss}, at::kDouble);
    comm_->all_reduce(loss_sum);
    EXPECT_NEAR(loss_sum.item<double>(), reference_loss, tolerance * reference_loss);

    for (size_t u = 0; u < fsdp.units().size(); ++u) {
      const FsdpUnit& unit = fsdp.units()[u];
      const at::Tensor full = at::empty({unit.shards.padded_numel});
      comm_->all_gather(full, unit.grad);
      const at::Tensor expected = reference.flat_params()[u].grad();
      const at::Tensor got = full.narrow(0, 0, unit.shards.numel);
      const double scale = expected.abs().max().item<double>();
      EXPECT_LE((got - expected).abs().max().item<double>(), tolerance * scale) << unit.layout.name;
      // Padding never receives a gradient.
      EXPECT_EQ(full.narrow(0, unit.shards.numel, unit.shards.padded_numel - unit.shards.numel)
                    .abs()
                    .sum()
                    .item<double>(),
                0.0);
    }
  }

  std::unique_ptr<comm::Communicator> comm_;
};

TEST_P(FsdpTest, GradientsMatchTheUnshardedModel) {
  const auto [checkpointing, keep, tied] = GetParam();
  if (!checkpointing && !keep) GTEST_SKIP() << "not a valid combination";
  FsdpOptions options;
  options.activation_checkpointing = checkpointing;
  options.keep_gathered = keep;
  check_gradients(options, tied, 1, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Modes, FsdpTest,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool(),
                                            ::testing::Bool()));

TEST_F(FsdpTest, AccumulatesMicroBatches) {
  check_gradients(FsdpOptions{}, true, 2, 1e-5);
}

// The loss in chunks of tokens (model/chunked_loss.h), tied and untied,
// against the unsharded model's plain loss.
TEST_F(FsdpTest, ChunkedLossGradientsMatchTheUnshardedModel) {
  for (const bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    check_gradients(FsdpOptions{}, tied, 2, 1e-5, 5);
  }
}

TEST_F(FsdpTest, AnyPrefetchDepthGivesTheSameGradients) {
  // 0: every collective waited for at once; 3: gathers run three units ahead.
  for (const int64_t prefetch : {0, 3}) {
    FsdpOptions options;
    options.prefetch = prefetch;
    check_gradients(options, true, 2, 1e-5);
  }
}

TEST_F(FsdpTest, Bf16ComputeStaysCloseToFp32) {
  FsdpOptions options;
  options.param_dtype = at::kBFloat16;
  options.reduce_dtype = at::kBFloat16;
  check_gradients(options, false, 1, 5e-2);
}

TEST_F(FsdpTest, ShardsHoldTheSeededWeights) {
  const model::ModelConfig cfg = model::testing::test_config(true);
  FsdpModel fsdp(cfg, kSeed, *comm_, FsdpOptions{});
  const model::Model reference(cfg, kSeed);
  for (size_t u = 0; u < fsdp.units().size(); ++u) {
    const FsdpUnit& unit = fsdp.units()[u];
    const int r = comm_->rank();
    EXPECT_TRUE(at::equal(unit.param_valid(r), reference.flat_params()[u].detach().narrow(
                                                   0, unit.shards.begin(r), unit.shards.valid(r))));
  }
}

TEST_F(FsdpTest, ForwardAndGatherMatchTheUnshardedModel) {
  const model::ModelConfig cfg = model::testing::test_config(false);
  FsdpModel fsdp(cfg, kSeed, *comm_, FsdpOptions{});
  const model::Model reference(cfg, kSeed);
  const GlobalBatch b = make_batch(cfg, 0);
  at::NoGradGuard no_grad;
  const at::Tensor expected = reference.forward(rows_of(b, 0, kGlobalRows));
  const at::Tensor got = fsdp.forward(rows_of(b, 0, kGlobalRows));
  EXPECT_TRUE(at::allclose(got, expected, 1e-5, 1e-5));

  model::Model copy(cfg, kSeed + 1);
  fsdp.gather_into(copy);
  for (size_t u = 0; u < fsdp.units().size(); ++u)
    EXPECT_TRUE(at::equal(copy.flat_params()[u], reference.flat_params()[u]));
}

TEST_F(FsdpTest, NegativePrefetchIsRejected) {
  FsdpOptions options;
  options.prefetch = -1;
  EXPECT_THROW(FsdpModel(model::testing::test_config(true), kSeed, *comm_, options),
               config::ConfigError);
}

TEST_F(FsdpTest, RecomputeWithoutKeptWeightsIsRejected) {
  FsdpOptions options;
  options.activation_checkpointing = false;
  options.keep_gathered = false;
  EXPECT_THROW(FsdpModel(model::testing::test_config(true), kSeed, *comm_, options),
               config::ConfigError);
}

}  // namespace
}  // namespace muse::trainer
