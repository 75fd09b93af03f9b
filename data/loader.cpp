#include "data/loader.h"

#include <ATen/ATen.h>
#include <glob.h>

#include <algorithm>
#include <cassert>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>

#include "config/schema.h"
#include "config/splitmix64.h"
#include "data/data_error.h"
#include "data/shard.h"

namespace muse::data {
namespace {

namespace fs = std::filesystem;

// The splitmix64 generator (config/splitmix64.h).
class Random {
 public:
  Random(int64_t seed, int64_t stream) : state_(static_cast<uint64_t>(seed)) {
    state_ = next() ^ (static_cast<uint64_t>(stream) * 0xd1b54a32d192ed03ull);
  }
  uint64_t next() {
    const uint64_t z = config::splitmix64(state_);
    state_ += config::kSplitmix64Step;
    return z;
  }
  // Uniform in [0, n), without modulo bias.
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x = next();
    while (x >= limit)
      x = next();
    return x % n;
  }

 private:
  uint64_t state_;
};

// A document of a shard, located for packing.
struct Document {
  int32_t shard = 0;
  int64_t token_begin = 0;  // stored tokens [token_begin, token_end) of the shard
  int64_t token_end = 0;
  int64_t image_begin = 0;  // its images [image_begin, image_end) of the shard
  int64_t image_end = 0;
  int64_t length = 0;      // positions after expansion: tokens + images * (P - 1)
  int64_t loss_start = 0;  // stored tokens [0, loss_start) of the document are never targets
};

// How one epoch's stream is laid out.
struct EpochPlan {
  std::vector<int64_t> order;      // documents in stream order
  std::vector<int64_t> doc_start;  // (n_documents + 1) stream position of order[j]
  std::vector<int64_t> row_start;  // (R + 1) stream position of row k; the last is the length
  int64_t rows() const { return static_cast<int64_t>(row_start.size()) - 1; }
};

// One position of the expanded stream.
struct Position {
  int32_t token = 0;
  int32_t piece = 0;  // which document piece of the row
  // Predicting this position counts: a text token at or after its document's
  // loss start (image patches are inputs, never predictions).
  bool target = false;
  int32_t shard = 0;
  int64_t image = -1;  // >= 0 at the first placeholder of an image: its index in the shard
};

}  // namespace

std::string LoaderState::to_json() const {
  nlohmann::ordered_json j = {{"seed", seed},
                              {"epoch", epoch},
                              {"sequence", sequence},
                              {"seq_len", seq_len},
                              {"image_tokens", image_tokens},
                              {"shuffle", shuffle},
                              {"n_documents", n_documents},
                              {"n_tokens", n_tokens}};
  return j.dump();
}

LoaderState LoaderState::from_json(std::string_view text) {
  try {
    const auto j = nlohmann::json::parse(text);
    LoaderState s;
    s.seed = j.at("seed").get<int64_t>();
    s.epoch = j.at("epoch").get<int64_t>();
    s.sequence = j.at("sequence").get<int64_t>();
    s.seq_len = j.at("seq_len").get<int64_t>();
    s.image_tokens = j.at("image_tokens").get<int64_t>();
    s.shuffle = j.at("shuffle").get<bool>();
    s.n_documents = j.at("n_documents").get<int64_t>();
    s.n_tokens = j.at("n_tokens").get<int64_t>();
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw DataError(std::string("loader state: ") + e.what());
  }
}

std::vector<int64_t> pack_rows(int64_t length, std::span<const int64_t> run_starts,
                               int64_t run_length, int64_t seq_len) {
  std::vector<int64_t> starts;
  starts.reserve(static_cast<size_t>(length / seq_len + 2));
  auto run = run_starts.begin();
  int64_t s = 0;
  while (s < length) {
    starts.push_back(s);
    int64_t e = std::min(s + seq_len, length);
    // The last run starting before e; the row may not end inside it.
    while (run != run_starts.end() && *run < e)
      ++run;
    if (run != run_starts.begin()) {
      const int64_t last = *std::prev(run);
      if (last > s && last + run_length > e) e = last;
    }
    s = e;
  }
  starts.push_back(length);
  return starts;
}

RowRange rank_rows(int64_t batch_size, int rank, int world_size) {
  const int64_t per_rank = batch_size / world_size;
  return {rank * per_rank, per_rank};
}

std::vector<fs::path> resolve_shards(const std::string& pattern) {
  std::vector<fs::path> paths;
  std::error_code ec;
  if (fs::is_directory(pattern, ec)) {
    for (const auto& entry : fs::directory_iterator(pattern, ec)) {
      if (entry.is_regular_file() && entry.path().extension() == ".h5")
        paths.push_back(entry.path());
    }
    if (ec) throw DataError(pattern + ": cannot list the directory (" + ec.message() + ")");
  } else {
    glob_t matches{};
    if (::glob(pattern.c_str(), 0, nullptr, &matches) == 0) {
      for (size_t i = 0; i < matches.gl_pathc; ++i) {
        if (fs::is_regular_file(matches.gl_pathv[i], ec)) paths.emplace_back(matches.gl_pathv[i]);
      }
    }
    ::globfree(&matches);
  }
  std::sort(paths.begin(), paths.end());
  if (paths.empty()) {
    throw DataError("data.shards: no shard files in '" + pattern +
                    "' (a directory of *.h5 files or a glob pattern; build shards with "
                    "muse-data build)");
  }
  return paths;
}

LoaderOptions loader_options(const DataConfig& config) {
  LoaderOptions o;
  o.shards = resolve_shards(config.shards);
  o.seq_len = config.seq_len;
  o.batch_size = config.batch_size;
  o.shuffle = config.shuffle;
  return o;
}

struct Loader::Impl {
  LoaderOptions options;
  int rank = 0;
  int world_size = 1;
  std::vector<ShardReader> shards;
  std::vector<Document> documents;
  int64_t n_tokens = 0;
  int64_t length = 0;  // positions of every epoch's stream
  int32_t image_token_id = 0;
  int32_t pad_token_id = 0;
  int64_t image_height = 0, image_width = 0, image_channels = 0;
  LoaderState state;
  std::map<int64_t, EpochPlan> plans;  // the current epoch's and the next one's

  void open_shards();
  const EpochPlan& plan(int64_t epoch);
  void expand(const Document& d, int64_t lo, int64_t hi, int32_t piece,
              std::vector<Position>& out) const;
  void fill_row(const EpochPlan& p, int64_t row, int64_t b, int64_t* tokens, int64_t* targets,
                int32_t* segments, std::vector<int64_t>& slots,
                std::vector<std::pair<int32_t, int64_t>>& images) const;
};

void Loader::Impl::open_shards() {
  const int64_t P = options.image_tokens;
  for (const auto& path : options.shards)
    shards.emplace_back(path);
  // Shards of one training set come from one tokenizer and hold one image
  // size; the model's expectations, when given, win.
  const ShardHeader& first = shards.front().header();
  image_token_id = first.image_token_id;
  pad_token_id = first.pad_token_id;
  const ShardHeader* with_images = &first;
  for (const auto& s : shards) {
    if (s.header().n_images > 0) {
      with_images = &s.header();
      break;
    }
  }
  image_height = options.image_size > 0 ? options.image_size : with_images->image_height;
  image_width = options.image_size > 0 ? options.image_size : with_images->image_width;
  image_channels =
      options.image_channels > 0 ? options.image_channels : with_images->image_channels;
  const std::string first_name = shards.front().path().string();

  for (size_t i = 0; i < shards.size(); ++i) {
    const ShardHeader& h = shards[i].header();
    const std::string name = shards[i].path().string();
    const auto mismatch = [&](const char* attribute, int64_t value, int64_t expected,
                              const std::string& expected_from) {
      throw DataError(name + ": attribute '" + attribute + "': " + std::to_string(value) +
                      " differs from " + std::to_string(expected) + " of " + expected_from);
    };
    if (h.image_token_id != image_token_id)
      mismatch("image_token_id", h.image_token_id, image_token_id, first_name);
    if (h.pad_token_id != pad_token_id)
      mismatch("pad_token_id", h.pad_token_id, pad_token_id, first_name);
    if (options.vocab_size > 0 && h.vocab_size > options.vocab_size) {
      throw DataError(name + ": attribute 'vocab_size': " + std::to_string(h.vocab_size) +
                      " exceeds the model's vocabulary of " + std::to_string(options.vocab_size));
    }
    if (h.vocab_size != first.vocab_size)
      mismatch("vocab_size", h.vocab_size, first.vocab_size, first_name);
    if (h.n_images > 0 && (h.image_height != image_height || h.image_width != image_width ||
                           h.image_channels != image_channels)) {
      throw DataError(name + ": /images: images of " + std::to_string(h.image_height) + "x" +
                      std::to_string(h.image_width) + "x" + std::to_string(h.image_channels) +
                      ", expected " + std::to_string(image_height) + "x" +
                      std::to_string(image_width) + "x" + std::to_string(image_channels) +
                      " (H x W x C)");
    }
    const auto& offsets = shards[i].doc_offsets();
    const auto& positions = shards[i].image_positions();
    const auto& loss_starts = shards[i].loss_starts();
    for (size_t d = 0; d + 1 < offsets.size(); ++d) {
      Document doc;
      doc.shard = static_cast<int32_t>(i);
      doc.token_begin = offsets[d];
      doc.token_end = offsets[d + 1];
      doc.image_begin =
          std::lower_bound(positions.begin(), positions.end(), doc.token_begin) - positions.begin();
      doc.image_end =
          std::lower_bound(positions.begin(), positions.end(), doc.token_end) - positions.begin();
      doc.length = doc.token_end - doc.token_begin + (doc.image_end - doc.image_begin) * (P - 1);
      if (!loss_starts.empty()) doc.loss_start = loss_starts[d];
      documents.push_back(doc);
      length += doc.length;
    }
    n_tokens += h.n_tokens;
  }
  if (documents.empty()) {
    throw DataError(shards.front().path().string() + ": no documents in the " +
                    std::to_string(shards.size()) + " shard file(s)");
  }
}

const EpochPlan& Loader::Impl::plan(int64_t epoch) {
  if (auto it = plans.find(epoch); it != plans.end()) return it->second;
  const int64_t P = options.image_tokens;
  EpochPlan p;
  p.order.resize(documents.size());
  std::iota(p.order.begin(), p.order.end(), 0);
  if (options.shuffle) {
    Random random(state.seed, epoch);
    for (size_t i = p.order.size() - 1; i > 0; --i)
      std::swap(p.order[i], p.order[random.below(i + 1)]);
  }
  p.doc_start.resize(documents.size() + 1);
  std::vector<int64_t> run_starts;
  for (size_t j = 0; j < p.order.size(); ++j) {
    const Document& d = documents[static_cast<size_t>(p.order[j])];
    const auto& positions = shards[static_cast<size_t>(d.shard)].image_positions();
    for (int64_t k = d.image_begin; k < d.image_end; ++k) {
      run_starts.push_back(p.doc_start[j] + positions[static_cast<size_t>(k)] - d.token_begin +
                           (k - d.image_begin) * (P - 1));
    }
    p.doc_start[j + 1] = p.doc_start[j] + d.length;
  }
  p.row_start = pack_rows(length, run_starts, P, options.seq_len);
  return plans.emplace(epoch, std::move(p)).first->second;
}

// Appends positions [lo, hi) of document `d`'s expanded form to `out`.
void Loader::Impl::expand(const Document& d, int64_t lo, int64_t hi, int32_t piece,
                          std::vector<Position>& out) const {
  const int64_t P = options.image_tokens;
  const ShardReader& shard = shards[static_cast<size_t>(d.shard)];
  const auto& positions = shard.image_positions();
  const auto run_start = [&](int64_t k) {  // expanded offset of image k's first placeholder
    return positions[static_cast<size_t>(k)] - d.token_begin + (k - d.image_begin) * (P - 1);
  };
  // Rows never start inside an image's placeholders (pack_rows), so `lo`
  // falls on a stored token: the one after the images whose runs precede it.
  int64_t k = d.image_begin;
  while (k < d.image_end && run_start(k) < lo)
    ++k;
  assert(k == d.image_begin || run_start(k - 1) + P <= lo);
  int64_t stored = d.token_begin + lo - (k - d.image_begin) * (P - 1);
  const std::vector<int32_t> ids =
      shard.read_tokens(stored, std::min(d.token_end, stored + (hi - lo)));
  int64_t emitted = 0;
  for (size_t i = 0; i < ids.size() && emitted < hi - lo; ++i, ++stored) {
    if (k < d.image_end && positions[static_cast<size_t>(k)] == stored) {
      for (int64_t q = 0; q < P && emitted < hi - lo; ++q, ++emitted)
        out.push_back({ids[i], piece, false, d.shard, q == 0 ? k : -1});
      ++k;
    } else {
      out.push_back({ids[i], piece, stored - d.token_begin >= d.loss_start, d.shard, -1});
      ++emitted;
    }
  }
}

// Writes row `row` of the plan into batch row `b`: T positions of tokens,
// targets and segments (already filled with padding), and the row's images.
void Loader::Impl::fill_row(const EpochPlan& p, int64_t row, int64_t b, int64_t* tokens,
                            int64_t* targets, int32_t* segments, std::vector<int64_t>& slots,
                            std::vector<std::pair<int32_t, int64_t>>& images) const {
  const int64_t T = options.seq_len;
  const int64_t s = p.row_start[static_cast<size_t>(row)];
  const int64_t e = p.row_start[static_cast<size_t>(row) + 1];
  const int64_t end = std::min(e + 1, length);  // one more position: the last target
  std::vector<Position> positions;
  positions.reserve(static_cast<size_t>(end - s));
  auto j = static_cast<size_t>(std::upper_bound(p.doc_start.begin(), p.doc_start.end(), s) -
                               p.doc_start.begin() - 1);
  for (int32_t piece = 0; j < p.order.size() && p.doc_start[j] < end; ++j, ++piece) {
    const Document& d = documents[static_cast<size_t>(p.order[j])];
    expand(d, std::max(s, p.doc_start[j]) - p.doc_start[j],
           std::min(end, p.doc_start[j + 1]) - p.doc_start[j], piece, positions);
  }
  for (int64_t i = 0; i < e - s; ++i) {
    const Position& at = positions[static_cast<size_t>(i)];
    tokens[b * T + i] = at.token;
    segments[b * T + i] = at.piece + 1;
    if (i + 1 < static_cast<int64_t>(positions.size())) {
      const Position& next = positions[static_cast<size_t>(i) + 1];
      if (next.piece == at.piece && next.target) targets[b * T + i] = next.token;
    }
    if (at.image >= 0) {
      slots.push_back(b);
      slots.push_back(i);
      images.emplace_back(at.shard, at.image);
    }
  }
}

Loader::Loader(LoaderOptions options, int rank, int world_size, int64_t seed)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = std::move(options);
  m.rank = rank;
  m.world_size = world_size;
  const LoaderOptions& o = m.options;
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    throw std::invalid_argument("Loader: rank " + std::to_string(rank) + " of " +
                                std::to_string(world_size));
  }
  if (o.seq_len < 1) throw config::ConfigError("data.seq_len", "data.seq_len: must be >= 1");
  if (o.batch_size < 1 || o.batch_size % world_size != 0) {
    throw config::ConfigError(
        "data.batch_size", "data.batch_size: " + std::to_string(o.batch_size) +
                               " sequences do not split evenly over " + std::to_string(world_size) +
                               " rank(s)");
  }
  if (o.image_tokens < 1 || o.image_tokens > o.seq_len) {
    throw config::ConfigError("data.seq_len", "data.seq_len: " + std::to_string(o.seq_len) +
                                                  " positions cannot hold an image of " +
                                                  std::to_string(o.image_tokens) +
                                                  " placeholder positions");
  }
  if (o.shards.empty()) throw DataError("data.shards: no shard files given");
  m.open_shards();
  m.state.seed = seed;
  m.state.seq_len = o.seq_len;
  m.state.image_tokens = o.image_tokens;
  m.state.shuffle = o.shuffle;
  m.state.n_documents = static_cast<int64_t>(m.documents.size());
  m.state.n_tokens = m.n_tokens;
}

Loader::~Loader() = default;
Loader::Loader(Loader&&) noexcept = default;
Loader& Loader::operator=(Loader&&) noexcept = default;

Batch Loader::next() {
  Impl& m = *impl_;
  const int64_t T = m.options.seq_len;
  const RowRange mine = rank_rows(m.options.batch_size, m.rank, m.world_size);
  const int64_t B = mine.count;
  Batch batch;
  batch.tokens = at::full({B, T}, m.pad_token_id, at::kLong);
  batch.targets = at::full({B, T}, kIgnoreIndex, at::kLong);
  batch.segment_ids = at::zeros({B, T}, at::kInt);
  std::vector<int64_t> slots;                          // (I * 2)
  std::vector<std::pair<int32_t, int64_t>> image_ids;  // (I) shard, image
  for (int64_t b = 0; b < B; ++b) {
    int64_t epoch = m.state.epoch;
    int64_t row = m.state.sequence + mine.first + b;
    while (row >= m.plan(epoch).rows())
      row -= m.plan(epoch++).rows();
    m.fill_row(m.plan(epoch), row, b, batch.tokens.data_ptr<int64_t>(),
               batch.targets.data_ptr<int64_t>(), batch.segment_ids.data_ptr<int32_t>(), slots,
               image_ids);
  }
  const auto n_images = static_cast<int64_t>(image_ids.size());
  batch.images = at::empty({n_images, m.image_height, m.image_width, m.image_channels}, at::kByte);
  const int64_t image_bytes = m.image_height * m.image_width * m.image_channels;
  for (int64_t i = 0; i < n_images; ++i) {
    const auto [shard, index] = image_ids[static_cast<size_t>(i)];
    m.shards[static_cast<size_t>(shard)].read_image(
        index,
        {batch.images.data_ptr<uint8_t>() + i * image_bytes, static_cast<size_t>(image_bytes)});
  }
  batch.image_slots = at::empty({n_images, 2}, at::kLong);
  std::copy(slots.begin(), slots.end(), batch.image_slots.data_ptr<int64_t>());

  // Every rank moves past the whole global batch.
  m.state.sequence += m.options.batch_size;
  while (m.state.sequence >= m.plan(m.state.epoch).rows())
    m.state.sequence -= m.plan(m.state.epoch++).rows();
  std::erase_if(m.plans, [&](const auto& entry) { return entry.first < m.state.epoch; });
  return batch;
}

const LoaderState& Loader::state() const {
  return impl_->state;
}

void Loader::restore(const LoaderState& saved) {
  Impl& m = *impl_;
  const auto check = [&](const char* what, int64_t saved_value, int64_t value) {
    if (saved_value != value) {
      throw DataError(std::string("loader state: saved with ") + what + " " +
                      std::to_string(saved_value) + ", this loader has " + std::to_string(value) +
                      " (the saved position would name other sequences)");
    }
  };
  check("seed", saved.seed, m.state.seed);
  check("seq_len", saved.seq_len, m.state.seq_len);
  check("image_tokens", saved.image_tokens, m.state.image_tokens);
  check("shuffle", saved.shuffle, m.state.shuffle);
  check("n_documents", saved.n_documents, m.state.n_documents);
  check("n_tokens", saved.n_tokens, m.state.n_tokens);
  if (saved.epoch < 0 || saved.sequence < 0 || saved.sequence >= m.plan(saved.epoch).rows()) {
    throw DataError("loader state: epoch " + std::to_string(saved.epoch) + " has no sequence " +
                    std::to_string(saved.sequence));
  }
  m.state = saved;
  std::erase_if(m.plans, [&](const auto& entry) { return entry.first < m.state.epoch; });
}

int64_t Loader::sequences_in_epoch(int64_t epoch) {
  return impl_->plan(epoch).rows();
}

int64_t Loader::local_batch_size() const {
  return rank_rows(impl_->options.batch_size, impl_->rank, impl_->world_size).count;
}

int64_t Loader::n_documents() const {
  return static_cast<int64_t>(impl_->documents.size());
}

int64_t Loader::n_tokens() const {
  return impl_->n_tokens;
}

}  // namespace muse::data
