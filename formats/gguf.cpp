#include "formats/gguf.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "checkpoints/posix_file.h"

namespace muse::formats {
namespace {

// GGUF value types (gguf.md).
enum : uint32_t { kUint32 = 4, kInt32 = 5, kFloat32 = 6, kBool = 7, kString = 8, kArray = 9 };

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_string(std::string& out, const std::string& s) {
  put_u64(out, s.size());
  out += s;
}
uint64_t aligned(uint64_t x) {
  return x + (kGgufAlignment - x % kGgufAlignment) % kGgufAlignment;
}

}  // namespace

uint32_t ggml_type(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
      return 0;
    case at::kHalf:
      return 1;
    case at::kBFloat16:
      return 30;
    default:
      throw std::invalid_argument("gguf: unsupported dtype " + std::string(c10::toString(dtype)));
  }
}

struct GgufWriter::Impl {
  std::filesystem::path path, tmp;
  std::string metadata;  // encoded key/value pairs
  uint64_t n_kv = 0;
  std::vector<TensorInfo> tensors;
  std::vector<uint64_t> offsets;  // file offset of each tensor's data
  size_t next = 0;
  uint64_t data_start = 0, data_bytes = 0, written_end = 0;
  std::unique_ptr<checkpoints::detail::PosixFile> file;
  bool finished = false;
};

GgufWriter::GgufWriter(std::filesystem::path path) : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->tmp = path.string() + ".tmp";
}

GgufWriter::~GgufWriter() {
  if (impl_->file && !impl_->finished) {
    std::error_code ignored;
    std::filesystem::remove(impl_->tmp, ignored);
  }
}

void GgufWriter::add_uint32(const std::string& key, uint32_t value) {
  put_string(impl_->metadata, key);
  put_u32(impl_->metadata, kUint32);
  put_u32(impl_->metadata, value);
  ++impl_->n_kv;
}

void GgufWriter::add_float32(const std::string& key, float value) {
  uint32_t bits = 0;
  static_assert(sizeof bits == sizeof value);
  std::memcpy(&bits, &value, sizeof bits);
  put_string(impl_->metadata, key);
  put_u32(impl_->metadata, kFloat32);
  put_u32(impl_->metadata, bits);
  ++impl_->n_kv;
}

void GgufWriter::add_bool(const std::string& key, bool value) {
  put_string(impl_->metadata, key);
  put_u32(impl_->metadata, kBool);
  impl_->metadata.push_back(value ? 1 : 0);
  ++impl_->n_kv;
}

void GgufWriter::add_string(const std::string& key, const std::string& value) {
  put_string(impl_->metadata, key);
  put_u32(impl_->metadata, kString);
  put_string(impl_->metadata, value);
  ++impl_->n_kv;
}

void GgufWriter::add_string_array(const std::string& key, const std::vector<std::string>& values) {
  put_string(impl_->metadata, key);
  put_u32(impl_->metadata, kArray);
  put_u32(impl_->metadata, kString);
  put_u64(impl_->metadata, values.size());
  for (const std::string& v : values)
    put_string(impl_->metadata, v);
  ++impl_->n_kv;
}

void GgufWriter::add_int32_array(const std::string& key, const std::vector<int32_t>& values) {
  put_string(impl_->metadata, key);
  put_u32(impl_->metadata, kArray);
  put_u32(impl_->metadata, kInt32);
  put_u64(impl_->metadata, values.size());
  for (int32_t v : values)
    put_u32(impl_->metadata, static_cast<uint32_t>(v));
  ++impl_->n_kv;
}

void GgufWriter::add_tensor(TensorInfo info) {
  if (info.name.size() >= 64)
    throw std::invalid_argument("gguf: tensor name too long: " + info.name);
  if (info.shape.size() > 4) throw std::invalid_argument("gguf: more than 4 dims: " + info.name);
  (void)ggml_type(info.dtype);
  impl_->tensors.push_back(std::move(info));
}

void GgufWriter::write_header() {
  Impl& w = *impl_;
  std::string header = "GGUF";
  put_u32(header, 3);
  put_u64(header, w.tensors.size());
  put_u64(header, w.n_kv);
  header += w.metadata;
  uint64_t offset = 0;
  std::vector<uint64_t> relative;
  for (const TensorInfo& t : w.tensors) {
    put_string(header, t.name);
    put_u32(header, static_cast<uint32_t>(t.shape.size()));
    uint64_t n = 1;
    for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) {  // ggml order: innermost first
      put_u64(header, static_cast<uint64_t>(*d));
      n *= static_cast<uint64_t>(*d);
    }
    put_u32(header, ggml_type(t.dtype));
    put_u64(header, offset);
    relative.push_back(offset);
    offset = aligned(offset + n * c10::elementSize(t.dtype));
  }
  w.data_start = aligned(header.size());
  header.resize(w.data_start, '\0');
  w.data_bytes = offset;
  for (uint64_t r : relative)
    w.offsets.push_back(w.data_start + r);
  w.file = std::make_unique<checkpoints::detail::PosixFile>(
      checkpoints::detail::PosixFile::create(w.tmp));
  w.file->write_at(header.data(), header.size(), 0);
}

void GgufWriter::write_tensor(const std::string& name, const at::Tensor& values) {
  Impl& w = *impl_;
  if (!w.file) throw std::logic_error("GgufWriter: write_header first");
  if (w.next >= w.tensors.size() || w.tensors[w.next].name != name)
    throw std::logic_error("GgufWriter: '" + name + "' is not the next declared tensor");
  const TensorInfo& t = w.tensors[w.next];
  if (values.sizes() != at::IntArrayRef(t.shape))
    throw std::logic_error("GgufWriter: '" + name + "' has the wrong shape");
  const at::Tensor bytes = values.detach().to(at::kCPU, t.dtype).contiguous();
  w.file->write_at(bytes.data_ptr(), bytes.nbytes(), static_cast<int64_t>(w.offsets[w.next]));
  w.written_end = w.offsets[w.next] + bytes.nbytes();
  ++w.next;
}

void GgufWriter::finish() {
  Impl& w = *impl_;
  if (w.next != w.tensors.size())
    throw std::logic_error("GgufWriter: not every declared tensor was written");
  // The last tensor's padding belongs to the file too.
  const uint64_t end = std::max(w.data_start + w.data_bytes, w.data_start);
  const char zero = 0;
  if (end > w.written_end && end > w.data_start)
    w.file->write_at(&zero, 1, static_cast<int64_t>(end) - 1);
  w.file->sync();
  w.file->close();
  std::filesystem::rename(w.tmp, w.path);
  w.finished = true;
}

int64_t GgufWriter::data_bytes() const {
  return static_cast<int64_t>(impl_->data_bytes);
}

}  // namespace muse::formats
