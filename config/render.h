// Ways to show a config tree to people: the `--help` key list, the Markdown
// reference in docs/config.md, and the boxed table of resolved values printed
// at start-up.
#pragma once

#include <string>
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

// A boxed table of every key, its value and where the value came from.
std::string render_table(const std::vector<FieldInfo>& fields, const Origins& origins);

}  // namespace muse::config
