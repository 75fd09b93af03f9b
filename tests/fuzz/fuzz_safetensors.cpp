// libFuzzer target: the safetensors header check on whole files (the 8-byte
// header size, the JSON header, the data). Any input must give a layout or a
// CheckpointError, never a crash.
#include <cstdint>
#include <string>
#include <string_view>

#include "checkpoints/checkpoint_error.h"
#include "formats/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | data[i];
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::string_view header =
      n <= size - 8 ? bytes.substr(8, static_cast<size_t>(n)) : std::string_view();
  try {
    (void)muse::formats::check_safetensors("fuzz.safetensors", static_cast<int64_t>(size), n,
                                           header);
  } catch (const muse::checkpoints::CheckpointError&) {
  }
  return 0;
}
