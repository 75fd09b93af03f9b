// The C++ side of tests/data/tokenizer_compat.py, which checks muse-train's
// tokenizer against the `tokenizers` package:
//
//   tokenizer_tool train OUT.json gpt2|llama3 VOCAB_SIZE FILE...
//   tokenizer_tool encode TOKENIZER.json   (stdin: JSON lines {"text": s, "special": b};
//                                           stdout: JSON lines {"ids": [...], "roundtrip": b})
//   tokenizer_tool pieces gpt2|llama3 FILE (stdout: the byte offsets [begin, end) of each
//                                           pre-tokenized word of FILE, one JSON array)
//   tokenizer_tool nfc FILE                (stdout: FILE's text in NFC, as a tokenizer.json
//                                           with the NFC normalizer sees it)
#include <exception>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "data/tokenizer.h"
#include "data/tokenizer_nfc.h"
#include "data/tokenizer_words.h"

namespace {

using muse::data::Pretokenizer;
using muse::data::Tokenizer;
using nlohmann::json;

Pretokenizer pretokenizer(std::string_view name) {
  if (name == "gpt2") return Pretokenizer::kGpt2;
  if (name == "llama3") return Pretokenizer::kLlama3;
  throw std::invalid_argument("unknown pre-tokenizer '" + std::string(name) + "' (gpt2, llama3)");
}

int train(const std::vector<std::string>& args) {
  muse::data::TrainOptions options;
  options.pretokenizer = pretokenizer(args.at(1));
  options.vocab_size = std::stoll(args.at(2));
  const std::vector<std::string> files(args.begin() + 3, args.end());
  Tokenizer::train(files, options).save(args.at(0));
  return 0;
}

int encode(const std::vector<std::string>& args) {
  const Tokenizer tokenizer = Tokenizer::load(args.at(0));
  std::string line;
  while (std::getline(std::cin, line)) {
    const json request = json::parse(line);
    const std::string text = request.at("text").get<std::string>();
    const std::vector<int32_t> ids = tokenizer.encode(text, request.at("special").get<bool>());
    std::cout << json{{"ids", ids}, {"roundtrip", tokenizer.decode(ids) == text}}.dump() << '\n';
  }
  return 0;
}

int pieces(const std::vector<std::string>& args) {
  const muse::data::detail::WordSplitter splitter(
      muse::data::detail::pretokenizer_spec(pretokenizer(args.at(0))));
  std::ifstream in(args.at(1), std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  json offsets = json::array();
  splitter.split(text, [&](std::string_view word) {
    const auto begin = word.data() - text.data();
    offsets.push_back({begin, begin + static_cast<std::ptrdiff_t>(word.size())});
  });
  std::cout << offsets.dump() << '\n';
  return 0;
}

int nfc(const std::vector<std::string>& args) {
  std::ifstream in(args.at(0), std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string buffer;
  std::cout << muse::data::detail::to_nfc(text, buffer);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + std::min(argc, 2), argv + argc);
  const std::string command = argc > 1 ? argv[1] : "";
  try {
    if (command == "train") return train(args);
    if (command == "encode") return encode(args);
    if (command == "pieces") return pieces(args);
    if (command == "nfc") return nfc(args);
    std::cerr << "usage: tokenizer_tool train|encode|pieces|nfc ... (see the source)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 1;
  }
}
