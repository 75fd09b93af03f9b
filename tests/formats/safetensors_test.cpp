// The safetensors writer against its reader, and the reader's validation of
// hand-made bad files (the reference implementation's rules); the rotary row
// permutation GGUF export applies.
#include "formats/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "checkpoints/checkpoint.h"
#include "formats/export.h"

namespace muse::formats {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() /
        ("safetensors_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A file of: 8-byte little-endian header size, `header`, `data_bytes` zeros.
  fs::path raw(const std::string& header, size_t data_bytes, uint64_t declared = UINT64_MAX) {
    const fs::path p = dir_ / "raw.safetensors";
    std::ofstream out(p, std::ios::binary);
    const uint64_t n = declared == UINT64_MAX ? header.size() : declared;
    for (int i = 0; i < 8; ++i)
      out.put(static_cast<char>(n >> (8 * i)));
    out << header << std::string(data_bytes, '\0');
    return p;
  }

  // The CheckpointError message opening `p`, or "" when it opens.
  static std::string error_of(const fs::path& p) {
    try {
      SafetensorsFile f(p);
    } catch (const checkpoints::CheckpointError& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
};

TEST_F(Safetensors, WriterAndReaderRoundTripEveryDtype) {
  const at::Tensor a = at::randn({3, 5});
  const at::Tensor b = at::randn({7});
  for (const at::ScalarType dtype : {at::kFloat, at::kHalf, at::kBFloat16}) {
    const fs::path p = dir_ / (safetensors_dtype(dtype) + ".safetensors");
    SafetensorsWriter w(p, {{"a", {3, 5}}, {"b", {7}}}, dtype, {{"note", "hi"}});
    EXPECT_TRUE(fs::exists(p.string() + ".tmp"));
    EXPECT_FALSE(fs::exists(p));  // not under the final name before finish()
    w.write("a", a);
    w.write("b", b);
    w.finish();
    EXPECT_FALSE(fs::exists(p.string() + ".tmp"));
    const SafetensorsFile f(p);
    EXPECT_EQ(f.metadata().at("format"), "pt");
    EXPECT_EQ(f.metadata().at("note"), "hi");
    ASSERT_EQ(f.entries().size(), 2u);
    EXPECT_EQ(f.find("a")->dtype, safetensors_dtype(dtype));
    EXPECT_TRUE(at::equal(f.read("a"), a.to(dtype).to(at::kFloat)));
    EXPECT_TRUE(at::equal(f.read("b"), b.to(dtype).to(at::kFloat)));
    // The data buffer starts 8-aligned.
    EXPECT_EQ((fs::file_size(p) - w.data_bytes()) % 8, 0u);
  }
}

TEST_F(Safetensors, AnUnfinishedWriterLeavesNoFile) {
  const fs::path p = dir_ / "x.safetensors";
  { SafetensorsWriter w(p, {{"a", {2}}}, at::kFloat); }
  EXPECT_FALSE(fs::exists(p));
  EXPECT_FALSE(fs::exists(p.string() + ".tmp"));
}

TEST_F(Safetensors, AcceptsAWellFormedHandMadeFile) {
  const fs::path p = raw(
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},)"
      R"("a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},)"
      R"("e":{"dtype":"F32","shape":[0],"data_offsets":[16,16]}})",
      16);
  EXPECT_EQ(error_of(p), "");
  const SafetensorsFile f(p);
  EXPECT_EQ(f.entries().front().name, "a");  // in data order
}

TEST_F(Safetensors, RejectsOverlappingOffsets) {
  const fs::path p = raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                         12);
  EXPECT_THAT(error_of(p), HasSubstr("tensor 'b': data_offsets [4, 12] overlap"));
}

TEST_F(Safetensors, RejectsAGapBetweenTensors) {
  const fs::path p = raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})",
                         16);
  EXPECT_THAT(error_of(p), HasSubstr("tensor 'b': data_offsets [12, 16] leave a gap"));
}

TEST_F(Safetensors, RejectsOffsetsPastTheFileAndTrailingBytes) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  EXPECT_THAT(error_of(raw(header, 8)), HasSubstr("(truncated)"));
  EXPECT_THAT(error_of(raw(header, 20)), HasSubstr("(trailing bytes)"));
}

TEST_F(Safetensors, RejectsAShapeThatDisagreesWithTheBytes) {
  const fs::path p = raw(R"({"a":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}})", 8);
  EXPECT_THAT(error_of(p), HasSubstr("tensor 'a': holds 8 bytes, its shape needs 6"));
}

TEST_F(Safetensors, RejectsAHeaderOverTheLimitOrPastTheEnd) {
  EXPECT_THAT(error_of(raw("{}", 0, kSafetensorsMaxHeader + 1)), HasSubstr("over the limit"));
  EXPECT_THAT(error_of(raw("{}", 0, 100)), HasSubstr("runs past the end of the file"));
}

TEST_F(Safetensors, RejectsBadHeaders) {
  EXPECT_THAT(error_of(raw("[]", 0)), HasSubstr("does not start with '{'"));
  EXPECT_THAT(error_of(raw("{\"a\":", 0)), HasSubstr("not valid JSON"));
  EXPECT_THAT(error_of(raw(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                           4)),
              HasSubstr("tensor 'a' appears twice"));
  EXPECT_THAT(error_of(raw(R"({"a":{"dtype":"F31","shape":[1],"data_offsets":[0,4]}})", 4)),
              HasSubstr("unknown dtype 'F31'"));
  EXPECT_THAT(error_of(raw(R"({"__metadata__":{"n":1}})", 0)), HasSubstr("is not a string"));
  EXPECT_THAT(error_of(raw(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 0)),
              HasSubstr("negative"));
  EXPECT_THAT(error_of(raw(R"({"a":{"dtype":"F32","shape":[1]}})", 0)), HasSubstr("data_offsets"));
  EXPECT_THAT(error_of(raw("", 0, 0)).empty(), false);  // 8 bytes, empty header
}

TEST_F(Safetensors, RejectsFilesTooShortToHoldAHeaderSize) {
  const fs::path p = dir_ / "short.safetensors";
  std::ofstream(p, std::ios::binary) << "abc";
  EXPECT_THAT(error_of(p), HasSubstr("not a safetensors file: 3 bytes"));
}

TEST(InterleaveRotaryRows, PairsEachHalfWithItsPartner) {
  // 2 heads of head_dim 4: HF rows per head [a0 a1 | b0 b1] -> GGML [a0 b0 a1 b1].
  const at::Tensor w = at::arange(8, at::kFloat).unsqueeze(1).repeat({1, 3});  // (8, 3)
  const at::Tensor g = interleave_rotary_rows(w, 2);
  const std::vector<float> rows = {0, 2, 1, 3, 4, 6, 5, 7};
  for (int64_t r = 0; r < 8; ++r)
    EXPECT_EQ(g[r][0].item<float>(), rows[r]) << r;
  EXPECT_TRUE(at::equal(g.select(1, 0), g.select(1, 2)));
}

}  // namespace
}  // namespace muse::formats
