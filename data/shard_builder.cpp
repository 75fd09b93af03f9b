#include "data/shard_builder.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "data/data_error.h"
#include "data/image.h"
#include "data/jsonl.h"
#include "data/prompts.h"
#include "data/shard.h"

namespace muse::data {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kRecordsPerWorker = 64;  // records one worker handles per chunk

struct Line {
  int64_t number = 0;  // from 1
  std::string text;
};

// One record, tokenized with its images decoded; or what is wrong with it.
struct Processed {
  std::vector<int32_t> tokens;
  int64_t loss_start = 0;
  std::vector<uint8_t> pixels;  // (n_images, S, S, C)
  std::string error;
};

struct SpecialIds {
  std::vector<int32_t> bos;
  int32_t eos = 0, pad = 0;
  int32_t image = -1;  // -1: the tokenizer has none (a text-only model)
  const TokenRoles* roles = nullptr;
};

Processed process(const Line& line, const fs::path& base_dir, const BuildOptions& options,
                  const Tokenizer& tokenizer, const SpecialIds& ids) {
  Processed out;
  try {
    std::vector<std::string> images;
    if (options.prompt_key.empty()) {
      Record record = parse_record(line.text);
      out.tokens = ids.bos;
      const auto body = tokenizer.encode(record.text);
      out.tokens.insert(out.tokens.end(), body.begin(), body.end());
      out.tokens.push_back(ids.eos);
      images = std::move(record.images);
    } else {
      const std::string keys[] = {options.prompt_key, options.response_key};
      FieldRecord record = parse_fields(line.text, keys);
      Example example = encode_example(tokenizer, record.values[0], record.values[1]);
      out.tokens = std::move(example.tokens);
      out.loss_start = example.loss_start;
      images = std::move(record.images);
    }
    if (ids.image < 0 && !images.empty()) ids.roles->image_id();  // throws: no image token
    const auto image_tokens = std::count(out.tokens.begin(), out.tokens.end(), ids.image);
    if (image_tokens != static_cast<int64_t>(images.size())) {
      throw DataError("the tokenizer made " + std::to_string(image_tokens) + " image token(s) of " +
                      std::to_string(images.size()) + " " + std::string(kImage) + " marker(s)");
    }
    for (const auto& name : images) {
      const Image image =
          load_record_image(base_dir, name, options.image_size, options.image_channels);
      out.pixels.insert(out.pixels.end(), image.pixels.begin(), image.pixels.end());
    }
  } catch (const std::exception& e) {
    out.tokens.clear();
    out.error = e.what();
  }
  return out;
}

// Processes `lines` on up to `workers` threads; results in the lines' order.
std::vector<Processed> process_chunk(const std::vector<Line>& lines, const fs::path& base_dir,
                                     const BuildOptions& options, const Tokenizer& tokenizer,
                                     const SpecialIds& ids) {
  std::vector<Processed> results(lines.size());
  if (lines.empty()) return results;
  const auto n_threads = static_cast<size_t>(
      std::clamp<int64_t>(options.workers, 1, static_cast<int64_t>(lines.size())));
  const auto work = [&](size_t first) {
    for (size_t i = first; i < lines.size(); i += n_threads)
      results[i] = process(lines[i], base_dir, options, tokenizer, ids);
  };
  std::vector<std::jthread> threads;
  for (size_t t = 1; t < n_threads; ++t)
    threads.emplace_back(work, t);
  work(0);
  return results;
}

int64_t count_lines(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path.string() + ": cannot open");
  int64_t lines = 0;
  char last = '\n';
  char buffer[1 << 16];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    const auto n = static_cast<size_t>(in.gcount());
    lines += std::count(buffer, buffer + n, '\n');
    last = buffer[n - 1];
  }
  return lines + (last != '\n' ? 1 : 0);
}

bool is_blank(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

class Build {
 public:
  Build(const BuildOptions& options, const Tokenizer& tokenizer,
        const std::function<void(const BuildCounts&)>& on_progress)
      : options_(options), tokenizer_(tokenizer), on_progress_(on_progress) {
    const TokenRoles& roles = tokenizer.roles();
    ids_ = {.bos = roles.bos,
            .eos = roles.end(),
            .pad = roles.pad_id(),
            .image = roles.image.value_or(-1),
            .roles = &roles};
    shard_ = empty_shard();
  }

  void run() {
    for (const auto& input : options_.inputs)
      counts_.lines_total += count_lines(input);
    for (const auto& input : options_.inputs)
      read_input(input);
    if (shard_.n_documents() > 0) flush();
    if (counts_.documents == 0) throw DataError("no records in the input file(s)");
  }

  // Removes the shards written so far (after a failure).
  void remove_shards() const {
    for (const auto& path : counts_.shard_paths) {
      std::error_code ec;
      fs::remove(path, ec);
    }
  }

  const BuildCounts& counts() const { return counts_; }

 private:
  Shard empty_shard() const {
    Shard s;
    s.vocab_size = tokenizer_.vocab_size();
    s.image_token_id = ids_.image;
    s.pad_token_id = ids_.pad;
    s.image_height = options_.image_size;
    s.image_width = options_.image_size;
    s.image_channels = options_.image_channels;
    return s;
  }

  void read_input(const fs::path& input) {
    std::ifstream in(input, std::ios::binary);
    if (!in) throw DataError(input.string() + ": cannot open");
    const fs::path base_dir = input.parent_path();
    const auto chunk_size =
        static_cast<size_t>(kRecordsPerWorker * std::max<int64_t>(1, options_.workers));
    int64_t number = 0;
    std::string text;
    bool more = true;
    while (more) {
      std::vector<Line> lines;
      int64_t lines_read = 0;
      while (lines.size() < chunk_size && (more = static_cast<bool>(std::getline(in, text)))) {
        ++number;
        ++lines_read;
        if (!is_blank(text)) lines.push_back({number, std::move(text)});
      }
      counts_.lines_done += lines_read;
      const auto results = process_chunk(lines, base_dir, options_, tokenizer_, ids_);
      for (size_t i = 0; i < results.size(); ++i) {
        if (!results[i].error.empty()) {
          throw DataError(input.string() + ":" + std::to_string(lines[i].number) + ": " +
                          results[i].error);
        }
        add(results[i]);
      }
      on_progress_(counts_);
    }
  }

  void add(const Processed& doc) {
    shard_.add_document(doc.tokens, doc.pixels, doc.loss_start);
    ++counts_.documents;
    counts_.tokens += static_cast<int64_t>(doc.tokens.size());
    counts_.images += static_cast<int64_t>(doc.pixels.size()) / shard_.image_bytes();
    if (static_cast<int64_t>(shard_.tokens.size()) >= options_.shard_tokens) flush();
  }

  void flush() {
    char name[32];
    std::snprintf(name, sizeof name, "shard_%06lld.h5", static_cast<long long>(counts_.shards));
    const fs::path path = options_.out_dir / name;
    // Recorded first: a failed write must not leave it behind either.
    counts_.shard_paths.push_back(path);
    counts_.bytes += write_shard(path, shard_);
    ++counts_.shards;
    shard_ = empty_shard();
  }

  const BuildOptions& options_;
  const Tokenizer& tokenizer_;
  const std::function<void(const BuildCounts&)>& on_progress_;
  SpecialIds ids_{};
  Shard shard_;
  BuildCounts counts_;
};

}  // namespace

BuildCounts build_shards(const BuildOptions& options, const Tokenizer& tokenizer,
                         const std::function<void(const BuildCounts&)>& on_progress) {
  if (options.image_channels != 1 && options.image_channels != 3)
    throw std::invalid_argument("build_shards: image_channels must be 1 or 3");
  if (options.image_size < 1 || options.shard_tokens < 1)
    throw std::invalid_argument("build_shards: image_size and shard_tokens must be >= 1");
  if (options.prompt_key.empty() != options.response_key.empty())
    throw std::invalid_argument("build_shards: prompt_key and response_key go together");
  std::error_code ec;
  fs::create_directories(options.out_dir, ec);
  if (ec) {
    throw DataError(options.out_dir.string() + ": cannot create the output directory (" +
                    ec.message() + ")");
  }
  for (const auto& entry : fs::directory_iterator(options.out_dir)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("shard_") && name.ends_with(".h5")) {
      throw DataError(options.out_dir.string() + ": already holds shards (" + name +
                      "); remove them or choose another --out");
    }
  }
  Build build(options, tokenizer, on_progress);
  try {
    build.run();
  } catch (...) {
    build.remove_shards();
    throw;
  }
  return build.counts();
}

}  // namespace muse::data
