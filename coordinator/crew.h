// Crew: the children of one run, as the coordinator's loop sees them.
//
// The loop (run_loop.h) is policy: what to start, when to requeue, when
// to stop. A Crew is mechanism: start a child wired to two pipe ends, say
// which children have ended and what they cost. ProcessCrew (process_crew.h)
// makes them processes; the threaded build makes them threads. The loop
// does not know which.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "shared/status.h"

namespace thumbmill {

enum class Role { kDownloader, kWorker, kUploader };
std::string_view role_name(Role role);

/// What the kernel says a child cost (wait4's rusage for a process,
/// RUSAGE_THREAD for a thread).
struct ChildUsage {
  double user_s = 0;
  double system_s = 0;
  long max_rss_kb = 0;
};

struct ChildExit {
  std::int32_t id = 0;  // pid, or thread id
  Role role = Role::kWorker;
  bool signaled = false;
  int signal = 0;      // when signaled
  int exit_code = 0;   // when not signaled
  ChildUsage usage;

  /// "exit 0", "exit 78", "signal 9 (Killed)".
  std::string Describe() const;
};

class Crew {
 public:
  virtual ~Crew() = default;

  /// Starts a child. It reads FetchRequests from `request_fd` (downloader
  /// only; -1 otherwise) and writes outcomes to `result_fd`. Takes ownership
  /// of both descriptors. Returns the child's id.
  virtual Result<std::int32_t> Start(Role role, int request_fd, int result_fd) = 0;

  /// Children that ended since the last call; never blocks.
  virtual std::vector<ChildExit> Reap() = 0;

  /// Delivers `signal` to one child. Returns false when that is not possible
  /// (a thread cannot be killed on its own).
  virtual bool Kill(std::int32_t id, int signal) = 0;

  /// Children started and not yet reaped.
  virtual std::size_t running() const = 0;
};

}  // namespace thumbmill
