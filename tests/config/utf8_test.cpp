#include "config/utf8.h"

#include <gtest/gtest.h>

#include <string>

#include "config/schema.h"

namespace muse::config {
namespace {

const std::string kFffd(kReplacementCharacter);

TEST(ValidUtf8, WellFormedTextPassesUnchanged) {
  const std::string text = "plain, caf\xC3\xA9, \xE2\x82\xAC 5, \xF0\x9F\x99\x82";
  EXPECT_EQ(valid_utf8(text, "?"), text);
  EXPECT_EQ(valid_utf8("", "?"), "");
}

TEST(ValidUtf8, EachBrokenByteIsReplaced) {
  // A token that ends inside a character: "70" then the second byte of "¢"
  // (C2 A2) alone, as a byte-level model can emit it.
  EXPECT_EQ(valid_utf8("70\xA2", kFffd), "70" + kFffd);
  // A lead byte cut off at the end, an overlong C0 80, a surrogate (ED A0 80)
  // and bytes no sequence uses (F5, FF): one replacement per byte.
  EXPECT_EQ(valid_utf8(std::string("caf\xC3", 4), "?"), "caf?");
  EXPECT_EQ(valid_utf8(std::string("\xC0\x80x", 3), "?"), "??x");
  EXPECT_EQ(valid_utf8("\xED\xA0\x80", "?"), "???");
  EXPECT_EQ(valid_utf8("a\xF5\xFF", "?"), "a??");
  // The sequence after a broken one is read again from its own lead byte.
  EXPECT_EQ(valid_utf8("\xE2\x82\xC3\xA9", "?"), "??\xC3\xA9");
}

TEST(ValidUtf8, JsonStringsAreAlwaysUnicode) {
  // format_value writes JSON and YAML strings, which must be valid UTF-8.
  EXPECT_EQ(format_value(std::string("= 70\xA2")), "\"= 70" + kFffd + "\"");
  EXPECT_EQ(format_value(std::string("\xC3\xA9\n")), "\"\xC3\xA9\\n\"");
}

}  // namespace
}  // namespace muse::config
