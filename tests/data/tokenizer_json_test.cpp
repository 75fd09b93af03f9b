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
          R"({"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true})") {
    return write("tiny" + std::to_string(tiny_files_++) + ".json",
                 R"({"version":"1.0","truncation":null,"padding":null,"added_tokens":)" + added +
                     R"(,"normalizer":null,"pre_tokenizer":)" + pre_tokenizer +
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
      {write("norm.json", R"({"normalizer":{"type":"NFC"},"model":{"type":"BPE"}})"),
       "normalizer is set"},
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
