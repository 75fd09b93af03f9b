// Thin POSIX file helpers for checkpoints (internal): whole-buffer
// pread/pwrite that retry short transfers, fsync of files and directories,
// and hints that let the disk work while the CPU checksums.
// Every failure is a CheckpointError "PATH: problem (strerror)".
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

namespace muse::checkpoints::detail {

// An open file descriptor, closed on destruction.
class PosixFile {
 public:
  static PosixFile open_read(const std::filesystem::path& path);
  static PosixFile create(const std::filesystem::path& path);  // truncates
  ~PosixFile();
  PosixFile(PosixFile&& other) noexcept;
  PosixFile& operator=(PosixFile&&) = delete;
  PosixFile(const PosixFile&) = delete;
  PosixFile& operator=(const PosixFile&) = delete;

  void write_at(const void* data, size_t size, int64_t offset);
  // Throws naming the file when fewer than `size` bytes exist at `offset`.
  void read_at(void* data, size_t size, int64_t offset) const;
  int64_t size() const;
  // Starts writing bytes [offset, offset + size) back to disk without
  // waiting (Linux sync_file_range; elsewhere nothing), so that sync() finds
  // less to do. Only a hint: it makes nothing durable.
  void start_writeback(int64_t offset, size_t size);
  // Tells the kernel the file will be read front to back (posix_fadvise
  // SEQUENTIAL: a larger read-ahead window). Only a hint.
  void advise_sequential() const;
  void sync();   // fsync
  void close();  // reports the error a deferred write may surface at close

  const std::filesystem::path& path() const { return path_; }

 private:
  PosixFile(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::filesystem::path path_;
  int fd_ = -1;
};

// Writes `content` to a new file and flushes it to disk (no rename: the
// files of a checkpoint become visible together when their directory is
// renamed).
void write_file_synced(const std::filesystem::path& path, std::string_view content);

// The whole content of a file.
std::string read_file(const std::filesystem::path& path);

// Makes the entries of a directory (creations, renames) durable.
void sync_dir(const std::filesystem::path& dir);

// "PATH: what (strerror(errno))", for errors right after a failed call.
[[noreturn]] void fail_errno(const std::filesystem::path& path, const std::string& what);

}  // namespace muse::checkpoints::detail
