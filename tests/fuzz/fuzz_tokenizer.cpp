// libFuzzer target: loading a tokenizer.json (then encoding and decoding
// with it). Any input must load or raise TokenizerError, never crash.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "data/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path =
      "/tmp/muse_fuzz_tokenizer_" + std::to_string(::getpid()) + ".json";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    const muse::data::Tokenizer t = muse::data::Tokenizer::load(path);
    // Decomposed, invalid and plain text: with an NFC normalizer, every path of it.
    const auto ids = t.encode("Hello <image> world 123 cafe\u0301 \xff\u0301 <|end_of_text|>");
    (void)t.decode(ids);
  } catch (const muse::data::TokenizerError&) {
  }
  return 0;
}
