// The loader against an oracle: every epoch covers every position of every
// document exactly once over any number of ranks, rows never mix documents,
// targets are the next position of the same document from its loss start on,
// images are expanded to P placeholders and never cut; order is a function of
// the seed; a saved position resumes exactly, also on another number of ranks.
#include "data/loader.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>

#include "config/schema.h"
#include "data/data_error.h"
#include "data/shard.h"
#include "tests/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using muse::data::Batch;
using muse::data::DataError;
using muse::data::kIgnoreIndex;
using muse::data::Loader;
using muse::data::LoaderOptions;
using muse::data::LoaderState;
using muse::data::pack_rows;
using muse::data::rank_rows;
using muse::data::Shard;

constexpr int32_t kPad = 0;
constexpr int32_t kImageToken = 1;
constexpr int64_t kImageSide = 2;  // images are 2x2x1: 4 bytes that spell the image's id

using muse::testing::TempDir;

std::vector<uint8_t> image_bytes(int64_t id) {
  return {static_cast<uint8_t>(id), static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id >> 16),
          static_cast<uint8_t>(id >> 24)};
}

int64_t image_id(const at::Tensor& image) {  // (H, W, C) uint8
  const uint8_t* p = image.contiguous().data_ptr<uint8_t>();
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<int64_t>(p[3]) << 24);
}

// Documents whose text tokens are all distinct (so a token says where it came
// from) and whose images carry their id in their pixels.
struct Corpus {
  std::vector<std::vector<int32_t>> docs;        // stored tokens
  std::vector<std::vector<int64_t>> doc_images;  // image ids, in order
  std::vector<int64_t> loss_starts;              // per document, a stored-token index
  std::vector<fs::path> shards;
};

Shard empty_shard() {
  Shard s;
  s.vocab_size = 1 << 20;
  s.image_token_id = kImageToken;
  s.pad_token_id = kPad;
  s.image_height = kImageSide;
  s.image_width = kImageSide;
  s.image_channels = 1;
  return s;
}

// Writes `docs` round-robin into `n_shards` shard files under `dir`, with
// `loss_starts` (one per document) or none.
Corpus write_corpus(const fs::path& dir, std::vector<std::vector<int32_t>> docs, int n_shards,
                    std::vector<int64_t> loss_starts = {}) {
  Corpus c;
  c.docs = std::move(docs);
  c.loss_starts = std::move(loss_starts);
  c.loss_starts.resize(c.docs.size(), 0);
  std::vector<Shard> shards(static_cast<size_t>(n_shards), empty_shard());
  int64_t next_image = 0;
  for (size_t d = 0; d < c.docs.size(); ++d) {
    std::vector<int64_t> ids;
    std::vector<uint8_t> pixels;
    for (const int32_t t : c.docs[d]) {
      if (t != kImageToken) continue;
      ids.push_back(next_image);
      const auto bytes = image_bytes(next_image++);
      pixels.insert(pixels.end(), bytes.begin(), bytes.end());
    }
    c.doc_images.push_back(ids);
    shards[d % shards.size()].add_document(c.docs[d], pixels, c.loss_starts[d]);
  }
  for (int i = 0; i < n_shards; ++i) {
    c.shards.push_back(dir / ("shard_" + std::to_string(i) + ".h5"));
    muse::data::write_shard(c.shards.back(), shards[static_cast<size_t>(i)]);
  }
  // Round-robin put document d in shard d % n; the loader reads shard by shard.
  std::vector<std::vector<int32_t>> in_order;
  std::vector<std::vector<int64_t>> images_in_order;
  std::vector<int64_t> loss_starts_in_order;
  for (int i = 0; i < n_shards; ++i) {
    for (size_t d = static_cast<size_t>(i); d < c.docs.size(); d += static_cast<size_t>(n_shards)) {
      in_order.push_back(c.docs[d]);
      images_in_order.push_back(c.doc_images[d]);
      loss_starts_in_order.push_back(c.loss_starts[d]);
    }
  }
  c.docs = std::move(in_order);
  c.doc_images = std::move(images_in_order);
  c.loss_starts = std::move(loss_starts_in_order);
  return c;
}

// Random documents; those of the first shard have no loss start (that shard
// has no /loss_starts), the others a random one.
Corpus random_corpus(const fs::path& dir, int n_docs, int n_shards, uint32_t seed) {
  std::mt19937 random(seed);
  std::vector<std::vector<int32_t>> docs;
  std::vector<int64_t> loss_starts;
  int32_t next_token = 10;
  for (int d = 0; d < n_docs; ++d) {
    std::vector<int32_t> doc;
    const int length = 1 + static_cast<int>(random() % 30);
    for (int i = 0; i < length; ++i)
      doc.push_back(random() % 6 == 0 ? kImageToken : next_token++);
    docs.push_back(doc);
    loss_starts.push_back(d % n_shards == 0 ? 0 : static_cast<int64_t>(random() % (length + 1)));
  }
  return write_corpus(dir, docs, n_shards, loss_starts);
}

LoaderOptions options_for(const Corpus& c, int64_t seq_len, int64_t batch_size,
                          int64_t image_tokens) {
  LoaderOptions o;
  o.shards = c.shards;
  o.seq_len = seq_len;
  o.batch_size = batch_size;
  o.image_tokens = image_tokens;
  return o;
}

// One row of a batch, copied out.
struct Row {
  std::vector<int64_t> tokens, targets;
  std::vector<int32_t> segments;
  std::map<int64_t, int64_t> images;  // first placeholder position -> image id
  bool operator==(const Row&) const = default;
};

std::vector<Row> rows_of(const Batch& b) {
  const int64_t B = b.tokens.size(0), T = b.tokens.size(1);
  EXPECT_EQ(b.tokens.scalar_type(), at::kLong);
  EXPECT_EQ(b.targets.scalar_type(), at::kLong);
  EXPECT_EQ(b.segment_ids.scalar_type(), at::kInt);
  EXPECT_EQ(b.images.scalar_type(), at::kByte);
  EXPECT_EQ(b.image_slots.scalar_type(), at::kLong);
  EXPECT_EQ(b.images.size(0), b.image_slots.size(0));
  std::vector<Row> rows(static_cast<size_t>(B));
  for (int64_t r = 0; r < B; ++r) {
    Row& row = rows[static_cast<size_t>(r)];
    const int64_t* tokens = b.tokens[r].data_ptr<int64_t>();
    const int64_t* targets = b.targets[r].data_ptr<int64_t>();
    const int32_t* segments = b.segment_ids[r].data_ptr<int32_t>();
    row.tokens.assign(tokens, tokens + T);
    row.targets.assign(targets, targets + T);
    row.segments.assign(segments, segments + T);
  }
  for (int64_t i = 0; i < b.image_slots.size(0); ++i) {
    const int64_t r = b.image_slots[i][0].item<int64_t>();
    const int64_t position = b.image_slots[i][1].item<int64_t>();
    rows[static_cast<size_t>(r)].images[position] = image_id(b.images[i]);
  }
  return rows;
}

bool same_batch(const Batch& a, const Batch& b) {
  return a.tokens.equal(b.tokens) && a.targets.equal(b.targets) &&
         a.segment_ids.equal(b.segment_ids) && a.images.equal(b.images) &&
         a.image_slots.equal(b.image_slots);
}

// The rows of `epoch`, in global order, as `world_size` ranks see them.
std::vector<Row> epoch_rows(const LoaderOptions& o, int world_size, int64_t seed, int64_t epoch) {
  std::vector<Loader> loaders;
  for (int r = 0; r < world_size; ++r)
    loaders.emplace_back(o, r, world_size, seed);
  int64_t before = 0;
  for (int64_t e = 0; e < epoch; ++e)
    before += loaders[0].sequences_in_epoch(e);
  const int64_t R = loaders[0].sequences_in_epoch(epoch);
  std::vector<Row> rows(static_cast<size_t>(R));
  const int64_t G = o.batch_size;
  for (int64_t batch = 0; batch * G < before + R; ++batch) {
    for (int r = 0; r < world_size; ++r) {
      const auto local = rows_of(loaders[static_cast<size_t>(r)].next());
      const auto mine = rank_rows(G, r, world_size);
      EXPECT_EQ(static_cast<int64_t>(local.size()), mine.count);
      for (int64_t i = 0; i < mine.count; ++i) {
        const int64_t g = batch * G + mine.first + i - before;
        if (g >= 0 && g < R) rows[static_cast<size_t>(g)] = local[static_cast<size_t>(i)];
      }
    }
  }
  return rows;
}

// Checks `rows` (one epoch) against the corpus: see the file comment.
void check_epoch(const Corpus& c, const std::vector<Row>& rows, int64_t P) {
  // Each document expanded: P placeholders per image; where each position
  // comes from; what its target must be.
  std::vector<std::vector<int32_t>> expanded(c.docs.size());
  std::vector<std::vector<int64_t>> stored(c.docs.size());    // stored index of each position
  std::map<int64_t, std::pair<size_t, int64_t>> where_text;   // token -> (doc, offset)
  std::map<int64_t, std::pair<size_t, int64_t>> where_image;  // image id -> (doc, offset)
  for (size_t d = 0; d < c.docs.size(); ++d) {
    size_t k = 0;
    for (size_t i = 0; i < c.docs[d].size(); ++i) {
      const int32_t t = c.docs[d][i];
      const auto offset = static_cast<int64_t>(expanded[d].size());
      const size_t n = t == kImageToken ? static_cast<size_t>(P) : 1;
      if (t == kImageToken) {
        where_image[c.doc_images[d][k++]] = {d, offset};
      } else {
        where_text[t] = {d, offset};
      }
      expanded[d].insert(expanded[d].end(), n, t);
      stored[d].insert(stored[d].end(), n, static_cast<int64_t>(i));
    }
  }
  std::set<std::pair<size_t, int64_t>> run_starts;
  for (const auto& [id, at] : where_image)
    run_starts.insert(at);
  const auto expected_target = [&](size_t d, int64_t offset) -> int64_t {
    const auto& e = expanded[d];
    if (offset + 1 >= static_cast<int64_t>(e.size())) return kIgnoreIndex;
    const int32_t next = e[static_cast<size_t>(offset) + 1];
    if (next == kImageToken || stored[d][static_cast<size_t>(offset) + 1] < c.loss_starts[d])
      return kIgnoreIndex;
    return next;
  };
  std::vector<std::vector<int>> seen(c.docs.size());
  for (size_t d = 0; d < c.docs.size(); ++d)
    seen[d].assign(expanded[d].size(), 0);

  for (size_t r = 0; r < rows.size(); ++r) {
    const Row& row = rows[r];
    const auto T = static_cast<int64_t>(row.tokens.size());
    int64_t real = 0;
    while (real < T && row.segments[static_cast<size_t>(real)] != 0)
      ++real;
    ASSERT_GT(real, 0) << "row " << r << " is empty";
    for (int64_t i = real; i < T; ++i) {
      ASSERT_EQ(row.segments[static_cast<size_t>(i)], 0) << "padding is not a suffix, row " << r;
      ASSERT_EQ(row.tokens[static_cast<size_t>(i)], kPad);
      ASSERT_EQ(row.targets[static_cast<size_t>(i)], kIgnoreIndex);
    }
    int64_t images_in_row = 0;
    for (int64_t a = 0; a < real;) {
      const int32_t segment = row.segments[static_cast<size_t>(a)];
      ASSERT_EQ(segment, a == 0 ? 1 : row.segments[static_cast<size_t>(a) - 1] + 1);
      int64_t b = a;
      while (b < real && row.segments[static_cast<size_t>(b)] == segment)
        ++b;
      // Where the segment starts: a text token, or the first placeholder of an image.
      std::pair<size_t, int64_t> origin;
      const int64_t first = row.tokens[static_cast<size_t>(a)];
      if (first == kImageToken) {
        ASSERT_TRUE(row.images.contains(a)) << "a segment starts inside an image, row " << r;
        origin = where_image.at(row.images.at(a));
      } else {
        origin = where_text.at(first);
      }
      const auto [d, offset] = origin;
      // A piece that does not start its document continues one ending the previous row.
      if (offset > 0) {
        ASSERT_EQ(a, 0) << "row " << r;
      }
      for (int64_t i = a; i < b; ++i) {
        const int64_t o = offset + i - a;
        ASSERT_LT(o, static_cast<int64_t>(expanded[d].size())) << "segment crosses documents";
        ASSERT_EQ(row.tokens[static_cast<size_t>(i)], expanded[d][static_cast<size_t>(o)])
            << "row " << r << " position " << i;
        ASSERT_EQ(row.targets[static_cast<size_t>(i)], expected_target(d, o))
            << "row " << r << " position " << i;
        ++seen[d][static_cast<size_t>(o)];
        // Image runs start exactly at the recorded slots and are whole.
        if (run_starts.contains({d, o})) {
          ASSERT_TRUE(row.images.contains(i)) << "row " << r << " position " << i;
          ASSERT_EQ(where_image.at(row.images.at(i)), std::pair(d, o));
          ASSERT_LE(i + P, b) << "an image is cut, row " << r;
          ++images_in_row;
        }
      }
      a = b;
    }
    ASSERT_EQ(images_in_row, static_cast<int64_t>(row.images.size())) << "row " << r;
  }
  for (size_t d = 0; d < c.docs.size(); ++d) {
    for (size_t o = 0; o < seen[d].size(); ++o)
      ASSERT_EQ(seen[d][o], 1) << "document " << d << " position " << o;
  }
}

TEST(PackRows, CutsEveryTPositionsButNeverInsideARun) {
  const std::vector<int64_t> none;
  EXPECT_EQ(pack_rows(10, none, 3, 4), (std::vector<int64_t>{0, 4, 8, 10}));
  // The run [3, 6) does not fit in the row [0, 4): the row ends at 3.
  const std::vector<int64_t> at3 = {3};
  EXPECT_EQ(pack_rows(10, at3, 3, 4), (std::vector<int64_t>{0, 3, 7, 10}));
  // A run ending exactly at the cut, and one starting at it, are not cut.
  const std::vector<int64_t> at1 = {1};
  EXPECT_EQ(pack_rows(10, at1, 3, 4), (std::vector<int64_t>{0, 4, 8, 10}));
  const std::vector<int64_t> at4 = {4};
  EXPECT_EQ(pack_rows(10, at4, 4, 4), (std::vector<int64_t>{0, 4, 8, 10}));
  // Back-to-back runs as long as a row.
  const std::vector<int64_t> runs = {1, 5, 9};
  EXPECT_EQ(pack_rows(13, runs, 4, 4), (std::vector<int64_t>{0, 1, 5, 9, 13}));
  EXPECT_EQ(pack_rows(0, none, 3, 4), (std::vector<int64_t>{0}));
}

TEST(RankRows, SplitsTheGlobalBatchEvenly) {
  EXPECT_EQ(rank_rows(6, 0, 1).count, 6);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(rank_rows(6, r, 3).first, 2 * r);
    EXPECT_EQ(rank_rows(6, r, 3).count, 2);
  }
}

TEST(Loader, ExpandsImagesAndFillsSlots) {
  TempDir dir;
  // BOS=5 <image> 7 8 EOS=9, P = 3.
  const Corpus c = write_corpus(dir.path(), {{5, kImageToken, 7, 8, 9}}, 1);
  LoaderOptions o = options_for(c, 8, 1, 3);
  o.shuffle = false;
  Loader loader(o, 0, 1, 1);
  const Batch b = loader.next();
  const auto row = rows_of(b).at(0);
  const int64_t X = kIgnoreIndex;
  EXPECT_EQ(row.tokens, (std::vector<int64_t>{5, 1, 1, 1, 7, 8, 9, kPad}));
  EXPECT_EQ(row.targets, (std::vector<int64_t>{X, X, X, 7, 8, 9, X, X}));
  EXPECT_EQ(row.segments, (std::vector<int32_t>{1, 1, 1, 1, 1, 1, 1, 0}));
  EXPECT_EQ(b.images.sizes(), (std::vector<int64_t>{1, kImageSide, kImageSide, 1}));
  EXPECT_EQ(b.image_slots.sizes(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(b.image_slots[0][0].item<int64_t>(), 0);
  EXPECT_EQ(b.image_slots[0][1].item<int64_t>(), 1);
  EXPECT_EQ(image_id(b.images[0]), 0);
}

TEST(Loader, AnImageThatDoesNotFitMovesToTheNextRow) {
  TempDir dir;
  const Corpus c = write_corpus(dir.path(), {{5, 6, 7, kImageToken, 8, 9}}, 1);
  LoaderOptions o = options_for(c, 4, 1, 3);
  o.shuffle = false;
  Loader loader(o, 0, 1, 1);
  const int64_t X = kIgnoreIndex;
  const auto r0 = rows_of(loader.next()).at(0);
  EXPECT_EQ(r0.tokens, (std::vector<int64_t>{5, 6, 7, kPad}));
  EXPECT_EQ(r0.targets, (std::vector<int64_t>{6, 7, X, X}));
  EXPECT_TRUE(r0.images.empty());
  const auto r1 = rows_of(loader.next()).at(0);
  EXPECT_EQ(r1.tokens, (std::vector<int64_t>{1, 1, 1, 8}));
  EXPECT_EQ(r1.targets, (std::vector<int64_t>{X, X, 8, 9}));  // the last target looks ahead
  EXPECT_EQ(r1.segments, (std::vector<int32_t>{1, 1, 1, 1}));
  EXPECT_EQ(r1.images, (std::map<int64_t, int64_t>{{0, 0}}));
  const auto r2 = rows_of(loader.next()).at(0);
  EXPECT_EQ(r2.tokens, (std::vector<int64_t>{9, kPad, kPad, kPad}));
  EXPECT_EQ(r2.targets, (std::vector<int64_t>{X, X, X, X}));
  EXPECT_EQ(loader.sequences_in_epoch(0), 3);
  // The stream goes on with the next epoch.
  EXPECT_EQ(loader.state().epoch, 1);
  EXPECT_EQ(loader.state().sequence, 0);
  EXPECT_EQ(rows_of(loader.next()).at(0), r0);
}

TEST(Loader, DocumentsInOneRowAreSeparateSegments) {
  TempDir dir;
  const Corpus c = write_corpus(dir.path(), {{5, 6, 7}, {15, 16}, {25, 26, 27, 28}}, 1);
  LoaderOptions o = options_for(c, 6, 1, 1);
  o.shuffle = false;
  Loader loader(o, 0, 1, 1);
  const int64_t X = kIgnoreIndex;
  const auto r0 = rows_of(loader.next()).at(0);
  EXPECT_EQ(r0.tokens, (std::vector<int64_t>{5, 6, 7, 15, 16, 25}));
  EXPECT_EQ(r0.targets, (std::vector<int64_t>{6, 7, X, 16, X, 26}));
  EXPECT_EQ(r0.segments, (std::vector<int32_t>{1, 1, 1, 2, 2, 3}));
  const auto r1 = rows_of(loader.next()).at(0);
  EXPECT_EQ(r1.tokens, (std::vector<int64_t>{26, 27, 28, kPad, kPad, kPad}));
  EXPECT_EQ(r1.targets, (std::vector<int64_t>{27, 28, X, X, X, X}));
  EXPECT_EQ(r1.segments, (std::vector<int32_t>{1, 1, 1, 0, 0, 0}));
}

TEST(Loader, TargetsBeforeTheLossStartAreIgnored) {
  TempDir dir;
  // Stored: A = BOS <image> 7 | 8 9 EOS with its loss from 8 (stored index 3);
  // B = 20 21 22 23 | 24 25 from 24 (index 4); C = 30 31 with nothing counted.
  // P = 3, T = 5: A's image is in its prompt, B starts in row 1 and counts in row 2.
  const Corpus c =
      write_corpus(dir.path(), {{5, kImageToken, 7, 8, 9, 10}, {20, 21, 22, 23, 24, 25}, {30, 31}},
                   1, {3, 4, 2});
  LoaderOptions o = options_for(c, 5, 1, 3);
  o.shuffle = false;
  Loader loader(o, 0, 1, 1);
  const int64_t X = kIgnoreIndex;
  const auto r0 = rows_of(loader.next()).at(0);
  EXPECT_EQ(r0.tokens, (std::vector<int64_t>{5, 1, 1, 1, 7}));
  EXPECT_EQ(r0.targets, (std::vector<int64_t>{X, X, X, X, 8}));  // looks ahead into row 1
  EXPECT_EQ(r0.images, (std::map<int64_t, int64_t>{{1, 0}}));
  const auto r1 = rows_of(loader.next()).at(0);
  EXPECT_EQ(r1.tokens, (std::vector<int64_t>{8, 9, 10, 20, 21}));
  EXPECT_EQ(r1.targets, (std::vector<int64_t>{9, 10, X, X, X}));
  EXPECT_EQ(r1.segments, (std::vector<int32_t>{1, 1, 1, 2, 2}));
  const auto r2 = rows_of(loader.next()).at(0);
  EXPECT_EQ(r2.tokens, (std::vector<int64_t>{22, 23, 24, 25, 30}));
  EXPECT_EQ(r2.targets, (std::vector<int64_t>{X, 24, 25, X, X}));
  const auto r3 = rows_of(loader.next()).at(0);
  EXPECT_EQ(r3.tokens, (std::vector<int64_t>{31, kPad, kPad, kPad, kPad}));
  EXPECT_EQ(r3.targets, (std::vector<int64_t>{X, X, X, X, X}));
  // Masking changes targets only: the data's size and the packing are the same.
  EXPECT_EQ(loader.n_tokens(), 14);
  EXPECT_EQ(loader.sequences_in_epoch(0), 4);
}

class LoaderCorpus : public testing::Test {
 protected:
  void SetUp() override { corpus_ = random_corpus(dir_.path(), 120, 3, 7); }
  // T = 16, G = 6 (divisible by 1, 2 and 3 ranks), P = 3.
  LoaderOptions options() const { return options_for(corpus_, 16, 6, 3); }
  TempDir dir_;
  Corpus corpus_;
};

TEST_F(LoaderCorpus, EveryEpochCoversEverythingOnceOnOneTwoAndThreeRanks) {
  const auto one = epoch_rows(options(), 1, 42, 0);
  ASSERT_GT(one.size(), 20u);
  check_epoch(corpus_, one, 3);
  for (const int world : {2, 3}) {
    SCOPED_TRACE("world size " + std::to_string(world));
    const auto rows = epoch_rows(options(), world, 42, 0);
    check_epoch(corpus_, rows, 3);
    EXPECT_TRUE(rows == one) << "ranks together see other rows than one rank";
  }
  // The next epoch is another order of the same documents.
  const auto second = epoch_rows(options(), 2, 42, 1);
  check_epoch(corpus_, second, 3);
  EXPECT_FALSE(second == one);
}

TEST_F(LoaderCorpus, WithoutShuffleRowsFollowTheShards) {
  LoaderOptions o = options();
  o.shuffle = false;
  const auto rows = epoch_rows(o, 1, 42, 0);
  check_epoch(corpus_, rows, 3);
  EXPECT_EQ(rows.front().tokens.front(), corpus_.docs.front().front());
  EXPECT_TRUE(rows == epoch_rows(o, 1, 43, 0));
}

TEST_F(LoaderCorpus, OrderIsAFunctionOfTheSeed) {
  Loader a(options(), 0, 1, 42), b(options(), 0, 1, 42), other(options(), 0, 1, 43);
  bool differs = false;
  for (int i = 0; i < 4; ++i) {
    const Batch x = a.next();
    EXPECT_TRUE(same_batch(x, b.next()));
    differs = differs || !same_batch(x, other.next());
  }
  EXPECT_TRUE(differs);
}

TEST_F(LoaderCorpus, ResumesOnExactlyTheNextBatch) {
  for (const int k : {0, 3, 11}) {  // 11 batches run into the second epoch
    SCOPED_TRACE("after " + std::to_string(k) + " batches");
    Loader straight(options(), 0, 1, 42);
    for (int i = 0; i < k; ++i)
      straight.next();
    const LoaderState saved = LoaderState::from_json(straight.state().to_json());
    EXPECT_EQ(saved, straight.state());
    Loader resumed(options(), 0, 1, 42);
    resumed.restore(saved);
    for (int i = 0; i < 3; ++i)
      EXPECT_TRUE(same_batch(straight.next(), resumed.next()));
    EXPECT_EQ(straight.state(), resumed.state());
  }
}

TEST_F(LoaderCorpus, ResumesOnAnotherWorldSizeWithTheSameGlobalStream) {
  const int k = 5;
  std::vector<Loader> two;
  for (int r = 0; r < 2; ++r)
    two.emplace_back(options(), r, 2, 42);
  for (int i = 0; i < k; ++i) {
    for (auto& l : two)
      l.next();
  }
  EXPECT_EQ(two[0].state(), two[1].state());
  const std::string saved = two[0].state().to_json();

  Loader one(options(), 0, 1, 42);
  for (int i = 0; i < k; ++i)
    one.next();
  for (int step = 0; step < 3; ++step) {
    const auto expected = rows_of(one.next());
    std::vector<Row> from_three;
    for (int r = 0; r < 3; ++r) {
      Loader three(options(), r, 3, 42);
      three.restore(LoaderState::from_json(saved));
      for (int i = 0; i < step; ++i)
        three.next();
      const auto rows = rows_of(three.next());
      from_three.insert(from_three.end(), rows.begin(), rows.end());
    }
    EXPECT_TRUE(from_three == expected) << "step " << step;
  }
}

TEST_F(LoaderCorpus, ReportsItsData) {
  Loader loader(options(), 1, 3, 42);
  EXPECT_EQ(loader.n_documents(), 120);
  int64_t tokens = 0;
  for (const auto& d : corpus_.docs)
    tokens += static_cast<int64_t>(d.size());
  EXPECT_EQ(loader.n_tokens(), tokens);
  EXPECT_EQ(loader.local_batch_size(), 2);
}

std::string data_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST_F(LoaderCorpus, RestoreRejectsAStateOfOtherDataOrPacking) {
  Loader loader(options(), 0, 1, 42);
  LoaderState s = loader.state();
  s.seed = 7;
  EXPECT_NE(data_error([&] { loader.restore(s); }).find("saved with seed 7, this loader has 42"),
            std::string::npos);
  s = loader.state();
  s.seq_len = 32;
  EXPECT_NE(data_error([&] { loader.restore(s); }).find("seq_len 32"), std::string::npos);
  s = loader.state();
  s.n_tokens += 1;
  EXPECT_NE(data_error([&] { loader.restore(s); }).find("n_tokens"), std::string::npos);
  s = loader.state();
  s.sequence = loader.sequences_in_epoch(0);
  EXPECT_NE(data_error([&] { loader.restore(s); }).find("has no sequence"), std::string::npos);
  EXPECT_NE(data_error([] { LoaderState::from_json("{\"seed\": 1}"); }).find("loader state: "),
            std::string::npos);
}

TEST_F(LoaderCorpus, OptionsThatCannotWorkNameTheirKey) {
  const auto key_of = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const muse::config::ConfigError& e) {
      return e.key() + " | " + e.what();
    }
    return "(no error)";
  };
  EXPECT_EQ(key_of([&] { Loader(options(), 0, 4, 1); }),
            "data.batch_size | data.batch_size: 6 sequences do not split evenly over 4 rank(s)");
  LoaderOptions o = options();
  o.image_tokens = 17;
  EXPECT_EQ(key_of([&] { Loader(o, 0, 1, 1); }).substr(0, 16), "data.seq_len | d");
}

TEST_F(LoaderCorpus, ShardsThatDoNotFitTheModelAreErrorsNamingTheShard) {
  LoaderOptions o = options();
  o.image_size = 4;
  EXPECT_NE(data_error([&] {
              Loader(o, 0, 1, 1);
            }).find(corpus_.shards[0].string() + ": /images: images of 2x2x1, expected 4x4x1"),
            std::string::npos);
  o = options();
  o.vocab_size = 1000;
  EXPECT_NE(data_error([&] { Loader(o, 0, 1, 1); })
                .find(corpus_.shards[0].string() +
                      ": attribute 'vocab_size': 1048576 exceeds the model's vocabulary of 1000"),
            std::string::npos);
  // A shard of another tokenizer.
  Shard other = empty_shard();
  other.image_token_id = 2;
  other.add_document(std::vector<int32_t>{5}, {});
  muse::data::write_shard(dir_.path() / "shard_9.h5", other);
  o = options();
  o.shards.push_back(dir_.path() / "shard_9.h5");
  EXPECT_NE(data_error([&] {
              Loader(o, 0, 1, 1);
            }).find("shard_9.h5: attribute 'image_token_id': 2 differs from 1 of "),
            std::string::npos);
}

TEST_F(LoaderCorpus, ResolvesADirectoryOrAGlob) {
  std::ofstream(dir_.path() / "shard_1.h5.tmp.123") << "half-written";
  EXPECT_EQ(muse::data::resolve_shards(dir_.path().string()), corpus_.shards);
  EXPECT_EQ(muse::data::resolve_shards((dir_.path() / "shard_[12].h5").string()),
            (std::vector<fs::path>{corpus_.shards[1], corpus_.shards[2]}));
  EXPECT_NE(data_error([&] {
              muse::data::resolve_shards((dir_.path() / "none_*").string());
            }).find("data.shards: no shard files in"),
            std::string::npos);
  muse::data::DataConfig config;
  config.shards = dir_.path().string();
  config.seq_len = 9;
  const LoaderOptions o = muse::data::loader_options(config);
  EXPECT_EQ(o.shards, corpus_.shards);
  EXPECT_EQ(o.seq_len, 9);
}

}  // namespace
