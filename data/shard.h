// The HDF5 shard: tokenized documents and their images, as `muse-data build`
// writes them and the loader reads them. docs/formats.md is the layout's
// reference; in short, version 1 holds
//
//   /tokens           int32 (n_tokens)                 documents back to back, BOS ... EOS each
//   /doc_offsets      int64 (n_documents + 1)          document d is tokens[off[d], off[d+1])
//   /images           uint8 (n_images, H, W, C)        one size per shard
//   /image_positions  int64 (n_images)                 index in /tokens of image i's <image> token
//   /loss_starts      int64 (n_documents), optional    first token of document d whose
//                                                      prediction counts (absent: 0 for all)
//
// and root attributes format = "muse-shard", version = 1, vocab_size,
// image_token_id, pad_token_id, n_tokens, n_documents, n_images. The HDF5
// file starts at byte 512, after a header holding the CRC-32C of the whole
// file (shard_checksum.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace muse::data {

inline constexpr std::string_view kShardFormat = "muse-shard";
inline constexpr int64_t kShardVersion = 1;

// One shard in memory. Invariants (checked by write_shard and by readers):
// doc_offsets rises strictly from 0 to tokens.size(); every token id is in
// [0, vocab_size); image_positions rises strictly and names exactly the
// tokens equal to image_token_id; images holds H*W*C bytes per position;
// loss_starts is empty or holds, per document, a value in [0, its length].
struct Shard {
  int64_t vocab_size = 0;
  int32_t image_token_id = 0;  // -1: the tokenizer has no image token
  int32_t pad_token_id = 0;
  int64_t image_height = 1;                // H, >= 1 even when the shard has no image
  int64_t image_width = 1;                 // W
  int64_t image_channels = 3;              // C: 1 (grayscale) or 3 (RGB)
  std::vector<int32_t> tokens;             // (n_tokens)
  std::vector<int64_t> doc_offsets = {0};  // (n_documents + 1)
  std::vector<int64_t> image_positions;    // (n_images)
  std::vector<uint8_t> images;             // (n_images, H, W, C)
  // (n_documents) stored-token index, relative to the document's first token,
  // of the first token whose prediction counts; empty = 0 for every document.
  std::vector<int64_t> loss_starts;

  int64_t n_documents() const { return static_cast<int64_t>(doc_offsets.size()) - 1; }
  int64_t n_images() const { return static_cast<int64_t>(image_positions.size()); }
  int64_t image_bytes() const { return image_height * image_width * image_channels; }

  // Appends one document. `images` holds one H*W*C image per image_token_id
  // in `tokens`, in order. Predictions of document[0, loss_start) do not
  // count; the first nonzero loss_start creates loss_starts (0 for the
  // documents before). Throws std::invalid_argument when the image counts
  // differ or loss_start is outside [0, document.size()].
  void add_document(std::span<const int32_t> document, std::span<const uint8_t> document_images,
                    int64_t loss_start = 0);
};

// Writes `shard` to a temporary file beside `path` with its checksum header,
// flushes it to disk and renames it to `path`: a shard under its final name
// is always complete. The bytes depend on `shard` alone (no timestamps).
// Returns the file's size in bytes. Throws std::invalid_argument when the
// shard breaks an invariant, std::runtime_error naming the file when writing
// fails (the temporary file is removed).
int64_t write_shard(const std::filesystem::path& path, const Shard& shard);

// The root attributes and extents of a shard file.
struct ShardHeader {
  int64_t version = 0;
  int64_t vocab_size = 0;
  int32_t image_token_id = 0;
  int32_t pad_token_id = 0;
  int64_t n_tokens = 0;
  int64_t n_documents = 0;
  int64_t n_images = 0;
  int64_t image_height = 0;
  int64_t image_width = 0;
  int64_t image_channels = 0;
};

// An open shard file. Opening first reads the whole file and checks it
// against its checksum (shard_checksum.h), before libhdf5 reads any of it;
// it then validates the format and version attributes, the presence, types
// and extents of the datasets, and the document offsets, image positions and
// loss starts; reading tokens validates their ids. Every failure is a
// DataError "FILE: problem", naming the dataset or attribute where there is
// one. Reads may run on several threads (this HDF5 build is thread-safe).
class ShardReader {
 public:
  explicit ShardReader(std::filesystem::path path);
  ~ShardReader();
  ShardReader(ShardReader&&) noexcept;
  ShardReader& operator=(ShardReader&&) noexcept;

  const std::filesystem::path& path() const { return path_; }
  const ShardHeader& header() const { return header_; }
  const std::vector<int64_t>& doc_offsets() const { return doc_offsets_; }
  const std::vector<int64_t>& image_positions() const { return image_positions_; }
  // (n_documents), or empty when the shard has no /loss_starts (0 for all).
  const std::vector<int64_t>& loss_starts() const { return loss_starts_; }

  // tokens[begin, end). Throws DataError for an id outside the vocabulary, an
  // image position whose token is not image_token_id, or an image_token_id
  // token without an image.
  std::vector<int32_t> read_tokens(int64_t begin, int64_t end) const;
  // Image `index` (H, W, C) into `out`, which holds exactly H*W*C bytes.
  void read_image(int64_t index, std::span<uint8_t> out) const;
  // The whole shard, every token validated.
  Shard read_all() const;

 private:
  friend void add_shard_checksum(const std::filesystem::path& path);
  enum class ChecksumCheck { kVerify, kSkipToAddOne };
  ShardReader(std::filesystem::path path, ChecksumCheck checksum);

  struct Handles;
  std::filesystem::path path_;
  std::unique_ptr<Handles> handles_;  // [not null]
  ShardHeader header_;
  std::vector<int64_t> doc_offsets_;      // (n_documents + 1)
  std::vector<int64_t> image_positions_;  // (n_images)
  std::vector<int64_t> loss_starts_;      // (n_documents) or empty
};

// ShardReader(path).read_all().
Shard read_shard(const std::filesystem::path& path);

// Gives `path`, a shard written without a checksum (by muse-data before
// shards had one, or by another tool), its checksum header: the shard must
// pass every check of ShardReader and every token id is validated, then a
// copy behind the header replaces the file (write_sealed_copy, renamed over
// it). Throws DataError naming the file when a check fails (the file is left
// as it was), std::runtime_error when writing fails.
void add_shard_checksum(const std::filesystem::path& path);

}  // namespace muse::data
