// libFuzzer target: the files transformers saves beside tokenizer.json, as
// a run with data.chat reads them: tokenizer_config.json (eos, bos and pad
// tokens, the chat template as a string or a list of named templates) and
// generation_config.json (eos_token_id). The input is tokenizer_config.json,
// optionally followed by a line "#generation_config.json" and that file. The
// tokenizer is fixed: a small one that holds the special tokens of the
// families muse-train reads. Any input must give the roles and a rendered
// prompt or raise TokenizerError or ChatTemplateError, never crash.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "data/chat_template.h"
#include "data/tokenizer.h"

namespace {

namespace data = muse::data;
namespace fs = std::filesystem;

constexpr std::string_view kGenerationConfigLine = "\n#generation_config.json\n";

// The special tokens of SmolLM2, Qwen2.5/3, Llama 3.x, DeepSeek-R1-Distill
// and Mistral, added to a tokenizer trained here.
fs::path make_tokenizer(const fs::path& dir) {
  fs::create_directories(dir);
  const fs::path path = dir / "tokenizer.json";
  data::Tokenizer::train_from_texts({"What is 6 + 4? The answer is 10."}, {.vocab_size = 300})
      .save(path.string());
  nlohmann::json file = nlohmann::json::parse(std::ifstream(path));
  int64_t id = static_cast<int64_t>(file["model"]["vocab"].size());
  for (const char* token : {"<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>",
                            "<|start_header_id|>", "<|end_header_id|>", "<｜begin▁of▁sentence｜>",
                            "<｜end▁of▁sentence｜>", "<s>", "</s>", "[INST]", "[/INST]"}) {
    file["added_tokens"].push_back({{"id", id++},
                                    {"content", token},
                                    {"single_word", false},
                                    {"lstrip", false},
                                    {"rstrip", false},
                                    {"normalized", false},
                                    {"special", true}});
  }
  std::ofstream(path) << file.dump();
  return path;
}

void write_file(const fs::path& path, std::string_view text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  static const fs::path dir = "/tmp/muse_fuzz_tokenizer_config_" + std::to_string(::getpid());
  static const fs::path tokenizer_path = make_tokenizer(dir);
  const std::string_view input(reinterpret_cast<const char*>(bytes), size);
  const size_t split = input.find(kGenerationConfigLine);
  write_file(dir / "tokenizer_config.json", input.substr(0, split));
  if (split == std::string_view::npos) {
    fs::remove(dir / "generation_config.json");
  } else {
    write_file(dir / "generation_config.json", input.substr(split + kGenerationConfigLine.size()));
  }
  try {
    data::Tokenizer tokenizer = data::Tokenizer::load(tokenizer_path.string());
    const data::TokenRoles& roles = tokenizer.roles();
    (void)roles.stop_tokens();
    const int32_t end = roles.end();
    (void)tokenizer.decode({&end, 1});
    (void)roles.pad_id();
    if (std::optional<data::ChatTemplate> chat = data::find_chat_template(dir)) {
      tokenizer.use_chat(std::move(*chat), "Be brief.");
      (void)tokenizer.encode(tokenizer.render_chat_prompt("What is 6 + 4?"));
    }
  } catch (const data::TokenizerError&) {
  } catch (const data::ChatTemplateError&) {
  }
  return 0;
}
