// Writing files so that a reader never sees half of one.
#pragma once

#include <filesystem>
#include <string_view>

namespace muse::config {

// Writes `content` to a temporary file beside `path`, flushes it to disk, then
// renames it over `path`: `path` holds either its old or its new content,
// never a part. Throws std::runtime_error naming the path on failure.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

// The temporary name beside `path` that a complete file is written under
// before publish_file() gives it its final name.
std::filesystem::path temporary_path_for(const std::filesystem::path& path);

// For files another library writes (HDF5, checkpoints): flushes the complete
// file `tmp` to disk, renames it over `path` and makes the rename durable.
// On failure removes `tmp` and throws std::runtime_error naming the path.
void publish_file(const std::filesystem::path& tmp, const std::filesystem::path& path);

}  // namespace muse::config
