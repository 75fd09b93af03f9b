// Sharded checkpoints: every rank writes the slices of the flat training
// tensors it holds, rank 0 writes a manifest in global coordinates, and a
// checkpoint is read back by asking for any global range of any tensor, so a
// checkpoint saved on N ranks loads on M ranks (resharding is range
// arithmetic). docs/checkpoints.md describes the layout:
//
//   RUN/checkpoints/step_NNNNNNNN/
//     manifest.json     format, step, world size, model config and unit
//                       layout, every tensor's global numel and, per rank,
//                       which global range its file holds, where, and the
//                       CRC-32C of those bytes
//     rank_RRRRR.bin    that rank's slices, raw little-endian fp32, and its
//                       rank state blob
//     config.yaml       the resolved config of the run that saved it
//   RUN/LATEST          "step_NNNNNNNN\n", the last complete checkpoint
//
// Writing goes to step_NNNNNNNN.tmp/, every file is flushed to disk, then the
// directory is renamed and LATEST replaced (atomically) last; a crash at any
// point leaves the previous checkpoint and LATEST intact.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "checkpoints/checkpoint_error.h"
#include "comm/communicator.h"
#include "model/model_config.h"

namespace muse::checkpoints {

// This rank's slice of one flat fp32 tensor of the training state: elements
// [begin, begin + data.numel()) of a global tensor of `global_numel` elements.
struct ShardedTensor {
  std::string name;          // e.g. "block.3/param", "block.3/exp_avg"
  int64_t global_numel = 0;  // the unpadded global size
  int64_t begin = 0;         // first global element held here
  at::Tensor data;           // (n) fp32, contiguous, CPU or device; n may be 0
};

// "UNIT/what", the checkpoint name of a unit's tensor ("block.3/param").
inline std::string unit_tensor_name(const std::string& unit, const std::string& what) {
  return unit + "/" + what;
}

struct SaveRequest {
  int64_t step = 0;                    // optimizer steps taken
  model::ModelConfig model;            // written to the manifest (with its unit layout)
  std::string config_yaml;             // the run's resolved config, saved as config.yaml
  std::string train_state;             // JSON object, the same on every rank (rank 0's is saved)
  std::string rank_state;              // this rank's opaque bytes (e.g. RNG state)
  std::vector<ShardedTensor> tensors;  // same names, global sizes and order on every rank
};

// Saves `request` as RUN_DIR/checkpoints/step_NNNNNNNN (collective: every rank
// of `comm` calls it with its slices; RUN_DIR must be on a file system every
// rank sees), updates RUN_DIR/LATEST, then deletes the oldest complete
// checkpoints older than this one beyond the newest `keep` (>= 1, counting
// this one) and leftovers of interrupted saves up to this step. Saving a
// step that already has a checkpoint replaces it. Returns the checkpoint
// directory. Throws CheckpointError on every rank when any rank fails: the
// failed rank's "PATH: problem", which the other ranks repeat with
// " (on rank R)" appended; nothing is left under the final name then. (A
// collective that fails throws comm::DistError, as everywhere.)
std::filesystem::path save_checkpoint(const std::filesystem::path& run_dir,
                                      const SaveRequest& request, comm::Communicator& comm,
                                      int64_t keep);

// The checkpoint a user names: a checkpoint directory (holding manifest.json),
// or a run directory, meaning the one its LATEST names. Throws
// CheckpointError when there is none.
std::filesystem::path resolve_checkpoint(const std::filesystem::path& path);

// The newest complete checkpoint of a run directory, or an empty path when it
// has no LATEST (a fresh run). Throws CheckpointError when LATEST names a
// checkpoint that is missing.
std::filesystem::path latest_checkpoint(const std::filesystem::path& run_dir);

// One range of a saved tensor to read: global elements
// [begin, begin + out.numel()) of tensor `name`, into `out` (fp32,
// contiguous, any device).
struct ReadRequest {
  std::string name;
  int64_t begin = 0;
  at::Tensor out;
};

// A checkpoint opened for reading: the manifest is parsed and validated on
// open; tensor bytes are read (and their checksums verified) on demand, and
// nothing but the manifest is kept in memory. Const members may be called
// from several threads at once.
class Checkpoint {
 public:
  // Throws CheckpointError naming manifest.json when it is missing, not
  // JSON, of another format or version, or inconsistent (ranges that do not
  // tile a tensor, a missing rank file, a file shorter than the manifest says).
  explicit Checkpoint(std::filesystem::path dir);
  ~Checkpoint();
  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;

  const std::filesystem::path& dir() const;
  int64_t step() const;
  int world_size() const;  // ranks that saved it
  const model::ModelConfig& model() const;
  const std::string& train_state() const;
  std::string config_yaml() const;
  std::vector<std::string> tensor_names() const;  // in saved order
  int64_t global_numel(const std::string& name) const;

  // Throws CheckpointError naming manifest.json when `expected` has another
  // shape than the saved model (any field of the architecture differs), with
  // the first differing key and both values.
  void check_model(const model::ModelConfig& expected) const;

  // Copies global elements [begin, begin + out.numel()) of tensor `name` into
  // `out` (fp32, contiguous, any device), from whichever rank files hold
  // them. Every file segment read is verified against its CRC-32C first.
  // Throws CheckpointError naming the file on a checksum mismatch or short
  // read, and naming the tensor when it is unknown or the range is outside it.
  // A device `out` is filled through a host copy of the range.
  void read(const std::string& name, int64_t begin, const at::Tensor& out) const;

  // read() of many ranges at once, e.g. all of a rank's state on resume.
  // Every request is checked before any byte is read. Then each rank file
  // is opened once and read in file order, with the disk kept ahead of the
  // reader across segments; each segment is read and verified once however
  // many requests share it, straight into the output of a request that
  // covers it whole. The same errors as read(); after one, the outputs
  // hold unspecified values.
  void read(const std::vector<ReadRequest>& requests) const;

  // The rank state `rank` saved (verified); only meaningful when resuming on
  // the same world size.
  std::string rank_state(int rank) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;  // [not null]
};

}  // namespace muse::checkpoints
