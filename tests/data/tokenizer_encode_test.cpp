// Tests of data/tokenizer.h: encoding, decoding, special tokens, the
// pre-tokenizer, and the round trip of arbitrary bytes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "data/tokenizer.h"
#include "data/tokenizer_words.h"

namespace muse::data {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// A small multilingual corpus with numbers, whitespace runs and specials.
std::vector<std::string> corpus() {
  const std::vector<std::string> lines = {
      "The quick brown fox jumps over the lazy dog. I'm sure you're right, they'll see.\n",
      "Der schnelle braune Fuchs springt über den faulen Hund. Größe, Maß, Straße.\n",
      "Съешь же ещё этих мягких французских булок, да выпей чаю.\n",
      "日本語のテキストと中文文本，还有한국어 텍스트도 있습니다。\n",
      "Numbers: 1234567890, 3.14159, 1,000,000 and ٣٤٥ or ½.\n",
      "   indented\tline  with   runs\t\tof whitespace   \n\n\r\n",
      "Emoji 👍🏽 and 👨‍👩‍👧 family, naïve café résumé.\n",
      "<|begin_of_text|>The <think>reasoning</think> <answer>42</answer><|end_of_text|>\n",
  };
  std::vector<std::string> texts;
  for (int i = 0; i < 40; ++i) {
    for (const auto& line : lines)
      texts.push_back(line + std::to_string(i * 37) + " ");
  }
  return texts;
}

const Tokenizer& trained(Pretokenizer pretokenizer) {
  static const Tokenizer llama3 = Tokenizer::train_from_texts(
      corpus(), {.vocab_size = 600, .pretokenizer = Pretokenizer::kLlama3, .min_pair_count = 2});
  static const Tokenizer gpt2 = Tokenizer::train_from_texts(
      corpus(), {.vocab_size = 600, .pretokenizer = Pretokenizer::kGpt2, .min_pair_count = 2});
  return pretokenizer == Pretokenizer::kGpt2 ? gpt2 : llama3;
}

// Random bytes: ASCII, UTF-8 sequences, stray continuation bytes, NULs.
std::string random_bytes(std::mt19937& rng, size_t max_size) {
  static const std::vector<std::string> pieces = {
      " ",   "  ", "\n",     "\r\n",   "\t",      "a",       "Z",       "the", "'s",
      "'LL", "1",  "123456", ".",      "!?",      "é",       "ß",       "ж",   "日本",
      "한",  "👍",  "\u00a0", "\u3000", "<think>", "<|pad|>", "<|end_of"};
  std::uniform_int_distribution<size_t> size(0, max_size);
  std::uniform_int_distribution<int> kind(0, 3);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<size_t> piece(0, pieces.size() - 1);
  std::string s;
  const size_t n = size(rng);
  while (s.size() < n) {
    if (kind(rng) == 0) {
      s += static_cast<char>(byte(rng));
    } else {
      s += pieces[piece(rng)];
    }
  }
  return s;
}

std::vector<std::string> words(const detail::WordSplitterSpec& spec, std::string_view text) {
  std::vector<std::string> out;
  detail::WordSplitter(spec).split(text, [&](std::string_view w) { out.emplace_back(w); });
  return out;
}

detail::WordSplitterSpec gpt2_spec() {
  return detail::pretokenizer_spec(Pretokenizer::kGpt2);
}
detail::WordSplitterSpec llama3_spec() {
  return detail::pretokenizer_spec(Pretokenizer::kLlama3);
}

TEST(TokenizerEncode, SpecialTokensComeFirst) {
  for (const auto pre : {Pretokenizer::kLlama3, Pretokenizer::kGpt2}) {
    const Tokenizer& tok = trained(pre);
    for (size_t i = 0; i < std::size(kSpecialTokens); ++i) {
      EXPECT_EQ(tok.special_id(kSpecialTokens[i]), static_cast<int32_t>(i)) << kSpecialTokens[i];
    }
    EXPECT_EQ(tok.vocab_size(), 600);
    // The bytes follow the specials, spelled the GPT-2 way.
    EXPECT_EQ(tok.token_id("!"), 8 + '!');
    EXPECT_EQ(tok.token_id("\u0120"), 8 + ' ');   // 'Ġ'
    EXPECT_EQ(tok.token_id("\u010a"), 8 + '\n');  // 'Ċ'
    EXPECT_EQ(tok.token_id("no such token"), std::nullopt);
  }
}

TEST(TokenizerEncode, SpecialTokensAreParsedOnlyWhenAsked) {
  const Tokenizer& tok = trained(Pretokenizer::kLlama3);
  const std::string text = "<|begin_of_text|>Hi <think>x</think><answer>";
  const std::vector<int32_t> ids = tok.encode(text);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids.front(), tok.special_id(kBeginOfText));
  EXPECT_EQ(ids.back(), tok.special_id(kAnswerBegin));
  EXPECT_THAT(ids, Contains(tok.special_id(kThinkBegin)));
  EXPECT_THAT(ids, Contains(tok.special_id(kThinkEnd)));
  EXPECT_EQ(tok.decode(ids), text);

  const std::vector<int32_t> plain = tok.encode(text, /*parse_special=*/false);
  for (const auto special : kSpecialTokens) {
    EXPECT_THAT(plain, Not(Contains(tok.special_id(special)))) << special;
  }
  EXPECT_EQ(tok.decode(plain), text);
}

TEST(TokenizerEncode, FrequentWordsBecomeOneToken) {
  const Tokenizer& tok = trained(Pretokenizer::kLlama3);
  EXPECT_EQ(tok.encode(" quick").size(), 1u);
  EXPECT_EQ(tok.encode("The quick brown fox").size(), 4u);
  EXPECT_TRUE(tok.encode("").empty());
}

TEST(TokenizerEncode, RandomBytesRoundTrip) {
  std::mt19937 rng(1234);
  for (const auto pre : {Pretokenizer::kLlama3, Pretokenizer::kGpt2}) {
    const Tokenizer& tok = trained(pre);
    for (int i = 0; i < 2000; ++i) {
      const std::string text = random_bytes(rng, 64);
      for (const bool special : {true, false}) {
        ASSERT_EQ(tok.decode(tok.encode(text, special)), text) << "case " << i;
      }
    }
  }
}

TEST(TokenizerEncode, EveryByteAndNulRoundTrip) {
  std::string all;
  for (int b = 255; b >= 0; --b)
    all += static_cast<char>(b);
  const std::string nuls("a\0b\0\0c", 6);
  for (const auto pre : {Pretokenizer::kLlama3, Pretokenizer::kGpt2}) {
    const Tokenizer& tok = trained(pre);
    EXPECT_EQ(tok.decode(tok.encode(all)), all);
    EXPECT_EQ(tok.decode(tok.encode(nuls)), nuls);
    for (int b = 0; b < 256; ++b) {
      const std::string one(1, static_cast<char>(b));
      EXPECT_THAT(tok.encode(one), ElementsAre(8 + b)) << b;
    }
  }
}

TEST(TokenizerEncode, LongRunsRoundTrip) {
  std::mt19937 rng(7);
  std::string random(1 << 20, '\0');
  for (char& c : random)
    c = static_cast<char>(rng());
  const std::vector<std::string> texts = {std::string(1 << 20, ' '), std::string(1 << 20, 'a'),
                                          std::string(1 << 18, '7'), std::string(1 << 18, '\n'),
                                          std::string(1 << 18, '!'), random};
  for (const auto pre : {Pretokenizer::kLlama3, Pretokenizer::kGpt2}) {
    for (const std::string& text : texts) {
      EXPECT_EQ(trained(pre).decode(trained(pre).encode(text)), text);
    }
  }
}

TEST(TokenizerEncode, SameIdsFromConcurrentThreads) {
  const Tokenizer& tok = trained(Pretokenizer::kLlama3);
  const std::vector<std::string> texts = corpus();
  std::vector<std::vector<int32_t>> expected;
  for (const auto& text : texts)
    expected.push_back(tok.encode(text));
  std::vector<int> mismatches(2, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      // Alternating tokenizers on one thread exercises the per-thread cache switch.
      for (size_t i = 0; i < texts.size(); ++i) {
        if (tok.encode(texts[i]) != expected[i]) ++mismatches[t];
        trained(Pretokenizer::kGpt2).encode(texts[i]);
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  EXPECT_THAT(mismatches, ElementsAre(0, 0));
}

TEST(TokenizerEncode, DecodeRejectsUnknownIds) {
  const Tokenizer& tok = trained(Pretokenizer::kLlama3);
  for (const int32_t id : {600, -1, 1 << 30}) {
    const std::vector<int32_t> ids = {8 + 'a', id};
    try {
      tok.decode(ids);
      ADD_FAILURE() << "no error for id " << id;
    } catch (const TokenizerError& e) {
      EXPECT_THAT(e.what(), HasSubstr("id " + std::to_string(id)));
    }
  }
}

TEST(TokenizerEncode, SpecialIdNamesAMissingToken) {
  try {
    trained(Pretokenizer::kGpt2).special_id("<|im_start|>");
    ADD_FAILURE() << "no error";
  } catch (const TokenizerError& e) {
    EXPECT_THAT(e.what(), HasSubstr("<|im_start|>"));
  }
}

TEST(TokenizerWords, Gpt2Pattern) {
  EXPECT_THAT(words(gpt2_spec(), "Hello world's  end\n\n 12345 ok!?"),
              ElementsAre("Hello", " world", "'s", " ", " end", "\n\n", " 12345", " ok", "!?"));
  EXPECT_THAT(words(gpt2_spec(), "I'LL   go"), ElementsAre("I", "'", "LL", "  ", " go"));
}

TEST(TokenizerWords, Llama3Pattern) {
  EXPECT_THAT(
      words(llama3_spec(), "Hello world's  end\n\n 12345 ok!?"),
      ElementsAre("Hello", " world", "'s", " ", " end", "\n\n", " ", "123", "45", " ok", "!?"));
  EXPECT_THAT(words(llama3_spec(), "I'LL   go\r\n<think>"),
              ElementsAre("I", "'LL", "  ", " go", "\r\n", "<think", ">"));
}

TEST(TokenizerWords, InvalidUtf8IsolatesTheBadBytes) {
  const std::string text = "ab\xff\xfe cd \xc3";
  for (const auto& spec : {gpt2_spec(), llama3_spec()}) {
    EXPECT_THAT(words(spec, text), ElementsAre("ab", "\xff\xfe", " cd", " ", "\xc3"));
  }
}

TEST(TokenizerWords, PrefixSpace) {
  detail::WordSplitterSpec spec = gpt2_spec();
  spec.add_prefix_space = true;
  EXPECT_THAT(words(spec, "hi there"), ElementsAre(" hi", " there"));
  EXPECT_THAT(words(spec, " hi"), ElementsAre(" hi"));
}

TEST(TokenizerWords, OnigurumaWhiteSpace) {
  const std::string ws =
      R"(\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";
  EXPECT_EQ(detail::oniguruma_to_pcre2(R"(\s+(?!\S)|\s+)"),
            "[" + ws + "]+(?![^" + ws + "])|[" + ws + "]+");
  EXPECT_EQ(detail::oniguruma_to_pcre2(R"([^\s\p{L}\p{N}]+)"), "[^" + ws + R"(\p{L}\p{N}]+)");
  EXPECT_EQ(detail::oniguruma_to_pcre2(R"(\\s\Q\s\E[]\s][[:space:]\s]\d)"),
            R"(\\s\Q\s\E[])" + ws + "][[:space:]" + ws + R"(]\d)");
  // U+180E is not white space in `tokenizers` (nor in Unicode since 6.3).
  EXPECT_THAT(words(gpt2_spec(), "a\u180e b"), ElementsAre("a", "\u180e", " b"));
  EXPECT_THAT(words(llama3_spec(), "a\u180eb"), ElementsAre("a", "\u180eb"));
}

TEST(TokenizerWords, ByteTable) {
  EXPECT_EQ(detail::byte_char(' '), "\u0120");
  EXPECT_EQ(detail::byte_char('a'), "a");
  EXPECT_EQ(detail::byte_char(0xAD), "\u0143");
  EXPECT_EQ(detail::byte_char(0xE9), "\u00e9");
  std::string all;
  for (int b = 0; b < 256; ++b)
    all += static_cast<char>(b);
  EXPECT_EQ(detail::token_to_bytes(detail::bytes_to_token(all)), all);
  // A character outside the table: the string stands for its own UTF-8.
  EXPECT_EQ(detail::token_to_bytes("a b"), "a b");
  EXPECT_EQ(detail::token_to_bytes("\u0120x\u4e2d"), "\u0120x\u4e2d");
}

}  // namespace
}  // namespace muse::data
