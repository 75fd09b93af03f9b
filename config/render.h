// Ways to show a config tree to people: the `--help` key list, the Markdown
// reference in docs/config.md, and the boxed table of resolved values printed
// at start-up.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/loader.h"
#include "config/schema.h"

namespace muse::config {

// `text` re-flowed into lines of at most `width` characters (longer words
// stay whole), each prefixed with `indent` and ended by a newline.
std::string wrap_text(const std::string& text, size_t width, const std::string& indent);

// One block per key: "  trainer.steps (int, steps, >= 1) = 100\n      help...".
std::string render_help(const std::vector<FieldInfo>& fields);

// A Markdown page: a table per section with key, type, default, unit,
// allowed values and description.
std::string render_markdown(const std::vector<SectionInfo>& sections,
                            const std::vector<FieldInfo>& fields, const std::string& title,
                            const std::string& intro);

// Columns `text` takes on a terminal: one per UTF-8 code point (wide East
// Asian characters, which take two, are counted as one).
size_t display_width(std::string_view text);

// A boxed table of every key, its value and where the value came from. With
// `max_width` (0: unlimited), long values are cut at their end and long
// origins at their start, each marked by "…", so that no line is wider; the
// table is then followed by `cut_note` on a line of its own.
std::string render_table(const std::vector<FieldInfo>& fields, const Origins& origins,
                         size_t max_width = 0, const std::string& cut_note = "");

}  // namespace muse::config
