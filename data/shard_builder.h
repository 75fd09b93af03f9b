// `muse-data build`: JSON Lines records (see jsonl.h) and their images become
// HDF5 shards (see shard.h) of about `shard_tokens` tokens each.
//
// Records are read in order; tokenizing and image decoding run on `workers`
// threads over chunks of records, and the results are appended in record
// order, so the shards do not depend on the number of workers. Each document
// is BOS + encode(text) + EOS, with one <image> token per image; a supervised
// example is BOS + encode(prompt) + encode(response) + EOS with its loss
// starting at the response (encode_example, prompts.h). A document is never
// split across shards, and a shard is written once it holds at least
// `shard_tokens` tokens.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace muse::data {

struct BuildOptions {
  std::vector<std::filesystem::path> inputs;  // JSON Lines files, read in this order
  std::filesystem::path out_dir;              // created if missing; must hold no shard_*.h5
  int64_t shard_tokens = 1 << 20;             // tokens per shard (at least; documents stay whole)
  int64_t image_size = 32;                    // images are resized to image_size x image_size
  int64_t image_channels = 3;                 // 1 (grayscale) or 3 (RGB)
  int64_t workers = 1;                        // threads that tokenize and decode
  // Both set: supervised examples from these keys (markers in the prompt),
  // with /loss_starts; both empty: documents from "text".
  std::string prompt_key;
  std::string response_key;
};

// Where a build stands; the last one is its result.
struct BuildCounts {
  int64_t lines_total = 0;  // lines of all inputs
  int64_t lines_done = 0;
  int64_t documents = 0;
  int64_t tokens = 0;
  int64_t images = 0;
  int64_t shards = 0;
  int64_t bytes = 0;  // of the shard files written
  std::vector<std::filesystem::path> shard_paths;
};

// Builds the shards; calls `on_progress` after every chunk of records. Throws
// DataError "FILE:LINE: problem" for a bad record (malformed JSON, a missing
// key, a marker count that differs from the images, a missing or undecodable
// image) and DataError for an output directory that already holds shards or
// inputs without records; std::invalid_argument for impossible options (one
// of prompt_key and response_key without the other); std::runtime_error when
// writing fails. Whatever the failure, the shards this build wrote are
// removed again, so an output directory never holds part of a build.
BuildCounts build_shards(const BuildOptions& options, const Tokenizer& tokenizer,
                         const std::function<void(const BuildCounts&)>& on_progress);

}  // namespace muse::data
