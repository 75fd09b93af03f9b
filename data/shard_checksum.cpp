#include "data/shard_checksum.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "config/crc32c.h"
#include "data/data_error.h"

namespace muse::data {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kMagic{"muse-shard-crc\n\0", 16};
constexpr size_t kSizeOffset = 16;
constexpr size_t kCrcOffset = 24;
constexpr size_t kHeaderFieldsEnd = 28;
constexpr std::string_view kHdf5Signature{"\x89HDF\r\n\x1a\n", 8};
// Bytes read and checksummed at a time: large enough for the kernel's
// read-ahead to keep the disk busy, small enough to stay in the CPU cache.
constexpr size_t kReadChunk = size_t{4} << 20;

// What a failure says after the file's name.
std::string errno_text(const char* what) {
  return std::string(what) + " (" + std::strerror(errno) + ")";
}

// An open file descriptor, closed on destruction. Failures throw `Error`
// (DataError for readers, std::runtime_error for writers) naming the file.
template <class Error>
class File {
 public:
  File(const fs::path& path, int flags, mode_t mode = 0)
      : path_(path), fd_(::open(path.c_str(), flags | O_CLOEXEC, mode)) {
    if (fd_ < 0) fail(flags & O_CREAT ? "cannot create" : "cannot open");
  }
  ~File() {
    if (fd_ >= 0) ::close(fd_);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  [[noreturn]] void fail(const char* what) const {
    throw Error(path_.string() + ": " + errno_text(what));
  }
  struct stat status() const {
    struct stat s {};
    if (::fstat(fd_, &s) != 0) fail("cannot stat");
    return s;
  }
  uint64_t size() const { return static_cast<uint64_t>(status().st_size); }
  // Up to `size` bytes at `offset`; fewer only at the end of the file.
  size_t read_at(void* data, size_t size, uint64_t offset) const {
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::pread(fd_, static_cast<char*>(data) + done, size - done,
                                static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail("read failed");
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    return done;
  }
  void write_at(const void* data, size_t size, uint64_t offset) const {
    size_t done = 0;
    while (done < size) {
      const ssize_t n = ::pwrite(fd_, static_cast<const char*>(data) + done, size - done,
                                 static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail("write failed");
      done += static_cast<size_t>(n);
    }
  }
  // A hint for a larger read-ahead window; nothing fails without it.
  void advise_sequential() const { ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL); }
  void close() {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("close failed");
  }

 private:
  fs::path path_;
  int fd_;
};

uint64_t load_le(const unsigned char* p, size_t bytes) {
  uint64_t value = 0;
  for (size_t i = bytes; i > 0; --i)
    value = (value << 8) | p[i - 1];
  return value;
}

void store_le(unsigned char* p, uint64_t value, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i, value >>= 8)
    p[i] = static_cast<unsigned char>(value & 0xFF);
}

std::string hex(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", value);
  return text;
}

// CRC-32C of the file's first `size` bytes, the checksum field read as
// zeros. Throws `Error` when the file ends before `size`.
template <class Error>
uint32_t file_crc(const File<Error>& file, const fs::path& path, uint64_t size) {
  file.advise_sequential();
  std::vector<unsigned char> buffer(static_cast<size_t>(std::min<uint64_t>(kReadChunk, size)));
  uint32_t crc = 0;
  for (uint64_t offset = 0; offset < size;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kReadChunk, size - offset));
    if (file.read_at(buffer.data(), want, offset) != want) {
      throw Error(path.string() + ": ended at byte " + std::to_string(offset) +
                  " while being checksummed (the file changed while it was read)");
    }
    if (offset == 0) std::fill_n(buffer.begin() + kCrcOffset, 4, 0);
    crc = config::crc32c(buffer.data(), want, crc);
    offset += want;
  }
  return crc;
}

}  // namespace

void seal_shard_file(const fs::path& path) {
  File<std::runtime_error> file(path, O_RDWR);
  const uint64_t size = file.size();
  std::array<unsigned char, kHdf5Signature.size()> signature{};
  const bool superblock_after_header =
      file.read_at(signature.data(), signature.size(), kShardHeaderBytes) == signature.size() &&
      std::string_view(reinterpret_cast<const char*>(signature.data()), signature.size()) ==
          kHdf5Signature;
  if (!superblock_after_header) {
    throw std::invalid_argument("seal_shard_file(" + path.string() +
                                "): the HDF5 superblock is not at byte " +
                                std::to_string(kShardHeaderBytes) + " (no user block to fill)");
  }
  std::array<unsigned char, kShardHeaderBytes> header{};
  std::copy(kMagic.begin(), kMagic.end(), header.begin());
  store_le(header.data() + kSizeOffset, size, 8);
  file.write_at(header.data(), header.size(), 0);
  store_le(header.data() + kCrcOffset, file_crc(file, path, size), 4);
  file.write_at(header.data() + kCrcOffset, 4, kCrcOffset);
  file.close();
}

void verify_shard_file(const fs::path& path) {
  const File<DataError> file(path, O_RDONLY);
  const uint64_t size = file.size();
  std::array<unsigned char, kHeaderFieldsEnd> header{};
  const size_t got = file.read_at(header.data(), header.size(), 0);
  const std::string_view start(reinterpret_cast<const char*>(header.data()), got);
  if (start.starts_with(kHdf5Signature)) {
    throw DataError(path.string() +
                    ": no checksum: the shard was written by an older muse-data or another tool; "
                    "check it and add one with `muse-data checksum --add " +
                    path.string() + "` (docs/data.md)");
  }
  if (got < header.size() || !start.starts_with(kMagic)) {
    throw DataError(path.string() +
                    ": not a muse shard: it begins with neither muse-data's checksum header nor "
                    "an HDF5 signature (a damaged first block, or another kind of file)");
  }
  const uint64_t recorded_size = load_le(header.data() + kSizeOffset, 8);
  if (recorded_size != size) {
    throw DataError(path.string() + ": holds " + std::to_string(size) +
                    " bytes but its checksum header records " + std::to_string(recorded_size) +
                    (size < recorded_size ? ": the file is truncated or damaged"
                                          : ": the file was appended to or is damaged"));
  }
  const auto recorded_crc = static_cast<uint32_t>(load_le(header.data() + kCrcOffset, 4));
  const uint32_t crc = file_crc(file, path, size);
  if (crc != recorded_crc) {
    throw DataError(path.string() + ": checksum mismatch: the CRC-32C of its " +
                    std::to_string(size) + " bytes is " + hex(crc) + ", its header records " +
                    hex(recorded_crc) + ": the file is damaged (copy or build it again)");
  }
}

void write_sealed_copy(const fs::path& from, const fs::path& to) {
  const File<std::runtime_error> in(from, O_RDONLY);
  const mode_t mode = in.status().st_mode & 07777;
  {
    File<std::runtime_error> out(to, O_WRONLY | O_CREAT | O_TRUNC, mode);
    const std::vector<unsigned char> blank(kShardHeaderBytes, 0);
    out.write_at(blank.data(), blank.size(), 0);
    in.advise_sequential();
    std::vector<unsigned char> buffer(
        static_cast<size_t>(std::min<uint64_t>(kReadChunk, in.size())));
    for (uint64_t offset = 0;;) {
      const size_t n = in.read_at(buffer.data(), buffer.size(), offset);
      if (n == 0) break;
      out.write_at(buffer.data(), n, kShardHeaderBytes + offset);
      offset += n;
    }
    out.close();
  }
  seal_shard_file(to);
}

bool has_shard_checksum(const fs::path& path) {
  const File<DataError> file(path, O_RDONLY);
  std::array<char, kMagic.size()> start{};
  return file.read_at(start.data(), start.size(), 0) == start.size() &&
         std::string_view(start.data(), start.size()) == kMagic;
}

}  // namespace muse::data
