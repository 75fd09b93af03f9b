#include "checkpoints/posix_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "checkpoints/checkpoint_error.h"

namespace muse::checkpoints::detail {
namespace {

// One pread/pwrite moves at most ~2 GiB on Linux; larger requests loop.
constexpr size_t kMaxTransfer = size_t{1} << 30;

}  // namespace

void fail_errno(const std::filesystem::path& path, const std::string& what) {
  throw CheckpointError(path.string() + ": " + what + " (" + std::strerror(errno) + ")");
}

PosixFile PosixFile::open_read(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_errno(path, "cannot open");
  return PosixFile(path, fd);
}

PosixFile PosixFile::create(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail_errno(path, "cannot create");
  return PosixFile(path, fd);
}

PosixFile::~PosixFile() {
  if (fd_ >= 0) ::close(fd_);
}

PosixFile::PosixFile(PosixFile&& other) noexcept
    : path_(std::move(other.path_)), fd_(std::exchange(other.fd_, -1)) {}

void PosixFile::write_at(const void* data, size_t size, int64_t offset) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::pwrite(fd_, p, std::min(size, kMaxTransfer), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno(path_, "write failed at byte " + std::to_string(offset));
    p += n;
    size -= static_cast<size_t>(n);
    offset += n;
  }
}

void PosixFile::read_at(void* data, size_t size, int64_t offset) const {
  auto* p = static_cast<char*>(data);
  const int64_t start = offset;
  const size_t wanted = size;
  while (size > 0) {
    const ssize_t n = ::pread(fd_, p, std::min(size, kMaxTransfer), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_errno(path_, "read failed at byte " + std::to_string(offset));
    if (n == 0) {
      throw CheckpointError(path_.string() + ": short read: wanted " + std::to_string(wanted) +
                            " bytes at byte " + std::to_string(start) + ", the file ends at " +
                            std::to_string(this->size()) + " (truncated?)");
    }
    p += n;
    size -= static_cast<size_t>(n);
    offset += n;
  }
}

int64_t PosixFile::size() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) fail_errno(path_, "cannot stat");
  return st.st_size;
}

void PosixFile::start_writeback(int64_t offset, size_t size) {
#ifdef SYNC_FILE_RANGE_WRITE
  // Errors surface again, and are reported, at sync().
  ::sync_file_range(fd_, offset, static_cast<off_t>(size), SYNC_FILE_RANGE_WRITE);
#else
  (void)offset;
  (void)size;
#endif
}

void PosixFile::advise_sequential() const {
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
}

void PosixFile::sync() {
  if (::fsync(fd_) != 0) fail_errno(path_, "flush to disk failed");
}

void PosixFile::close() {
  const int fd = std::exchange(fd_, -1);
  if (fd >= 0 && ::close(fd) != 0) fail_errno(path_, "close failed");
}

void write_file_synced(const std::filesystem::path& path, std::string_view content) {
  PosixFile file = PosixFile::create(path);
  file.write_at(content.data(), content.size(), 0);
  file.sync();
  file.close();
}

std::string read_file(const std::filesystem::path& path) {
  const PosixFile file = PosixFile::open_read(path);
  std::string content(static_cast<size_t>(file.size()), '\0');
  file.read_at(content.data(), content.size(), 0);
  return content;
}

void sync_dir(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail_errno(dir, "cannot open directory");
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  errno = saved;
  if (rc != 0) fail_errno(dir, "flush to disk failed");
}

}  // namespace muse::checkpoints::detail
