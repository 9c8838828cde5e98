// The process build's placement of the job queue: a POSIX shared-memory
// segment (Boost.Interprocess), and the run's private temp directory.
//
// Names: "/thumbmill-<pid>-<start>" (the run's temp directory adds a random
// ".XXXXXX" suffix, see create_run_temp_dir) where <pid> is the creating
// coordinator's pid and <start> its start time in clock ticks since boot
// (from /proc). A coordinator killed with SIGKILL cannot remove what it
// made, so every coordinator first removes segments and temp directories
// whose creator is no longer running (a pid alone could have been reused;
// pid and start time together cannot).
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <boost/interprocess/mapped_region.hpp>

#include "shared/job_queue.h"
#include "shared/status.h"

namespace thumbmill {

/// "thumbmill-<pid>-<start>" for this process.
std::string run_name();

/// The directory where /dev/shm segments live (for room checks and cleanup).
inline constexpr const char* kShmDir = "/dev/shm";

class SharedSegment {
 public:
  /// Creates and maps a new zero-filled segment of `size` bytes named after
  /// this run. Fails with a clear message when /dev/shm has less room free.
  /// Its pages are not reserved yet: see Reserve.
  static Result<std::unique_ptr<SharedSegment>> Create(std::size_t size);
  /// Maps an existing segment (in a child).
  static Result<std::unique_ptr<SharedSegment>> Open(const std::string& name);

  /// Unmaps; the creator also removes the name.
  ~SharedSegment();
  SharedSegment(const SharedSegment&) = delete;
  SharedSegment& operator=(const SharedSegment&) = delete;

  void* data() const { return region_.get_address(); }
  std::size_t size() const { return region_.get_size(); }
  const std::string& name() const { return name_; }

  /// Reserves the pages of [offset, offset + length) in /dev/shm
  /// (posix_fallocate). A page of a segment that /dev/shm cannot back kills
  /// whoever touches it with SIGBUS (Boost 1.74 only ftruncates); reserved
  /// first, it is an ENOSPC instead. Reserving all 256 MiB up front would
  /// cost ~0.1 s of zeroing at every start and pin the whole arena, so each
  /// writer reserves what it is about to touch (JobQueue::set_page_reserver).
  Status Reserve(std::size_t offset, std::size_t length) const;

  /// Writes `data` at `offset` through the segment's file (pwrite), not
  /// through this process's mapping: no page of it is mapped here, so there
  /// is no fault per page and nothing to drop afterwards. The pages are
  /// visible at once to every process that maps them.
  Status Write(std::size_t offset, std::span<const std::byte> data) const;

  /// How a producer of this process puts bytes into a queue's arena.
  enum class Fills {
    // memcpy into its mapping, which it keeps: the downloader, which writes
    // every page of the arena over and over (a page fault per 4 KiB and an
    // madvise per body cost it 0.3 s of its 0.45 s of system time over
    // 578 MB; pwrite, 0.09 s more CPU than this). Its RSS then counts the
    // arena's pages it has written, at most --queue-mb, shared.
    kThroughMapping,
    // pwrite (Write): nothing is mapped, so the process's resident memory
    // does not grow by what it queues (the workers' upload bundles).
    kThroughFile,
  };

  /// Makes `queue`, whose block starts at byte `base` of this segment, a
  /// producer of this process: extents are reserved (Reserve) before they
  /// are handed out, and filled as `fills` says. The segment must outlive
  /// the queue's use.
  void BackProducer(JobQueue& queue, std::uint64_t base, Fills fills) const;

 private:
  SharedSegment(std::string name, boost::interprocess::mapped_region region, int fd, bool owner)
      : name_(std::move(name)), region_(std::move(region)), fd_(fd), owner_(owner) {}

  std::string name_;
  boost::interprocess::mapped_region region_;
  int fd_;  // close-on-exec: children open their own
  bool owner_;
};

/// Removes segments in /dev/shm named thumbmill-<pid>-<start>, and
/// directories under `temp_root` named thumbmill-<pid>-<start>.<suffix>,
/// whose creator is gone. Only a real directory or file owned by this user
/// is removed (never a symlink, never another user's). Returns what was
/// removed.
std::vector<std::string> remove_stale_run_files(const std::filesystem::path& temp_root);

/// Creates a new `<temp_root>/<run_name()>.<6 random characters>` (mkdtemp,
/// mode 0700) for spilled bodies; never reuses a directory that exists.
Result<std::filesystem::path> create_run_temp_dir(const std::filesystem::path& temp_root);

/// $TMPDIR, or /tmp.
std::filesystem::path default_temp_root();

}  // namespace thumbmill
