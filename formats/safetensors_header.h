// The safetensors header check, without LibTorch: the layout a file's header
// describes, validated as the reference implementation validates it. Used by
// SafetensorsFile and by the fuzzer.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace muse::formats {

// The reference implementation's limit on the header (MAX_HEADER_SIZE).
inline constexpr int64_t kSafetensorsMaxHeader = 100'000'000;

struct SafetensorsEntry {
  std::string name;
  std::string dtype;           // "F32", "BF16", ...
  std::vector<int64_t> shape;  // row-major
  int64_t begin = 0;           // byte range in the data buffer
  int64_t end = 0;
};

struct SafetensorsLayout {
  std::vector<SafetensorsEntry> entries;  // in data order
  std::map<std::string, std::string> metadata;
  int64_t data_start = 0;  // file offset of the data buffer
};

// The layout of the file `path` of `size` bytes whose first 8 bytes declare a
// header of `declared` bytes, given that header (empty when `declared` is out
// of bounds: the check then fails on the size). Throws checkpoints::CheckpointError
// "PATH: problem" naming the tensor at fault.
SafetensorsLayout check_safetensors(const std::string& path, int64_t size, uint64_t declared,
                                    std::string_view header);

}  // namespace muse::formats
