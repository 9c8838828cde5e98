// Pipes and frames: the few file-descriptor operations every process needs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "shared/status.h"
#include "shared/wire.h"

namespace thumbmill {

/// One open file descriptor, owned: closed when this goes away. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  /// Gives the descriptor up without closing it.
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  /// Closes the one held (if any) and holds `fd`.
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

/// A pipe whose both ends are close-on-exec (children get only what the
/// spawner hands them explicitly).
struct Pipe {
  int read_fd = -1;
  int write_fd = -1;
};
Result<Pipe> make_pipe();

Status set_nonblocking(int fd);
/// Writes all `size` bytes to a blocking descriptor, retrying short writes
/// and EINTR; the errno of the first failure otherwise (EPIPE: the reader
/// is gone).
Status write_all(int fd, const void* data, std::size_t size);
void close_fd(int& fd);  // closes and sets -1; ignores -1

/// Writes one frame with a single write(). Blocks until there is room.
/// Returns kIoError if the reader is gone (EPIPE) or on any other error;
/// kInternal, writing nothing, for a record over kMaxRecordSize.
Status write_frame(int fd, MessageType type, const void* record, std::size_t size);

enum class TryWrite { kWritten, kFull, kBroken };
/// Like write_frame on a non-blocking fd: kFull when the pipe has no room
/// for the whole frame now (nothing was written), kBroken when the reader is
/// gone (or the record is over kMaxRecordSize: nothing is written).
TryWrite try_write_frame(int fd, MessageType type, const void* record, std::size_t size);

template <class T>
Status write_record(int fd, MessageType type, const T& record, std::size_t size = sizeof(T)) {
  static_assert(kIsWireRecord<T>);
  return write_frame(fd, type, &record, size);
}

/// Reassembles frames from a stream of reads (blocking or not).
class FrameReader {
 public:
  struct Frame {
    MessageType type;
    std::vector<std::byte> record;  // exactly FrameHeader::size bytes

    /// Copies the record into a T, zero-filling what was not sent.
    template <class T>
    T as() const {
      static_assert(kIsWireRecord<T>);
      T value{};
      std::memcpy(&value, record.data(), std::min(record.size(), sizeof(T)));
      return value;
    }
  };

  /// Reads what `fd` has. Returns false at end of file or on error (then
  /// frames already buffered can still be popped).
  bool Fill(int fd);
  /// The next complete frame, if any. None ever again once a header
  /// announces more than kMaxRecordSize bytes (see corrupt()).
  std::optional<Frame> Next();
  /// Whether the stream announced a record larger than any record can be:
  /// a writer that is broken or not ours. Nothing after it can be trusted
  /// (the frame boundaries are lost), so the reader should close the fd.
  bool corrupt() const { return corrupt_; }

 private:
  std::vector<std::byte> buffer_;
  std::size_t start_ = 0;
  bool corrupt_ = false;
};

}  // namespace thumbmill
