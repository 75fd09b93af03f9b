// Writing GGUF v3 files (ggml/llama.cpp): a header of typed key/value
// metadata and tensor descriptions, then the tensor data, each tensor padded
// to the alignment (32). Keys carry exactly the value types llama.cpp's
// loader checks (docs/export.md). The file is PATH.tmp until finish()
// flushes it and renames it.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace muse::formats {

inline constexpr uint64_t kGgufAlignment = 32;

class GgufWriter {
 public:
  struct TensorInfo {
    std::string name;            // < 64 bytes
    std::vector<int64_t> shape;  // PyTorch order (row-major); written reversed (ggml order)
    at::ScalarType dtype;        // kFloat, kHalf or kBFloat16
  };

  explicit GgufWriter(std::filesystem::path path);
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Metadata, in the order added (before write_header).
  void add_uint32(const std::string& key, uint32_t value);
  void add_float32(const std::string& key, float value);
  void add_bool(const std::string& key, bool value);
  void add_string(const std::string& key, const std::string& value);
  void add_string_array(const std::string& key, const std::vector<std::string>& values);
  void add_int32_array(const std::string& key, const std::vector<int32_t>& values);
  void add_tensor(TensorInfo info);

  // Writes the header; then write_tensor for every tensor in the order added.
  void write_header();
  void write_tensor(const std::string& name, const at::Tensor& values);
  void finish();
  int64_t data_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The ggml type id of a dtype: F32 0, F16 1, BF16 30.
uint32_t ggml_type(at::ScalarType dtype);

}  // namespace muse::formats
