// The training data loader: packs the documents of HDF5 shards into
// fixed-length rows, gives each rank its share of every global batch, is a
// pure function of (data, options, seed, position), and saves its position
// in global terms so a run resumes on exactly the next batch, also on another
// number of ranks. docs/data.md describes the semantics.
//
// Legend: G = global batch (sequences over all ranks), B = G / N sequences on
// this rank, N = world size, T = seq_len, P = image_tokens (placeholder
// positions per image), H, W, C = image height, width, channels, I = images in
// a batch.
//
// Packing, in short: every epoch the documents are put in an order (shuffled
// from the seed and the epoch number), each document's stored <image> tokens
// are expanded to P placeholders, and the resulting stream is cut into rows
// of T positions. Row k starts where row k-1 ended; a cut never falls inside
// an image's placeholders: when an image does not fit, the row ends early
// (padded) and the image starts the next row. A document therefore continues
// from one row into the next at a text token. Targets are the next position's
// token within the same document, -100 where that is padding, an image
// placeholder, another document, or a token before its document's loss start
// (the prompt of a supervised example: shard.h's loss_starts).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/data_config.h"

namespace muse::data {

// The target of a position whose prediction does not count.
inline constexpr int64_t kIgnoreIndex = -100;

struct LoaderOptions {
  std::vector<std::filesystem::path> shards;  // read in this order (it matters without shuffle)
  int64_t seq_len = 256;                      // T
  int64_t batch_size = 8;                     // G, divisible by the world size
  bool shuffle = true;                        // shuffle documents every epoch
  int64_t image_tokens = 1;                   // P = (image_size / patch_size)^2 of the model
  // What the model expects; a shard that differs is an error. 0 = take the
  // shards' values (all shards must still agree).
  int64_t vocab_size = 0;      // shards' vocab_size must not exceed it
  int64_t image_size = 0;      // H = W of the images
  int64_t image_channels = 0;  // C
};

// The shard files `pattern` names: the *.h5 files of a directory, or the
// matches of a glob pattern, sorted. Throws DataError when there are none.
std::vector<std::filesystem::path> resolve_shards(const std::string& pattern);

// Options from the `data.*` section (shards resolved); the caller sets the
// model-dependent fields (image_tokens, vocab_size, image_size, image_channels).
LoaderOptions loader_options(const DataConfig& config);

// One rank's share of a global batch.
struct Batch {
  at::Tensor tokens;       // (B, T) int64, padding holds pad_token_id
  at::Tensor targets;      // (B, T) int64, kIgnoreIndex where the target does not count
  at::Tensor segment_ids;  // (B, T) int32, 1, 2, ... per document piece in a row, 0 = padding
  at::Tensor images;       // (I, H, W, C) uint8
  at::Tensor image_slots;  // (I, 2) int64: (row in this batch, first placeholder position)
};

// Where the loader stands, in global terms: the world size and the batch size
// may change between save and restore, the rest may not.
struct LoaderState {
  int64_t seed = 0;
  int64_t epoch = 0;     // epoch of the next sequence
  int64_t sequence = 0;  // sequences of `epoch` already consumed (over all ranks)
  // What gives the position its meaning; restore() checks them.
  int64_t seq_len = 0;
  int64_t image_tokens = 0;
  bool shuffle = true;
  int64_t n_documents = 0;
  int64_t n_tokens = 0;

  // A one-line JSON object, for checkpoints.
  std::string to_json() const;
  // Throws DataError when `text` is not a state written by to_json.
  static LoaderState from_json(std::string_view text);
  bool operator==(const LoaderState&) const = default;
};

// The pure arithmetic of packing and sharding, exposed for tests.
//
// Cuts positions [0, length) into rows of at most `seq_len` positions without
// cutting any run [s, s + run_length) for s in `run_starts` (sorted, disjoint
// runs; run_length <= seq_len). Returns the R row starts followed by `length`.
std::vector<int64_t> pack_rows(int64_t length, std::span<const int64_t> run_starts,
                               int64_t run_length, int64_t seq_len);

// Rows [first, first + count) of each global batch of `batch_size` rows belong
// to `rank` of `world_size`; `batch_size` must be divisible by `world_size`.
struct RowRange {
  int64_t first = 0;
  int64_t count = 0;
};
RowRange rank_rows(int64_t batch_size, int rank, int world_size);

class Loader {
 public:
  // Opens and validates every shard. Throws DataError for bad or mismatched
  // shards and config::ConfigError for options that cannot work (naming the
  // data.* key).
  Loader(LoaderOptions options, int rank, int world_size, int64_t seed);
  ~Loader();
  Loader(Loader&&) noexcept;
  Loader& operator=(Loader&&) noexcept;

  // This rank's rows of the next global batch; batches run on across epochs.
  Batch next();

  // The position before the next batch.
  const LoaderState& state() const;
  // Continues from `state` (saved by any world size); throws DataError when
  // it was saved over other data, with another seed or another packing.
  void restore(const LoaderState& state);

  // Rows (sequences) the stream of `epoch` packs into.
  int64_t sequences_in_epoch(int64_t epoch);
  int64_t local_batch_size() const;
  int64_t n_documents() const;
  int64_t n_tokens() const;  // stored tokens, each <image> counted once

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;  // [not null]
};

}  // namespace muse::data
