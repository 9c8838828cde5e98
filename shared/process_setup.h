// What every child process (downloader, worker) does first: read the
// arguments the coordinator gave it, attach to the queue, and make sure it
// dies with its parent.
#pragma once

#include <memory>
#include <string>

#include "shared/job_queue.h"
#include "shared/options.h"
#include "shared/shm_segment.h"

namespace thumbmill {

/// A child's command line: `<exe> --segment NAME --options JSON [--temp-dir DIR]`.
struct ChildArgs {
  std::string segment;  // shared-memory name
  Options options;
  std::string temp_dir;  // the run's temp directory (downloader spills here)
};

/// A child attached to the run: its arguments, the mapped segment and the
/// queue inside it.
struct AttachedChild {
  ChildArgs args;
  std::unique_ptr<SharedSegment> segment;
  JobQueue queue;
};

/// Parses the arguments, attaches to the segment, and ignores SIGPIPE (a
/// broken pipe is reported by write() as EPIPE instead). Fails when the
/// arguments or options are bad, the segment cannot be attached, or the
/// coordinator is already gone (the parent-death signal is armed before
/// exec; this closes the race where the parent died before that). The
/// caller (a main) ends with child_failed_to_start.
Result<AttachedChild> attach_child(int argc, char** argv);

/// The argument vector the coordinator passes (the inverse of attach_child).
std::vector<std::string> child_arguments(const std::string& segment, const Options& options,
                                         const std::string& temp_dir);

/// Prints "thumbmill <role>: <message>" to stderr and returns
/// kChildFatalExit, for a main to return: "fatal, do not respawn me".
int child_failed_to_start(const char* role, const Status& status);

}  // namespace thumbmill
