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

std::string render_table(const std::vector<FieldInfo>& fields, const Origins& origins) {
  std::vector<std::array<std::string, 3>> rows = {{"key", "value", "from"}};
  for (const auto& f : fields) {
    const auto it = origins.find(f.path);
    rows.push_back({f.path, f.value, it == origins.end() ? "default" : it->second});
  }
  std::array<size_t, 3> width{};
  for (const auto& r : rows) {
    for (size_t c = 0; c < 3; ++c)
      width[c] = std::max(width[c], r[c].size());
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
      line += " " + rows[i][c] + std::string(width[c] - rows[i][c].size(), ' ') + " |";
    }
    out += line + "\n";
    if (i == 0) out += rule();
  }
  return out + rule();
}

}  // namespace muse::config
