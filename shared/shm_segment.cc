#include "shared/shm_segment.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <system_error>

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

namespace bip = boost::interprocess;

#include "shared/proc_stat.h"

namespace thumbmill {
namespace {

constexpr std::string_view kPrefix = "thumbmill-";
constexpr std::string_view kMkdtempSuffix = "XXXXXX";

/// Whether `name` is thumbmill-<pid>-<start> of a process that is gone.
bool is_stale_run_name(std::string_view name) {
  if (!name.starts_with(kPrefix)) return false;
  name.remove_prefix(kPrefix.size());
  const auto dash = name.find('-');
  if (dash == std::string_view::npos) return false;
  long pid = 0;
  unsigned long long start = 0;
  const auto a = std::from_chars(name.data(), name.data() + dash, pid);
  const auto b = std::from_chars(name.data() + dash + 1, name.data() + name.size(), start);
  if (a.ec != std::errc() || b.ec != std::errc() || b.ptr != name.data() + name.size()) return false;
  const auto stat = read_proc_stat(pid);
  return !stat || stat->start_time != start;
}

/// A close-on-exec descriptor of segment `name` (Boost's own is not, and
/// children must not inherit it).
int open_cloexec(const std::string& name) { return ::shm_open(("/" + name).c_str(), O_RDWR | O_CLOEXEC, 0); }

/// A run directory's name is thumbmill-<pid>-<start>.<6 characters of
/// mkdtemp>; the part before the dot names its creator. Also accepts the
/// name without a suffix (directories of older builds).
bool is_stale_run_dir_name(std::string_view name) {
  const auto dot = name.find('.');
  if (dot == std::string_view::npos) return is_stale_run_name(name);
  const std::string_view suffix = name.substr(dot + 1);
  if (suffix.size() != kMkdtempSuffix.size()) return false;
  for (char c : suffix)
    if (!std::isalnum(static_cast<unsigned char>(c))) return false;
  return is_stale_run_name(name.substr(0, dot));
}

/// Whether `path` is a real directory, or a regular file when `!directory`
/// (never a symlink), owned by us.
bool is_own(const std::filesystem::path& path, bool directory) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || st.st_uid != ::geteuid()) return false;
  return directory ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
}

std::string mib(std::uint64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

}  // namespace

std::string run_name() {
  static const std::string name = std::string(kPrefix) + std::to_string(::getpid()) + "-" +
                                  std::to_string(read_proc_stat(::getpid()).value_or(ProcStat{}).start_time);
  return name;
}

Result<std::unique_ptr<SharedSegment>> SharedSegment::Create(std::size_t size) {
  struct statvfs fs;
  if (::statvfs(kShmDir, &fs) == 0) {
    const std::uint64_t room = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
    if (room < size)
      return Status(Code::kIoError, "not enough room in /dev/shm for the queue: need " + mib(size) +
                                        ", " + mib(room) + " free (lower --queue-mb)");
  }
  const std::string name = run_name();
  try {
    // Only this user may map the queue: it holds the URLs and the bodies.
    bip::permissions owner_only(0600);
    bip::shared_memory_object shm(bip::create_only, name.c_str(), bip::read_write, owner_only);
    shm.truncate(static_cast<bip::offset_t>(size));
    bip::mapped_region region(shm, bip::read_write, 0, size);
    const int fd = open_cloexec(name);
    if (fd < 0) {
      bip::shared_memory_object::remove(name.c_str());
      return Status::FromErrno("shm_open /dev/shm/" + name);
    }
    return std::unique_ptr<SharedSegment>(new SharedSegment(name, std::move(region), fd, true));
  } catch (const bip::interprocess_exception& e) {
    bip::shared_memory_object::remove(name.c_str());
    return Status(Code::kIoError, "cannot create shared memory /dev/shm/" + name + ": " + e.what());
  }
}

Result<std::unique_ptr<SharedSegment>> SharedSegment::Open(const std::string& name) {
  try {
    bip::shared_memory_object shm(bip::open_only, name.c_str(), bip::read_write);
    bip::mapped_region region(shm, bip::read_write);
    const int fd = open_cloexec(name);
    if (fd < 0) return Status::FromErrno("shm_open /dev/shm/" + name);
    return std::unique_ptr<SharedSegment>(new SharedSegment(name, std::move(region), fd, false));
  } catch (const bip::interprocess_exception& e) {
    return Status(Code::kIoError, "cannot open shared memory /dev/shm/" + name + ": " + e.what());
  }
}

Status SharedSegment::Reserve(std::size_t offset, std::size_t length) const {
  const int err = ::posix_fallocate(fd_, static_cast<off_t>(offset), static_cast<off_t>(length));
  if (err == ENOSPC || err == EFBIG)
    return Status(Code::kIoError, "/dev/shm is full: cannot reserve " + mib(length) + " of the queue");
  if (err != 0) return Status::FromErrno("posix_fallocate /dev/shm/" + name_, err);
  return Status::Ok();
}

Status SharedSegment::Write(std::size_t offset, std::span<const std::byte> data) const {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == ENOSPC) return Status(Code::kIoError, "/dev/shm is full: cannot write the queue");
    if (n <= 0) return Status::FromErrno("writing /dev/shm/" + name_);
    offset += static_cast<std::size_t>(n);
    data = data.subspan(static_cast<std::size_t>(n));
  }
  return Status::Ok();
}

void SharedSegment::BackProducer(JobQueue& queue, std::uint64_t base, Fills fills) const {
  queue.set_page_reserver([this, base](std::uint64_t offset, std::uint64_t length) {
    return Reserve(base + offset, length).ok();
  });
  if (fills == Fills::kThroughMapping) return;
  queue.set_arena_writer([this, base](std::uint64_t offset, std::span<const std::byte> data) {
    return Write(base + offset, data);
  });
}

SharedSegment::~SharedSegment() {
  ::close(fd_);
  if (owner_) bip::shared_memory_object::remove(name_.c_str());
}

std::vector<std::string> remove_stale_run_files(const std::filesystem::path& temp_root) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(kShmDir, ec)) {
    const std::string name = entry.path().filename().string();
    if (is_stale_run_name(name) && is_own(entry.path(), false) && bip::shared_memory_object::remove(name.c_str()))
      removed.push_back(entry.path().string());
  }
  for (const auto& entry : std::filesystem::directory_iterator(temp_root, ec)) {
    const std::string name = entry.path().filename().string();
    // Never a symlink or someone else's directory that merely looks like ours.
    if (!is_stale_run_dir_name(name) || !is_own(entry.path(), true)) continue;
    if (std::filesystem::remove_all(entry.path(), ec) > 0) removed.push_back(entry.path().string());
  }
  return removed;
}

Result<std::filesystem::path> create_run_temp_dir(const std::filesystem::path& temp_root) {
  // mkdtemp: a new directory (mode 0700) under a name nobody could predict,
  // never one that already exists, whoever made it.
  std::string dir = (temp_root / (run_name() + "." + std::string(kMkdtempSuffix))).string();
  if (::mkdtemp(dir.data()) == nullptr)
    return Status::FromErrno("cannot create temp directory in " + temp_root.string());
  return std::filesystem::path(dir);
}

std::filesystem::path default_temp_root() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp && *tmp ? std::filesystem::path(tmp) : std::filesystem::path("/tmp");
}

}  // namespace thumbmill
