// Body: arena extent, growth, spill file, publish (see body.h).
#include "downloader/body.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "shared/fd_io.h"

namespace thumbmill::fetch {
namespace {

/// First arena extent for a body of unknown length (it doubles from there).
constexpr std::uint64_t kUnknownLengthGuess = 1 << 20;

}  // namespace

Body::Put Body::Append(std::string_view data, std::int64_t expected, bool may_spill) {
  if (fd_ >= 0) return AppendToFile(data);
  return AppendToArena(data, expected, may_spill);
}

Body::Put Body::AppendToArena(std::string_view data, std::int64_t expected, bool may_spill) {
  JobQueue& queue = ctx_.queue;
  if (!slot_) {
    // Content-Length when known; else a guess that leaves room for others.
    std::uint64_t want = expected >= 0 ? static_cast<std::uint64_t>(expected)
                                       : std::min(kUnknownLengthGuess, queue.arena_size() / 8);
    want = std::max<std::uint64_t>(want, data.size());
    if (want > queue.arena_size()) return SpillAndAppend(data);  // would never fit
    slot_ = queue.Reserve(info("", false), want, ctx_.owner);
    if (!slot_) return may_spill ? SpillAndAppend(data) : Put::kNoRoom;
    capacity_ = want;
  }
  // A body outgrowing its extent is spilled at once rather than paused: it
  // holds arena while waiting, and two such bodies could wait on each other.
  if (length_ + data.size() > capacity_ && !GrowFor(length_ + data.size()))
    return SpillAndAppend(data);
  if (Status st = queue.Fill(*slot_, length_, std::as_bytes(std::span(data))); !st.ok()) {
    error_ = st;
    return Put::kFailed;
  }
  length_ += data.size();
  return Put::kStored;
}

bool Body::GrowFor(std::uint64_t needed) {
  const std::uint64_t arena = ctx_.queue.arena_size();
  if (needed > arena) return false;
  const std::uint64_t target = std::min(arena, std::max(needed, capacity_ * 2));
  if (!ctx_.queue.Grow(*slot_, target)) return false;
  capacity_ = target;
  return true;
}

Body::Put Body::PathTooLong() {
  error_ = Status(Code::kIoError, "temp dir path too long for a job: " + spill_path_);
  return Put::kFailed;
}

Body::Put Body::SpillAndAppend(std::string_view data) {
  if (ctx_.temp_dir.empty()) {
    error_ = Status(Code::kIoError, "body does not fit the queue and there is no temp dir to spill to");
    return Put::kFailed;
  }
  if (spill_path_.size() >= kMaxJobPath) return PathTooLong();
  // Never opens a name that exists (O_EXCL, O_NOFOLLOW): nothing planted can
  // redirect the body. The temp dir is the run's own (mkdtemp, 0700), so a
  // name found there was left by a downloader of this run killed before it
  // could remove it: that one is replaced, once.
  constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  fd_ = ::open(spill_path_.c_str(), kFlags, 0600);
  if (fd_ < 0 && errno == EEXIST && ::unlink(spill_path_.c_str()) == 0) fd_ = ::open(spill_path_.c_str(), kFlags, 0600);
  if (fd_ < 0) {
    error_ = Status::FromErrno("creating " + spill_path_);
    return Put::kFailed;
  }
  spilled_ = true;
  if (slot_) {
    // What is in the arena goes first; then the extent is given back.
    if (length_ > 0 && !WriteAll(ctx_.queue.body(*slot_).data(), length_)) return Put::kFailed;
    if (!ctx_.queue.SpillToPath(*slot_, spill_path_)) return PathTooLong();  // checked above; never shortened
    capacity_ = 0;
  }
  return AppendToFile(data);
}

Body::Put Body::AppendToFile(std::string_view data) {
  if (!WriteAll(data.data(), data.size())) return Put::kFailed;
  length_ += data.size();
  return Put::kStored;
}

bool Body::WriteAll(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error_ = Status::FromErrno("writing " + spill_path_);
      return false;
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool Body::Publish(const FetchFacts& facts) {
  if (fd_ >= 0) close_fd(fd_);
  if (!slot_) {
    // A path job (local source, or spilled before any slot was free) or an
    // empty body: it needs a slot only now.
    const JobInfo job = !local_path_.empty() ? info(local_path_, false)
                        : spilled_           ? info(spill_path_, true)
                                             : info("", false);
    slot_ = ctx_.queue.Reserve(job, 0, ctx_.owner);
    if (!slot_) return false;
  }
  // For a path job `length` is the file's size although its extent is 0.
  ctx_.queue.Publish(*slot_, length_, facts);
  slot_.reset();
  spilled_ = false;  // the job owns the file now
  return true;
}

void Body::Discard() {
  if (fd_ >= 0) close_fd(fd_);
  if (slot_) ctx_.queue.Abandon(*slot_);
  if (spilled_) ::unlink(spill_path_.c_str());
  slot_.reset();
  spilled_ = false;
  capacity_ = length_ = 0;
  error_ = Status::Ok();
}

}  // namespace thumbmill::fetch
