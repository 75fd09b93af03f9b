// Reading checkpoints: the manifest is parsed and checked once on open;
// tensor bytes are read on demand, a whole file segment at a time, so that
// every byte handed out has been checked against its CRC-32C; a batch of
// requests reads each rank file once, in file order. Also
// resolve_checkpoint and latest_checkpoint.
#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "checkpoints/checkpoint.h"
#include "checkpoints/manifest.h"
#include "checkpoints/posix_file.h"
#include "config/crc32c.h"

namespace muse::checkpoints {
namespace {

namespace fs = std::filesystem;
using config::crc32c;
using detail::Json;

// Bounds for sizes and offsets, so that byte arithmetic cannot overflow.
constexpr int64_t kMaxCount = std::numeric_limits<int64_t>::max() / 16;

// Elements [begin, begin + numel) of a tensor, at byte `offset` of a rank file.
struct Segment {
  int rank = 0;
  int64_t begin = 0;
  int64_t numel = 0;
  int64_t offset = 0;
  uint32_t crc = 0;
  int64_t end() const { return begin + numel; }
  int64_t bytes() const { return numel * static_cast<int64_t>(sizeof(float)); }
};

struct TensorEntry {
  std::string name;
  int64_t numel = 0;
  std::vector<Segment> segments = {};  // sorted by begin; they tile [0, numel)
};

struct RankEntry {
  fs::path file = {};
  int64_t size = 0;  // bytes the manifest says the file has
  int64_t state_offset = 0;
  int64_t state_size = 0;
  uint32_t state_crc = 0;
};

// Typed access to the manifest's JSON; every error names the key path,
// e.g. "tensors[3].shards[0].numel".
class Fields {
 public:
  explicit Fields(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& problem) const {
    throw CheckpointError(file_ + ": " + problem);
  }

  const Json& member(const Json& obj, const std::string& path, std::string_view key) const {
    const auto it = obj.find(std::string(key));
    if (it == obj.end()) fail(join(path, key) + " is missing");
    return *it;
  }
  int64_t integer(const Json& obj, const std::string& path, std::string_view key, int64_t lo = 0,
                  int64_t hi = kMaxCount) const {
    const Json& v = member(obj, path, key);
    if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi) {
      fail(join(path, key) + ": expected an integer in [" + std::to_string(lo) + ", " +
           std::to_string(hi) + "], got " + v.dump());
    }
    return v.get<int64_t>();
  }
  uint32_t crc(const Json& obj, const std::string& path) const {
    return static_cast<uint32_t>(integer(obj, path, "crc32c", 0, 0xFFFFFFFF));
  }
  std::string string(const Json& obj, const std::string& path, std::string_view key) const {
    const Json& v = member(obj, path, key);
    if (!v.is_string()) fail(join(path, key) + ": expected a string, got " + v.dump());
    return v.get<std::string>();
  }
  const Json& array(const Json& obj, const std::string& path, std::string_view key) const {
    const Json& v = member(obj, path, key);
    if (!v.is_array()) fail(join(path, key) + ": expected an array");
    return v;
  }
  const Json& object(const Json& obj, const std::string& path, std::string_view key) const {
    const Json& v = member(obj, path, key);
    if (!v.is_object()) fail(join(path, key) + ": expected an object");
    return v;
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }
  static std::string index(const std::string& path, size_t i) {
    return path + "[" + std::to_string(i) + "]";
  }

 private:
  std::string file_;
};

// Bytes read and checksummed at a time: the CRC reads them while they are
// still in the CPU cache.
constexpr int64_t kReadChunk = int64_t{4} << 20;

[[noreturn]] void fail_checksum(const fs::path& file, int64_t offset, size_t size,
                                const std::string& what) {
  throw CheckpointError(
      file.string() + ": checksum mismatch in " + what + " (bytes [" + std::to_string(offset) +
      ", " + std::to_string(offset + static_cast<int64_t>(size)) + ")): the file is corrupt");
}

void verify(uint32_t expected, const void* data, size_t size, const fs::path& file, int64_t offset,
            const std::string& what) {
  if (crc32c(data, size) != expected) fail_checksum(file, offset, size, what);
}

// Reads segment `s` of `file` into `data` and checks it against its CRC-32C,
// a chunk at a time. The disk is kept ahead by the kernel's own read-ahead:
// segments are read in file order through one descriptor, so it sees one
// sequential stream. (Explicit POSIX_FADV_WILLNEED hints fill the page cache
// with 4 KiB pages instead of the large folios of read-ahead, which made
// each byte cost more kernel time than the checksum.)
void read_segment(const detail::PosixFile& file, void* data, const Segment& s,
                  const std::string& what) {
  auto* p = static_cast<char*>(data);
  uint32_t crc = 0;
  for (int64_t done = 0; done < s.bytes();) {
    const int64_t n = std::min(kReadChunk, s.bytes() - done);
    file.read_at(p + done, static_cast<size_t>(n), s.offset + done);
    crc = crc32c(p + done, static_cast<size_t>(n), crc);
    done += n;
  }
  if (crc != s.crc) fail_checksum(file.path(), s.offset, static_cast<size_t>(s.bytes()), what);
}

// Where elements [from, from + numel) of a segment go: `to`, in the host
// buffer of request `request`.
struct Destination {
  float* to = nullptr;
  int64_t from = 0;
  int64_t numel = 0;
  size_t request = 0;
};

// A segment a batch of requests needs, and everywhere its elements go.
struct SegmentRead {
  const Segment* segment = nullptr;
  const std::string* tensor = nullptr;  // its name, for errors
  std::vector<Destination> destinations = {};
};

}  // namespace

struct Checkpoint::Impl {
  fs::path dir;
  std::string manifest_file;  // DIR/manifest.json, the prefix of manifest errors
  int64_t step = 0;
  int world_size = 0;
  model::ModelConfig model;
  std::string train_state;  // compact JSON
  int64_t config_size = 0;
  uint32_t config_crc = 0;
  std::vector<TensorEntry> tensors;  // saved order
  std::unordered_map<std::string, size_t> by_name;
  std::vector<RankEntry> ranks;

  [[noreturn]] void fail(const std::string& problem) const {
    throw CheckpointError(manifest_file + ": " + problem);
  }

  const TensorEntry& tensor(const std::string& name) const {
    const auto it = by_name.find(name);
    if (it == by_name.end()) fail("no tensor '" + name + "' in this checkpoint");
    return tensors[it->second];
  }

  // The tensor `request` reads, once checked: the tensor exists, the output
  // is a contiguous fp32 tensor, and the range lies inside the tensor.
  const TensorEntry& checked(const ReadRequest& request) const {
    const TensorEntry& t = tensor(request.name);
    const at::Tensor& out = request.out;
    if (!out.defined() || out.scalar_type() != at::kFloat || !out.is_contiguous()) {
      fail("tensor '" + request.name + "': the output must be a contiguous Float (fp32) tensor");
    }
    const int64_t begin = request.begin, n = out.numel();
    if (begin < 0 || begin > t.numel - n) {
      fail("tensor '" + request.name + "' has " + std::to_string(t.numel) +
           " elements; cannot read [" + std::to_string(begin) + ", " + std::to_string(begin + n) +
           ")");
    }
    return t;
  }

  void parse(const Json& root);
  void check_rank_files() const;
};

void Checkpoint::Impl::parse(const Json& root) {
  const Fields f(manifest_file);
  if (!root.is_object()) fail("expected a JSON object");
  const std::string format = f.string(root, "", "format");
  if (format != detail::kFormat)
    fail("format is '" + format + "', expected '" + std::string(detail::kFormat) + "'");
  const int64_t version = f.integer(root, "", "version", std::numeric_limits<int64_t>::min(),
                                    std::numeric_limits<int64_t>::max());
  if (version != detail::kVersion) {
    fail("version " + std::to_string(version) + " is not supported (this build reads version " +
         std::to_string(detail::kVersion) + ")");
  }
  step = f.integer(root, "", "step");
  world_size = static_cast<int>(f.integer(root, "", "world_size", 1, 1 << 24));
  train_state = f.object(root, "", "train_state").dump();
  model = detail::model_from_json(f.object(root, "", "model"), manifest_file);
  const Json& config = f.object(root, "", "config_yaml");
  config_size = f.integer(config, "config_yaml", "size");
  config_crc = f.crc(config, "config_yaml");

  const Json& rank_list = f.array(root, "", "ranks");
  if (static_cast<int64_t>(rank_list.size()) != world_size) {
    fail("ranks: lists " + std::to_string(rank_list.size()) + " ranks, world_size is " +
         std::to_string(world_size));
  }
  for (size_t r = 0; r < rank_list.size(); ++r) {
    const std::string path = Fields::index("ranks", r);
    const Json& entry = rank_list[r];
    if (!entry.is_object()) fail(path + ": expected an object");
    if (f.integer(entry, path, "rank") != static_cast<int64_t>(r))
      fail(path + ".rank: expected " + std::to_string(r));
    const std::string file = f.string(entry, path, "file");
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..")
      fail(path + ".file: expected a file name in the checkpoint directory, got '" + file + "'");
    RankEntry rank{.file = dir / file, .size = f.integer(entry, path, "size")};
    const std::string state_path = Fields::join(path, "state");
    const Json& state = f.object(entry, path, "state");
    rank.state_offset = f.integer(state, state_path, "offset");
    rank.state_size = f.integer(state, state_path, "size");
    rank.state_crc = f.crc(state, state_path);
    if (rank.state_offset + rank.state_size > rank.size)
      fail(state_path + ": bytes past the file's size " + std::to_string(rank.size));
    ranks.push_back(std::move(rank));
  }

  const Json& tensor_list = f.array(root, "", "tensors");
  for (size_t i = 0; i < tensor_list.size(); ++i) {
    const std::string path = Fields::index("tensors", i);
    const Json& entry = tensor_list[i];
    if (!entry.is_object()) fail(path + ": expected an object");
    TensorEntry t{.name = f.string(entry, path, "name"), .numel = f.integer(entry, path, "numel")};
    if (!by_name.emplace(t.name, tensors.size()).second)
      fail(path + ": tensor '" + t.name + "' is listed twice");
    const Json& shards = f.array(entry, path, "shards");
    for (size_t j = 0; j < shards.size(); ++j) {
      const std::string sp = Fields::index(Fields::join(path, "shards"), j);
      if (!shards[j].is_object()) fail(sp + ": expected an object");
      const Segment s{.rank = static_cast<int>(f.integer(shards[j], sp, "rank", 0, world_size - 1)),
                      .begin = f.integer(shards[j], sp, "begin"),
                      .numel = f.integer(shards[j], sp, "numel"),
                      .offset = f.integer(shards[j], sp, "offset"),
                      .crc = f.crc(shards[j], sp)};
      if (s.offset + s.bytes() > ranks[s.rank].size) {
        fail(sp + ": bytes past the size " + std::to_string(ranks[s.rank].size) + " of " +
             ranks[s.rank].file.filename().string());
      }
      if (s.numel > 0) t.segments.push_back(s);
    }
    std::sort(t.segments.begin(), t.segments.end(),
              [](const Segment& a, const Segment& b) { return a.begin < b.begin; });
    int64_t covered = 0;
    for (const Segment& s : t.segments) {
      if (s.begin != covered) {
        fail("tensor '" + t.name + "': shards do not tile its " + std::to_string(t.numel) +
             " elements: " + (s.begin > covered ? "gap" : "overlap") + " at element " +
             std::to_string(std::min(s.begin, covered)));
      }
      covered = s.end();
    }
    if (covered != t.numel) {
      fail("tensor '" + t.name + "': shards do not tile its " + std::to_string(t.numel) +
           " elements: elements from " + std::to_string(covered) + " on are missing");
    }
    tensors.push_back(std::move(t));
  }
}

void Checkpoint::Impl::check_rank_files() const {
  for (const RankEntry& rank : ranks) {
    std::error_code ec;
    const auto size = fs::file_size(rank.file, ec);
    if (ec) {
      throw CheckpointError(
          rank.file.string() + ": " +
          (ec == std::errc::no_such_file_or_directory
               ? "missing (the manifest lists " + std::to_string(world_size) + " rank files)"
               : "cannot stat (" + ec.message() + ")"));
    }
    if (static_cast<int64_t>(size) < rank.size) {
      throw CheckpointError(rank.file.string() + ": " + std::to_string(size) +
                            " bytes, the manifest says " + std::to_string(rank.size) +
                            " (truncated)");
    }
  }
}

Checkpoint::Checkpoint(std::filesystem::path dir) : impl_(std::make_unique<Impl>()) {
  impl_->dir = std::move(dir);
  const fs::path manifest = impl_->dir / detail::kManifestFile;
  impl_->manifest_file = manifest.string();
  std::error_code ec;
  if (!fs::exists(manifest, ec)) {
    impl_->fail(fs::is_directory(impl_->dir, ec) ? "missing: not a checkpoint directory"
                                                 : "missing: no such checkpoint directory");
  }
  Json root;
  try {
    root = Json::parse(detail::read_file(manifest));
  } catch (const Json::parse_error& e) {
    impl_->fail(std::string("not valid JSON: ") + e.what());
  }
  impl_->parse(root);
  impl_->check_rank_files();
}

Checkpoint::~Checkpoint() = default;
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;

const std::filesystem::path& Checkpoint::dir() const {
  return impl_->dir;
}
int64_t Checkpoint::step() const {
  return impl_->step;
}
int Checkpoint::world_size() const {
  return impl_->world_size;
}
const model::ModelConfig& Checkpoint::model() const {
  return impl_->model;
}
const std::string& Checkpoint::train_state() const {
  return impl_->train_state;
}

std::string Checkpoint::config_yaml() const {
  const fs::path path = impl_->dir / detail::kConfigFile;
  const std::string text = detail::read_file(path);
  if (static_cast<int64_t>(text.size()) != impl_->config_size) {
    throw CheckpointError(path.string() + ": " + std::to_string(text.size()) +
                          " bytes, the manifest says " + std::to_string(impl_->config_size));
  }
  verify(impl_->config_crc, text.data(), text.size(), path, 0, "the config");
  return text;
}

std::vector<std::string> Checkpoint::tensor_names() const {
  std::vector<std::string> names;
  for (const TensorEntry& t : impl_->tensors)
    names.push_back(t.name);
  return names;
}

int64_t Checkpoint::global_numel(const std::string& name) const {
  return impl_->tensor(name).numel;
}

void Checkpoint::check_model(const model::ModelConfig& expected) const {
  const auto saved = detail::architecture_fields(impl_->model);
  const auto wanted = detail::architecture_fields(expected);
  for (size_t i = 0; i < saved.size(); ++i) {
    if (saved[i].second != wanted[i].second) {
      impl_->fail(saved[i].first + ": checkpoint has " + saved[i].second + ", config has " +
                  wanted[i].second);
    }
  }
}

void Checkpoint::read(const std::string& name, int64_t begin, const at::Tensor& out) const {
  read(std::vector<ReadRequest>{{.name = name, .begin = begin, .out = out}});
}

void Checkpoint::read(const std::vector<ReadRequest>& requests) const {
  // The plan: every segment the requests touch, once, with its destinations.
  // Device outputs are filled through a host copy of their range.
  std::vector<at::Tensor> hosts(requests.size());
  std::vector<int64_t> segments_left(requests.size(), 0);  // before a device copy
  std::unordered_map<const Segment*, SegmentRead> needed;
  for (size_t i = 0; i < requests.size(); ++i) {
    const ReadRequest& r = requests[i];
    const TensorEntry& t = impl_->checked(r);
    const int64_t end = r.begin + r.out.numel();
    if (r.out.numel() == 0) continue;
    hosts[i] = r.out.is_cpu() ? r.out : at::empty(r.out.sizes(), at::kFloat);
    float* dst = hosts[i].data_ptr<float>();  // element `begin` of the tensor
    auto it = std::partition_point(t.segments.begin(), t.segments.end(),
                                   [&r](const Segment& s) { return s.end() <= r.begin; });
    for (; it != t.segments.end() && it->begin < end; ++it) {
      const int64_t lo = std::max(r.begin, it->begin);
      const int64_t hi = std::min(end, it->end());
      SegmentRead& read =
          needed.try_emplace(&*it, SegmentRead{.segment = &*it, .tensor = &t.name}).first->second;
      read.destinations.push_back(
          {.to = dst + (lo - r.begin), .from = lo - it->begin, .numel = hi - lo, .request = i});
      ++segments_left[i];
    }
  }
  std::vector<SegmentRead*> order;
  for (auto& [segment, read] : needed)
    order.push_back(&read);
  std::sort(order.begin(), order.end(), [](const SegmentRead* a, const SegmentRead* b) {
    return std::pair(a->segment->rank, a->segment->offset) <
           std::pair(b->segment->rank, b->segment->offset);
  });

  at::Tensor staging;  // for segments no request covers whole
  for (size_t first = 0; first < order.size();) {
    const int rank = order[first]->segment->rank;
    const detail::PosixFile file = detail::PosixFile::open_read(impl_->ranks[rank].file);
    file.advise_sequential();
    for (; first < order.size() && order[first]->segment->rank == rank; ++first) {
      const SegmentRead& read = *order[first];
      const int64_t numel = read.segment->numel;
      const auto& dests = read.destinations;
      const auto whole = std::find_if(dests.begin(), dests.end(), [numel](const Destination& d) {
        return d.from == 0 && d.numel == numel;
      });
      float* buffer = nullptr;
      if (whole != dests.end()) {
        buffer = whole->to;
      } else {
        if (!staging.defined() || staging.numel() < numel) staging = at::empty({numel}, at::kFloat);
        buffer = staging.data_ptr<float>();
      }
      read_segment(file, buffer, *read.segment, "tensor '" + *read.tensor + "'");
      for (auto d = dests.begin(); d != dests.end(); ++d) {
        // memmove: outputs of different requests may be the same memory.
        if (d != whole)
          std::memmove(d->to, buffer + d->from, static_cast<size_t>(d->numel) * sizeof(float));
        const ReadRequest& r = requests[d->request];
        if (--segments_left[d->request] == 0 && !r.out.is_cpu()) {
          r.out.copy_(hosts[d->request]);
          hosts[d->request].reset();
        }
      }
    }
  }
}

std::string Checkpoint::rank_state(int rank) const {
  if (rank < 0 || rank >= impl_->world_size) {
    impl_->fail("no rank state for rank " + std::to_string(rank) +
                ": the checkpoint was saved by " + std::to_string(impl_->world_size) + " ranks");
  }
  const RankEntry& r = impl_->ranks[rank];
  std::string state(static_cast<size_t>(r.state_size), '\0');
  const detail::PosixFile file = detail::PosixFile::open_read(r.file);
  file.read_at(state.data(), state.size(), r.state_offset);
  verify(r.state_crc, state.data(), state.size(), r.file, r.state_offset, "the rank state");
  return state;
}

std::filesystem::path latest_checkpoint(const std::filesystem::path& run_dir) {
  const fs::path latest = run_dir / detail::kLatestFile;
  std::error_code ec;
  if (!fs::exists(latest, ec)) return {};
  std::string name = detail::read_file(latest);
  while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back())))
    name.pop_back();
  const auto entry = detail::parse_step_entry(name);
  if (!entry || entry->leftover) {
    throw CheckpointError(latest.string() + ": expected a checkpoint name such as " +
                          detail::step_dir_name(100) + ", got '" + name + "'");
  }
  const fs::path dir = run_dir / detail::kCheckpointsDir / name;
  if (!fs::exists(dir / detail::kManifestFile, ec)) {
    throw CheckpointError(latest.string() + ": names " + name + ", but " + dir.string() +
                          " holds no " + std::string(detail::kManifestFile) +
                          " (deleted or moved?)");
  }
  return dir;
}

std::filesystem::path resolve_checkpoint(const std::filesystem::path& path) {
  std::error_code ec;
  if (fs::exists(path / detail::kManifestFile, ec)) return path;
  if (fs::exists(path / detail::kLatestFile, ec)) return latest_checkpoint(path);
  if (!fs::exists(path, ec)) throw CheckpointError(path.string() + ": no such directory");
  if (fs::exists(path / detail::kCheckpointsDir, ec))
    throw CheckpointError(path.string() + ": run directory without LATEST: no complete checkpoint");
  throw CheckpointError(path.string() +
                        ": neither a checkpoint directory (no manifest.json) nor a run directory "
                        "(no LATEST)");
}

}  // namespace muse::checkpoints
