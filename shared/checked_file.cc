#include "shared/checked_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace thumbmill {

Result<CheckedFile> CheckedFile::OpenForWriting(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return Status::FromErrno("cannot write " + path.string());
  return CheckedFile(fd, path);
}

CheckedFile CheckedFile::Adopt(int fd, std::filesystem::path path) { return CheckedFile(fd, std::move(path)); }

CheckedFile::CheckedFile(CheckedFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)), status_(std::move(other.status_)) {}

CheckedFile& CheckedFile::operator=(CheckedFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    status_ = std::move(other.status_);
  }
  return *this;
}

CheckedFile::~CheckedFile() {
  if (fd_ >= 0) ::close(fd_);
}

void CheckedFile::Fail(std::string_view what, int err) {
  if (status_.ok()) status_ = Status::FromErrno(std::string(what) + " " + path_.string(), err);
}

Status CheckedFile::Write(std::span<const std::byte> bytes) {
  if (!status_.ok()) return status_;
  if (fd_ < 0) return Status(Code::kInternal, "write to a closed file " + path_.string());
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Fail("cannot write", errno);
      break;
    }
    if (n == 0) {  // never for regular files; do not spin
      Fail("cannot write", EIO);
      break;
    }
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
  return status_;
}

Status CheckedFile::Sync() {
  if (status_.ok() && fd_ >= 0 && ::fsync(fd_) != 0) Fail("cannot fsync", errno);
  return status_;
}

Status CheckedFile::Close() {
  if (fd_ >= 0) {
    // Linux closes the descriptor even when close fails (EIO on NFS, a
    // delayed write error): never retry, only report.
    if (::close(std::exchange(fd_, -1)) != 0) Fail("cannot write", errno);
  }
  return status_;
}

}  // namespace thumbmill
