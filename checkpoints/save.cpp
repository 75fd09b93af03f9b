// save_checkpoint: every rank writes its own file into step_N.tmp/, rank 0
// writes the manifest and publishes the directory. The ranks agree after each
// phase (one all-gather carrying a failure flag), so a failure anywhere
// becomes the same CheckpointError everywhere and nothing is published.
//
// Legend: N world size, T tensors in the request.
#include <ATen/ATen.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <functional>
#include <set>
#include <system_error>
#include <utility>

#include "checkpoints/checkpoint.h"
#include "checkpoints/manifest.h"
#include "checkpoints/posix_file.h"
#include "config/crc32c.h"
#include "config/files.h"
#include "config/schema.h"

namespace muse::checkpoints {
namespace {

namespace fs = std::filesystem;
using config::crc32c;
using detail::Json;

// The longest error text one rank shares with the others.
constexpr size_t kMaxSharedError = 4096;

// What a rank reports per tensor after writing its file: begin, numel, byte
// offset in the file, CRC-32C; then its rank state: offset, size, CRC-32C.
constexpr int64_t kSliceFields = 4;
constexpr int64_t kStateFields = 3;

// Collectives must run where the communicator moves data: NCCL only moves
// CUDA tensors, the MPI and single-rank backends CPU ones.
at::Device control_device(const comm::Communicator& comm, const SaveRequest& request) {
  if (comm.backend() != "nccl") return at::kCPU;
  for (const ShardedTensor& t : request.tensors)
    if (t.data.defined() && t.data.is_cuda()) return t.data.device();
  return at::Device(at::kCUDA);  // the current device, which the trainer has set
}

// Turns per-rank failures into the same outcome on every rank.
class Agreement {
 public:
  // `cleanup` runs on rank 0 before any rank throws; it must not throw.
  Agreement(comm::Communicator& comm, at::Device device, std::function<void()> cleanup)
      : comm_(comm), device_(device), cleanup_(std::move(cleanup)) {}

  // All-gathers `values` (the same count on every rank) with this rank's
  // failure flag and returns them as (N, values.size()). When any rank
  // failed, every rank throws: a failed rank its own error, the others the
  // error of the lowest failed rank.
  at::Tensor gather_or_fail(const std::string& error, const std::vector<int64_t>& values) {
    const auto n_values = static_cast<int64_t>(values.size());
    at::Tensor mine = at::empty({n_values + 1}, at::kLong);
    auto* p = mine.data_ptr<int64_t>();
    p[0] = static_cast<int64_t>(std::min(error.size(), kMaxSharedError));  // 0: no failure
    std::copy(values.begin(), values.end(), p + 1);
    const at::Tensor all =
        at::empty({comm_.size() * (n_values + 1)}, at::TensorOptions(at::kLong).device(device_));
    comm_.all_gather(all, mine.to(device_));
    const at::Tensor table = all.cpu().view({comm_.size(), n_values + 1});
    const auto* t = table.data_ptr<int64_t>();
    for (int r = 0; r < comm_.size(); ++r) {
      const int64_t length = t[r * (n_values + 1)];
      if (length > 0) fail_from(r, length, error);
    }
    return table.narrow(1, 1, n_values).contiguous();
  }

  // For a verdict every rank reached from the same gathered data.
  [[noreturn]] void fail_everywhere(const std::string& error) {
    finish_failure();
    if (comm_.rank() != 0) throw PeerCheckpointError(error);
    throw CheckpointError(error);
  }

 private:
  [[noreturn]] void fail_from(int failed_rank, int64_t length, const std::string& error) {
    at::Tensor text = at::empty({length}, at::kByte);
    if (comm_.rank() == failed_rank) std::copy_n(error.data(), length, text.data_ptr<uint8_t>());
    const at::Tensor on_device = text.to(device_);
    comm_.broadcast(on_device, failed_rank);
    text = on_device.cpu();
    std::string shared(reinterpret_cast<const char*>(text.data_ptr<uint8_t>()),
                       static_cast<size_t>(length));
    finish_failure();
    if (!error.empty()) throw CheckpointError(error);
    throw PeerCheckpointError(shared + " (on rank " + std::to_string(failed_rank) + ")");
  }

  // No rank returns before rank 0 has removed what the save left behind.
  void finish_failure() {
    if (comm_.rank() == 0) cleanup_();
    comm_.barrier();
  }

  comm::Communicator& comm_;
  at::Device device_;
  std::function<void()> cleanup_;
};

// FNV-1a over the names and global sizes, so ranks compare their tensor
// lists with one number each.
int64_t list_hash(const std::vector<ShardedTensor>& tensors) {
  uint64_t h = 0xcbf29ce484222325ULL;
  const auto mix = [&h](const void* data, size_t size) {
    for (size_t i = 0; i < size; ++i) {
      h ^= static_cast<const uint8_t*>(data)[i];
      h *= 0x100000001b3ULL;
    }
  };
  for (const ShardedTensor& t : tensors) {
    mix(t.name.data(), t.name.size() + 1);  // with the terminating NUL as separator
    mix(&t.global_numel, sizeof t.global_numel);
  }
  return std::bit_cast<int64_t>(h);
}

// Throws CheckpointError "DIR: tensor 'NAME': problem" for a request this
// rank cannot save.
void check_request(const SaveRequest& request, const fs::path& dir) {
  const auto fail = [&dir](const std::string& problem) {
    throw CheckpointError(dir.string() + ": " + problem);
  };
  try {
    request.model.validate();
  } catch (const config::ConfigError& e) {
    fail("invalid model config: " + (e.key().empty() ? "" : e.key() + ": ") + e.what());
  }
  std::set<std::string, std::less<>> names;
  for (const ShardedTensor& t : request.tensors) {
    const std::string what = "tensor '" + t.name + "'";
    if (t.name.empty()) fail("a tensor has an empty name");
    if (!names.insert(t.name).second) fail(what + " is listed twice");
    if (!t.data.defined()) fail(what + ": data is undefined");
    if (t.data.scalar_type() != at::kFloat)
      fail(what + ": data is " + std::string(c10::toString(t.data.scalar_type())) +
           ", expected Float (fp32)");
    if (!t.data.is_contiguous()) fail(what + ": data is not contiguous");
    const int64_t n = t.data.numel();
    if (t.global_numel < 0 || t.begin < 0 || t.begin > t.global_numel - n) {
      fail(what + ": slice [" + std::to_string(t.begin) + ", " + std::to_string(t.begin + n) +
           ") is outside a tensor of " + std::to_string(t.global_numel) + " elements");
    }
  }
}

// Rank 0's copy of the train state, which must be a JSON object ("" is {}).
Json parse_train_state(const std::string& text, const fs::path& dir) {
  if (text.empty()) return Json::object();
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::parse_error& e) {
    throw CheckpointError(dir.string() + ": train_state is not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw CheckpointError(dir.string() + ": train_state is not a JSON object");
  return j;
}

void remove_tree(const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) throw CheckpointError(path.string() + ": cannot remove (" + ec.message() + ")");
}

void rename_path(const fs::path& from, const fs::path& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0)
    detail::fail_errno(from, "cannot rename to " + to.string());
}

// Bytes checksummed and written at a time: small enough to be still in the
// CPU cache when write() copies them, large enough for few system calls.
constexpr size_t kWriteChunk = size_t{4} << 20;

// Writes `size` bytes at `offset` and returns their CRC-32C, a chunk at a
// time, starting each chunk's write-back at once: the disk writes while the
// CPU checksums the next chunk, instead of everything waiting for sync().
uint32_t write_checksummed(detail::PosixFile& file, const void* data, size_t size, int64_t offset) {
  const auto* p = static_cast<const char*>(data);
  uint32_t crc = 0;
  for (size_t done = 0; done < size;) {
    const size_t n = std::min(kWriteChunk, size - done);
    crc = crc32c(p + done, n, crc);
    file.write_at(p + done, n, offset + static_cast<int64_t>(done));
    file.start_writeback(offset + static_cast<int64_t>(done), n);
    done += n;
  }
  return crc;
}

// Writes this rank's slices, then its rank state, and flushes the file.
// Returns what gather_or_fail shares: kSliceFields per tensor, then
// kStateFields.
std::vector<int64_t> write_rank_file(const fs::path& path, const SaveRequest& request) {
  std::vector<int64_t> record;
  detail::PosixFile file = detail::PosixFile::create(path);
  int64_t offset = 0;
  for (const ShardedTensor& t : request.tensors) {
    const at::Tensor cpu = t.data.to(at::kCPU).contiguous();  // (n)
    const auto bytes = static_cast<size_t>(cpu.numel()) * sizeof(float);
    const uint32_t crc = write_checksummed(file, cpu.data_ptr<float>(), bytes, offset);
    record.insert(record.end(), {t.begin, cpu.numel(), offset, crc});
    offset += static_cast<int64_t>(bytes);
  }
  const std::string& state = request.rank_state;
  file.write_at(state.data(), state.size(), offset);
  record.insert(record.end(),
                {offset, static_cast<int64_t>(state.size()), crc32c(state.data(), state.size())});
  file.sync();
  file.close();
  return record;
}

// The gathered records as (N, T + 1, kSliceFields) accessors.
struct Records {
  const at::Tensor& table;  // (N, kSliceFields * T + kStateFields)
  const int64_t* slice(int rank, size_t tensor) const {
    return table.data_ptr<int64_t>() + rank * table.size(1) +
           static_cast<int64_t>(tensor) * kSliceFields;
  }
  const int64_t* state(int rank, size_t n_tensors) const { return slice(rank, n_tensors); }
};

// Every rank runs this on the same data: the slices of each tensor must
// cover it exactly once. Returns the problem, or empty.
std::string check_tiling(const SaveRequest& request, const Records& records, int world,
                         const fs::path& dir) {
  for (size_t i = 0; i < request.tensors.size(); ++i) {
    const ShardedTensor& t = request.tensors[i];
    std::vector<std::pair<int64_t, int64_t>> ranges;  // [begin, end)
    for (int r = 0; r < world; ++r) {
      const int64_t* s = records.slice(r, i);
      if (s[1] > 0) ranges.emplace_back(s[0], s[0] + s[1]);
    }
    std::sort(ranges.begin(), ranges.end());
    int64_t covered = 0;
    for (const auto& [begin, end] : ranges) {
      if (begin != covered) {
        return dir.string() + ": tensor '" + t.name + "': the ranks' slices do not tile its " +
               std::to_string(t.global_numel) + " elements: elements [" +
               std::to_string(std::min(begin, covered)) + ", " +
               std::to_string(std::max(begin, covered)) + ") are held by " +
               (begin > covered ? "no rank" : "two ranks");
      }
      covered = end;
    }
    if (covered != t.global_numel) {
      return dir.string() + ": tensor '" + t.name + "': the ranks' slices do not tile its " +
             std::to_string(t.global_numel) + " elements: elements [" + std::to_string(covered) +
             ", " + std::to_string(t.global_numel) + ") are held by no rank";
    }
  }
  return {};
}

Json build_manifest(const SaveRequest& request, const Json& train_state, const Records& records,
                    int world, const std::string& config_yaml) {
  Json m;
  m["format"] = detail::kFormat;
  m["version"] = detail::kVersion;
  m["step"] = request.step;
  m["world_size"] = world;
  m["train_state"] = train_state;
  m["model"] = detail::model_to_json(request.model);
  m["config_yaml"] = {{"file", detail::kConfigFile},
                      {"size", config_yaml.size()},
                      {"crc32c", crc32c(config_yaml.data(), config_yaml.size())}};
  const size_t n_tensors = request.tensors.size();
  Json ranks = Json::array();
  for (int r = 0; r < world; ++r) {
    const int64_t* s = records.state(r, n_tensors);
    ranks.push_back({{"rank", r},
                     {"file", detail::rank_file_name(r)},
                     {"size", s[0] + s[1]},
                     {"state", {{"offset", s[0]}, {"size", s[1]}, {"crc32c", s[2]}}}});
  }
  m["ranks"] = std::move(ranks);
  Json tensors = Json::array();
  for (size_t i = 0; i < n_tensors; ++i) {
    Json shards = Json::array();
    for (int r = 0; r < world; ++r) {
      const int64_t* s = records.slice(r, i);
      if (s[1] == 0) continue;  // a rank holding only padding has nothing to list
      shards.push_back(
          {{"rank", r}, {"begin", s[0]}, {"numel", s[1]}, {"offset", s[2]}, {"crc32c", s[3]}});
    }
    tensors.push_back({{"name", request.tensors[i].name},
                       {"numel", request.tensors[i].global_numel},
                       {"shards", std::move(shards)}});
  }
  m["tensors"] = std::move(tensors);
  m["units"] = detail::units_to_json(request.model);
  return m;
}

void warn(const std::string& message) {
  std::fprintf(stderr, "warning: %s\n", message.c_str());
}

// Deletes complete checkpoints older than `step` beyond the newest `keep`
// (counting `step` itself), and leftovers of interrupted saves up to `step`.
// Newer checkpoints (a run resumed from an older one) are left alone. A
// failure here does not undo a published checkpoint, so it only warns.
void prune(const fs::path& root, int64_t step, int64_t keep) {
  std::vector<std::pair<int64_t, fs::path>> older;
  try {
    for (const fs::directory_entry& e : fs::directory_iterator(root)) {
      const auto entry = detail::parse_step_entry(e.path().filename().string());
      if (!entry || entry->step > step) continue;
      std::error_code ec;
      if (entry->leftover) {
        fs::remove_all(e.path(), ec);
        if (ec) warn(e.path().string() + ": cannot remove leftover (" + ec.message() + ")");
      } else if (entry->step < step && fs::exists(e.path() / detail::kManifestFile, ec)) {
        older.emplace_back(entry->step, e.path());
      }
    }
  } catch (const std::exception& e) {
    warn(root.string() + ": cannot list old checkpoints (" + e.what() + ")");
    return;
  }
  std::sort(older.begin(), older.end(), std::greater<>());
  for (size_t i = static_cast<size_t>(keep - 1); i < older.size(); ++i) {
    // The manifest goes first: a half-deleted directory is no longer "complete".
    std::error_code ec;
    fs::remove(older[i].second / detail::kManifestFile, ec);
    if (!ec) fs::remove_all(older[i].second, ec);
    if (ec)
      warn(older[i].second.string() + ": cannot remove old checkpoint (" + ec.message() + ")");
  }
}

// Rank 0, once every rank file is on disk: manifest and config, then the
// rename into place and LATEST. On failure nothing but the previous
// checkpoint of this step (if any) is left under the final name.
void publish(const fs::path& run_dir, const fs::path& tmp_dir, const fs::path& final_dir,
             const Json& manifest, const std::string& config_yaml) {
  detail::write_file_synced(tmp_dir / detail::kManifestFile, manifest.dump(2) + "\n");
  detail::write_file_synced(tmp_dir / detail::kConfigFile, config_yaml);
  detail::sync_dir(tmp_dir);

  const fs::path root = final_dir.parent_path();
  fs::path previous;  // an earlier checkpoint of the same step, moved aside
  std::error_code ec;
  if (fs::exists(final_dir, ec)) {
    previous = final_dir.string() + ".old";
    remove_tree(previous);
    rename_path(final_dir, previous);
  }
  bool renamed = false;
  try {
    rename_path(tmp_dir, final_dir);
    renamed = true;
    detail::sync_dir(root);
    config::write_file_atomic(run_dir / detail::kLatestFile, final_dir.filename().string() + "\n");
  } catch (const std::exception& e) {
    // Back to step_N.tmp (the caller's cleanup removes it); the old one returns.
    if (renamed) std::rename(final_dir.c_str(), tmp_dir.c_str());
    if (!previous.empty()) std::rename(previous.c_str(), final_dir.c_str());
    throw CheckpointError(e.what());
  }
  // Published: from here on problems only warn.
  if (!previous.empty()) {
    fs::remove_all(previous, ec);
    if (ec) warn(previous.string() + ": cannot remove replaced checkpoint (" + ec.message() + ")");
  }
}

}  // namespace

std::filesystem::path save_checkpoint(const std::filesystem::path& run_dir,
                                      const SaveRequest& request, comm::Communicator& comm,
                                      int64_t keep) {
  const fs::path root = run_dir / detail::kCheckpointsDir;
  const std::string name = detail::step_dir_name(request.step);
  const fs::path final_dir = root / name;
  const fs::path tmp_dir = root / (name + ".tmp");
  // Arguments every rank passes alike fail alike, without communicating.
  if (keep < 1)
    throw CheckpointError(run_dir.string() + ": keep must be >= 1, got " + std::to_string(keep));
  if (request.step < 0) {
    throw CheckpointError(run_dir.string() + ": step must be >= 0, got " +
                          std::to_string(request.step));
  }
  const int rank = comm.rank();
  const int world = comm.size();
  const auto n_tensors = static_cast<int64_t>(request.tensors.size());
  Agreement agreement(comm, control_device(comm, request), [&tmp_dir] {
    std::error_code ec;
    fs::remove_all(tmp_dir, ec);
  });

  // 1. Every rank checks its request; rank 0 makes a fresh step_N.tmp/.
  std::string error;
  Json train_state;
  try {
    check_request(request, final_dir);
    if (rank == 0) {
      train_state = parse_train_state(request.train_state, final_dir);
      std::error_code ec;
      fs::create_directories(root, ec);
      if (ec) throw CheckpointError(root.string() + ": cannot create (" + ec.message() + ")");
      remove_tree(tmp_dir);  // a stale one from a crashed save of this step
      if (!fs::create_directory(tmp_dir, ec) || ec)
        throw CheckpointError(tmp_dir.string() + ": cannot create (" + ec.message() + ")");
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  const at::Tensor lists = agreement.gather_or_fail(error, {n_tensors, list_hash(request.tensors)});
  for (int r = 1; r < world; ++r) {
    if (lists[r].equal(lists[0])) continue;
    const int64_t count = lists[r][0].item<int64_t>();
    const int64_t count0 = lists[0][0].item<int64_t>();
    agreement.fail_everywhere(
        final_dir.string() + ": ranks disagree about the tensors to save: " +
        (count != count0
             ? "rank 0 lists " + std::to_string(count0) + ", rank " + std::to_string(r) +
                   " lists " + std::to_string(count)
             : "rank " + std::to_string(r) + "'s names or global sizes differ from rank 0's") +
        "; every rank must pass the same names and global sizes in the same order");
  }

  // 2. Every rank writes and flushes rank_RRRRR.bin.
  std::vector<int64_t> record;
  try {
    record = write_rank_file(tmp_dir / detail::rank_file_name(rank), request);
  } catch (const std::exception& e) {
    error = e.what();
    record.assign(static_cast<size_t>(kSliceFields * n_tensors + kStateFields), 0);
  }
  const at::Tensor table = agreement.gather_or_fail(error, record);  // (N, 4T + 3)
  const Records records{table};
  if (std::string problem = check_tiling(request, records, world, final_dir); !problem.empty())
    agreement.fail_everywhere(problem);

  // 3. Rank 0 writes the manifest, publishes the directory and LATEST, prunes.
  if (rank == 0) {
    try {
      const Json manifest =
          build_manifest(request, train_state, records, world, request.config_yaml);
      publish(run_dir, tmp_dir, final_dir, manifest, request.config_yaml);
      prune(root, request.step, keep);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  agreement.gather_or_fail(error, {});
  return final_dir;
}

}  // namespace muse::checkpoints
