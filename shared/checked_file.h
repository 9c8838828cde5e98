// A file written with every failure kept: write(2), fsync(2) and close(2)
// are all checked, and the first failure sticks, so a writer that does not
// look at each call (a report written line by line) still learns at Close
// that the file is incomplete. Used for outputs, the report and (later) the
// manifest.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "shared/status.h"

namespace thumbmill {

class CheckedFile {
 public:
  /// Opens a file the user named for writing, created (mode 0666 less the
  /// umask) or truncated. Follows symlinks: the user chose this name.
  static Result<CheckedFile> OpenForWriting(const std::filesystem::path& path);

  /// Takes ownership of `fd`, an open descriptor of `path` (for writers that
  /// open with flags of their own, e.g. O_EXCL with a retry on EEXIST).
  static CheckedFile Adopt(int fd, std::filesystem::path path);

  CheckedFile() = default;
  CheckedFile(CheckedFile&& other) noexcept;
  CheckedFile& operator=(CheckedFile&& other) noexcept;
  /// Closes without reporting; call Close to learn whether all went well.
  ~CheckedFile();

  /// Writes all of `bytes` (retrying short writes and EINTR). After a
  /// failure, writes nothing more and returns that first failure.
  Status Write(std::span<const std::byte> bytes);
  Status Write(std::string_view text) { return Write(std::as_bytes(std::span(text.data(), text.size()))); }
  /// fsync(2).
  Status Sync();
  /// Closes the descriptor. Returns the first failure of any Write, Sync or
  /// of close(2) itself; ok when every byte reached the kernel.
  Status Close();

  bool is_open() const { return fd_ >= 0; }
  /// The first failure so far (ok if none).
  const Status& status() const { return status_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  CheckedFile(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  void Fail(std::string_view what, int err);

  int fd_ = -1;
  std::filesystem::path path_;
  Status status_;
};

}  // namespace thumbmill
