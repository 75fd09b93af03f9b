// The safetensors format (Hugging Face): an 8-byte little-endian header size
// N, an N-byte JSON header naming each tensor's dtype, shape and byte range,
// then the data. The reader enforces the reference implementation's
// validation rules (docs/export.md); the writer streams tensors one at a
// time into a temporary file renamed when complete.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/safetensors_header.h"

namespace muse::formats {

// A validated safetensors file. Construction reads and checks the header:
// size within the file and at most kSafetensorsMaxHeader, UTF-8 JSON with no
// duplicate key, a string-to-string __metadata__, known dtypes, byte ranges
// that tile the data buffer from 0 with no gap or overlap and match each
// shape, and a file that ends with the last tensor. Every failure is a
// checkpoints::CheckpointError naming the file (and the tensor).
class SafetensorsFile {
 public:
  explicit SafetensorsFile(std::filesystem::path path);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;

  const std::filesystem::path& path() const;
  const std::vector<SafetensorsEntry>& entries() const;  // in data order
  const std::map<std::string, std::string>& metadata() const;
  const SafetensorsEntry* find(const std::string& name) const;  // nullptr when absent
  // The tensor as fp32 with its shape; F32, F16 and BF16 are read.
  at::Tensor read(const std::string& name) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes a safetensors file whose tensors are declared up front (so the
// header is written first) and then written one at a time, in declared
// order. The file is PATH.tmp until finish() flushes it and renames it to
// PATH; a writer destroyed before finish() removes the temporary file.
class SafetensorsWriter {
 public:
  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
  };
  // `dtype` is kFloat, kHalf or kBFloat16 for every tensor; metadata always
  // holds "format": "pt" (transformers requires it).
  SafetensorsWriter(std::filesystem::path path, const std::vector<Tensor>& tensors,
                    at::ScalarType dtype, std::map<std::string, std::string> metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // The next declared tensor's values (any float dtype; converted).
  void write(const std::string& name, const at::Tensor& values);
  void finish();
  int64_t data_bytes() const;  // the tensors' bytes (the header not counted)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "F32", "F16", "BF16" for the dtypes the writer supports.
std::string safetensors_dtype(at::ScalarType dtype);

}  // namespace muse::formats
