#include "shared/fd_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace thumbmill {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0 && fd_ != fd) ::close(fd_);
  fd_ = fd;
}

Result<Pipe> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Status::FromErrno("pipe2");
  return Pipe{fds[0], fds[1]};
}

Status write_all(int fd, const void* data, std::size_t size) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("write");
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return Status::Ok();
}

Status set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return Status::FromErrno("fcntl");
  return Status::Ok();
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

namespace {

/// Lays out header + record in `frame`; returns the frame's length, or 0
/// when the record is larger than a frame can carry (nothing is written).
std::size_t build_frame(std::byte (&frame)[PIPE_BUF], MessageType type, const void* record,
                        std::size_t size) {
  if (size > kMaxRecordSize) return 0;
  const FrameHeader header{type, static_cast<std::uint32_t>(size)};
  std::memcpy(frame, &header, sizeof header);
  std::memcpy(frame + sizeof header, record, size);
  return sizeof header + size;
}

}  // namespace

TryWrite try_write_frame(int fd, MessageType type, const void* record, std::size_t size) {
  std::byte frame[PIPE_BUF];
  const std::size_t total = build_frame(frame, type, record, size);
  if (total == 0) return TryWrite::kBroken;  // a record too large is a bug, never sent
  for (;;) {
    const ssize_t n = ::write(fd, frame, total);
    if (n == static_cast<ssize_t>(total)) return TryWrite::kWritten;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return TryWrite::kFull;
    return TryWrite::kBroken;
  }
}

Status write_frame(int fd, MessageType type, const void* record, std::size_t size) {
  std::byte frame[PIPE_BUF];
  const std::size_t total = build_frame(frame, type, record, size);
  if (total == 0) return Status(Code::kInternal, "record of " + std::to_string(size) + " bytes is too large for a frame");
  for (;;) {
    const ssize_t n = ::write(fd, frame, total);
    if (n == static_cast<ssize_t>(total)) return Status::Ok();
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("write to pipe");
    // A write of at most PIPE_BUF bytes to a pipe is all or nothing.
    return Status(Code::kIoError, "short write to pipe");
  }
}

bool FrameReader::Fill(int fd) {
  for (;;) {
    if (corrupt_) return false;
    if (start_ > 0 && start_ == buffer_.size()) {
      buffer_.clear();
      start_ = 0;
    }
    std::byte chunk[16384];
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n > 0) {
      buffer_.insert(buffer_.end(), chunk, chunk + n);
      if (static_cast<std::size_t>(n) < sizeof chunk) return true;
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

std::optional<FrameReader::Frame> FrameReader::Next() {
  const std::size_t avail = buffer_.size() - start_;
  if (corrupt_ || avail < sizeof(FrameHeader)) return std::nullopt;
  FrameHeader header;
  std::memcpy(&header, buffer_.data() + start_, sizeof header);
  if (header.size > kMaxRecordSize) {
    // Waiting for that many bytes would grow the buffer without bound.
    corrupt_ = true;
    buffer_.clear();
    start_ = 0;
    return std::nullopt;
  }
  if (avail < sizeof header + header.size) return std::nullopt;
  Frame frame{header.type, {}};
  const auto* begin = buffer_.data() + start_ + sizeof header;
  frame.record.assign(begin, begin + header.size);
  start_ += sizeof header + header.size;
  if (start_ > 65536 && start_ * 2 > buffer_.size()) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(start_));
    start_ = 0;
  }
  return frame;
}

}  // namespace thumbmill
