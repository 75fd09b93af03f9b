#include "checkpoints/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "checkpoints/checkpoint.h"
#include "checkpoints/posix_file.h"

namespace muse::checkpoints {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// Bits per element of every dtype the format defines (safetensors' Dtype).
int64_t dtype_bits(const std::string& dtype) {
  static const std::map<std::string, int64_t> bits = {
      {"BOOL", 8},    {"U8", 8},          {"I8", 8},          {"F8_E5M2", 8}, {"F8_E4M3", 8},
      {"F8_E8M0", 8}, {"F8_E4M3FNUZ", 8}, {"F8_E5M2FNUZ", 8}, {"I16", 16},    {"U16", 16},
      {"F16", 16},    {"BF16", 16},       {"I32", 32},        {"U32", 32},    {"F32", 32},
      {"I64", 64},    {"U64", 64},        {"F64", 64},        {"C64", 64},    {"F4", 4},
      {"F6_E2M3", 6}, {"F6_E3M2", 6}};
  const auto it = bits.find(dtype);
  return it == bits.end() ? 0 : it->second;
}

[[noreturn]] void bad(const std::filesystem::path& path, const std::string& what) {
  throw CheckpointError(path.string() + ": " + what);
}

uint64_t read_le64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}

// a * b, or nullopt on int64 overflow.
std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a) return std::nullopt;
  return a * b;
}

}  // namespace

std::string safetensors_dtype(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
      return "F32";
    case at::kHalf:
      return "F16";
    case at::kBFloat16:
      return "BF16";
    default:
      throw std::invalid_argument("safetensors: unsupported dtype " +
                                  std::string(c10::toString(dtype)));
  }
}

// ---- reader ----

struct SafetensorsFile::Impl {
  std::filesystem::path path;
  detail::PosixFile file;
  int64_t data_start = 0;
  std::vector<SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;
};

SafetensorsFile::SafetensorsFile(std::filesystem::path path) {
  detail::PosixFile file = detail::PosixFile::open_read(path);
  const int64_t size = file.size();
  if (size < 8) bad(path, "not a safetensors file: " + std::to_string(size) + " bytes");
  unsigned char prefix[8];
  file.read_at(prefix, 8, 0);
  const uint64_t n = read_le64(prefix);
  if (n > static_cast<uint64_t>(kSafetensorsMaxHeader)) {
    bad(path, "header of " + std::to_string(n) + " bytes is over the limit of " +
                  std::to_string(kSafetensorsMaxHeader));
  }
  if (static_cast<int64_t>(n) > size - 8) {
    bad(path, "header of " + std::to_string(n) + " bytes runs past the end of the file (" +
                  std::to_string(size) + " bytes)");
  }
  std::string header(n, '\0');
  file.read_at(header.data(), n, 8);
  if (header.empty() || header.front() != '{') bad(path, "header does not start with '{'");

  // Duplicate top-level keys are an error (the JSON library keeps the last).
  std::set<std::string> seen;
  std::string duplicate;
  const json::parser_callback_t no_duplicates = [&](int depth, json::parse_event_t event,
                                                    json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 &&
        !seen.insert(parsed.get<std::string>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  json j;
  try {
    j = json::parse(header, no_duplicates);
  } catch (const json::exception& e) {
    bad(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!duplicate.empty()) bad(path, "tensor '" + duplicate + "' appears twice in the header");
  if (!j.is_object()) bad(path, "header is not a JSON object");

  auto impl = std::make_unique<Impl>(Impl{.path = path,
                                          .file = std::move(file),
                                          .data_start = 8 + static_cast<int64_t>(n),
                                          .entries = {},
                                          .metadata = {}});
  for (const auto& [name, info] : j.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) bad(path, "__metadata__ is not an object of strings");
      for (const auto& [k, v] : info.items()) {
        if (!v.is_string()) bad(path, "__metadata__ value of '" + k + "' is not a string");
        impl->metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") ||
        !info.contains("data_offsets") || !info["dtype"].is_string() || !info["shape"].is_array() ||
        !info["data_offsets"].is_array() || info["data_offsets"].size() != 2) {
      bad(path, where + "needs dtype, shape and data_offsets [begin, end]");
    }
    SafetensorsEntry e{.name = name, .dtype = info["dtype"].get<std::string>(), .shape = {}};
    if (dtype_bits(e.dtype) == 0) bad(path, where + "unknown dtype '" + e.dtype + "'");
    for (const json& d : info["shape"]) {
      if (!d.is_number_unsigned()) bad(path, where + "shape holds a negative or non-integer size");
      e.shape.push_back(d.get<int64_t>());
    }
    for (int i = 0; i < 2; ++i) {
      if (!info["data_offsets"][i].is_number_unsigned())
        bad(path, where + "data_offsets must be non-negative integers");
    }
    e.begin = info["data_offsets"][0].get<int64_t>();
    e.end = info["data_offsets"][1].get<int64_t>();
    impl->entries.push_back(std::move(e));
  }

  // The byte ranges tile the data buffer: sorted by offset, each begins where
  // the previous ends, from 0, and holds exactly its shape's bytes.
  std::sort(impl->entries.begin(), impl->entries.end(), [](const auto& a, const auto& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  int64_t expected = 0;
  for (const SafetensorsEntry& e : impl->entries) {
    const std::string where = "tensor '" + e.name + "': ";
    if (e.begin != expected) {
      bad(path, where + "data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                    "] " + (e.begin < expected ? "overlap" : "leave a gap before") +
                    " the previous tensor (which ends at " + std::to_string(expected) + ")");
    }
    if (e.end < e.begin) bad(path, where + "data_offsets end before they begin");
    std::optional<int64_t> count = 1;
    for (int64_t d : e.shape)
      if (count) count = checked_mul(*count, d);
    const std::optional<int64_t> bits =
        count ? checked_mul(*count, dtype_bits(e.dtype)) : std::nullopt;
    if (!bits) bad(path, where + "shape overflows");
    if (*bits % 8 != 0) bad(path, where + "shape does not fill whole bytes");
    if (e.end - e.begin != *bits / 8) {
      bad(path, where + "holds " + std::to_string(e.end - e.begin) + " bytes, its shape needs " +
                    std::to_string(*bits / 8));
    }
    expected = e.end;
  }
  if (impl->data_start + expected != size) {
    bad(path, "the tensors end at byte " + std::to_string(impl->data_start + expected) +
                  " but the file has " + std::to_string(size) +
                  (impl->data_start + expected > size ? " (truncated)" : " (trailing bytes)"));
  }
  impl_ = std::move(impl);
}

SafetensorsFile::~SafetensorsFile() = default;
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;

const std::filesystem::path& SafetensorsFile::path() const {
  return impl_->path;
}
const std::vector<SafetensorsEntry>& SafetensorsFile::entries() const {
  return impl_->entries;
}
const std::map<std::string, std::string>& SafetensorsFile::metadata() const {
  return impl_->metadata;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  for (const SafetensorsEntry& e : impl_->entries)
    if (e.name == name) return &e;
  return nullptr;
}

at::Tensor SafetensorsFile::read(const std::string& name) const {
  const SafetensorsEntry* e = find(name);
  if (!e) bad(impl_->path, "no tensor '" + name + "'");
  at::ScalarType type;
  if (e->dtype == "F32") {
    type = at::kFloat;
  } else if (e->dtype == "F16") {
    type = at::kHalf;
  } else if (e->dtype == "BF16") {
    type = at::kBFloat16;
  } else {
    bad(impl_->path,
        "tensor '" + name + "': dtype " + e->dtype + " cannot be loaded (F32, F16 or BF16)");
  }
  at::Tensor raw = at::empty(e->shape, at::TensorOptions().dtype(type));
  impl_->file.read_at(raw.data_ptr(), static_cast<size_t>(e->end - e->begin),
                      impl_->data_start + e->begin);
  return raw.to(at::kFloat);
}

// ---- writer ----

struct SafetensorsWriter::Impl {
  std::filesystem::path path, tmp;
  detail::PosixFile file;
  at::ScalarType dtype;
  std::vector<Tensor> tensors;
  std::vector<int64_t> offsets;  // file offset of each tensor
  size_t next = 0;
  int64_t data_bytes = 0;
  bool finished = false;
};

SafetensorsWriter::SafetensorsWriter(std::filesystem::path path, const std::vector<Tensor>& tensors,
                                     at::ScalarType dtype,
                                     std::map<std::string, std::string> metadata) {
  const std::string dt = safetensors_dtype(dtype);
  const int64_t elem = static_cast<int64_t>(c10::elementSize(dtype));
  metadata["format"] = "pt";
  ordered_json header;
  header["__metadata__"] = metadata;
  int64_t offset = 0;
  std::vector<int64_t> begins;
  for (const Tensor& t : tensors) {
    int64_t n = 1;
    for (int64_t d : t.shape)
      n *= d;
    header[t.name] = {
        {"dtype", dt}, {"shape", t.shape}, {"data_offsets", {offset, offset + n * elem}}};
    begins.push_back(offset);
    offset += n * elem;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-aligned
  const std::filesystem::path tmp = path.string() + ".tmp";
  impl_ = std::make_unique<Impl>(Impl{.path = path,
                                      .tmp = tmp,
                                      .file = detail::PosixFile::create(tmp),
                                      .dtype = dtype,
                                      .tensors = tensors,
                                      .offsets = {},
                                      .next = 0,
                                      .data_bytes = offset,
                                      .finished = false});
  unsigned char prefix[8];
  for (int i = 0; i < 8; ++i)
    prefix[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));
  impl_->file.write_at(prefix, 8, 0);
  impl_->file.write_at(text.data(), text.size(), 8);
  for (int64_t b : begins)
    impl_->offsets.push_back(8 + static_cast<int64_t>(text.size()) + b);
}

SafetensorsWriter::~SafetensorsWriter() {
  if (impl_ && !impl_->finished) {
    std::error_code ignored;
    std::filesystem::remove(impl_->tmp, ignored);
  }
}

void SafetensorsWriter::write(const std::string& name, const at::Tensor& values) {
  Impl& w = *impl_;
  if (w.next >= w.tensors.size() || w.tensors[w.next].name != name) {
    throw std::logic_error("SafetensorsWriter: '" + name + "' is not the next declared tensor");
  }
  const Tensor& t = w.tensors[w.next];
  if (values.sizes() != at::IntArrayRef(t.shape)) {
    throw std::logic_error("SafetensorsWriter: '" + name + "' has the wrong shape");
  }
  const at::Tensor bytes = values.detach().to(at::kCPU, w.dtype).contiguous();
  w.file.write_at(bytes.data_ptr(), bytes.nbytes(), w.offsets[w.next]);
  ++w.next;
}

void SafetensorsWriter::finish() {
  Impl& w = *impl_;
  if (w.next != w.tensors.size()) {
    throw std::logic_error("SafetensorsWriter: " + std::to_string(w.tensors.size() - w.next) +
                           " declared tensor(s) were not written");
  }
  w.file.sync();
  w.file.close();
  std::filesystem::rename(w.tmp, w.path);
  w.finished = true;
}

int64_t SafetensorsWriter::data_bytes() const {
  return impl_->data_bytes;
}

}  // namespace muse::checkpoints
