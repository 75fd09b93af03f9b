// TrainingState and checkpoints on one rank: resume reads the weights and
// AdamW moments straight into the live shards, and leaves them bitwise as
// saved, padding included; a damaged checkpoint is one CheckpointError that
// names the rank file.
//
// Legend: S shard numel.
#include "trainer/training_state.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "comm/solo_communicator.h"
#include "tests/checkpoints/error_of.h"
#include "tests/temp_dir.h"

namespace muse::trainer {
namespace {

namespace fs = std::filesystem;
using checkpoints::testing::error_of;
using ::testing::HasSubstr;

// A one-layer model whose head unit (the final norm, tied embeddings) holds
// dim = 40 elements: its shard has padding even on one rank.
model::ModelConfig padded_config() {
  model::ModelConfig cfg;
  cfg.preset = "custom";
  cfg.dim = 40;
  cfg.n_layers = 1;
  cfg.n_heads = 4;
  cfg.n_kv_heads = 2;
  cfg.ffn_hidden = 96;
  return cfg;
}

// The whole (S) moments of every unit, padding included, as views of the
// live state: add_to_checkpoint hands out their first valid elements, and the
// shard starts there.
std::vector<AdamWState> moments_of(const TrainingState& state) {
  checkpoints::SaveRequest request;
  state.add_to_checkpoint(request);  // per unit: param, exp_avg, exp_avg_sq
  std::vector<AdamWState> out;
  for (size_t i = 0; i < request.tensors.size(); i += 3) {
    const auto whole = [&state, i](const at::Tensor& view) {
      const int64_t s = state.model().units()[i / 3].shards.shard_numel;
      return at::from_blob(view.data_ptr(), {s}, view.options());
    };
    out.push_back({.exp_avg = whole(request.tensors[i + 1].data),
                   .exp_avg_sq = whole(request.tensors[i + 2].data),
                   .step = 0});
  }
  return out;
}

class TrainingStateCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One AdamW step on random gradients: moments that are not zeros.
    for (FsdpUnit& unit : saved_.model().units())
      unit.grad_valid(0).normal_(0, 1e-3);
    saved_.step(1.0, 1e-3, 1, 1);
    checkpoints::SaveRequest request{.step = 1,
                                     .model = cfg_,
                                     .config_yaml = "",
                                     .train_state = saved_.counters().dump(),
                                     .rank_state = cpu_rng_state(),
                                     .tensors = {}};
    saved_.add_to_checkpoint(request);
    dir_ = checkpoints::save_checkpoint(tmp_.path() / "run", request, comm_, 1);
  }

  void resume(TrainingState& state) const {
    const checkpoints::Checkpoint ckpt(dir_);
    state.resume(ckpt, nlohmann::json::parse(ckpt.train_state()));
  }

  // Whole (S) shards, padding included: param, exp_avg, exp_avg_sq per unit.
  static std::vector<at::Tensor> live_shards(const TrainingState& state,
                                             const std::vector<AdamWState>& moments) {
    std::vector<at::Tensor> out;
    for (size_t u = 0; u < moments.size(); ++u) {
      out.push_back(state.model().units()[u].param);
      out.push_back(moments[u].exp_avg);
      out.push_back(moments[u].exp_avg_sq);
    }
    return out;
  }

  fs::path rank_file() const { return dir_ / "rank_00000.bin"; }

  model::ModelConfig cfg_ = padded_config();
  comm::SoloCommunicator comm_;
  TrainingState saved_{cfg_, 1, comm_, {}, {}};
  muse::testing::TempDir tmp_;
  fs::path dir_;
};

TEST_F(TrainingStateCheckpointTest, ResumeRestoresEveryShardBitForBitPaddingIncluded) {
  bool has_padding = false;
  for (const FsdpUnit& unit : saved_.model().units())
    has_padding |= unit.shards.valid(0) < unit.shards.shard_numel;
  ASSERT_TRUE(has_padding) << "the config must give a unit padding";

  TrainingState resumed(cfg_, 2, comm_, {}, {});  // other weights, zero moments
  const std::vector<AdamWState> moments = moments_of(resumed);
  // Values in the padding that resume must reset to the saved zeros.
  for (const at::Tensor& shard : live_shards(resumed, moments))
    shard.fill_(7.0f);
  resume(resumed);

  const std::vector<at::Tensor> want = live_shards(saved_, moments_of(saved_));
  const std::vector<at::Tensor> got = live_shards(resumed, moments);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(at::equal(got[i], want[i])) << "shard " << i;
  EXPECT_EQ(resumed.counters(), saved_.counters());
  EXPECT_EQ(resumed.optimizer_steps(), 1);
}

TEST_F(TrainingStateCheckpointTest, LoadWeightsReadsTheWeightsOnly) {
  TrainingState loaded(cfg_, 2, comm_, {}, {});
  for (FsdpUnit& unit : loaded.model().units())
    unit.param.fill_(7.0f);
  loaded.load_weights(checkpoints::Checkpoint(dir_));
  for (size_t u = 0; u < saved_.model().units().size(); ++u)
    EXPECT_TRUE(at::equal(loaded.model().units()[u].param, saved_.model().units()[u].param));
  for (const AdamWState& m : moments_of(loaded))
    EXPECT_EQ(m.exp_avg.count_nonzero().item<int64_t>(), 0);
  EXPECT_EQ(loaded.optimizer_steps(), 0);
}

TEST_F(TrainingStateCheckpointTest, CorruptRankFileFailsTheResumeNamingIt) {
  {
    // One bit flipped in the middle of the file.
    std::fstream f(rank_file(), std::ios::binary | std::ios::in | std::ios::out);
    const auto middle = static_cast<std::streamoff>(fs::file_size(rank_file()) / 2);
    f.seekg(middle);
    const char byte = static_cast<char>(f.get() ^ 0x10);
    f.seekp(middle);
    f.put(byte);
  }
  TrainingState resumed(cfg_, 2, comm_, {}, {});
  EXPECT_THAT(error_of([&] { resume(resumed); }),
              HasSubstr(rank_file().string() + ": checksum mismatch in tensor '"));
}

TEST_F(TrainingStateCheckpointTest, RankFileTruncatedDuringTheResumeFailsNamingIt) {
  TrainingState resumed(cfg_, 2, comm_, {}, {});
  const checkpoints::Checkpoint ckpt(dir_);  // whole when opened
  fs::resize_file(rank_file(), fs::file_size(rank_file()) / 2);
  EXPECT_THAT(error_of([&] { resumed.resume(ckpt, nlohmann::json::parse(ckpt.train_state())); }),
              HasSubstr(rank_file().string() + ": short read: wanted "));
}

}  // namespace
}  // namespace muse::trainer
