// Deadlines for the coordinator's children that are not about one job
// (--job-timeout covers those): a downloader must show signs of life while
// it has transfers due, and at the end of a run a child with nothing left to
// do must exit. Both are plain values over an injected time, so their rules
// are tested without sleeping; the loop (supervision.cc) applies them.
#pragma once

#include <signal.h>

#include <chrono>

namespace thumbmill {

using SteadyClock = std::chrono::steady_clock;

/// Silence allowed from a downloader with transfers due (and from an uploader
/// with uploads due). Each sends a frame
/// at least every kHeartbeatIntervalMs (250 ms, wire.h) while it has work,
/// so this is a dozen missed beats: a stopped or wedged one, not a slow one.
inline constexpr std::chrono::milliseconds kDownloaderSilenceLimit{3000};

/// How long a child has been silent while it had work.
class Liveness {
 public:
  explicit Liveness(SteadyClock::time_point now) : since_(now) {}
  /// A message arrived, or the child has nothing due: the clock restarts.
  void Reset(SteadyClock::time_point now) { since_ = now; }
  bool Overdue(SteadyClock::time_point now, std::chrono::milliseconds limit) const { return now - since_ > limit; }

 private:
  SteadyClock::time_point since_;
};

/// The end of a run, after nginx: once the queue is closed, a child that
/// has had nothing to do for kGrace and is still there gets SIGTERM, and
/// SIGKILL kGrace after that (a stopped process acts on nothing else). A
/// child still holding a job is left to that job's --job-timeout.
class EndOfRunDeadline {
 public:
  static constexpr std::chrono::milliseconds kGrace{2000};

  /// Call on each deadline check after the queue closed. `busy`: it holds
  /// work. Returns the signal to send now, or 0.
  int Due(bool busy, SteadyClock::time_point now) {
    if (busy) {
      busy_ = true;
      sent_ = 0;
      return 0;
    }
    if (busy_ || !watching_) {  // the grace starts when it is first seen idle
      busy_ = false;
      watching_ = true;
      quiet_since_ = now;
    }
    if (sent_ == 0 && now - quiet_since_ >= kGrace) return sent_ = SIGTERM;
    if (sent_ == SIGTERM && now - quiet_since_ >= 2 * kGrace) return sent_ = SIGKILL;
    return 0;
  }
  /// Whether this deadline has signalled the child (it ends on purpose).
  bool signalled() const { return sent_ != 0; }

 private:
  bool watching_ = false;
  bool busy_ = false;
  SteadyClock::time_point quiet_since_{};
  int sent_ = 0;
};

}  // namespace thumbmill
