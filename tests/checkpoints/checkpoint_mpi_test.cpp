// Checkpoints saved on N ranks (mpirun -np 2 and 4): every rank holds the
// slices the trainer's padded sharding gives it (the last ranks fewer
// elements, some none), and every rank reads back every tensor whole and in
// the ranges any other world size would ask for, one at a time and in one
// batch. Failures on one rank are errors on all.
//
// Legend: N world size, n tensor numel, S shard numel.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "checkpoints/checkpoint.h"
#include "tests/checkpoints/error_of.h"
#include "tests/comm/mpi_test_env.h"

namespace muse::checkpoints {
namespace {

namespace fs = std::filesystem;
using muse::checkpoints::testing::error_of;
using ::testing::HasSubstr;

// Sizes below, around and above the shard alignment; "one" lives on rank 0.
struct Spec {
  std::string name;
  int64_t numel;
};
const std::vector<Spec> kSpecs = {{"embed/param", 1000},
                                  {"one/param", 5},
                                  {"block.0/exp_avg", 3001},
                                  {"none/param", 0},
                                  {"odd/param", 37}};

// The trainer's split (trainer/shard_plan.h): S is the smallest multiple of
// 16 with N * S >= n; rank r holds [min(r*S, n), min((r+1)*S, n)).
std::pair<int64_t, int64_t> shard_range(int64_t n, int world, int rank) {
  const int64_t s = std::max<int64_t>(1, (n + 16 * world - 1) / (16 * world)) * 16;
  return {std::min(rank * s, n), std::min((rank + 1) * s, n)};
}

at::Tensor full_tensor(size_t index) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(100 + index);
  return at::randn({kSpecs[index].numel}, gen, at::kFloat);  // (n)
}

class CheckpointMpiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    comm_ = muse::testing::make_test_communicator();
    rank_ = comm_->rank();
    world_ = comm_->size();
    // Rank 0 makes the directory; the others learn its name.
    at::Tensor name = at::zeros({512}, at::kByte);
    if (rank_ == 0) {
      std::string pattern = (fs::temp_directory_path() / "muse-ckpt-XXXXXX").string();
      ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
      std::copy(pattern.begin(), pattern.end(), name.data_ptr<uint8_t>());
    }
    comm_->broadcast(name, 0);
    run_ = fs::path(reinterpret_cast<const char*>(name.data_ptr<uint8_t>())) / "run";
    for (size_t i = 0; i < kSpecs.size(); ++i)
      full_.push_back(full_tensor(i));
  }

  void TearDown() override {
    comm_->barrier();  // nobody still reads
    std::error_code ec;
    if (rank_ == 0) fs::remove_all(run_.parent_path(), ec);
  }

  SaveRequest request(int64_t step) const {
    SaveRequest r;
    r.step = step;
    r.config_yaml = "seed: 3\n";
    r.train_state = R"({"tokens_seen": 12345})";
    r.rank_state = "state of rank " + std::to_string(rank_);
    for (size_t i = 0; i < kSpecs.size(); ++i) {
      const auto [begin, end] = shard_range(kSpecs[i].numel, world_, rank_);
      r.tensors.push_back(
          {kSpecs[i].name, kSpecs[i].numel, begin, full_[i].narrow(0, begin, end - begin).clone()});
    }
    return r;
  }

  std::unique_ptr<comm::Communicator> comm_;
  int rank_ = 0;
  int world_ = 1;
  fs::path run_;
  std::vector<at::Tensor> full_;  // every tensor, unsharded
};

TEST_F(CheckpointMpiTest, EveryRankReadsBackEveryTensorOnAnyWorldSize) {
  const fs::path dir = save_checkpoint(run_, request(12), *comm_, 2);
  const Checkpoint c(resolve_checkpoint(run_));
  EXPECT_EQ(c.dir(), dir);
  EXPECT_EQ(c.world_size(), world_);
  EXPECT_EQ(c.step(), 12);
  EXPECT_EQ(c.train_state(), R"({"tokens_seen":12345})");
  for (int r = 0; r < world_; ++r)
    EXPECT_EQ(c.rank_state(r), "state of rank " + std::to_string(r));

  for (size_t i = 0; i < kSpecs.size(); ++i) {
    const std::string& name = kSpecs[i].name;
    const int64_t n = kSpecs[i].numel;
    ASSERT_EQ(c.global_numel(name), n);
    const at::Tensor whole = at::full({n}, -1.0f);
    c.read(name, 0, whole);
    EXPECT_TRUE(at::equal(whole, full_[i])) << name;
    // What rank d of a world of m ranks loads when resuming there.
    for (int m = 1; m <= 5; ++m) {
      for (int d = 0; d < m; ++d) {
        const auto [begin, end] = shard_range(n, m, d);
        const at::Tensor part = at::full({end - begin}, -1.0f);
        c.read(name, begin, part);
        EXPECT_TRUE(at::equal(part, full_[i].narrow(0, begin, end - begin)))
            << name << " rank " << d << " of " << m;
      }
    }
    // Ranges that start and end inside different ranks' slices.
    auto gen = at::make_generator<at::CPUGeneratorImpl>(7 + i);
    for (int k = 0; k < 20 && n > 0; ++k) {
      const int64_t a = at::randint(n, {1}, gen).item<int64_t>();
      const int64_t b = at::randint(n + 1, {1}, gen).item<int64_t>();
      const int64_t begin = std::min(a, b);
      const at::Tensor part = at::full({std::max(a, b) - begin}, -1.0f);
      c.read(name, begin, part);
      EXPECT_TRUE(at::equal(part, full_[i].narrow(0, begin, part.numel())))
          << name << " [" << begin << ", " << begin + part.numel() << ")";
    }
  }
}

TEST_F(CheckpointMpiTest, OneBatchReadsANewWorldSizesShardOfEveryTensor) {
  save_checkpoint(run_, request(13), *comm_, 2);
  const Checkpoint c(resolve_checkpoint(run_));
  // What rank d of a world of m ranks reads on resume, in one batch (last
  // tensor first, so the batch has to put the reads in file order).
  for (int m = 1; m <= 5; ++m) {
    for (int d = 0; d < m; ++d) {
      std::vector<ReadRequest> reads;
      for (size_t i = kSpecs.size(); i-- > 0;) {
        const auto [begin, end] = shard_range(kSpecs[i].numel, m, d);
        reads.push_back(
            {.name = kSpecs[i].name, .begin = begin, .out = at::full({end - begin}, -1.0f)});
      }
      c.read(reads);
      for (size_t k = 0; k < reads.size(); ++k) {
        const size_t i = kSpecs.size() - 1 - k;
        EXPECT_TRUE(
            at::equal(reads[k].out, full_[i].narrow(0, reads[k].begin, reads[k].out.numel())))
            << kSpecs[i].name << " rank " << d << " of " << m;
      }
    }
  }
}

TEST_F(CheckpointMpiTest, OneRankFailingFailsEveryRankAndPublishesNothing) {
  SaveRequest r = request(3);
  const int bad = world_ - 1;
  if (rank_ == bad) r.tensors[0].data = r.tensors[0].data.to(at::kDouble);
  const std::string error = error_of([&] { save_checkpoint(run_, r, *comm_, 2); });
  const std::string expected = (run_ / "checkpoints" / "step_00000003").string() +
                               ": tensor 'embed/param': data is Double, expected Float (fp32)";
  EXPECT_EQ(error, rank_ == bad ? expected : expected + " (on rank " + std::to_string(bad) + ")");
  EXPECT_FALSE(fs::exists(run_ / "checkpoints" / "step_00000003"));
  EXPECT_FALSE(fs::exists(run_ / "checkpoints" / "step_00000003.tmp"));
  EXPECT_FALSE(fs::exists(run_ / "LATEST"));
}

TEST_F(CheckpointMpiTest, RanksDisagreeingAboutTheTensorsFail) {
  if (world_ < 2) GTEST_SKIP() << "needs two ranks";
  SaveRequest r = request(4);
  if (rank_ == 1) r.tensors[2].global_numel += 1;
  EXPECT_THAT(error_of([&] { save_checkpoint(run_, r, *comm_, 2); }),
              HasSubstr("step_00000004: ranks disagree about the tensors to save: rank 1's names "
                        "or global sizes differ from rank 0's; every rank must pass the same"));
  r = request(4);
  if (rank_ == 1) r.tensors.pop_back();
  EXPECT_THAT(error_of([&] { save_checkpoint(run_, r, *comm_, 2); }),
              HasSubstr("rank 0 lists 5, rank 1 lists 4"));
  EXPECT_FALSE(fs::exists(run_ / "checkpoints" / "step_00000004.tmp"));
}

TEST_F(CheckpointMpiTest, SlicesThatDoNotCoverATensorFail) {
  if (world_ < 2) GTEST_SKIP() << "needs two ranks";
  SaveRequest r = request(5);
  if (rank_ == 1) r.tensors[0].data = r.tensors[0].data.narrow(0, 0, 0);  // drops its slice
  const auto [begin, end] = shard_range(1000, world_, 1);
  EXPECT_EQ(error_of([&] { save_checkpoint(run_, r, *comm_, 2); }),
            (run_ / "checkpoints" / "step_00000005").string() +
                ": tensor 'embed/param': the ranks' slices do not tile its 1000 elements: "
                "elements [" +
                std::to_string(begin) + ", " + std::to_string(end) + ") are held by no rank");
  EXPECT_FALSE(fs::exists(run_ / "checkpoints" / "step_00000005"));
}

TEST_F(CheckpointMpiTest, KeepsTheNewestAndEveryRankResolvesLatest) {
  for (int64_t step = 1; step <= 3; ++step)
    save_checkpoint(run_, request(step), *comm_, 2);
  EXPECT_FALSE(fs::exists(run_ / "checkpoints" / "step_00000001"));
  EXPECT_TRUE(fs::exists(run_ / "checkpoints" / "step_00000002"));
  EXPECT_EQ(resolve_checkpoint(run_), run_ / "checkpoints" / "step_00000003");
}

}  // namespace
}  // namespace muse::checkpoints
