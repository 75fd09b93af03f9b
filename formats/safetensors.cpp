#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "checkpoints/checkpoint.h"
#include "checkpoints/posix_file.h"

namespace muse::formats {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

[[noreturn]] void bad(const std::filesystem::path& path, const std::string& what) {
  throw checkpoints::CheckpointError(path.string() + ": " + what);
}

uint64_t read_le64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
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
  checkpoints::detail::PosixFile file;
  int64_t data_start = 0;
  std::vector<SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;
};

SafetensorsFile::SafetensorsFile(std::filesystem::path path) {
  checkpoints::detail::PosixFile file = checkpoints::detail::PosixFile::open_read(path);
  const int64_t size = file.size();
  if (size < 8) bad(path, "not a safetensors file: " + std::to_string(size) + " bytes");
  unsigned char prefix[8];
  file.read_at(prefix, 8, 0);
  const uint64_t n = read_le64(prefix);
  // The header is read only when its declared size is plausible.
  std::string header;
  if (n <= static_cast<uint64_t>(kSafetensorsMaxHeader) && static_cast<int64_t>(n) <= size - 8) {
    header.resize(n);
    file.read_at(header.data(), n, 8);
  }
  SafetensorsLayout layout = check_safetensors(path.string(), size, n, header);
  impl_ = std::make_unique<Impl>(Impl{.path = path,
                                      .file = std::move(file),
                                      .data_start = layout.data_start,
                                      .entries = std::move(layout.entries),
                                      .metadata = std::move(layout.metadata)});
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
  checkpoints::detail::PosixFile file;
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
                                      .file = checkpoints::detail::PosixFile::create(tmp),
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

}  // namespace muse::formats
