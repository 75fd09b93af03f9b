// libFuzzer target: reading a shard file from its raw bytes. The whole-file
// checksum comes first (data/shard_checksum.h), so a mutated shard must be
// refused before libhdf5 reads any of it; fuzz_shard_content covers the
// reader's checks behind the checksum. Any input must read or raise
// DataError, never crash.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "data/data_error.h"
#include "data/shard.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/muse_fuzz_shard_" + std::to_string(::getpid()) + ".h5";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    (void)muse::data::read_shard(path);
  } catch (const muse::data::DataError&) {
  }
  return 0;
}
