// Byte-level BPE encoding and decoding; the index built over a vocabulary.
#include "data/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <utility>

#include "data/tokenizer_impl.h"

namespace muse::data {
namespace detail {

MergeMap::MergeMap(const std::vector<Merge>& merges) {
  size_t capacity = 16;
  int bits = 4;
  while (capacity < 2 * merges.size()) {
    capacity <<= 1;
    ++bits;
  }
  slots_.resize(capacity);
  shift_ = 64 - bits;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const Merge& merge = merges[rank];
    const uint64_t k = key(merge.left, merge.right);
    size_t slot = home(k);
    while (slots_[slot].key != kEmpty && slots_[slot].key != k)
      slot = (slot + 1) & (capacity - 1);
    slots_[slot] = {k, static_cast<int32_t>(rank), merge.id};
  }
}

const MergeMap::Entry* MergeMap::find(int32_t left, int32_t right) const {
  const uint64_t k = key(left, right);
  for (size_t slot = home(k);; slot = (slot + 1) & (slots_.size() - 1)) {
    if (slots_[slot].key == k) return &slots_[slot];
    if (slots_[slot].key == kEmpty) return nullptr;
  }
}

AddedMatcher::AddedMatcher(const std::vector<AddedToken>& tokens, bool normalized, bool nfc) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].normalized != normalized) continue;
    std::string buffer;
    std::string content(nfc ? to_nfc(tokens[i].content, buffer) : tokens[i].content);
    by_first_byte_[static_cast<uint8_t>(content[0])].push_back({std::move(content), i});
    ++count_;
  }
  for (auto& candidates : by_first_byte_) {
    std::stable_sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
      return a.content.size() > b.content.size();
    });
  }
}

bool AddedMatcher::find(std::string_view text, size_t from, size_t* begin, size_t* end,
                        size_t* token) const {
  if (count_ == 0) return false;
  for (size_t pos = from; pos < text.size(); ++pos) {
    for (const Candidate& candidate : by_first_byte_[static_cast<uint8_t>(text[pos])]) {
      if (text.substr(pos, candidate.content.size()) == candidate.content) {
        *begin = pos;
        *end = pos + candidate.content.size();
        *token = candidate.token;
        return true;
      }
    }
  }
  return false;
}

std::string in_quotes(std::string_view token) {
  std::string text(1, '\'');
  text += token;
  text += '\'';
  return text;
}

}  // namespace detail

namespace {

using detail::AddedToken;
using detail::TokenizerParts;

// Words longer than this are merged every time instead of cached (as in
// `tokenizers`); the cache stops growing at kMaxCachedWords.
constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCachedWords = size_t{1} << 17;

// Word -> ids of the words merged before. Open addressing over one arena that
// holds each word's bytes followed by its ids, so that a hit touches about two
// cache lines (a node-based map takes four or five misses per word here).
class WordCache {
 public:
  // Appends the ids of `word` and returns true, or returns false.
  bool find(std::string_view word, uint64_t hash, std::vector<int32_t>& ids) const {
    if (slots_.empty()) return false;
    for (size_t i = hash & (slots_.size() - 1);; i = (i + 1) & (slots_.size() - 1)) {
      const Slot& slot = slots_[i];
      if (slot.hash == 0) return false;
      if (slot.hash == hash && slot.size == word.size() &&
          std::memcmp(arena_.data() + slot.offset, word.data(), word.size()) == 0) {
        const size_t first = ids.size();
        ids.resize(first + slot.count);
        std::memcpy(ids.data() + first, arena_.data() + slot.offset + padded(slot.size),
                    slot.count * sizeof(int32_t));
        return true;
      }
    }
  }

  // Remembers the ids of `word` (at most kMaxCachedWordBytes long), unless full.
  void insert(std::string_view word, uint64_t hash, std::span<const int32_t> ids) {
    if (count_ >= kMaxCachedWords) return;
    if (2 * (count_ + 1) > slots_.size()) grow();
    Slot slot{hash, static_cast<uint32_t>(arena_.size()), static_cast<uint16_t>(word.size()),
              static_cast<uint16_t>(ids.size())};
    arena_.append(word);
    arena_.resize(slot.offset + padded(slot.size) + ids.size_bytes());
    std::memcpy(arena_.data() + slot.offset + padded(slot.size), ids.data(), ids.size_bytes());
    place(slot);
    ++count_;
  }

  void clear() {
    slots_.clear();
    arena_.clear();
    count_ = 0;
  }

  // A hash for find and insert; never 0, which marks an empty slot.
  static uint64_t hash(std::string_view word) { return std::hash<std::string_view>{}(word) | 1; }

 private:
  struct Slot {
    uint64_t hash = 0;    // 0: empty
    uint32_t offset = 0;  // of the word's bytes in arena_; its ids follow, 4-byte aligned
    uint16_t size = 0;    // the word's bytes
    uint16_t count = 0;   // its ids
  };
  static size_t padded(size_t size) { return (size + 3) & ~size_t{3}; }

  void place(const Slot& slot) {
    size_t i = slot.hash & (slots_.size() - 1);
    while (slots_[i].hash != 0)
      i = (i + 1) & (slots_.size() - 1);
    slots_[i] = slot;
  }
  void grow() {
    std::vector<Slot> old(std::max<size_t>(1024, 2 * slots_.size()));
    old.swap(slots_);
    for (const Slot& slot : old) {
      if (slot.hash != 0) place(slot);
    }
  }

  std::vector<Slot> slots_;  // a power of two, at most half full
  std::string arena_;
  size_t count_ = 0;
};

// A symbol of a word being merged: a doubly linked list over positions.
struct Symbol {
  int32_t id = 0;  // -1: merged into its left neighbour
  int32_t prev = -1;
  int32_t next = -1;
};

// A merge that may apply at `pos` (with the symbol after it).
struct Candidate {
  int32_t rank = 0;
  int32_t pos = 0;
  int32_t id = 0;  // the merged token
};

// Heap order: the lowest rank first, the leftmost first among equal ranks.
struct Later {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  }
};

// Per thread: the ids of words already merged (for one tokenizer at a time, so
// encode stays const and lock-free), and merge_word's working memory.
struct ThreadState {
  uint64_t owner = 0;  // Impl::serial of the tokenizer `words` belongs to
  WordCache words;
  std::vector<Symbol> symbols;
  std::vector<Candidate> queue;
};

ThreadState& thread_state(uint64_t serial) {
  thread_local ThreadState state;
  if (state.owner != serial) {
    state.words.clear();
    state.owner = serial;
  }
  return state;
}

detail::WordSplitter make_splitter(const detail::WordSplitterSpec& spec, const std::string& where) {
  try {
    return detail::WordSplitter(spec);
  } catch (const TokenizerError& e) {
    throw TokenizerError(where + ": pre_tokenizer: " + e.what());
  }
}

}  // namespace

Tokenizer::Impl::Impl(TokenizerParts parts_in, const std::string& where)
    : parts(std::move(parts_in)),
      splitter(make_splitter(parts.pre_tokenizer, where)),
      merge_map(parts.merges),
      raw_matcher(parts.added, false, false),
      normalized_matcher(parts.added, true, parts.nfc),
      origin(where) {
  static std::atomic<uint64_t> serials{0};
  serial = ++serials;
  const auto fail = [&](const std::string& what) { throw TokenizerError(where + ": " + what); };

  int32_t max_id = -1;
  for (const auto& [token, id] : parts.vocab) {
    if (token.empty()) fail("model.vocab has an empty token (id " + std::to_string(id) + ")");
    if (id < 0)
      fail("model.vocab gives " + detail::in_quotes(token) + " the negative id " +
           std::to_string(id));
    // Real vocabularies number their tokens 0..n-1; a larger id would size
    // the id table from a number in the file.
    if (id >= static_cast<int64_t>(parts.vocab.size()))
      fail("model.vocab gives " + detail::in_quotes(token) + " the id " + std::to_string(id) +
           ", outside 0.." + std::to_string(parts.vocab.size() - 1) +
           " (model.vocab's ids must be dense)");
    if (!vocab_ids.emplace(token, id).second)
      fail("model.vocab lists " + detail::in_quotes(token) + " twice");
    max_id = std::max(max_id, id);
  }
  // Added tokens outside model.vocab get the ids after it, in file order, when
  // `tokenizers` loads the file; any other id would encode differently there.
  const auto model_size = static_cast<int32_t>(parts.vocab.size());
  std::optional<int32_t> max_added;
  for (size_t i = 0; i < parts.added.size(); ++i) {
    const AddedToken& token = parts.added[i];
    const std::string name =
        "added_tokens[" + std::to_string(i) + "] (" + detail::in_quotes(token.content) + ")";
    if (added_ids.contains(token.content)) fail(name + " is listed twice");
    int32_t expected = model_size;
    if (const auto it = vocab_ids.find(token.content); it != vocab_ids.end()) {
      expected = it->second;
    } else if (max_added && (*max_added >= model_size || model_size == 0)) {
      expected = *max_added + 1;
    }
    if (token.id != expected) {
      fail(name + " has id " + std::to_string(token.id) + ", but `tokenizers` would give it " +
           std::to_string(expected) +
           " (an added token outside model.vocab takes the next id after model.vocab and the "
           "added tokens before it)");
    }
    added_ids.emplace(token.content, token.id);
    max_added = std::max(max_added.value_or(token.id), token.id);
    max_id = std::max(max_id, token.id);
  }

  id_bytes.resize(static_cast<size_t>(max_id) + 1);
  for (const auto& [token, id] : parts.vocab) {
    if (!id_bytes[id].empty()) fail("model.vocab gives id " + std::to_string(id) + " twice");
    id_bytes[id] = detail::token_to_bytes(token);
  }
  for (const AddedToken& token : parts.added)
    id_bytes[token.id] = token.content;

  for (int b = 0; b < 256; ++b) {
    const auto it = vocab_ids.find(detail::byte_char(static_cast<uint8_t>(b)));
    byte_ids[b] = it == vocab_ids.end() ? -1 : it->second;
  }
  if (parts.unk_token) {
    const auto it = vocab_ids.find(*parts.unk_token);
    if (it == vocab_ids.end())
      fail("model.unk_token " + detail::in_quotes(*parts.unk_token) + " is not in model.vocab");
    unk_id = it->second;
  }
  for (size_t rank = 0; rank < parts.merges.size(); ++rank) {
    const detail::Merge& merge = parts.merges[rank];
    for (const int32_t id : {merge.left, merge.right, merge.id}) {
      if (id < 0 || id > max_id || id_bytes[id].empty()) {
        fail("merge " + std::to_string(rank) + " names id " + std::to_string(id) +
             ", which is not in the vocabulary");
      }
    }
  }
}

void Tokenizer::Impl::encode_word(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.size() == 1 && byte_ids[static_cast<uint8_t>(word[0])] >= 0) {
    ids.push_back(byte_ids[static_cast<uint8_t>(word[0])]);
    return;
  }
  if (word.size() > kMaxCachedWordBytes) {
    merge_word(word, ids);
    return;
  }
  ThreadState& state = thread_state(serial);
  const uint64_t hash = WordCache::hash(word);
  if (state.words.find(word, hash, ids)) return;
  const size_t first = ids.size();
  merge_word(word, ids);
  state.words.insert(word, hash, std::span<const int32_t>(ids).subspan(first));
}

void Tokenizer::Impl::merge_word(std::string_view word, std::vector<int32_t>& ids) const {
  if (parts.ignore_merges) {
    const auto it = vocab_ids.find(detail::bytes_to_token(word));
    if (it != vocab_ids.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  ThreadState& state = thread_state(serial);
  std::vector<Symbol>& symbols = state.symbols;
  symbols.clear();
  bool in_unknown_run = false;
  for (const char c : word) {
    const int32_t id = byte_ids[static_cast<uint8_t>(c)];
    if (id >= 0) {
      symbols.push_back({id});
      in_unknown_run = false;
    } else if (unk_id) {
      if (!(parts.fuse_unk && in_unknown_run)) symbols.push_back({*unk_id});
      in_unknown_run = true;
    }
    // Without an unk token a byte the vocabulary lacks is dropped, as in `tokenizers`.
  }
  const auto n = static_cast<int32_t>(symbols.size());
  for (int32_t i = 0; i < n; ++i) {
    symbols[i].prev = i - 1;
    symbols[i].next = i + 1 < n ? i + 1 : -1;
  }

  std::vector<Candidate>& queue = state.queue;
  queue.clear();
  for (int32_t i = 0; i + 1 < n; ++i) {
    if (const auto* merge = merge_map.find(symbols[i].id, symbols[i + 1].id)) {
      queue.push_back({merge->rank, i, merge->id});
    }
  }
  std::make_heap(queue.begin(), queue.end(), Later{});
  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end(), Later{});
    const Candidate top = queue.back();
    queue.pop_back();
    Symbol& symbol = symbols[top.pos];
    if (symbol.id < 0 || symbol.next < 0) continue;
    const int32_t right_pos = symbol.next;
    const Symbol right = symbols[right_pos];
    // Skip a candidate that earlier merges around it made stale.
    const auto* merge = merge_map.find(symbol.id, right.id);
    if (merge == nullptr || merge->id != top.id) continue;

    symbol.id = top.id;
    symbol.next = right.next;
    symbols[right_pos].id = -1;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (symbol.prev >= 0) {
      if (const auto* left = merge_map.find(symbols[symbol.prev].id, symbol.id)) {
        queue.push_back({left->rank, symbol.prev, left->id});
        std::push_heap(queue.begin(), queue.end(), Later{});
      }
    }
    if (symbol.next >= 0) {
      if (const auto* next = merge_map.find(symbol.id, symbols[symbol.next].id)) {
        queue.push_back({next->rank, top.pos, next->id});
        std::push_heap(queue.begin(), queue.end(), Later{});
      }
    }
  }
  for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = symbols[i].next)
    ids.push_back(symbols[i].id);
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool parse_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3);
  impl_->split(
      text, parse_special, [&](std::string_view word) { impl_->encode_word(word, ids); },
      [&](int32_t id) { ids.push_back(id); });
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string text;
  for (const int32_t id : ids) {
    if (id < 0 || id >= vocab_size() || impl_->id_bytes[id].empty()) {
      throw TokenizerError("decode: id " + std::to_string(id) +
                           " is not in the vocabulary (ids 0.." + std::to_string(vocab_size() - 1) +
                           ")");
    }
    text += impl_->id_bytes[id];
  }
  return text;
}

std::string Tokenizer::llama_cpp_pre_tokenizer() const {
  return std::string(detail::llama_cpp_pre_name(impl_->parts.pre_tokenizer));
}

int64_t Tokenizer::vocab_size() const {
  return static_cast<int64_t>(impl_->id_bytes.size());
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  if (const auto it = impl_->added_ids.find(token); it != impl_->added_ids.end()) return it->second;
  if (const auto it = impl_->vocab_ids.find(token); it != impl_->vocab_ids.end()) return it->second;
  return std::nullopt;
}

const TokenRoles& Tokenizer::roles() const {
  return impl_->roles;
}

void Tokenizer::use_chat(ChatTemplate chat, std::string system) {
  impl_->chat = std::move(chat);
  impl_->chat_system = std::move(system);
}

bool Tokenizer::has_chat() const {
  return impl_->chat.has_value();
}

std::string Tokenizer::render_chat_prompt(std::string_view prompt) const {
  std::vector<ChatMessage> messages;
  if (!impl_->chat_system.empty()) messages.push_back({"system", impl_->chat_system});
  messages.push_back({"user", std::string(prompt)});
  return impl_->chat->render(messages, {.add_generation_prompt = true,
                                        .bos_token = impl_->roles.template_bos,
                                        .eos_token = impl_->roles.template_eos});
}

int32_t Tokenizer::special_id(std::string_view token) const {
  if (const auto id = token_id(token)) return *id;
  throw TokenizerError("the tokenizer has no token " + detail::in_quotes(token) +
                       " (trained tokenizers have every special token muse-train needs; add it "
                       "to the tokenizer.json's added_tokens)");
}

}  // namespace muse::data
