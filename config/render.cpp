#include "config/render.h"

#include <algorithm>
#include <array>
#include <sstream>

namespace muse::config {
namespace {

std::string section_of(const std::string& path) {
  const auto dot = path.rfind('.');
  return dot == std::string::npos ? "" : path.substr(0, dot);
}

bool starts_code_point(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) != 0x80;  // not a UTF-8 continuation byte
}

// The byte offset of code point `n` of `text` (its size when there are fewer).
size_t code_point_offset(std::string_view text, size_t n) {
  for (size_t i = 0, seen = 0; i < text.size(); ++i) {
    if (!starts_code_point(text[i])) continue;
    if (seen++ == n) return i;
  }
  return text.size();
}

// `text` in `width` columns, its end replaced by "…" when longer; true when cut.
bool cut_end(std::string& text, size_t width) {
  if (display_width(text) <= width) return false;
  text = text.substr(0, code_point_offset(text, width - 1)) + "…";
  return true;
}

// `text` in `width` columns, its start replaced by "…" when longer.
bool cut_start(std::string& text, size_t width) {
  const size_t columns = display_width(text);
  if (columns <= width) return false;
  text = "…" + text.substr(code_point_offset(text, columns - (width - 1)));
  return true;
}

std::string markdown_cell(std::string text) {
  std::string out;
  for (char c : text)
    out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

}  // namespace

std::string wrap_text(const std::string& text, size_t width, const std::string& indent) {
  std::istringstream words(text);
  std::string out, line, word;
  while (words >> word) {
    if (!line.empty() && line.size() + 1 + word.size() > width) {
      out += indent + line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
  }
  if (!line.empty()) out += indent + line + "\n";
  return out;
}

std::string render_help(const std::vector<FieldInfo>& fields) {
  std::string out;
  for (const auto& f : fields) {
    std::string attrs = f.type;
    if (!f.unit.empty()) attrs += ", " + f.unit;
    if (!f.constraints.empty()) attrs += ", " + f.constraints;
    out += "  " + f.path + " (" + attrs + ") = " + f.value + "\n";
    out += wrap_text(f.help, 72, "      ");
  }
  return out;
}

std::string render_markdown(const std::vector<SectionInfo>& sections,
                            const std::vector<FieldInfo>& fields, const std::string& title,
                            const std::string& intro) {
  std::ostringstream out;
  out << "# " << title << "\n\n" << intro << "\n";
  auto table = [&](const std::string& section) {
    out << "\n| key | type | default | unit | allowed | description |\n";
    out << "| --- | --- | --- | --- | --- | --- |\n";
    for (const auto& f : fields) {
      if (section_of(f.path) != section) continue;
      out << "| `" << f.path << "` | " << f.type << " | `" << markdown_cell(f.value) << "` | "
          << f.unit << " | " << markdown_cell(f.constraints) << " | " << markdown_cell(f.help)
          << " |\n";
    }
  };
  out << "\n## Top level\n";
  table("");
  for (const auto& s : sections) {
    out << "\n## `" << s.path << "`\n\n" << s.help << "\n";
    table(s.path);
  }
  return out.str();
}

size_t display_width(std::string_view text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), starts_code_point));
}

std::string render_table(const std::vector<FieldInfo>& fields, const Origins& origins,
                         size_t max_width, const std::string& cut_note) {
  enum Column { kKey, kValue, kFrom };
  std::vector<std::array<std::string, 3>> rows = {{"key", "value", "from"}};
  for (const auto& f : fields) {
    const auto it = origins.find(f.path);
    rows.push_back({f.path, f.value, it == origins.end() ? "default" : it->second});
  }
  std::array<size_t, 3> width{};
  for (const auto& r : rows) {
    for (size_t c = 0; c < 3; ++c)
      width[c] = std::max(width[c], display_width(r[c]));
  }
  // "| " + key + " | " + value + " | " + from + " |": 10 columns of frame.
  constexpr size_t kFrame = 10, kNarrowest = 8;
  bool cut = false;
  if (max_width > 0 && width[kKey] + width[kValue] + width[kFrom] + kFrame > max_width) {
    // Keys stay whole; origins keep their width while the values leave room,
    // and at least half of what remains otherwise.
    const size_t room =
        std::max(max_width - std::min(max_width, width[kKey] + kFrame), 2 * kNarrowest);
    width[kFrom] = std::min(width[kFrom], std::max(room - std::min(room, width[kValue]), room / 2));
    width[kValue] = std::min(width[kValue], room - width[kFrom]);
    for (auto& r : rows) {
      cut |= cut_end(r[kValue], width[kValue]);
      cut |= cut_start(r[kFrom], width[kFrom]);
    }
  }
  auto rule = [&] {
    std::string line = "+";
    for (size_t w : width)
      line += std::string(w + 2, '-') + "+";
    return line + "\n";
  };
  std::string out = rule();
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string line = "|";
    for (size_t c = 0; c < 3; ++c) {
      line += " " + rows[i][c] + std::string(width[c] - display_width(rows[i][c]), ' ') + " |";
    }
    out += line + "\n";
    if (i == 0) out += rule();
  }
  out += rule();
  if (cut && !cut_note.empty()) out += cut_note + "\n";
  return out;
}

}  // namespace muse::config
