// Writing files so that a reader never sees half of one.
#pragma once

#include <filesystem>
#include <string_view>

namespace muse::config {

// Writes `content` to a temporary file beside `path`, flushes it to disk, then
// renames it over `path`: `path` holds either its old or its new content,
// never a part. Throws std::runtime_error naming the path on failure.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

}  // namespace muse::config
