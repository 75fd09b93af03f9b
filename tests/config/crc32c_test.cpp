// CRC-32C against the standard check value and a bit-at-a-time reference.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "config/crc32c.h"

namespace muse::config {
namespace {

// The definition, one bit at a time (reflected polynomial 0x82F63B78).
uint32_t reference_crc32c(const uint8_t* data, size_t size) {
  uint32_t c = 0xFFFFFFFF;
  for (size_t i = 0; i < size; ++i) {
    c ^= data[i];
    for (int bit = 0; bit < 8; ++bit)
      c = (c & 1) ? (c >> 1) ^ 0x82F63B78 : c >> 1;
  }
  return ~c;
}

TEST(Crc32c, StandardCheckValue) {
  const std::string digits = "123456789";
  EXPECT_EQ(crc32c(digits.data(), digits.size()), 0xE3069283u);
}

TEST(Crc32c, KnownVectors) {
  // RFC 3720 (iSCSI), appendix B.4: 32 bytes of zeros and of 0xFF.
  const std::vector<uint8_t> zeros(32, 0x00), ones(32, 0xFF);
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(crc32c(nullptr, 0), 0u);
}

TEST(Crc32c, MatchesTheBitwiseDefinitionAtEveryAlignment) {
  std::mt19937 gen(7);
  std::vector<uint8_t> bytes(4096 + 8);
  for (uint8_t& b : bytes)
    b = static_cast<uint8_t>(gen());
  for (size_t align = 0; align < 8; ++align) {
    for (size_t size : {0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 100, 1000, 4096}) {
      const uint32_t expected = reference_crc32c(bytes.data() + align, size);
      EXPECT_EQ(crc32c(bytes.data() + align, size), expected)
          << "align " << align << " size " << size;
      EXPECT_EQ(detail::crc32c_table(bytes.data() + align, size), expected)
          << "tables, align " << align << " size " << size;
    }
  }
}

TEST(Crc32c, ContinuesAcrossCalls) {
  std::vector<uint8_t> bytes(257);
  for (size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<uint8_t>(i * 31 + 5);
  const uint32_t whole = crc32c(bytes.data(), bytes.size());
  for (size_t split = 0; split <= bytes.size(); ++split) {
    const uint32_t first = crc32c(bytes.data(), split);
    EXPECT_EQ(crc32c(bytes.data() + split, bytes.size() - split, first), whole) << split;
    EXPECT_EQ(detail::crc32c_table(bytes.data() + split, bytes.size() - split, first), whole)
        << "tables, " << split;
  }
}

}  // namespace
}  // namespace muse::config
