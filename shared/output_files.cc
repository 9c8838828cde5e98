#include "shared/output_files.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <unordered_set>

#include "shared/checked_file.h"
#include "shared/fd_io.h"

#include "shared/proc_stat.h"

namespace thumbmill {
namespace {

constexpr std::string_view kTempMarker = ".tmp.";
constexpr std::size_t kRandomDigits = 16;
// O_EXCL collisions need a planted name or a 1 in 2^64 draw; a few tries
// are plenty, and a bound keeps a hostile directory from looping us.
constexpr int kCreateTries = 8;

/// 16 lowercase hex digits, unpredictable to anyone else.
std::string random_part() {
  std::uint64_t value = 0;
  if (::getrandom(&value, sizeof value, 0) != static_cast<ssize_t>(sizeof value)) {
    // No getrandom (very old kernel): unique rather than secret; O_EXCL still
    // guarantees that nothing planted is ever opened.
    static std::atomic<std::uint64_t> counter{0};
    value = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
            (static_cast<std::uint64_t>(::gettid()) << 40) ^ (++counter * 0x9e3779b97f4a7c15ULL);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(kRandomDigits, '0');
  for (std::size_t i = 0; i < kRandomDigits; ++i) out[i] = kHex[(value >> (4 * i)) & 0xf];
  return out;
}

bool is_random_part(std::string_view s) {
  if (s.size() != kRandomDigits) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

/// A writer counts as running while it exists and is not a zombie: a worker
/// killed along with its coordinator may linger unreaped for a moment, and
/// the next run's clean-up must not take it for a live writer.
bool writer_is_running(long writer) { return process_running(writer); }

/// Whether `entry` is a regular file (not a symlink to one).
bool is_plain_file(const std::filesystem::directory_entry& entry) {
  std::error_code ec;
  return entry.symlink_status(ec).type() == std::filesystem::file_type::regular;
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

Result<CheckedFile> create_temp_for(const std::filesystem::path& path) {
  const long writer = static_cast<long>(::gettid());
  for (int i = 0; i < kCreateTries; ++i) {
    auto temp = output_temp_path(path, writer);
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) return CheckedFile::Adopt(fd, std::move(temp));
    if (errno != EEXIST) return Status::FromErrno("cannot create " + temp.string());
  }
  return Status(Code::kIoError, "cannot create a temp file beside " + path.string() + ": " +
                                    std::to_string(kCreateTries) + " random names were all taken");
}

std::optional<OutputTempName> parse_output_temp_name(std::string_view name) {
  // ".<final>.tmp.<writer>.<random>", read from the end: <final> may itself
  // hold ".tmp.".
  if (name.size() < 2 || name[0] != '.') return std::nullopt;
  const std::size_t last_dot = name.rfind('.');
  if (last_dot == 0 || !is_random_part(name.substr(last_dot + 1))) return std::nullopt;
  const std::string_view head = name.substr(0, last_dot);  // ".<final>.tmp.<writer>"
  const std::size_t marker = head.rfind(kTempMarker);
  if (marker == std::string_view::npos || marker < 2) return std::nullopt;  // <final> at least 1 byte
  const std::string_view digits = head.substr(marker + kTempMarker.size());
  if (digits.empty() || digits.size() > 10 || digits[0] == '0') return std::nullopt;
  long writer = 0;
  const auto parsed = std::from_chars(digits.data(), digits.data() + digits.size(), writer);
  if (parsed.ec != std::errc() || parsed.ptr != digits.data() + digits.size() || writer <= 0) return std::nullopt;
  const std::string_view final_name = head.substr(1, marker - 1);
  if (final_name[0] == '.') return std::nullopt;
  return OutputTempName{std::string(final_name), writer};
}

bool is_output_temp_name(std::string_view name) { return parse_output_temp_name(name).has_value(); }

std::filesystem::path output_temp_path(const std::filesystem::path& path, long writer) {
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on a chain
  // of operator+ starting with a literal.
  std::string name(1, '.');
  name += path.filename().string();
  name += kTempMarker;
  name += std::to_string(writer);
  name += '.';
  name += random_part();
  return path.parent_path() / name;
}

Status write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes,
                             bool durable) {
  auto file = create_temp_for(path);
  if (!file.ok()) return file.status();
  const std::filesystem::path temp = file->path();
  Status status = file->Write(bytes);
  if (status.ok() && durable) status = file->Sync();
  if (Status closed = file->Close(); status.ok()) status = std::move(closed);
  if (status.ok() && ::rename(temp.c_str(), path.c_str()) != 0)
    status = Status::FromErrno("cannot rename to " + path.string());
  if (!status.ok()) {
    ::unlink(temp.c_str());
    return status;
  }
  return durable ? fsync_directory(path.parent_path()) : Status::Ok();
}

Status write_output_file(const std::filesystem::path& root, std::string_view relative,
                         std::span<const std::byte> bytes, bool durable) {
  const std::filesystem::path full = root / std::string(relative);
  UniqueFd dir(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir.valid()) return Status::FromErrno("cannot open " + root.string());
  std::filesystem::path walked = root;
  std::string_view rest = relative;
  for (;;) {
    const std::size_t slash = rest.find('/');
    const std::string part(rest.substr(0, slash));
    if (part.empty() || part == "." || part == "..")
      return Status(Code::kInvalidArgument, "refusing output name " + std::string(relative));
    if (slash == std::string_view::npos) break;
    walked /= part;
    // EEXIST: made before, by us or another writer; O_NOFOLLOW below says
    // whether it is a real directory.
    if (::mkdirat(dir.get(), part.c_str(), 0777) == 0) {
      // A new directory's entry is as durable as the file in it will be.
      if (durable && ::fsync(dir.get()) != 0) return Status::FromErrno("fsync " + walked.parent_path().string());
    } else if (errno != EEXIST) {
      return Status::FromErrno("cannot create directory " + walked.string());
    }
    UniqueFd next(::openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next.valid()) return Status::FromErrno("cannot open directory " + walked.string() + " (not a directory, or a symlink)");
    dir = std::move(next);
    rest.remove_prefix(slash + 1);
  }
  const std::string name(rest);
  const long writer = static_cast<long>(::gettid());
  std::string temp_name;
  int fd = -1;
  for (int i = 0; i < kCreateTries && fd < 0; ++i) {
    temp_name = output_temp_path(name, writer).filename().string();
    fd = ::openat(dir.get(), temp_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) return Status::FromErrno("cannot create " + (walked / temp_name).string());
  }
  if (fd < 0) return Status(Code::kIoError, "cannot create a temp file beside " + full.string());
  CheckedFile file = CheckedFile::Adopt(fd, walked / temp_name);
  Status status = file.Write(bytes);
  if (status.ok() && durable) status = file.Sync();
  if (Status closed = file.Close(); status.ok()) status = std::move(closed);
  if (status.ok() && ::renameat(dir.get(), temp_name.c_str(), dir.get(), name.c_str()) != 0)
    status = Status::FromErrno("cannot rename to " + full.string());
  if (!status.ok()) {
    ::unlinkat(dir.get(), temp_name.c_str(), 0);
    return status;
  }
  if (durable && ::fsync(dir.get()) != 0) return Status::FromErrno("fsync " + walked.string());
  return Status::Ok();
}

int remove_orphan_temp_files(const std::filesystem::path& dir, bool recursive, std::chrono::seconds grace) {
  // A temp file is an orphan when its writer is not running here and, with
  // a grace, it has not been touched for that long.
  const auto orphan = [grace](const std::filesystem::directory_entry& e, long writer) {
    if (writer_is_running(writer)) return false;
    if (grace.count() == 0) return true;
    std::error_code ec;
    const auto changed = std::filesystem::last_write_time(e.path(), ec);
    return !ec && std::filesystem::file_time_type::clock::now() - changed >= grace;
  };
  int removed = 0;
  std::error_code ec;
  if (recursive) {
    // Directory symlinks are not followed (the iterator's default).
    std::filesystem::recursive_directory_iterator it(dir, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      if (it->path().filename() == ".thumbmill") {
        it.disable_recursion_pending();
        continue;
      }
      const auto temp = parse_output_temp_name(it->path().filename().string());
      std::error_code rm;
      if (temp && is_plain_file(*it) && orphan(*it, temp->writer) && std::filesystem::remove(it->path(), rm))
        ++removed;
    }
    return removed;
  }
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const auto temp = parse_output_temp_name(entry.path().filename().string());
    // Leave files a live writer (of another run into the same directory) is
    // still writing.
    if (!temp || !is_plain_file(entry) || !orphan(entry, temp->writer)) continue;
    if (std::filesystem::remove(entry.path(), ec)) ++removed;
  }
  return removed;
}

int remove_writer_temp_files(const std::filesystem::path& dir, const std::vector<std::string>& final_names,
                             long writer) {
  const std::unordered_set<std::string> wanted(final_names.begin(), final_names.end());
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const auto temp = parse_output_temp_name(entry.path().filename().string());
    if (!temp || temp->writer != writer || !is_plain_file(entry)) continue;
    if (!wanted.empty() && !wanted.count(temp->final_name)) continue;
    if (std::filesystem::remove(entry.path(), ec)) ++removed;
  }
  return removed;
}

}  // namespace thumbmill
