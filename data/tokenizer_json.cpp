// Hugging Face tokenizer.json: reading a byte-level BPE one (GPT-2 and Llama-3
// style), writing what `tokenizers` loads. Field meanings follow
// tokenizers/src/tokenizer/serialization.rs and models/bpe/serialization.rs.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "config/files.h"
#include "data/tokenizer.h"
#include "data/tokenizer_impl.h"

namespace muse::data {
namespace {

using detail::AddedToken;
using detail::TokenizerParts;
using detail::WordSplitterSpec;
using nlohmann::json;
using nlohmann::ordered_json;

// Reads the parts of one tokenizer.json; every error names the file and the
// JSON path at fault.
class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {}

  TokenizerParts read(const json& root) const {
    if (!root.is_object()) fail("(top level)", "is " + kind(root) + ", not an object");
    if (const json* version = member(root, "version", "(top level)")) {
      if (string(*version, "version") != "1.0") fail("version", "is not \"1.0\"");
    }
    for (const char* key : {"truncation", "padding"}) {
      const json* value = member(root, key, "(top level)");
      if (value && !value->is_null()) fail(key, "is set; muse-train supports only null here");
    }
    const json* normalizer = member(root, "normalizer", "(top level)");
    const bool nfc = normalizer && !normalizer->is_null() && read_normalizer(*normalizer);
    const json* model = member(root, "model", "(top level)");
    if (model == nullptr) fail("model", "is missing");
    TokenizerParts parts = read_model(*model);
    parts.nfc = nfc;
    if (const json* added = member(root, "added_tokens", "(top level)")) {
      parts.added = read_added(*added);
    }
    const json* pre_tokenizer = member(root, "pre_tokenizer", "(top level)");
    if (pre_tokenizer == nullptr || pre_tokenizer->is_null()) {
      fail("pre_tokenizer", "is missing; a byte-level BPE needs a ByteLevel pre-tokenizer");
    }
    parts.pre_tokenizer = read_pre_tokenizer(*pre_tokenizer);
    const json* decoder = member(root, "decoder", "(top level)");
    if (decoder == nullptr || type(*decoder, "decoder") != "ByteLevel") {
      fail("decoder", "is not ByteLevel; only byte-level BPE tokenizers are supported");
    }
    if (const json* post = member(root, "post_processor", "(top level)")) {
      parts.post_processor = post->dump();
    }
    return parts;
  }

 private:
  [[noreturn]] void fail(const std::string& where, const std::string& what) const {
    throw TokenizerError(path_ + ": " + where + " " + what);
  }

  // "an object", "a string", "null", ... for messages.
  static std::string kind(const json& value) {
    if (value.is_null()) return "null";
    return (value.is_object() || value.is_array() ? "an " : "a ") + std::string(value.type_name());
  }

  // The member `key` of the object `object` (at `where`), or nullptr.
  const json* member(const json& object, const char* key, const std::string& where) const {
    if (!object.is_object()) fail(where, "is " + kind(object) + ", not an object");
    const auto it = object.find(key);
    return it == object.end() ? nullptr : &*it;
  }

  std::string string(const json& value, const std::string& where) const {
    if (!value.is_string()) fail(where, "is " + kind(value) + ", not a string");
    return value.get<std::string>();
  }

  bool boolean(const json& object, const char* key, bool absent, const std::string& where) const {
    const json* value = member(object, key, where);
    if (value == nullptr) return absent;
    if (!value->is_boolean()) fail(where + "." + key, "is " + kind(*value) + ", not true or false");
    return value->get<bool>();
  }

  int32_t id(const json& value, const std::string& where) const {
    if (!value.is_number_integer() || value.get<int64_t>() < 0 ||
        value.get<int64_t>() >= std::numeric_limits<int32_t>::max()) {
      fail(where, "is " + value.dump() + ", not a token id (an integer from 0 to 2^31-2)");
    }
    return static_cast<int32_t>(value.get<int64_t>());
  }

  std::string type(const json& object, const std::string& where) const {
    const json* value = member(object, "type", where);
    if (value == nullptr) fail(where, "has no \"type\"");
    return string(*value, where + ".type");
  }

  // Fails unless `object.key` is absent, null, or (when `empty_ok`) "".
  void require_unset(const json& object, const char* key, bool empty_ok,
                     const std::string& where) const {
    const json* value = member(object, key, where);
    if (value == nullptr || value->is_null()) return;
    if (empty_ok && value->is_string() && value->get<std::string>().empty()) return;
    fail(where + "." + key, "is " + value->dump() + "; muse-train supports only null here");
  }

  TokenizerParts read_model(const json& model) const {
    const std::string model_type = type(model, "model");
    if (model_type != "BPE") {
      fail("model.type", "is \"" + model_type + "\"; only byte-level BPE models are supported");
    }
    require_unset(model, "dropout", false, "model");
    require_unset(model, "continuing_subword_prefix", true, "model");
    require_unset(model, "end_of_word_suffix", true, "model");
    if (boolean(model, "byte_fallback", false, "model")) {
      fail("model.byte_fallback", "is true; byte-level BPE has no byte fallback tokens");
    }
    TokenizerParts parts;
    parts.fuse_unk = boolean(model, "fuse_unk", false, "model");
    parts.ignore_merges = boolean(model, "ignore_merges", false, "model");
    if (const json* unk = member(model, "unk_token", "model"); unk && !unk->is_null()) {
      parts.unk_token = string(*unk, "model.unk_token");
    }

    const json* vocab = member(model, "vocab", "model");
    if (vocab == nullptr || !vocab->is_object()) fail("model.vocab", "is missing or not an object");
    detail::StringMap<int32_t> ids;
    parts.vocab.reserve(vocab->size());
    for (const auto& [token, value] : vocab->items()) {
      parts.vocab.emplace_back(token, id(value, "model.vocab[\"" + token + "\"]"));
      ids.emplace(token, parts.vocab.back().second);
    }
    std::sort(parts.vocab.begin(), parts.vocab.end(),
              [](const auto& a, const auto& b) { return a.second < b.second; });

    const json* merges = member(model, "merges", "model");
    if (merges == nullptr || !merges->is_array())
      fail("model.merges", "is missing or not an array");
    parts.merges.reserve(merges->size());
    const auto lookup = [&](const std::string& token, const std::string& where,
                            const std::string& role) {
      const auto it = ids.find(token);
      if (it == ids.end())
        fail(where, "names " + role + " '" + token + "', which is not in model.vocab");
      return it->second;
    };
    for (size_t i = 0; i < merges->size(); ++i) {
      const json& merge = (*merges)[i];
      const std::string where = "model.merges[" + std::to_string(i) + "]";
      std::string left, right;
      if (merge.is_string()) {
        // The legacy form "a b": exactly one space (vocabulary strings spell it 'Ġ').
        const std::string text = merge.get<std::string>();
        if (text.starts_with("#version")) continue;
        const size_t space = text.find(' ');
        if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
          fail(where, "is \"" + text + "\", not two tokens separated by one space");
        }
        left = text.substr(0, space);
        right = text.substr(space + 1);
      } else if (merge.is_array() && merge.size() == 2) {
        left = string(merge[0], where + "[0]");
        right = string(merge[1], where + "[1]");
      } else {
        fail(where, "is " + merge.dump() + ", neither \"a b\" nor [\"a\", \"b\"]");
      }
      parts.merges.push_back({lookup(left, where, "the token"), lookup(right, where, "the token"),
                              lookup(left + right, where, "the merged token")});
    }
    return parts;
  }

  std::vector<AddedToken> read_added(const json& added) const {
    if (!added.is_array()) fail("added_tokens", "is " + kind(added) + ", not an array");
    std::vector<AddedToken> tokens;
    for (size_t i = 0; i < added.size(); ++i) {
      const std::string where = "added_tokens[" + std::to_string(i) + "]";
      const json* content = member(added[i], "content", where);
      const json* token_id = member(added[i], "id", where);
      if (content == nullptr || token_id == nullptr)
        fail(where, "needs an \"id\" and a \"content\"");
      AddedToken token;
      token.content = string(*content, where + ".content");
      if (token.content.empty()) fail(where + ".content", "is empty");
      token.id = id(*token_id, where + ".id");
      token.special = boolean(added[i], "special", false, where);
      token.normalized = boolean(added[i], "normalized", true, where);
      for (const char* flag : {"single_word", "lstrip", "rstrip"}) {
        if (boolean(added[i], flag, false, where)) {
          fail(where + "." + flag, "is true; muse-train supports only false");
        }
      }
      tokens.push_back(std::move(token));
    }
    return tokens;
  }

  // Whether the normalizer changes text: NFC (Qwen2's), alone or in a
  // Sequence, is the only one supported; an empty Sequence changes nothing.
  bool read_normalizer(const json& normalizer) const {
    std::vector<std::pair<const json*, std::string>> steps;
    if (type(normalizer, "normalizer") == "Sequence") {
      const json* list = member(normalizer, "normalizers", "normalizer");
      if (list == nullptr || !list->is_array()) {
        fail("normalizer.normalizers", "is missing or not an array");
      }
      for (size_t i = 0; i < list->size(); ++i) {
        steps.emplace_back(&(*list)[i], "normalizer.normalizers[" + std::to_string(i) + "]");
      }
    } else {
      steps.emplace_back(&normalizer, "normalizer");
    }
    for (const auto& [step, where] : steps) {
      const std::string step_type = type(*step, where);
      if (step_type != "NFC") {
        fail(where, "is a \"" + step_type +
                        "\" normalizer; muse-train supports only NFC (alone or in a Sequence)");
      }
    }
    return !steps.empty();
  }

  WordSplitterSpec read_pre_tokenizer(const json& pre_tokenizer) const {
    std::vector<std::pair<const json*, std::string>> steps;
    if (type(pre_tokenizer, "pre_tokenizer") == "Sequence") {
      const json* list = member(pre_tokenizer, "pretokenizers", "pre_tokenizer");
      if (list == nullptr || !list->is_array()) {
        fail("pre_tokenizer.pretokenizers", "is missing or not an array");
      }
      for (size_t i = 0; i < list->size(); ++i) {
        steps.emplace_back(&(*list)[i], "pre_tokenizer.pretokenizers[" + std::to_string(i) + "]");
      }
    } else {
      steps.emplace_back(&pre_tokenizer, "pre_tokenizer");
    }
    WordSplitterSpec spec;
    bool byte_level = false;
    for (const auto& [step, where] : steps) {
      const std::string step_type = type(*step, where);
      if (byte_level) fail(where, "follows ByteLevel; muse-train supports ByteLevel only last");
      if (step_type == "ByteLevel") {
        // Absent flags take `tokenizers`' defaults (all true).
        spec.add_prefix_space = boolean(*step, "add_prefix_space", true, where);
        spec.trim_offsets = boolean(*step, "trim_offsets", true, where);
        spec.use_regex = boolean(*step, "use_regex", true, where);
        byte_level = true;
      } else if (step_type == "Split") {
        spec.splits.push_back(read_split(*step, where));
      } else {
        fail(where,
             "is a \"" + step_type + "\" pre-tokenizer; muse-train supports Split and ByteLevel");
      }
    }
    if (!byte_level)
      fail("pre_tokenizer", "has no ByteLevel step; only byte-level BPE is supported");
    return spec;
  }

  detail::SplitRule read_split(const json& split, const std::string& where) const {
    const json* pattern = member(split, "pattern", where);
    if (pattern == nullptr) fail(where, "has no \"pattern\"");
    detail::SplitRule rule;
    if (const json* regex = member(*pattern, "Regex", where + ".pattern")) {
      rule.pattern = string(*regex, where + ".pattern.Regex");
    } else if (const json* literal = member(*pattern, "String", where + ".pattern")) {
      rule.pattern = string(*literal, where + ".pattern.String");
      rule.regex = false;
    } else {
      fail(where + ".pattern", "has neither \"Regex\" nor \"String\"");
    }
    const json* behavior = member(split, "behavior", where);
    if (behavior == nullptr || string(*behavior, where + ".behavior") != "Isolated") {
      fail(where + ".behavior", "is not \"Isolated\"; muse-train supports only that");
    }
    if (boolean(split, "invert", false, where))
      fail(where + ".invert", "is true; muse-train supports only false");
    return rule;
  }

  const std::string& path_;
};

ordered_json byte_level_json(bool add_prefix_space, bool trim_offsets, bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", add_prefix_space},
          {"trim_offsets", trim_offsets},
          {"use_regex", use_regex}};
}

ordered_json pre_tokenizer_json(const WordSplitterSpec& spec) {
  const ordered_json byte_level =
      byte_level_json(spec.add_prefix_space, spec.trim_offsets, spec.use_regex);
  if (spec.splits.empty()) return byte_level;
  ordered_json steps = ordered_json::array();
  for (const detail::SplitRule& rule : spec.splits) {
    steps.push_back({{"type", "Split"},
                     {"pattern", {{rule.regex ? "Regex" : "String", rule.pattern}}},
                     {"behavior", "Isolated"},
                     {"invert", false}});
  }
  steps.push_back(byte_level);
  return {{"type", "Sequence"}, {"pretokenizers", steps}};
}

std::string quote(std::string_view text) {
  return json(text).dump();
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& path, const TokenRolesConfig& roles) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw TokenizerError(path + ": cannot open the tokenizer file (" + std::strerror(errno) + ")");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw TokenizerError(path + ": cannot read the tokenizer file");
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    // what() is "[json.exception.parse_error.N] parse error at line L, column C: ...".
    const std::string what = e.what();
    const size_t start = what.find("] ");
    throw TokenizerError(
        path + ": malformed JSON: " + (start == std::string::npos ? what : what.substr(start + 2)));
  }
  Tokenizer tokenizer(std::make_unique<Impl>(Reader(path).read(root), path));
  tokenizer.impl_->roles = resolve_token_roles(tokenizer, path, roles);
  return tokenizer;
}

namespace {

// The ids a post-processor puts before the text: the SpecialToken pieces
// before the first Sequence of a TemplateProcessing's "single" template.
std::vector<int32_t> leading_special_ids(const json& post, const std::string& origin,
                                         int64_t vocab_size) {
  // A Sequence of processors (Llama 3: ByteLevel, then TemplateProcessing).
  const json processors = post.is_object() && post.value("type", "") == "Sequence"
                              ? post.value("processors", json::array())
                              : json::array({post});
  std::vector<int32_t> ids;
  for (const json& p : processors) {
    if (!p.is_object() || p.value("type", "") != "TemplateProcessing") continue;
    const json special = p.value("special_tokens", json::object());
    for (const json& piece : p.value("single", json::array())) {
      if (!piece.contains("SpecialToken")) break;  // the text ("Sequence") comes next
      const std::string name = piece["SpecialToken"].value("id", "");
      if (!special.contains(name)) {
        throw TokenizerError(origin + ": post_processor names special token '" + name +
                             "' without its ids");
      }
      for (const json& id : special[name].value("ids", json::array())) {
        const auto value = id.get<int64_t>();
        if (value < 0 || value >= vocab_size) {
          throw TokenizerError(origin + ": post_processor gives '" + name + "' the id " +
                               std::to_string(value) + ", outside the vocabulary");
        }
        ids.push_back(static_cast<int32_t>(value));
      }
    }
  }
  return ids;
}

}  // namespace

std::vector<int32_t> Tokenizer::leading_special_tokens() const {
  try {
    return leading_special_ids(json::parse(impl_->parts.post_processor), impl_->origin,
                               vocab_size());
  } catch (const json::exception& e) {
    throw TokenizerError(impl_->origin + ": post_processor: " + e.what());
  }
}

bool Tokenizer::has_post_processor() const {
  return impl_->parts.post_processor != "null";
}

void Tokenizer::save(const std::string& path) const {
  const detail::TokenizerParts& parts = impl_->parts;
  std::string out = "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n";
  out += "  \"added_tokens\": [";
  for (size_t i = 0; i < parts.added.size(); ++i) {
    const AddedToken& token = parts.added[i];
    const ordered_json entry = {{"id", token.id},          {"content", token.content},
                                {"single_word", false},    {"lstrip", false},
                                {"rstrip", false},         {"normalized", token.normalized},
                                {"special", token.special}};
    out += (i == 0 ? "\n    " : ",\n    ") + entry.dump();
  }
  out += parts.added.empty() ? "],\n" : "\n  ],\n";
  out += parts.nfc ? "  \"normalizer\": {\"type\":\"NFC\"},\n" : "  \"normalizer\": null,\n";
  out += "  \"pre_tokenizer\": " + pre_tokenizer_json(parts.pre_tokenizer).dump() + ",\n";
  out += "  \"post_processor\": " + parts.post_processor + ",\n";
  out += "  \"decoder\": " + byte_level_json(true, true, true).dump() + ",\n";
  out += "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n";
  out += "    \"unk_token\": " + (parts.unk_token ? quote(*parts.unk_token) : "null") + ",\n";
  out += "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n";
  out += "    \"fuse_unk\": " + std::string(parts.fuse_unk ? "true" : "false") + ",\n";
  out += "    \"byte_fallback\": false,\n";
  out += "    \"ignore_merges\": " + std::string(parts.ignore_merges ? "true" : "false") + ",\n";
  out += "    \"vocab\": {";
  std::vector<std::string> quoted(impl_->id_bytes.size());  // model.vocab's strings by id
  for (size_t i = 0; i < parts.vocab.size(); ++i) {
    const auto& [token, id] = parts.vocab[i];
    quoted[id] = quote(token);
    out += (i == 0 ? "\n      " : ",\n      ") + quoted[id] + ": " + std::to_string(id);
  }
  out += parts.vocab.empty() ? "},\n" : "\n    },\n";
  out += "    \"merges\": [";
  for (size_t i = 0; i < parts.merges.size(); ++i) {
    const detail::Merge& merge = parts.merges[i];
    out += (i == 0 ? "\n      [" : ",\n      [") + quoted[merge.left] + ", " + quoted[merge.right] +
           "]";
  }
  out += parts.merges.empty() ? "]\n" : "\n    ]\n";
  out += "  }\n}\n";
  try {
    config::write_file_atomic(path, out);
  } catch (const std::runtime_error& e) {
    throw TokenizerError(std::string("cannot save the tokenizer: ") + e.what());
  }
}

}  // namespace muse::data
