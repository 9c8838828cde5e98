#include "shared/output_files.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace thumbmill {
namespace {

constexpr std::string_view kTempMarker = ".tmp.";

Status write_all(int fd, std::span<const std::byte> bytes, const std::string& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("cannot write " + path);
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
  return Status::Ok();
}

Status fsync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("cannot open " + dir.string());
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  return rc == 0 ? Status::Ok() : Status::FromErrno("fsync " + dir.string(), err);
}

}  // namespace

bool is_output_temp_name(std::string_view name) {
  return name.size() > 1 && name[0] == '.' && name.find(kTempMarker) != std::string_view::npos;
}

std::filesystem::path output_temp_path(const std::filesystem::path& path, int writer) {
  return path.parent_path() / ("." + path.filename().string() + std::string(kTempMarker) + std::to_string(writer));
}

Status write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes,
                             bool durable) {
  const auto dir = path.parent_path();
  const auto temp = output_temp_path(path, static_cast<int>(::gettid()));
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno("cannot create " + temp.string());
  Status status = write_all(fd, bytes, temp.string());
  if (status.ok() && durable && ::fsync(fd) != 0) status = Status::FromErrno("fsync " + temp.string());
  if (::close(fd) != 0 && status.ok()) status = Status::FromErrno("cannot write " + temp.string());
  if (status.ok() && ::rename(temp.c_str(), path.c_str()) != 0)
    status = Status::FromErrno("cannot rename to " + path.string());
  if (!status.ok()) {
    ::unlink(temp.c_str());
    return status;
  }
  return durable ? fsync_directory(dir) : Status::Ok();
}

int remove_orphan_temp_files(const std::filesystem::path& dir) {
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!is_output_temp_name(name)) continue;
    // The suffix is the writer's thread id: leave files a live writer (of
    // another run into the same directory) is still writing.
    const long writer = std::atol(name.c_str() + name.rfind('.') + 1);
    if (writer > 0 && (::kill(static_cast<pid_t>(writer), 0) == 0 || errno != ESRCH)) continue;
    if (std::filesystem::remove(entry.path(), ec)) ++removed;
  }
  return removed;
}

}  // namespace thumbmill
