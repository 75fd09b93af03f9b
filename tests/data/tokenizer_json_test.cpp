// Tests of data/tokenizer.h: tokenizer.json loading and saving, and the errors
// for bad files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "data/tokenizer_nfc.h"
#include "data/tokenizer_words.h"
#include "tests/temp_dir.h"

namespace muse::data {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

class TokenizerJson : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& content) const {
    const fs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << content;
    return path.string();
  }
  static std::string read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

  // A tokenizer.json over the bytes "a", "b", "c", "Ġ" with the given merges
  // (JSON array text), the extra vocab entries, and the model flags.
  std::string tiny(
      const std::string& merges, const std::string& extra_vocab = "",
      const std::string& model_flags = "", const std::string& added = "[]",
      const std::string& pre_tokenizer =
          R"({"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true})",
      const std::string& normalizer = "null") {
    return write("tiny" + std::to_string(tiny_files_++) + ".json",
                 R"({"version":"1.0","truncation":null,"padding":null,"added_tokens":)" + added +
                     R"(,"normalizer":)" + normalizer + R"(,"pre_tokenizer":)" + pre_tokenizer +
                     R"(,"post_processor":null,"decoder":{"type":"ByteLevel"},
                                  "model":{"type":"BPE",)" +
                     model_flags + R"("vocab":{"a":0,"b":1,"c":2,"Ġ":3)" + extra_vocab +
                     R"(},"merges":)" + merges + "}}");
  }

  // The one-line error of loading `path`.
  static std::string load_error(const std::string& path) {
    try {
      Tokenizer::load(path);
    } catch (const TokenizerError& e) {
      return e.what();
    }
    return "(no error)";
  }

  muse::testing::TempDir tmp_;
  const fs::path dir_ = tmp_.path();
  int tiny_files_ = 0;
};

std::vector<std::string> texts() {
  return {"hello world",           "The <think>quick</think> fox",      "  spaces\tand\ttabs\n\n",
          "числа 12345 und Größe", "<|begin_of_text|>x<|end_of_text|>", std::string("nul\0byte", 8),
          "bad \xff utf-8"};
}

TEST_F(TokenizerJson, SaveLoadRoundTrip) {
  for (const auto pre : {Pretokenizer::kLlama3, Pretokenizer::kGpt2}) {
    const Tokenizer trained = Tokenizer::train_from_texts(
        {"hello world hello world the the the quick quick fox", "Größe Größe 123 123 123"},
        {.vocab_size = 290, .pretokenizer = pre, .min_pair_count = 2});
    const std::string path = (dir_ / "tokenizer.json").string();
    trained.save(path);
    const Tokenizer loaded = Tokenizer::load(path);
    EXPECT_EQ(loaded.vocab_size(), trained.vocab_size());
    for (const auto& text : texts()) {
      EXPECT_EQ(loaded.encode(text), trained.encode(text)) << text;
      EXPECT_EQ(loaded.encode(text, false), trained.encode(text, false)) << text;
    }
    for (const auto special : kSpecialTokens) {
      EXPECT_EQ(loaded.special_id(special), trained.special_id(special));
    }
    // Saving what was loaded writes the same file.
    const std::string again = (dir_ / "again.json").string();
    loaded.save(again);
    EXPECT_EQ(read(again), read(path));
    EXPECT_EQ(read(path).find(R"("type":"Split","pattern":{"Regex":)") != std::string::npos,
              pre == Pretokenizer::kLlama3);
  }
}

TEST_F(TokenizerJson, MergesAsStringsOrPairs) {
  const std::string extra = R"(,"ab":4,"abc":5,"bc":6)";
  const Tokenizer pairs = Tokenizer::load(tiny(R"([["a","b"],["ab","c"],["b","c"]])", extra));
  const Tokenizer strings = Tokenizer::load(tiny(R"(["a b","ab c","b c"])", extra));
  for (const Tokenizer* tok : {&pairs, &strings}) {
    EXPECT_THAT(tok->encode("abc"), ElementsAre(5));
    EXPECT_THAT(tok->encode("bcab"), ElementsAre(6, 4));
    EXPECT_THAT(tok->encode("abcbc a"), ElementsAre(5, 6, 3, 0));
    EXPECT_EQ(tok->vocab_size(), 7);
  }
}

TEST_F(TokenizerJson, LowestRankMergesFirst) {
  // "bc" ranks before "ab": "abc" becomes a + bc, and no merge makes "abc".
  const Tokenizer tok = Tokenizer::load(tiny(R"([["b","c"],["a","b"]])", R"(,"ab":4,"bc":5)"));
  EXPECT_THAT(tok.encode("abc"), ElementsAre(0, 5));
  // Among equal ranks the leftmost pair merges first: "aaa" is aa + a.
  const Tokenizer aa = Tokenizer::load(tiny(R"([["a","a"]])", R"(,"aa":4)"));
  EXPECT_THAT(aa.encode("aaa"), ElementsAre(4, 0));
  EXPECT_THAT(aa.encode("aaaa"), ElementsAre(4, 4));
}

TEST_F(TokenizerJson, IgnoreMergesTakesWholeWords) {
  // With ignore_merges a word in the vocabulary is one token even when the
  // merges would not build it.
  const std::string merges = R"([["b","c"],["a","b"]])";
  const std::string vocab = R"(,"ab":4,"bc":5,"abc":6)";
  EXPECT_THAT(Tokenizer::load(tiny(merges, vocab)).encode("abc"), ElementsAre(0, 5));
  EXPECT_THAT(Tokenizer::load(tiny(merges, vocab, R"("ignore_merges":true,)")).encode("abc"),
              ElementsAre(6));
}

TEST_F(TokenizerJson, BytesWithoutATokenAreDroppedOrUnknown) {
  // As in `tokenizers`: without an unk token a byte the vocabulary lacks is
  // dropped; with one it becomes unk, one per byte unless fuse_unk.
  EXPECT_THAT(Tokenizer::load(tiny("[]")).encode("axxb"), ElementsAre(0, 1));
  EXPECT_THAT(Tokenizer::load(tiny("[]", "", R"("unk_token":"c",)")).encode("axxb"),
              ElementsAre(0, 2, 2, 1));
  EXPECT_THAT(Tokenizer::load(tiny("[]", "", R"("unk_token":"c","fuse_unk":true,)")).encode("axxb"),
              ElementsAre(0, 2, 1));
}

TEST_F(TokenizerJson, AddedTokens) {
  const std::string added =
      R"([{"id":4,"content":"<s>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true},
          {"id":5,"content":"<ss>","special":true,"normalized":true},
          {"id":6,"content":"cab","special":false,"normalized":false}])";
  const Tokenizer tok = Tokenizer::load(tiny("[]", "", "", added));
  EXPECT_EQ(tok.vocab_size(), 7);
  EXPECT_THAT(tok.encode("a<s>b<ss>"), ElementsAre(0, 4, 1, 5));
  // Not special: matched even when specials are not ('<', 's', '>' have no
  // token here and drop out).
  EXPECT_THAT(tok.encode("b<s>cab", false), ElementsAre(1, 6));
  EXPECT_EQ(tok.decode(std::vector<int32_t>{4, 6, 5}), "<s>cab<ss>");
  EXPECT_EQ(tok.token_id("<ss>"), 5);
}

TEST_F(TokenizerJson, PrefixSpaceAndLiteralSplit) {
  const std::string pre =
      R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"String":"c"},"behavior":"Isolated","invert":false},
          {"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":false}]})";
  const Tokenizer tok = Tokenizer::load(tiny(R"([["Ġ","a"]])", R"(,"Ġa":4)", "", "[]", pre));
  // "acab" -> "a", "c", "ab" -> " a", " c", " ab".
  EXPECT_THAT(tok.encode("acab"), ElementsAre(4, 3, 2, 4, 1));
}

TEST_F(TokenizerJson, NfcComposesBeforeMerging) {
  // "é" is the bytes C3 A9 ('Ã', '©' in the byte table); "e" + U+0301 (CC 81,
  // 'Ì', 'ģ') composes to it first, so the merge applies to both spellings.
  const std::string vocab = R"(,"e":4,"Ã":5,"©":6,"Ì":7,"ģ":8,"Ã©":9)";
  const std::string merges = R"([["Ã","©"]])";
  const std::string pre =
      R"({"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true})";
  const Tokenizer plain = Tokenizer::load(tiny(merges, vocab, "", "[]", pre));
  EXPECT_THAT(plain.encode("e\u0301"), ElementsAre(4, 7, 8));
  for (const std::string normalizer :
       {R"({"type":"NFC"})", R"({"type":"Sequence","normalizers":[{"type":"NFC"}]})"}) {
    const Tokenizer nfc = Tokenizer::load(tiny(merges, vocab, "", "[]", pre, normalizer));
    EXPECT_THAT(nfc.encode("e\u0301"), ElementsAre(9)) << normalizer;
    EXPECT_THAT(nfc.encode("\u00e9"), ElementsAre(9));
    EXPECT_EQ(nfc.decode(nfc.encode("ae\u0301b")), "a\u00e9b");
    // ASCII and text already in NFC go through unchanged.
    EXPECT_EQ(nfc.encode("abc cab"), plain.encode("abc cab"));
    EXPECT_EQ(nfc.encode("a\u00e9 b"), plain.encode("a\u00e9 b"));
    // Nothing composes across invalid UTF-8 (0xFF, which has no token here).
    EXPECT_THAT(nfc.encode("e\xff\u0301"), ElementsAre(4, 7, 8));
  }
  // An empty Sequence changes nothing.
  const Tokenizer none = Tokenizer::load(
      tiny(merges, vocab, "", "[]", pre, R"({"type":"Sequence","normalizers":[]})"));
  EXPECT_THAT(none.encode("e\u0301"), ElementsAre(4, 7, 8));
}

TEST_F(TokenizerJson, NfcSkipsTokensNotNormalizedAndNormalizesTheOthers) {
  // `tokenizers` normalizes the text between the tokens with normalized=false
  // (each piece on its own), and matches the normalized tokens, with their
  // contents in NFC, in the normalized text.
  const std::string vocab = R"(,"e":4,"Ã":5,"©":6,"Ì":7,"ģ":8,"Ã©":9)";
  const std::string added =
      R"([{"id":10,"content":"<s>","special":true,"normalized":false},
          {"id":11,"content":"\u0301x","special":true,"normalized":false},
          {"id":12,"content":"ce\u0301","special":false,"normalized":true}])";
  const Tokenizer tok = Tokenizer::load(
      tiny(R"([["Ã","©"]])", vocab, "", added,
           R"({"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true})",
           R"({"type":"NFC"})"));
  // No composition across "<s>"; "\u0301x" is found before normalizing.
  EXPECT_THAT(tok.encode("e<s>\u0301"), ElementsAre(4, 10, 7, 8));
  EXPECT_THAT(tok.encode("e\u0301x"), ElementsAre(4, 11));
  // "cé" matches the token "ce\u0301" in either spelling.
  EXPECT_THAT(tok.encode("ace\u0301"), ElementsAre(0, 12));
  EXPECT_THAT(tok.encode("ac\u00e9"), ElementsAre(0, 12));
  EXPECT_EQ(tok.decode(std::vector<int32_t>{12}), "ce\u0301");
}

TEST_F(TokenizerJson, SaveKeepsNfc) {
  const std::string vocab = R"(,"e":4,"Ã":5,"©":6,"Ì":7,"ģ":8,"Ã©":9)";
  const std::string pre =
      R"({"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true})";
  const std::string path = (dir_ / "nfc.json").string();
  Tokenizer::load(tiny(R"([["Ã","©"]])", vocab, "", "[]", pre,
                       R"({"type":"Sequence","normalizers":[{"type":"NFC"}]})"))
      .save(path);
  EXPECT_THAT(read(path), HasSubstr(R"("normalizer": {"type":"NFC"},)"));
  EXPECT_THAT(Tokenizer::load(path).encode("e\u0301"), ElementsAre(9));
  // Without a normalizer, none is written.
  const std::string plain = (dir_ / "plain.json").string();
  Tokenizer::load(tiny("[]")).save(plain);
  EXPECT_THAT(read(plain), HasSubstr(R"("normalizer": null,)"));
}

TEST(Nfc, AsTokenizersComputesIt) {
  std::string buffer;
  const std::string ascii = "plain ASCII text, returned as it is";
  EXPECT_EQ(detail::to_nfc(ascii, buffer).data(), ascii.data());
  const std::string composed = "caf\u00e9 \ud55c\uad6d\uc5b4 \u65e5\u672c \U0001F44D";
  EXPECT_EQ(detail::to_nfc(composed, buffer).data(), composed.data());
  EXPECT_EQ(detail::to_nfc("e\u0301", buffer), "\u00e9");
  EXPECT_EQ(detail::to_nfc("\u1112\u1161\u11ab", buffer), "\ud55c");   // Hangul jamo
  EXPECT_EQ(detail::to_nfc("\u212b", buffer), "\u00c5");               // ANGSTROM SIGN
  EXPECT_EQ(detail::to_nfc("a\u0301\u0316", buffer), "\u00e1\u0316");  // reordered: 220 < 230
  // U+1DFA (Unicode 14) is unassigned in `tokenizers`' Unicode 9 tables: it
  // blocks the composition and is not reordered.
  EXPECT_EQ(detail::to_nfc("a\u1dfa\u0301", buffer), "a\u1dfa\u0301");
  // Invalid UTF-8 is kept; the valid runs around it are normalized each alone.
  EXPECT_EQ(detail::to_nfc("e\xff\u0301 e\u0301\xc3", buffer), "e\xff\u0301 \u00e9\xc3");
}

TEST_F(TokenizerJson, MissingFile) {
  const std::string path = (dir_ / "nope.json").string();
  EXPECT_THAT(load_error(path), AllOf(HasSubstr(path), HasSubstr("cannot open")));
}

TEST_F(TokenizerJson, MalformedJson) {
  const std::string path = write("bad.json", "{\"version\": \"1.0\",\n \"model\": {\"type\": ");
  EXPECT_THAT(load_error(path), AllOf(HasSubstr(path), HasSubstr("malformed JSON"),
                                      HasSubstr("line 2"), Not(HasSubstr("\n"))));
}

TEST_F(TokenizerJson, BadFilesNameWhatIsWrong) {
  struct Case {
    std::string path;
    std::string expected;
  };
  const std::string byte_level =
      R"({"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true})";
  const std::vector<Case> cases = {
      {write("wp.json", R"({"model":{"type":"WordPiece","vocab":{}}})"),
       "model.type is \"WordPiece\"; only byte-level BPE"},
      {tiny(R"([["a","b"],["a","x"]])", R"(,"ab":4)"),
       "model.merges[1] names the token 'x', which is not in model.vocab"},
      {tiny(R"([["a","c"]])"), "model.merges[0] names the merged token 'ac'"},
      {tiny(R"(["a  b"])"), "model.merges[0] is \"a  b\", not two tokens"},
      {tiny(R"([["a"]])"), "model.merges[0] is [\"a\"], neither"},
      {tiny("[]", R"(,"d":-1)"), "model.vocab[\"d\"] is -1, not a token id"},
      {tiny("[]", R"(,"d":2)"), "model.vocab gives id 2 twice"},
      {tiny("[]", "", R"("byte_fallback":true,)"), "model.byte_fallback is true"},
      {tiny("[]", "", R"("unk_token":"<unk>",)"), "model.unk_token '<unk>' is not in model.vocab"},
      {tiny("[]", "", "", R"([{"id":9,"content":"<s>","special":true}])"),
       "added_tokens[0] ('<s>') has id 9, but `tokenizers` would give it 4"},
      {tiny("[]", "", "", R"([{"id":4,"content":"<s>","lstrip":true}])"),
       "added_tokens[0].lstrip is true"},
      {tiny("[]", "", "", "[]", R"({"type":"Whitespace"})"),
       "pre_tokenizer is a \"Whitespace\" pre-tokenizer"},
      {tiny("[]", "", "", "[]",
            R"({"type":"Split","pattern":{"Regex":"\\p{L}+"},"behavior":"Isolated"})"),
       "pre_tokenizer has no ByteLevel step"},
      {tiny(
           "[]", "", "", "[]",
           R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"(x"},"behavior":"Isolated"},)" +
               byte_level + "]}"),
       "pre_tokenizer: pre-tokenizer pattern '(x' does not compile"},
      {tiny(
           "[]", "", "", "[]",
           R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"x"},"behavior":"Removed"},)" +
               byte_level + "]}"),
       "pre_tokenizer.pretokenizers[0].behavior is not \"Isolated\""},
      {write(
           "dec.json",
           R"({"pre_tokenizer":)" + byte_level +
               R"(,"decoder":{"type":"WordPiece"},"model":{"type":"BPE","vocab":{},"merges":[]}})"),
       "decoder is not ByteLevel"},
      {write("norm.json", R"({"normalizer":{"type":"NFKC"},"model":{"type":"BPE"}})"),
       "normalizer is a \"NFKC\" normalizer; muse-train supports only NFC"},
      {write(
           "norms.json",
           R"({"normalizer":{"type":"Sequence","normalizers":[{"type":"NFC"},{"type":"Lowercase"}]}})"),
       "normalizer.normalizers[1] is a \"Lowercase\" normalizer"},
      {write("version.json", R"({"version":"2.0"})"), "version is not \"1.0\""},
      {write("array.json", "[]"), "(top level) is an array, not an object"},
  };
  for (const Case& c : cases) {
    const std::string error = load_error(c.path);
    EXPECT_THAT(error,
                AllOf(HasSubstr(c.path + ": "), HasSubstr(c.expected), Not(HasSubstr("\n"))));
  }
}

TEST_F(TokenizerJson, SaveIsAtomicAndReportsFailures) {
  const Tokenizer tok = Tokenizer::load(tiny("[]"));
  const std::string path = (dir_ / "out.json").string();
  tok.save(path);
  tok.save(path);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir_))
    names.push_back(entry.path().filename());
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("tiny0.json", "out.json"));
  try {
    tok.save((dir_ / "missing" / "out.json").string());
    ADD_FAILURE() << "no error";
  } catch (const TokenizerError& e) {
    EXPECT_THAT(e.what(), HasSubstr("missing"));
  }
}

TEST(LlamaCppPreName, NamesThePreTokenizersLlamaCppSplitsAlike) {
  using detail::WordSplitterSpec;
  EXPECT_EQ(detail::llama_cpp_pre_name(detail::pretokenizer_spec(Pretokenizer::kLlama3)),
            "llama-bpe");
  EXPECT_EQ(detail::llama_cpp_pre_name(detail::pretokenizer_spec(Pretokenizer::kGpt2)), "gpt-2");
  WordSplitterSpec qwen2;
  qwen2.splits.push_back({.pattern = std::string(detail::kQwen2Pattern), .regex = true});
  EXPECT_EQ(detail::llama_cpp_pre_name(qwen2), "qwen2");
  WordSplitterSpec prefixed = detail::pretokenizer_spec(Pretokenizer::kGpt2);
  prefixed.add_prefix_space = true;  // llama.cpp adds no space
  EXPECT_EQ(detail::llama_cpp_pre_name(prefixed), "");
  WordSplitterSpec other;
  other.splits.push_back({.pattern = "\\s+", .regex = true});
  EXPECT_EQ(detail::llama_cpp_pre_name(other), "");
  EXPECT_EQ(detail::llama_cpp_pre_name(WordSplitterSpec{}), "");  // ByteLevel without a regex
}

}  // namespace
}  // namespace muse::data
