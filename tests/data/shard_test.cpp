// The HDF5 shard format: round trip, validation of bad files (each error names
// the file and the dataset or attribute), and the write-then-rename guarantee.
#include "data/shard.h"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <string>

#include "data/data_error.h"
#include "data/shard_checksum.h"
#include "tests/temp_dir.h"

namespace {

namespace fs = std::filesystem;
using muse::data::DataError;
using muse::data::read_shard;
using muse::data::Shard;
using muse::data::ShardReader;
using muse::data::write_shard;

using muse::testing::TempDir;

// Three documents, the second with two 2x3 RGB images.
Shard sample_shard() {
  Shard s;
  s.vocab_size = 50;
  s.image_token_id = 3;
  s.pad_token_id = 2;
  s.image_height = 2;
  s.image_width = 3;
  s.image_channels = 3;
  std::vector<uint8_t> two_images(2 * 2 * 3 * 3);
  std::iota(two_images.begin(), two_images.end(), uint8_t{100});
  s.add_document(std::vector<int32_t>{0, 10, 11, 1}, {});
  s.add_document(std::vector<int32_t>{0, 3, 12, 3, 13, 1}, two_images);
  s.add_document(std::vector<int32_t>{0, 49, 1}, {});
  return s;
}

void expect_equal(const Shard& a, const Shard& b) {
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.image_token_id, b.image_token_id);
  EXPECT_EQ(a.pad_token_id, b.pad_token_id);
  EXPECT_EQ(a.image_height, b.image_height);
  EXPECT_EQ(a.image_width, b.image_width);
  EXPECT_EQ(a.image_channels, b.image_channels);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.doc_offsets, b.doc_offsets);
  EXPECT_EQ(a.image_positions, b.image_positions);
  EXPECT_EQ(a.images, b.images);
  EXPECT_EQ(a.loss_starts, b.loss_starts);
}

TEST(Shard, AddDocumentRecordsOffsetsAndImagePositions) {
  const Shard s = sample_shard();
  EXPECT_EQ(s.n_documents(), 3);
  EXPECT_EQ(s.doc_offsets, (std::vector<int64_t>{0, 4, 10, 13}));
  EXPECT_EQ(s.image_positions, (std::vector<int64_t>{5, 7}));
  EXPECT_EQ(s.n_images(), 2);
  Shard t = sample_shard();
  EXPECT_THROW(t.add_document(std::vector<int32_t>{0, 3, 1}, {}), std::invalid_argument);
}

TEST(Shard, AddDocumentRecordsLossStartsOnceOneIsGiven) {
  Shard s = sample_shard();
  EXPECT_TRUE(s.loss_starts.empty());
  s.add_document(std::vector<int32_t>{0, 20, 21, 1}, {}, 2);
  s.add_document(std::vector<int32_t>{0, 22, 1}, {});
  EXPECT_EQ(s.loss_starts, (std::vector<int64_t>{0, 0, 0, 2, 0}));
  EXPECT_THROW(s.add_document(std::vector<int32_t>{0, 1}, {}, 3), std::invalid_argument);
  EXPECT_THROW(s.add_document(std::vector<int32_t>{0, 1}, {}, -1), std::invalid_argument);
  EXPECT_EQ(s.n_documents(), 5);
  EXPECT_EQ(s.loss_starts.size(), 5u);
  Shard first;
  first.vocab_size = 50;
  first.add_document(std::vector<int32_t>{5, 20, 6}, {}, 1);  // no image token (0)
  EXPECT_EQ(first.loss_starts, std::vector<int64_t>{1});
}

TEST(Shard, RoundTripWithLossStarts) {
  TempDir dir;
  Shard s = sample_shard();
  s.loss_starts = {1, 6, 0};  // a whole document may be masked (6 = its length)
  write_shard(dir.path() / "a.h5", s);
  const ShardReader reader(dir.path() / "a.h5");
  EXPECT_EQ(reader.loss_starts(), s.loss_starts);
  expect_equal(reader.read_all(), s);
  // Without them the dataset is absent and the reader reports none.
  write_shard(dir.path() / "b.h5", sample_shard());
  EXPECT_TRUE(ShardReader(dir.path() / "b.h5").loss_starts().empty());
  const hid_t file = H5Fopen((dir.path() / "b.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_EQ(H5Lexists(file, "loss_starts", H5P_DEFAULT), 0);
  H5Fclose(file);
}

TEST(Shard, RoundTrip) {
  TempDir dir;
  const fs::path path = dir.path() / "shard_000000.h5";
  const Shard s = sample_shard();
  const int64_t bytes = write_shard(path, s);
  EXPECT_EQ(bytes, static_cast<int64_t>(fs::file_size(path)));
  expect_equal(read_shard(path), s);

  const ShardReader reader(path);
  EXPECT_EQ(reader.header().version, 1);
  EXPECT_EQ(reader.header().n_tokens, 13);
  EXPECT_EQ(reader.header().n_documents, 3);
  EXPECT_EQ(reader.header().n_images, 2);
  EXPECT_EQ(reader.read_tokens(4, 8), (std::vector<int32_t>{0, 3, 12, 3}));
  EXPECT_TRUE(reader.read_tokens(5, 5).empty());
  std::vector<uint8_t> image(18);
  reader.read_image(1, image);
  EXPECT_EQ(image, std::vector<uint8_t>(s.images.begin() + 18, s.images.end()));
  EXPECT_THROW(reader.read_image(2, image), std::out_of_range);
  EXPECT_THROW(reader.read_tokens(10, 14), std::out_of_range);
}

TEST(Shard, RoundTripWithoutImagesKeepsTheImageShape) {
  TempDir dir;
  Shard s;
  s.vocab_size = 8;
  s.image_height = 16;
  s.image_width = 16;
  s.image_channels = 1;
  s.add_document(std::vector<int32_t>{1, 2, 3}, {});
  write_shard(dir.path() / "a.h5", s);
  const ShardReader reader(dir.path() / "a.h5");
  EXPECT_EQ(reader.header().n_images, 0);
  EXPECT_EQ(reader.header().image_height, 16);
  EXPECT_EQ(reader.header().image_channels, 1);
  expect_equal(reader.read_all(), s);
}

TEST(Shard, WriterRejectsAShardThatBreaksAnInvariant) {
  TempDir dir;
  Shard s = sample_shard();
  s.tokens[1] = 50;  // outside the vocabulary
  try {
    write_shard(dir.path() / "bad.h5", s);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("/tokens: token id 50 at index 1"), std::string::npos)
        << e.what();
  }
  s = sample_shard();
  s.doc_offsets[2] = 3;
  EXPECT_THROW(write_shard(dir.path() / "bad.h5", s), std::invalid_argument);
  s = sample_shard();
  s.images.pop_back();
  EXPECT_THROW(write_shard(dir.path() / "bad.h5", s), std::invalid_argument);
  s = sample_shard();
  s.loss_starts = {0, 0};  // one per document
  EXPECT_THROW(write_shard(dir.path() / "bad.h5", s), std::invalid_argument);
  s.loss_starts = {0, 7, 0};  // beyond the second document's 6 tokens
  try {
    write_shard(dir.path() / "bad.h5", s);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("/loss_starts: loss_starts[1] = 7 is outside [0, 6]"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

// --- bad files: each case damages a good shard with the HDF5 API ---------

// Changes the shard with the HDF5 API, then seals it again: the reader's own
// checks, not the checksum, must find the damage.
void with_file(const fs::path& path, const std::function<void(hid_t)>& change) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  change(file);
  ASSERT_GE(H5Fclose(file), 0);
  muse::data::seal_shard_file(path);
}

void set_int_attribute(hid_t file, const char* name, int64_t value) {
  const hid_t attr = H5Aopen(file, name, H5P_DEFAULT);
  ASSERT_GE(H5Awrite(attr, H5T_NATIVE_INT64, &value), 0);
  H5Aclose(attr);
}

template <class T>
void set_element(hid_t file, const char* dataset, hid_t type, hsize_t index, T value) {
  const hid_t set = H5Dopen2(file, dataset, H5P_DEFAULT);
  const hid_t space = H5Dget_space(set);
  const hsize_t count = 1;
  H5Sselect_hyperslab(space, H5S_SELECT_SET, &index, nullptr, &count, nullptr);
  const hid_t memory = H5Screate_simple(1, &count, nullptr);
  ASSERT_GE(H5Dwrite(set, type, memory, space, H5P_DEFAULT, &value), 0);
  H5Sclose(memory);
  H5Sclose(space);
  H5Dclose(set);
}

// Adds a one-dimensional dataset `name` of `type` holding `values`.
void add_dataset(hid_t file, const char* name, hid_t type, const std::vector<int64_t>& values) {
  const hsize_t n = values.size();
  const hid_t space = H5Screate_simple(1, &n, nullptr);
  const hid_t set = H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(H5Dwrite(set, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
  H5Dclose(set);
  H5Sclose(space);
}

struct BadCase {
  const char* name;
  std::function<void(hid_t)> damage;
  const char* object;   // the dataset or attribute the error must name
  const char* problem;  // a fragment of the message
};

class BadShard : public testing::TestWithParam<BadCase> {};

TEST_P(BadShard, IsAnErrorNamingFileAndDataset) {
  TempDir dir;
  const fs::path path = dir.path() / "shard.h5";
  write_shard(path, sample_shard());
  with_file(path, GetParam().damage);
  try {
    read_shard(path);
    FAIL() << "no error for " << GetParam().name;
  } catch (const DataError& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind(path.string() + ": " + GetParam().object + ": ", 0), 0) << message;
    EXPECT_NE(message.find(GetParam().problem), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadShard,
    testing::Values(
        BadCase{"wrong_format",
                [](hid_t f) {
                  H5Adelete(f, "format");
                  const hid_t type = H5Tcopy(H5T_C_S1);
                  H5Tset_size(type, 6);
                  const hid_t space = H5Screate(H5S_SCALAR);
                  const hid_t attr = H5Acreate2(f, "format", type, space, H5P_DEFAULT, H5P_DEFAULT);
                  H5Awrite(attr, type, "other");
                  H5Aclose(attr);
                  H5Sclose(space);
                  H5Tclose(type);
                },
                "attribute 'format'", "is 'other', expected 'muse-shard'"},
        BadCase{"no_format", [](hid_t f) { H5Adelete(f, "format"); }, "attribute 'format'",
                "missing"},
        BadCase{"wrong_version", [](hid_t f) { set_int_attribute(f, "version", 2); },
                "attribute 'version'", "version 2 is not supported"},
        BadCase{"missing_tokens", [](hid_t f) { H5Ldelete(f, "tokens", H5P_DEFAULT); }, "/tokens",
                "dataset missing"},
        BadCase{"missing_offsets", [](hid_t f) { H5Ldelete(f, "doc_offsets", H5P_DEFAULT); },
                "/doc_offsets", "dataset missing"},
        BadCase{"missing_images", [](hid_t f) { H5Ldelete(f, "images", H5P_DEFAULT); }, "/images",
                "dataset missing"},
        BadCase{"missing_positions", [](hid_t f) { H5Ldelete(f, "image_positions", H5P_DEFAULT); },
                "/image_positions", "dataset missing"},
        BadCase{"token_outside_vocabulary",
                [](hid_t f) { set_element<int32_t>(f, "tokens", H5T_NATIVE_INT32, 9, 50); },
                "/tokens", "token id 50 at index 9 is outside the vocabulary (vocab_size 50)"},
        BadCase{"negative_token",
                [](hid_t f) { set_element<int32_t>(f, "tokens", H5T_NATIVE_INT32, 0, -1); },
                "/tokens", "token id -1 at index 0"},
        BadCase{"offsets_decrease",
                [](hid_t f) { set_element<int64_t>(f, "doc_offsets", H5T_NATIVE_INT64, 1, 11); },
                "/doc_offsets", "offset[2] = 10 does not exceed offset[1] = 11"},
        BadCase{"offsets_end_early",
                [](hid_t f) { set_element<int64_t>(f, "doc_offsets", H5T_NATIVE_INT64, 3, 12); },
                "/doc_offsets", "the last offset is 12, expected n_tokens = 13"},
        BadCase{"offsets_start_late",
                [](hid_t f) { set_element<int64_t>(f, "doc_offsets", H5T_NATIVE_INT64, 0, 1); },
                "/doc_offsets", "offset[0] is 1"},
        BadCase{"count_attribute_disagrees", [](hid_t f) { set_int_attribute(f, "n_tokens", 12); },
                "/tokens", "holds 13 entries but attribute n_tokens gives 12"},
        BadCase{
            "image_position_outside",
            [](hid_t f) { set_element<int64_t>(f, "image_positions", H5T_NATIVE_INT64, 1, 13); },
            "/image_positions", "outside the tokens"},
        BadCase{"image_position_on_text",
                [](hid_t f) { set_element<int64_t>(f, "image_positions", H5T_NATIVE_INT64, 1, 8); },
                "/tokens", "index 7"},
        BadCase{"image_token_without_image",
                [](hid_t f) { set_element<int32_t>(f, "tokens", H5T_NATIVE_INT32, 11, 3); },
                "/tokens", "the image token 3 at index 11 has no image"},
        BadCase{"image_token_id_outside",
                [](hid_t f) { set_int_attribute(f, "image_token_id", 50); },
                "attribute 'image_token_id'", "out of range"},
        BadCase{"tokens_of_another_type",
                [](hid_t f) {
                  H5Ldelete(f, "tokens", H5P_DEFAULT);
                  const hsize_t n = 13;
                  const hid_t space = H5Screate_simple(1, &n, nullptr);
                  const hid_t set = H5Dcreate2(f, "tokens", H5T_STD_I64LE, space, H5P_DEFAULT,
                                               H5P_DEFAULT, H5P_DEFAULT);
                  H5Dclose(set);
                  H5Sclose(space);
                },
                "/tokens", "expected int32 elements"},
        BadCase{"images_of_another_rank",
                [](hid_t f) {
                  H5Ldelete(f, "images", H5P_DEFAULT);
                  const hsize_t dims[2] = {2, 18};
                  const hid_t space = H5Screate_simple(2, dims, nullptr);
                  const hid_t set = H5Dcreate2(f, "images", H5T_STD_U8LE, space, H5P_DEFAULT,
                                               H5P_DEFAULT, H5P_DEFAULT);
                  H5Dclose(set);
                  H5Sclose(space);
                },
                "/images", "expected 4 dimension(s), found 2"},
        BadCase{"loss_starts_of_another_extent",
                [](hid_t f) {
                  add_dataset(f, "loss_starts", H5T_STD_I64LE, {0, 1});
                },
                "/loss_starts", "holds 2 entries but attribute n_documents gives 3"},
        BadCase{"loss_start_beyond_its_document",
                [](hid_t f) {
                  add_dataset(f, "loss_starts", H5T_STD_I64LE, {0, 7, 0});
                },
                "/loss_starts", "loss_starts[1] = 7 is outside [0, 6]"},
        BadCase{"negative_loss_start",
                [](hid_t f) {
                  add_dataset(f, "loss_starts", H5T_STD_I64LE, {0, 0, -1});
                },
                "/loss_starts", "loss_starts[2] = -1"},
        BadCase{"loss_starts_of_another_type",
                [](hid_t f) {
                  add_dataset(f, "loss_starts", H5T_STD_I32LE, {0, 1, 2});
                },
                "/loss_starts", "expected int64 elements"}),
    [](const testing::TestParamInfo<BadCase>& c) { return std::string(c.param.name); });

TEST(Shard, NotAShardFileIsAnErrorNamingIt) {
  TempDir dir;
  const fs::path text = dir.path() / "notes.h5";
  std::ofstream(text) << "not hdf5\n";
  try {
    read_shard(text);
    FAIL();
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()),
              text.string() +
                  ": not a muse shard: it begins with neither muse-data's checksum header nor an "
                  "HDF5 signature (a damaged first block, or another kind of file)");
  }
  try {
    read_shard(dir.path() / "absent.h5");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), (dir.path() / "absent.h5").string() + ": no such shard file");
  }
}

// --- a half-written shard is never under its final name ---------------------

// The names of the files in `dir`, sorted.
std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Runs in a child process that may write at most 64 KiB per file; exits with
// 0 when write_shard failed as a full disk would make it fail.
[[noreturn]] void write_with_file_size_limit(const fs::path& path, const Shard& shard) {
  ::signal(SIGXFSZ, SIG_IGN);
  const rlimit limit = {64 << 10, 64 << 10};
  ::setrlimit(RLIMIT_FSIZE, &limit);
  bool failed = false;
  try {
    write_shard(path, shard);
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    failed = message.find("write failed") != std::string::npos ||
             message.find("flush failed") != std::string::npos;
  }
  std::_Exit(failed ? 0 : 1);
}

TEST(ShardDeathTest, FailureMidWriteLeavesNoFinalAndNoTemporaryFile) {
  // The 4 MB of tokens fail part-way through.
  TempDir dir;
  const fs::path path = dir.path() / "shard_000000.h5";
  Shard big;
  big.vocab_size = 1000;
  big.add_document(std::vector<int32_t>(1 << 20, 7), {});
  EXPECT_EXIT(write_with_file_size_limit(path, big), testing::ExitedWithCode(0), "");
  EXPECT_TRUE(entries(dir.path()).empty()) << entries(dir.path()).front();
  // Without the limit the same write succeeds.
  write_shard(path, big);
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"shard_000000.h5"});
}

TEST(Shard, FailedRenameRemovesTheTemporaryFile) {
  TempDir dir;
  const fs::path path = dir.path() / "shard_000000.h5";
  fs::create_directories(path / "occupied");  // a non-empty directory cannot be renamed over
  EXPECT_THROW(write_shard(path, sample_shard()), std::runtime_error);
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"shard_000000.h5"});
  EXPECT_TRUE(fs::is_directory(path));
}

TEST(Shard, RewritingReplacesTheWholeFile) {
  TempDir dir;
  const fs::path path = dir.path() / "shard.h5";
  write_shard(path, sample_shard());
  Shard small;
  small.vocab_size = 4;
  small.add_document(std::vector<int32_t>{1}, {});
  write_shard(path, small);
  expect_equal(read_shard(path), small);
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"shard.h5"});
}

}  // namespace
