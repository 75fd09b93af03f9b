// Checkpoints on one rank: round trip, reading ranges, the manifest, LATEST
// and pruning, and every kind of damage a reader must refuse. The multi-rank
// save and resharded reads are in checkpoint_mpi_test.cpp.
#include "checkpoints/checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "comm/solo_communicator.h"
#include "config/crc32c.h"
#include "config/schema.h"
#include "model/layout.h"
#include "tests/checkpoints/error_of.h"
#include "tests/temp_dir.h"

namespace muse::checkpoints {
namespace {

namespace fs = std::filesystem;
using muse::checkpoints::testing::error_of;
using nlohmann::json;
using ::testing::HasSubstr;

at::Tensor values(int64_t n, int seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randn({n}, gen, at::kFloat);  // (n)
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// The entries of a directory, by name.
std::set<std::string> listing(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir))
    names.insert(e.path().filename().string());
  return names;
}

class CheckpointTest : public ::testing::Test {
 protected:
  // One rank holds every tensor whole; the rank state has a NUL inside.
  SaveRequest request(int64_t step, int seed = 1) const {
    SaveRequest r;
    r.step = step;
    r.config_yaml = "stage: pretrain\nseed: 1\n";
    r.train_state = R"({"step": )" + std::to_string(step) + R"(, "loader": {"cursor": 17}})";
    r.rank_state = std::string("rng\0state", 9);
    r.tensors = {{"embed/param", 1000, 0, values(1000, seed)},
                 {"embed/exp_avg", 1000, 0, values(1000, seed + 1)},
                 {"empty/param", 0, 0, at::empty({0}, at::kFloat)},
                 {"tiny/param", 3, 0, values(3, seed + 2)}};
    return r;
  }

  fs::path save(const SaveRequest& r, int64_t keep = 3) {
    return save_checkpoint(run_, r, comm_, keep);
  }

  fs::path step_dir(int64_t step) const {
    char name[32];
    std::snprintf(name, sizeof name, "step_%08lld", static_cast<long long>(step));
    return run_ / "checkpoints" / name;
  }

  muse::testing::TempDir tmp_;
  fs::path run_ = tmp_.path() / "run";
  comm::SoloCommunicator comm_;
};

TEST_F(CheckpointTest, RoundTrip) {
  const SaveRequest r = request(5);
  const fs::path dir = save(r);
  EXPECT_EQ(dir, step_dir(5));
  EXPECT_EQ(read_text(run_ / "LATEST"), "step_00000005\n");
  EXPECT_EQ(listing(run_ / "checkpoints"), std::set<std::string>{"step_00000005"});
  EXPECT_EQ(listing(dir),
            (std::set<std::string>{"config.yaml", "manifest.json", "rank_00000.bin"}));

  const Checkpoint c(dir);
  EXPECT_EQ(c.dir(), dir);
  EXPECT_EQ(c.step(), 5);
  EXPECT_EQ(c.world_size(), 1);
  EXPECT_EQ(c.model().dim, r.model.dim);
  EXPECT_NO_THROW(c.check_model(r.model));
  EXPECT_EQ(json::parse(c.train_state()), json::parse(r.train_state));
  EXPECT_EQ(c.config_yaml(), r.config_yaml);
  EXPECT_EQ(c.rank_state(0), r.rank_state);
  EXPECT_EQ(c.tensor_names(), (std::vector<std::string>{"embed/param", "embed/exp_avg",
                                                        "empty/param", "tiny/param"}));
  for (const ShardedTensor& t : r.tensors) {
    EXPECT_EQ(c.global_numel(t.name), t.global_numel);
    const at::Tensor out = at::full({t.global_numel}, -1.0f);
    c.read(t.name, 0, out);
    EXPECT_TRUE(at::equal(out, t.data)) << t.name;
  }
}

TEST_F(CheckpointTest, ReadsAnyRangeIntoAnyContiguousShape) {
  const SaveRequest r = request(1);
  const Checkpoint c(save(r));
  const at::Tensor& full = r.tensors[0].data;
  for (const auto& [begin, n] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 1}, {999, 1}, {100, 500}, {0, 1000}, {1000, 0}, {37, 0}}) {
    const at::Tensor out = at::empty({n}, at::kFloat);
    c.read("embed/param", begin, out);
    EXPECT_TRUE(at::equal(out, full.narrow(0, begin, n))) << begin << " + " << n;
  }
  const at::Tensor matrix = at::empty({10, 10}, at::kFloat);
  c.read("embed/param", 50, matrix);
  EXPECT_TRUE(at::equal(matrix.view(-1), full.narrow(0, 50, 100)));
}

TEST_F(CheckpointTest, ReadNamesTheTensorOfABadRequest) {
  const fs::path dir = save(request(1));
  const Checkpoint c(dir);
  const std::string manifest = (dir / "manifest.json").string();
  EXPECT_EQ(error_of([&] { c.read("nope", 0, at::empty({1})); }),
            manifest + ": no tensor 'nope' in this checkpoint");
  EXPECT_EQ(error_of([&] { c.read("tiny/param", 2, at::empty({2})); }),
            manifest + ": tensor 'tiny/param' has 3 elements; cannot read [2, 4)");
  EXPECT_THAT(error_of([&] { c.read("tiny/param", -1, at::empty({1})); }),
              HasSubstr("cannot read [-1, 0)"));
  EXPECT_THAT(error_of([&] { c.read("tiny/param", 0, at::empty({3}, at::kDouble)); }),
              HasSubstr("tensor 'tiny/param': the output must be a contiguous Float"));
  EXPECT_THAT(error_of([&] { c.global_numel("nope"); }), HasSubstr("no tensor 'nope'"));
  EXPECT_THAT(error_of([&] { c.rank_state(1); }),
              HasSubstr("no rank state for rank 1: the checkpoint was saved by 1 ranks"));
}

TEST_F(CheckpointTest, BatchReadFillsEveryRequestAsSingleReadsDo) {
  const SaveRequest r = request(1);
  const Checkpoint c(save(r));
  const at::Tensor& embed = r.tensors[0].data;
  const at::Tensor& avg = r.tensors[1].data;
  // Out of file order; a segment read whole straight into its output and
  // also wanted in part by another request; a segment only wanted in parts
  // (through a staging buffer); empty ranges; a 2-d output.
  const std::vector<ReadRequest> reads = {
      {.name = "tiny/param", .begin = 0, .out = at::full({3}, -1.0f)},
      {.name = "embed/exp_avg", .begin = 10, .out = at::full({990}, -1.0f)},
      {.name = "embed/param", .begin = 0, .out = at::full({1000}, -1.0f)},
      {.name = "embed/param", .begin = 100, .out = at::full({10, 10}, -1.0f)},
      {.name = "embed/exp_avg", .begin = 0, .out = at::full({5}, -1.0f)},
      {.name = "empty/param", .begin = 0, .out = at::empty({0})},
      {.name = "embed/param", .begin = 1000, .out = at::empty({0})}};
  c.read(reads);
  EXPECT_TRUE(at::equal(reads[0].out, r.tensors[3].data));
  EXPECT_TRUE(at::equal(reads[1].out, avg.narrow(0, 10, 990)));
  EXPECT_TRUE(at::equal(reads[2].out, embed));
  EXPECT_TRUE(at::equal(reads[3].out.view(-1), embed.narrow(0, 100, 100)));
  EXPECT_TRUE(at::equal(reads[4].out, avg.narrow(0, 0, 5)));
  c.read(std::vector<ReadRequest>{});  // nothing to do
}

TEST_F(CheckpointTest, BatchReadChecksEveryRequestBeforeReadingAny) {
  const fs::path dir = save(request(1));
  const Checkpoint c(dir);
  const at::Tensor first = at::full({1000}, -1.0f);
  const auto read_with = [&](const ReadRequest& bad) {
    return error_of([&] { c.read({{.name = "embed/param", .begin = 0, .out = first}, bad}); });
  };
  const std::string manifest = (dir / "manifest.json").string();
  EXPECT_EQ(read_with({.name = "tiny/param", .begin = 2, .out = at::empty({2})}),
            manifest + ": tensor 'tiny/param' has 3 elements; cannot read [2, 4)");
  EXPECT_EQ(read_with({.name = "nope", .begin = 0, .out = at::empty({1})}),
            manifest + ": no tensor 'nope' in this checkpoint");
  EXPECT_THAT(read_with({.name = "tiny/param", .begin = 0, .out = at::Tensor()}),
              HasSubstr("tensor 'tiny/param': the output must be a contiguous Float"));
  EXPECT_THAT(read_with({.name = "embed/param", .begin = 0, .out = at::empty({4, 4}).t()}),
              HasSubstr("tensor 'embed/param': the output must be a contiguous Float"));
  EXPECT_TRUE(at::equal(first, at::full({1000}, -1.0f)));  // the good request read nothing
}

TEST_F(CheckpointTest, ReadsIntoCudaTensors) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const SaveRequest r = request(1);
  const Checkpoint c(save(r));
  const at::Tensor out = at::empty({500}, at::TensorOptions(at::kFloat).device(at::kCUDA));
  c.read("embed/param", 250, out);
  EXPECT_TRUE(at::equal(out.cpu(), r.tensors[0].data.narrow(0, 250, 500)));
}

TEST_F(CheckpointTest, ManifestHoldsModelConfigUnitLayoutAndShards) {
  SaveRequest r = request(7);
  r.model.n_layers = 2;
  const fs::path dir = save(r);
  const json m = json::parse(read_text(dir / "manifest.json"));
  EXPECT_EQ(m["format"], "muse-checkpoint");
  EXPECT_EQ(m["version"], 1);
  EXPECT_EQ(m["step"], 7);
  EXPECT_EQ(m["world_size"], 1);
  EXPECT_EQ(m["train_state"]["loader"]["cursor"], 17);
  // Every field of the config, and the same values after reading back.
  const auto fields = config::describe_fields(r.model);
  EXPECT_EQ(m["model"].size(), fields.size());
  for (const config::FieldInfo& f : fields)
    EXPECT_TRUE(m["model"].contains(f.path)) << f.path;
  const auto read_back = config::describe_fields(Checkpoint(dir).model());
  for (size_t i = 0; i < fields.size(); ++i)
    EXPECT_EQ(read_back[i].value, fields[i].value) << fields[i].path;
  EXPECT_EQ(m["model"]["n_layers"], 2);
  EXPECT_EQ(m["model"]["tie_embeddings"], true);
  EXPECT_EQ(m["model"]["rope_theta"], 10000.0);

  const auto layout = model::model_layout(r.model);
  ASSERT_EQ(m["units"].size(), layout.size());
  for (size_t u = 0; u < layout.size(); ++u) {
    const json& unit = m["units"][u];
    EXPECT_EQ(unit["name"], layout[u].name);
    EXPECT_EQ(unit["numel"], layout[u].numel);
    ASSERT_EQ(unit["params"].size(), layout[u].params.size());
    for (size_t p = 0; p < layout[u].params.size(); ++p) {
      EXPECT_EQ(unit["params"][p]["name"], layout[u].params[p].name);
      EXPECT_EQ(unit["params"][p]["shape"].get<std::vector<int64_t>>(), layout[u].params[p].shape);
      EXPECT_EQ(unit["params"][p]["offset"], layout[u].params[p].offset);
      EXPECT_EQ(unit["params"][p]["numel"], layout[u].params[p].numel);
    }
  }
  EXPECT_EQ(m["units"][0]["params"][0]["name"], "model.embed_tokens.weight");

  const json& shard = m["tensors"][1]["shards"][0];
  EXPECT_EQ(m["tensors"][1]["name"], "embed/exp_avg");
  EXPECT_EQ(shard["rank"], 0);
  EXPECT_EQ(shard["begin"], 0);
  EXPECT_EQ(shard["numel"], 1000);
  EXPECT_EQ(shard["offset"], 4000);
  EXPECT_EQ(shard["crc32c"], config::crc32c(r.tensors[1].data.data_ptr(), 4000));
  EXPECT_TRUE(m["tensors"][2]["shards"].empty());  // no elements, no shards
  EXPECT_EQ(m["ranks"][0]["file"], "rank_00000.bin");
  EXPECT_EQ(m["ranks"][0]["size"], fs::file_size(dir / "rank_00000.bin"));
  EXPECT_EQ(m["ranks"][0]["state"]["size"], 9);
}

TEST_F(CheckpointTest, ResolvesRunDirectoriesThroughLatest) {
  EXPECT_EQ(latest_checkpoint(run_), fs::path());  // a fresh run
  EXPECT_EQ(error_of([&] { resolve_checkpoint(run_); }), run_.string() + ": no such directory");
  fs::create_directories(run_);
  EXPECT_THAT(error_of([&] { resolve_checkpoint(run_); }),
              HasSubstr(": neither a checkpoint directory (no manifest.json) nor a run directory"));

  save(request(1));
  save(request(2));
  EXPECT_EQ(resolve_checkpoint(run_), step_dir(2));
  EXPECT_EQ(latest_checkpoint(run_), step_dir(2));
  EXPECT_EQ(resolve_checkpoint(step_dir(1)), step_dir(1));

  write_text(run_ / "LATEST", "step_00000001\n");
  EXPECT_EQ(resolve_checkpoint(run_), step_dir(1));
  write_text(run_ / "LATEST", "step_00000009\n");
  EXPECT_THAT(error_of([&] { resolve_checkpoint(run_); }),
              HasSubstr("LATEST: names step_00000009, but "));
  write_text(run_ / "LATEST", "../../etc\n");
  EXPECT_THAT(
      error_of([&] { latest_checkpoint(run_); }),
      HasSubstr("LATEST: expected a checkpoint name such as step_00000100, got '../../etc'"));
}

TEST_F(CheckpointTest, KeepsTheNewestCheckpoints) {
  for (int64_t step = 1; step <= 5; ++step)
    save(request(step), /*keep=*/2);
  EXPECT_EQ(listing(run_ / "checkpoints"),
            (std::set<std::string>{"step_00000004", "step_00000005"}));
  EXPECT_EQ(resolve_checkpoint(run_), step_dir(5));
  save(request(6), /*keep=*/1);
  EXPECT_EQ(listing(run_ / "checkpoints"), std::set<std::string>{"step_00000006"});
  EXPECT_THAT(error_of([&] { save(request(7), /*keep=*/0); }), HasSubstr(": keep must be >= 1"));
  EXPECT_EQ(listing(run_ / "checkpoints"), std::set<std::string>{"step_00000006"});
}

TEST_F(CheckpointTest, PruningLeavesNewerCheckpointsAlone) {
  save(request(10));
  save(request(5), /*keep=*/1);  // a run resumed from an earlier checkpoint
  EXPECT_EQ(listing(run_ / "checkpoints"),
            (std::set<std::string>{"step_00000005", "step_00000010"}));
  EXPECT_EQ(resolve_checkpoint(run_), step_dir(5));
}

TEST_F(CheckpointTest, StaleTemporaryDirectoriesAreIgnoredThenCleared) {
  const fs::path stale = run_ / "checkpoints" / "step_00000003.tmp";
  const fs::path newer = run_ / "checkpoints" / "step_00000009.tmp";
  fs::create_directories(stale);
  fs::create_directories(newer);
  write_text(stale / "rank_00000.bin", "partial");
  write_text(newer / "manifest.json", "{}");
  EXPECT_THAT(error_of([&] { resolve_checkpoint(run_); }), HasSubstr("without LATEST"));

  const SaveRequest r = request(3);
  save(r);  // replaces the stale step_00000003.tmp
  EXPECT_EQ(listing(run_ / "checkpoints"),
            (std::set<std::string>{"step_00000003", "step_00000009.tmp"}));
  EXPECT_EQ(resolve_checkpoint(run_), step_dir(3));
  const at::Tensor out = at::empty({1000});
  Checkpoint(step_dir(3)).read("embed/param", 0, out);
  EXPECT_TRUE(at::equal(out, r.tensors[0].data));

  save(request(10));  // leftovers of steps up to the new one go
  EXPECT_EQ(listing(run_ / "checkpoints"),
            (std::set<std::string>{"step_00000003", "step_00000010"}));
}

TEST_F(CheckpointTest, SavingTheSameStepAgainReplacesIt) {
  save(request(4, /*seed=*/1));
  const SaveRequest second = request(4, /*seed=*/50);
  save(second);
  EXPECT_EQ(listing(run_ / "checkpoints"), std::set<std::string>{"step_00000004"});
  const at::Tensor out = at::empty({1000});
  Checkpoint(step_dir(4)).read("embed/param", 0, out);
  EXPECT_TRUE(at::equal(out, second.tensors[0].data));
}

TEST_F(CheckpointTest, FailedSaveLeavesNothingBehind) {
  save(request(1));
  const auto expect_nothing_new = [&] {
    EXPECT_EQ(listing(run_ / "checkpoints"), std::set<std::string>{"step_00000001"});
    EXPECT_EQ(read_text(run_ / "LATEST"), "step_00000001\n");
  };
  const std::string dir = step_dir(2).string();

  SaveRequest wrong_dtype = request(2);
  wrong_dtype.tensors[1].data = wrong_dtype.tensors[1].data.to(at::kDouble);
  EXPECT_EQ(error_of([&] { save(wrong_dtype); }),
            dir + ": tensor 'embed/exp_avg': data is Double, expected Float (fp32)");
  expect_nothing_new();

  SaveRequest gap = request(2);
  gap.tensors[0].begin = 10;
  gap.tensors[0].data = gap.tensors[0].data.narrow(0, 10, 990);
  EXPECT_EQ(error_of([&] { save(gap); }),
            dir +
                ": tensor 'embed/param': the ranks' slices do not tile its 1000 elements: "
                "elements [0, 10) are held by no rank");
  expect_nothing_new();

  SaveRequest outside = request(2);
  outside.tensors[3].begin = 1;
  EXPECT_THAT(error_of([&] { save(outside); }),
              HasSubstr("tensor 'tiny/param': slice [1, 4) is outside a tensor of 3 elements"));
  expect_nothing_new();

  SaveRequest twice = request(2);
  twice.tensors.push_back(twice.tensors[0]);
  EXPECT_THAT(error_of([&] { save(twice); }), HasSubstr("tensor 'embed/param' is listed twice"));
  expect_nothing_new();

  SaveRequest bad_state = request(2);
  bad_state.train_state = "[1, 2]";
  EXPECT_EQ(error_of([&] { save(bad_state); }), dir + ": train_state is not a JSON object");
  expect_nothing_new();

  SaveRequest bad_model = request(2);
  bad_model.model.n_kv_heads = 3;
  EXPECT_THAT(error_of([&] { save(bad_model); }),
              HasSubstr(dir + ": invalid model config: model.n_kv_heads"));
  expect_nothing_new();
}

TEST_F(CheckpointTest, FailedLatestUpdateUnpublishesTheCheckpoint) {
  save(request(1));
  save(request(2));
  // A directory where LATEST should be: replacing it fails.
  fs::remove(run_ / "LATEST");
  fs::create_directories(run_ / "LATEST" / "in-the-way");
  EXPECT_THAT(error_of([&] { save(request(3)); }), HasSubstr("LATEST"));
  EXPECT_EQ(listing(run_ / "checkpoints"),
            (std::set<std::string>{"step_00000001", "step_00000002"}));
  // The same step again: the earlier checkpoint of that step comes back.
  const SaveRequest first = request(2);
  EXPECT_THAT(error_of([&] { save(request(2, /*seed=*/9)); }), HasSubstr("LATEST"));
  EXPECT_EQ(listing(run_ / "checkpoints"),
            (std::set<std::string>{"step_00000001", "step_00000002"}));
  const at::Tensor out = at::empty({1000});
  Checkpoint(step_dir(2)).read("embed/param", 0, out);
  EXPECT_TRUE(at::equal(out, first.tensors[0].data));
}

class DamagedCheckpointTest : public CheckpointTest {
 protected:
  void SetUp() override { dir_ = save(saved_); }

  // Flips one bit of the rank file at `offset`.
  void flip(int64_t offset) const {
    std::fstream f(rank_file(), std::ios::binary | std::ios::in | std::ios::out);
    f.seekg(offset);
    char byte = 0;
    f.read(&byte, 1);
    byte ^= 0x10;
    f.seekp(offset);
    f.write(&byte, 1);
  }
  fs::path rank_file() const { return dir_ / "rank_00000.bin"; }
  std::string manifest() const { return (dir_ / "manifest.json").string(); }
  void edit_manifest(const std::function<void(json&)>& edit) const {
    json m = json::parse(read_text(manifest()));
    edit(m);
    write_text(manifest(), m.dump(2));
  }

  SaveRequest saved_ = request(1);
  fs::path dir_;
};

TEST_F(DamagedCheckpointTest, CorruptByteFailsTheReadNamingTheRankFile) {
  flip(4000 + 123 * 4 + 1);  // inside embed/exp_avg
  const Checkpoint c(dir_);  // the manifest is fine: opening works
  const at::Tensor out = at::empty({1000});
  c.read("embed/param", 0, out);  // other segments still read
  EXPECT_TRUE(at::equal(out, saved_.tensors[0].data));
  EXPECT_EQ(error_of([&] { c.read("embed/exp_avg", 0, out); }),
            rank_file().string() +
                ": checksum mismatch in tensor 'embed/exp_avg' (bytes [4000, 8000)): the file is "
                "corrupt");
  // Even a range that avoids the damaged element: the whole segment is checked.
  EXPECT_THAT(error_of([&] { c.read("embed/exp_avg", 500, at::empty({10})); }),
              HasSubstr("rank_00000.bin: checksum mismatch"));
}

TEST_F(DamagedCheckpointTest, CorruptByteFailsABatchNamingTheRankFileAndTensor) {
  flip(4000 + 123 * 4 + 1);  // inside embed/exp_avg
  const Checkpoint c(dir_);
  const std::vector<ReadRequest> reads = {
      {.name = "tiny/param", .begin = 0, .out = at::empty({3})},
      {.name = "embed/exp_avg", .begin = 0, .out = at::empty({1000})},
      {.name = "embed/param", .begin = 0, .out = at::empty({1000})}};
  EXPECT_EQ(error_of([&] { c.read(reads); }),
            rank_file().string() +
                ": checksum mismatch in tensor 'embed/exp_avg' (bytes [4000, 8000)): the file is "
                "corrupt");
}

TEST_F(DamagedCheckpointTest, RankFileTruncatedAfterOpeningFailsTheRead) {
  const Checkpoint c(dir_);                   // the file was whole then
  fs::resize_file(rank_file(), 4000 + 2000);  // half of embed/exp_avg is left
  const std::vector<ReadRequest> reads = {
      {.name = "embed/param", .begin = 0, .out = at::empty({1000})},
      {.name = "embed/exp_avg", .begin = 0, .out = at::empty({1000})},
      {.name = "tiny/param", .begin = 0, .out = at::empty({3})}};
  EXPECT_EQ(error_of([&] { c.read(reads); }),
            rank_file().string() +
                ": short read: wanted 4000 bytes at byte 4000, the file ends at 6000 (truncated?)");
  fs::resize_file(rank_file(), 0);
  EXPECT_EQ(error_of([&] { c.read("tiny/param", 1, at::empty({2})); }),
            rank_file().string() +
                ": short read: wanted 12 bytes at byte 8000, the file ends at 0 (truncated?)");
}

TEST_F(DamagedCheckpointTest, RankFileRemovedAfterOpeningFailsTheRead) {
  const Checkpoint c(dir_);
  fs::remove(rank_file());
  EXPECT_EQ(error_of([&] { c.read("embed/param", 0, at::empty({1000})); }),
            rank_file().string() + ": cannot open (No such file or directory)");
}

TEST_F(DamagedCheckpointTest, CorruptRankStateFails) {
  flip(static_cast<int64_t>(fs::file_size(rank_file())) - 2);
  EXPECT_THAT(error_of([&] { Checkpoint(dir_).rank_state(0); }),
              HasSubstr("rank_00000.bin: checksum mismatch in the rank state"));
}

TEST_F(DamagedCheckpointTest, TruncatedRankFileFailsOnOpen) {
  const auto size = fs::file_size(rank_file());
  fs::resize_file(rank_file(), size - 1);
  EXPECT_EQ(error_of([&] { Checkpoint c(dir_); }),
            rank_file().string() + ": " + std::to_string(size - 1) + " bytes, the manifest says " +
                std::to_string(size) + " (truncated)");
}

TEST_F(DamagedCheckpointTest, MissingRankFileFailsOnOpen) {
  fs::remove(rank_file());
  EXPECT_EQ(error_of([&] { Checkpoint c(dir_); }),
            rank_file().string() + ": missing (the manifest lists 1 rank files)");
}

TEST_F(DamagedCheckpointTest, ChangedConfigYamlFails) {
  write_text(dir_ / "config.yaml", "stage: pretrain\nseed: 2\n");
  EXPECT_THAT(error_of([&] { Checkpoint(dir_).config_yaml(); }),
              HasSubstr("config.yaml: checksum mismatch"));
}

TEST_F(DamagedCheckpointTest, ManifestsFromBeforeTheModelFamiliesRead) {
  // The first manifests had no family, head_dim or rope scaling: a Llama
  // decoder of dim / n_heads per head, unscaled.
  edit_manifest([](json& m) {
    for (const char* key :
         {"family", "head_dim", "rope_scaling", "rope_factor", "rope_low_freq_factor",
          "rope_high_freq_factor", "rope_original_max_len"})
      m["model"].erase(key);
  });
  const Checkpoint c(dir_);
  EXPECT_EQ(c.model().family, "llama");
  EXPECT_EQ(c.model().head_dim(), c.model().dim / c.model().n_heads);
  EXPECT_EQ(c.model().rope_scaling, "none");
  edit_manifest([](json& m) { m["model"].erase("dim"); });
  EXPECT_THROW(Checkpoint{dir_}, CheckpointError);
}

TEST_F(DamagedCheckpointTest, BadManifestsNameTheProblem) {
  const auto open_error = [&] { return error_of([&] { Checkpoint c(dir_); }); };
  const std::string good = read_text(manifest());

  write_text(manifest(), "{\"format\": ");
  EXPECT_THAT(open_error(), HasSubstr(manifest() + ": not valid JSON: "));

  write_text(manifest(), good);
  edit_manifest([](json& m) { m["format"] = "safetensors"; });
  EXPECT_EQ(open_error(), manifest() + ": format is 'safetensors', expected 'muse-checkpoint'");

  write_text(manifest(), good);
  edit_manifest([](json& m) { m["version"] = 2; });
  EXPECT_EQ(open_error(), manifest() + ": version 2 is not supported (this build reads version 1)");

  write_text(manifest(), good);
  edit_manifest([](json& m) { m["tensors"][3]["numel"] = "three"; });
  EXPECT_THAT(open_error(),
              HasSubstr(manifest() + ": tensors[3].numel: expected an integer in [0, "));

  write_text(manifest(), good);
  edit_manifest([](json& m) { m["tensors"][0]["numel"] = 1001; });
  EXPECT_EQ(open_error(), manifest() +
                              ": tensor 'embed/param': shards do not tile its 1001 elements: "
                              "elements from 1000 on are missing");

  write_text(manifest(), good);
  edit_manifest([](json& m) { m["model"].erase("dim"); });
  EXPECT_EQ(open_error(), manifest() + ": model.dim is missing");

  write_text(manifest(), good);
  edit_manifest([](json& m) { m.erase("ranks"); });
  EXPECT_EQ(open_error(), manifest() + ": ranks is missing");

  fs::remove(manifest());
  EXPECT_EQ(open_error(), manifest() + ": missing: not a checkpoint directory");
}

TEST_F(CheckpointTest, CheckModelNamesTheFirstDifferentKey) {
  const fs::path dir = save(request(1));
  const Checkpoint c(dir);
  const std::string manifest = (dir / "manifest.json").string();
  model::ModelConfig other;
  other.dim = 256;
  EXPECT_EQ(error_of([&] { c.check_model(other); }),
            manifest + ": model.dim: checkpoint has 128, config has 256");
  other = {};
  other.tie_embeddings = false;
  other.norm_eps = 1e-6;
  EXPECT_EQ(error_of([&] { c.check_model(other); }),
            manifest + ": model.norm_eps: checkpoint has 1e-05, config has 1e-06");
  other = {};
  other.preset = "custom";  // neither changes a weight's shape or value
  other.init_std = 0.5;
  EXPECT_NO_THROW(c.check_model(other));
}

}  // namespace
}  // namespace muse::checkpoints
