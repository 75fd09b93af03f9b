// The whole-file checksum of shards: written by write_shard, checked before
// libhdf5 reads a byte (every flipped byte, a truncated or extended file, a
// shard without a checksum), and added to shards written without one.
#include "data/shard_checksum.h"

#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <string>
#include <vector>

#include "data/data_error.h"
#include "data/shard.h"
#include "tests/temp_dir.h"

namespace muse::data {
namespace {

namespace fs = std::filesystem;
using muse::testing::TempDir;

// Two documents, the second with an image.
Shard sample_shard() {
  Shard s;
  s.vocab_size = 40;
  s.image_token_id = 3;
  s.pad_token_id = 2;
  s.image_height = 2;
  s.image_width = 2;
  s.image_channels = 1;
  s.add_document(std::vector<int32_t>{0, 10, 11, 1}, {});
  s.add_document(std::vector<int32_t>{0, 3, 12, 1}, std::vector<uint8_t>{9, 8, 7, 6});
  return s;
}

std::string bytes_of(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// The message of the DataError that opening `path` raises ("" when none).
std::string open_error(const fs::path& path) {
  try {
    (void)ShardReader(path);
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

// Expects one line that names `path` and holds `fragment`.
void expect_error(const fs::path& path, const std::string& fragment) {
  const std::string message = open_error(path);
  EXPECT_EQ(message.rfind(path.string() + ": ", 0), 0u) << message;
  EXPECT_NE(message.find(fragment), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

TEST(ShardChecksum, WriteShardSealsTheFileAndWritesTheSameBytesEachTime) {
  TempDir dir;
  const int64_t size = write_shard(dir.path() / "a.h5", sample_shard());
  write_shard(dir.path() / "b.h5", sample_shard());
  const std::string bytes = bytes_of(dir.path() / "a.h5");
  EXPECT_EQ(bytes, bytes_of(dir.path() / "b.h5"));
  ASSERT_EQ(static_cast<int64_t>(bytes.size()), size);
  EXPECT_EQ(bytes.substr(0, 16), std::string("muse-shard-crc\n\0", 16));
  uint64_t recorded = 0;
  for (int i = 7; i >= 0; --i)
    recorded = (recorded << 8) | static_cast<uint8_t>(bytes[16 + static_cast<size_t>(i)]);
  EXPECT_EQ(recorded, bytes.size());
  EXPECT_EQ(bytes.substr(512, 8), "\x89HDF\r\n\x1a\n");
  EXPECT_TRUE(has_shard_checksum(dir.path() / "a.h5"));
  EXPECT_NO_THROW(verify_shard_file(dir.path() / "a.h5"));
}

TEST(ShardChecksum, EveryFlippedByteIsAnErrorNamingTheFile) {
  TempDir dir;
  write_shard(dir.path() / "good.h5", sample_shard());
  const std::string good = bytes_of(dir.path() / "good.h5");
  const fs::path path = dir.path() / "shard.h5";
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ (1 << (i % 8)));
    write_bytes(path, bad);
    const std::string message = open_error(path);
    ASSERT_EQ(message.rfind(path.string() + ": ", 0), 0u) << "byte " << i << ": " << message;
    ASSERT_EQ(message.find('\n'), std::string::npos) << message;
  }
  // Past the header, a flip is always a checksum mismatch.
  std::string bad = good;
  bad[good.size() / 2] ^= 0x10;
  write_bytes(path, bad);
  expect_error(path, "checksum mismatch: the CRC-32C of its " + std::to_string(good.size()) +
                         " bytes is 0x");
  expect_error(path, "the file is damaged (copy or build it again)");
}

TEST(ShardChecksum, ATruncatedOrExtendedFileIsAnError) {
  TempDir dir;
  write_shard(dir.path() / "good.h5", sample_shard());
  const std::string good = bytes_of(dir.path() / "good.h5");
  const fs::path path = dir.path() / "shard.h5";
  for (const size_t size : {good.size() - 1, good.size() / 2, size_t{513}, size_t{28}}) {
    write_bytes(path, good.substr(0, size));
    expect_error(path, "holds " + std::to_string(size) + " bytes but its checksum header records " +
                           std::to_string(good.size()) + ": the file is truncated or damaged");
  }
  for (const size_t size : {size_t{27}, size_t{1}, size_t{0}}) {
    write_bytes(path, good.substr(0, size));
    expect_error(path, "not a muse shard");
  }
  write_bytes(path, good + "more");
  expect_error(path, "the file was appended to or is damaged");
}

TEST(ShardChecksum, AShardWithoutChecksumIsAnErrorSayingHowToAddOne) {
  TempDir dir;
  write_shard(dir.path() / "good.h5", sample_shard());
  // The HDF5 file alone, as muse-data wrote shards before they had a checksum.
  const fs::path path = dir.path() / "old.h5";
  write_bytes(path, bytes_of(dir.path() / "good.h5").substr(512));
  EXPECT_FALSE(has_shard_checksum(path));
  expect_error(path,
               "no checksum: the shard was written by an older muse-data or another tool; "
               "check it and add one with `muse-data checksum --add " +
                   path.string() + "`");
}

TEST(ShardChecksum, AddingOneGivesTheShardMuseDataWrites) {
  TempDir dir;
  write_shard(dir.path() / "good.h5", sample_shard());
  const std::string good = bytes_of(dir.path() / "good.h5");
  const fs::path path = dir.path() / "old.h5";
  write_bytes(path, good.substr(512));
  add_shard_checksum(path);
  EXPECT_EQ(bytes_of(path), good);
  EXPECT_EQ(read_shard(path).tokens, sample_shard().tokens);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 2);
}

TEST(ShardChecksum, AddingOneChecksEveryTokenFirstAndLeavesABadShardAsItWas) {
  TempDir dir;
  Shard s = sample_shard();
  write_shard(dir.path() / "good.h5", s);
  const fs::path path = dir.path() / "old.h5";
  std::string old = bytes_of(dir.path() / "good.h5").substr(512);
  // Token 10 (index 1) becomes 40, outside the vocabulary: find its 4 bytes.
  const std::string ten("\x0a\x00\x00\x00\x0b\x00\x00\x00", 8);  // tokens 10, 11
  const size_t at = old.find(ten);
  ASSERT_NE(at, std::string::npos);
  old[at] = 40;
  write_bytes(path, old);
  try {
    add_shard_checksum(path);
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()),
              path.string() +
                  ": /tokens: token id 40 at index 1 is outside the vocabulary (vocab_size 40)");
  }
  EXPECT_EQ(bytes_of(path), old);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 2);
}

// A shard as another tool may write it: the newest HDF5 file format
// (superblock version 3, which checksums its own fields).
void write_latest_format_shard(const fs::path& path, const Shard& s) {
  const hid_t access = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_libver_bounds(access, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access);
  ASSERT_GE(file, 0);
  const hid_t scalar = H5Screate(H5S_SCALAR);
  const hid_t text = H5Tcopy(H5T_C_S1);
  H5Tset_size(text, 11);
  const hid_t format = H5Acreate2(file, "format", text, scalar, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(format, text, "muse-shard");
  H5Aclose(format);
  const auto attribute = [&](const char* name, int64_t value) {
    const hid_t a = H5Acreate2(file, name, H5T_STD_I64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &value);
    H5Aclose(a);
  };
  attribute("version", 1);
  attribute("vocab_size", s.vocab_size);
  attribute("image_token_id", s.image_token_id);
  attribute("pad_token_id", s.pad_token_id);
  attribute("n_tokens", static_cast<int64_t>(s.tokens.size()));
  attribute("n_documents", s.n_documents());
  attribute("n_images", s.n_images());
  const auto dataset = [&](const char* name, hid_t file_type, hid_t memory_type,
                           std::vector<hsize_t> dims, const void* data) {
    const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    const hid_t set =
        H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(set, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(set);
    H5Sclose(space);
  };
  dataset("tokens", H5T_STD_I32LE, H5T_NATIVE_INT32, {s.tokens.size()}, s.tokens.data());
  dataset("doc_offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, {s.doc_offsets.size()},
          s.doc_offsets.data());
  dataset("images", H5T_STD_U8LE, H5T_NATIVE_UINT8, {static_cast<hsize_t>(s.n_images()), 2, 2, 1},
          s.images.data());
  dataset("image_positions", H5T_STD_I64LE, H5T_NATIVE_INT64, {s.image_positions.size()},
          s.image_positions.data());
  H5Tclose(text);
  H5Sclose(scalar);
  ASSERT_GE(H5Fclose(file), 0);
  H5Pclose(access);
}

TEST(ShardChecksum, AddingOneToAShardOfTheNewestHdf5Format) {
  TempDir dir;
  const fs::path path = dir.path() / "other_tool.h5";
  write_latest_format_shard(path, sample_shard());
  expect_error(path, "no checksum");
  add_shard_checksum(path);
  EXPECT_TRUE(has_shard_checksum(path));
  const Shard read = read_shard(path);
  EXPECT_EQ(read.tokens, sample_shard().tokens);
  EXPECT_EQ(read.images, sample_shard().images);
}

TEST(ShardChecksum, SealingRefusesAFileWithoutRoomForTheHeader) {
  TempDir dir;
  write_shard(dir.path() / "good.h5", sample_shard());
  const fs::path path = dir.path() / "old.h5";
  const std::string old = bytes_of(dir.path() / "good.h5").substr(512);
  write_bytes(path, old);
  EXPECT_THROW(seal_shard_file(path), std::invalid_argument);
  EXPECT_EQ(bytes_of(path), old);
}

}  // namespace
}  // namespace muse::data
