// What every child process (downloader, worker) does first: read the
// arguments the coordinator gave it, attach to the queue, and make sure it
// dies with its parent.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shared/job_queue.h"
#include "shared/options.h"
#include "shared/shm_segment.h"

namespace thumbmill {

/// A child's command line: `<exe> --segment NAME --temp-dir DIR --title TITLE`,
/// all of it readable in `ps`; the run's options come on descriptor
/// kOptionsFd (wire.h), never in argv. TITLE ("worker 3", "downloader")
/// becomes the process's name: "thumbmill: worker 3" in `ps` and `top -c`,
/// "thumbmill-w3" in `top` (the kernel's 15-byte comm).
struct ChildArgs {
  std::string segment;  // shared-memory name
  Options options;
  std::string temp_dir;  // the run's temp directory (downloader spills here)
  std::string title;     // "worker 3", "downloader"
};

/// How the coordinator starts children: the arguments they all share, and
/// the options JSON each reads from kOptionsFd.
struct ChildCommand {
  std::vector<std::string> args;  // --segment NAME --temp-dir DIR
  std::string options_json;
};
ChildCommand child_command(const std::string& segment, const Options& options, const std::string& temp_dir);

/// The argv a ProcessCrew appends for one child: --title TITLE.
std::vector<std::string> child_title_arguments(const std::string& title);

/// The short name `top` shows for TITLE: "worker 3" -> "thumbmill-w3",
/// "downloader" -> "thumbmill-dl" (at most 15 bytes).
std::string child_comm(const std::string& title);

/// A child attached to the run: its arguments, the mapped segment and the
/// queue inside it.
struct AttachedChild {
  ChildArgs args;
  std::unique_ptr<SharedSegment> segment;
  JobQueue queue;                        // downloader -> workers
  std::optional<JobQueue> upload_queue;  // workers -> uploader (an --out bucket)
};

/// Parses the arguments, reads the options from kOptionsFd (and closes it),
/// names the process after its title (prctl(PR_SET_NAME) and its argv
/// rewritten in place, as nginx's setproctitle does), attaches to the
/// segment, and ignores SIGPIPE (a broken pipe is reported by write() as
/// EPIPE instead). Fails when the
/// arguments or options are bad, the segment cannot be attached, or the
/// coordinator is already gone (the parent-death signal is armed before
/// exec; this closes the race where the parent died before that). The
/// caller (a main) ends with child_failed_to_start.
Result<AttachedChild> attach_child(int argc, char** argv);

/// Prints "thumbmill <role>: <message>" to stderr and returns
/// kChildFatalExit, for a main to return: "fatal, do not respawn me".
int child_failed_to_start(const char* role, const Status& status);

}  // namespace thumbmill
