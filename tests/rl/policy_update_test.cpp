// The RL update on N ranks (mpirun -np 1 and 2) against the same update in
// one process: every rank builds the same rollout batch, the distributed run
// gives each rank an uneven share of it (so ranks run different numbers of
// micro-batches), and the gathered weights after the update must equal those
// of a single-process update over the whole batch. Covers each loss
// aggregation, the KL penalty to a reference, and off-policy epochs (old
// log-probabilities recomputed before the first step).
#include "rl/policy_update.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "comm/solo_communicator.h"
#include "model/model.h"
#include "tests/comm/mpi_test_env.h"
#include "tests/model/model_test_util.h"

namespace muse::rl {
namespace {

constexpr uint64_t kSeed = 11;
constexpr int kSamples = 6;

// Six responses of different lengths to three prompts; the second prompt
// holds an image.
std::vector<Sample> rollout_batch(const model::ModelConfig& cfg) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  std::vector<Sample> out;
  for (int i = 0; i < kSamples; ++i) {
    Sample s;
    const at::Tensor prompt = at::randint(8, cfg.vocab_size, {3 + i % 3}, gen, at::kLong);
    s.prompt.assign(prompt.data_ptr<int64_t>(), prompt.data_ptr<int64_t>() + prompt.numel());
    if (i / 2 == 1) {
      s.prompt.insert(s.prompt.begin() + 1, cfg.n_patches(), cfg.image_token_id);
      s.images = at::randint(0, 256, {1, cfg.image_size, cfg.image_size, cfg.image_channels}, gen,
                             at::kByte);
    }
    const at::Tensor response = at::randint(8, cfg.vocab_size, {2 + (i * 5) % 7}, gen, at::kLong);
    s.response.assign(response.data_ptr<int64_t>(),
                      response.data_ptr<int64_t>() + response.numel());
    s.advantage = (i % 3 == 0 ? 1.0 : -0.5) * (1 + 0.1 * i);
    out.push_back(std::move(s));
  }
  return out;
}

trainer::OptimConfig optim() {
  trainer::OptimConfig o;
  o.lr = 1e-2;
  o.weight_decay = 0;
  // Adam divides by sqrt(v) + eps: with a tiny eps, rounding in near-zero
  // gradients becomes whole-step differences; a larger eps keeps the
  // comparison about the gradients.
  o.eps = 1e-3;
  return o;
}

// The weights after one policy_update of `samples` on `comm`; its
// statistics into `stats_out` when given.
model::Model updated(comm::Communicator& comm, const std::vector<Sample>& samples,
                     const UpdateOptions& options, UpdateStats* stats_out = nullptr) {
  const model::ModelConfig cfg = model::testing::test_config(true);
  trainer::TrainingState state(cfg, kSeed, comm, {}, optim());
  std::unique_ptr<trainer::FsdpModel> reference;
  if (options.loss.kl_coef > 0)
    reference = std::make_unique<trainer::FsdpModel>(cfg, kSeed + 1, comm, trainer::FsdpOptions{});
  const UpdateStats stats = policy_update(state, reference.get(), samples, options, 1e-2, 1, comm);
  EXPECT_EQ(stats.optimizer_steps, options.mini_batches * options.epochs);
  EXPECT_EQ(stats.skipped_steps, 0);
  if (stats_out != nullptr) *stats_out = stats;
  model::Model out(cfg, kSeed);
  state.model().gather_into(out);
  return out;
}

// The update the tests take: DAPO-style clipping, k3 KL, micro-batches of 2.
UpdateOptions update_options(LossAgg agg, double kl_coef, int epochs) {
  UpdateOptions options;
  options.loss = {.clip_low = 0.2,
                  .clip_high = 0.28,
                  .clip_dual = 3,
                  .kl_coef = kl_coef,
                  .kl = KlEstimator::kK3,
                  .agg = agg};
  options.epochs = epochs;
  options.micro_batch = 2;
  options.loss_constant = 8;
  return options;
}

class PolicyUpdateTest : public ::testing::TestWithParam<std::tuple<LossAgg, bool, int>> {};

TEST_P(PolicyUpdateTest, RanksTakeTheSingleProcessStep) {
  const auto [agg, kl, epochs] = GetParam();
  const model::ModelConfig cfg = model::testing::test_config(true);
  const std::vector<Sample> all = rollout_batch(cfg);
  const UpdateOptions options = update_options(agg, kl ? 0.1 : 0.0, epochs);

  comm::SoloCommunicator solo;
  const model::Model expected = updated(solo, all, options);

  // Uneven shares: rank 0 the first four responses, the others split the rest.
  const auto comm = muse::testing::make_test_communicator();
  const int rank = comm->rank(), size = comm->size();
  std::vector<Sample> mine;
  for (int i = 0; i < kSamples; ++i) {
    const int owner = size == 1 ? 0 : (i < 4 ? 0 : 1 + (i - 4) % (size - 1));
    if (owner == rank) mine.push_back(all[i]);
  }
  const model::Model got = updated(*comm, mine, options);

  const model::Model initial(cfg, kSeed);
  for (size_t u = 0; u < expected.flat_params().size(); ++u) {
    const at::Tensor& want = expected.flat_params()[u];
    // The step moved the weights, and the distributed step moved them alike.
    EXPECT_GT((want - initial.flat_params()[u]).abs().max().item<double>(), 1e-4) << "unit " << u;
    EXPECT_TRUE(at::allclose(got.flat_params()[u], want, 1e-5, 1e-6))
        << "unit " << u << ": max difference "
        << (got.flat_params()[u] - want).abs().max().item<double>();
  }
}

INSTANTIATE_TEST_SUITE_P(Aggregations, PolicyUpdateTest,
                         ::testing::Values(std::make_tuple(LossAgg::kTokenMean, false, 1),
                                           std::make_tuple(LossAgg::kSeqMeanTokenMean, false, 1),
                                           std::make_tuple(LossAgg::kSeqSumConstant, false, 1),
                                           std::make_tuple(LossAgg::kTokenMean, true, 1),
                                           std::make_tuple(LossAgg::kSeqMeanTokenMean, true, 2)));

// trainer.loss_chunk_tokens: the log-probabilities of the policy, of pi_old
// (two epochs) and of the reference (KL), in chunks of tokens that do not
// divide the responses, take the step the whole logits take, with the same
// statistics (the entropy among them).
TEST(PolicyUpdate, ChunkedLogprobsTakeTheStepOfTheWholeLogits) {
  const model::ModelConfig cfg = model::testing::test_config(true);
  const std::vector<Sample> all = rollout_batch(cfg);
  UpdateOptions options = update_options(LossAgg::kTokenMean, 0.1, 2);
  comm::SoloCommunicator solo;
  UpdateStats plain_stats, chunked_stats;
  const model::Model plain = updated(solo, all, options, &plain_stats);
  options.loss_chunk_tokens = 3;
  const model::Model chunked = updated(solo, all, options, &chunked_stats);
  for (size_t u = 0; u < plain.flat_params().size(); ++u) {
    const at::Tensor& want = plain.flat_params()[u];
    EXPECT_TRUE(at::allclose(chunked.flat_params()[u], want, 1e-5, 1e-6))
        << "unit " << u << ": max difference "
        << (chunked.flat_params()[u] - want).abs().max().item<double>();
  }
  EXPECT_NEAR(chunked_stats.loss, plain_stats.loss, 1e-6 * std::abs(plain_stats.loss) + 1e-9);
  EXPECT_NEAR(chunked_stats.entropy_mean, plain_stats.entropy_mean,
              1e-6 * plain_stats.entropy_mean);
  EXPECT_NEAR(chunked_stats.kl_mean, plain_stats.kl_mean, 1e-5 * plain_stats.kl_mean + 1e-9);
  EXPECT_NEAR(chunked_stats.ratio_mean, plain_stats.ratio_mean, 1e-6);
  EXPECT_EQ(chunked_stats.tokens, plain_stats.tokens);
}

}  // namespace
}  // namespace muse::rl
