// A model's chat template rendered as Hugging Face transformers renders it
// (`apply_chat_template(..., tokenize=False)`), byte for byte: an interpreter
// of the Jinja subset that real chat templates use, with transformers'
// settings (trim_blocks, lstrip_blocks) and globals (raise_exception,
// strftime_now, namespace). Anything outside the subset is an error, never a
// different text. docs/chat.md lists what is supported.
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace muse::data {

// A template that cannot be parsed or rendered; what() starts with the
// template's origin and, where known, the line: "FILE: line L: ...".
class ChatTemplateError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ChatMessage {
  std::string role;
  std::string content;
};

struct ChatRenderOptions {
  bool add_generation_prompt = true;
  // The template's `bos_token` and `eos_token`; left empty, the variable is
  // undefined, as for a tokenizer without that token.
  std::string bos_token;
  std::string eos_token;
  // Further variables the template may read, e.g. {"date_string": "26 Jul 2024"} or
  // {"enable_thinking": false}; they override bos_token and eos_token. Ordered:
  // a template that iterates over a mapping sees its keys in their order, as in Python.
  nlohmann::ordered_json variables = nlohmann::ordered_json::object();
};

class ChatTemplate {
 public:
  // Parses Jinja source; `origin` (a file name) starts every error message.
  static ChatTemplate parse(std::string_view source, std::string origin);
  // The template's text for `messages`. Errors (raise_exception, an undefined
  // function, a type error) are ChatTemplateError naming origin and line.
  std::string render(const std::vector<ChatMessage>& messages,
                     const ChatRenderOptions& options) const;
  const std::string& origin() const;

 private:
  struct Program;
  explicit ChatTemplate(std::shared_ptr<const Program> program);
  std::shared_ptr<const Program> program_;  // [not null] immutable, shared by copies
};

// The chat template transformers would use for the tokenizer in `dir`:
// chat_template.jinja if present, else tokenizer_config.json's
// "chat_template" (a string, or a list of {"name", "template"} from which
// "default" is taken); nullopt when there is none. Errors name the file.
std::optional<ChatTemplate> find_chat_template(const std::filesystem::path& dir);

}  // namespace muse::data
