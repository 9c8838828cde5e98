// The downloader's loop: FetchRequest frames in, FetchOutcome frames out,
// the Fetcher in between. The process build runs it in the downloader
// process on fds 3 and 4; the threaded build runs it on a thread with pipes.
#pragma once

#include <string>

#include "shared/job_queue.h"
#include "shared/options.h"

namespace thumbmill {

/// Reads FetchRequest frames from `request_fd`, fetches each source into
/// `queue` (Fetcher, fetcher.h), and writes exactly one FetchOutcome per
/// request to `result_fd`, in the order the sources finish. At most
/// Options::downloads sources are in flight; later requests wait here in
/// arrival order (the sender bounds how many it sends ahead).
///
/// While it has work it also writes a Heartbeat at least every
/// kHeartbeatIntervalMs (wire.h): the coordinator kills a silent one.
///
/// Returns 0 once `request_fd` is at end of file and every request is
/// answered; 1 at once when `result_fd` cannot be written (EPIPE: the reader
/// is gone, nobody would learn the outcomes) or `request_fd` is unusable.
/// Either way every slot it was filling is given back first.
///
/// Makes `request_fd` non-blocking; closes neither fd. No global state, no
/// process-wide side effects and no exit(): it may run on a thread.
/// REQUIRES: SIGPIPE is ignored (or the process dies instead of seeing EPIPE).
int run_downloader(JobQueue& queue, const Options& options, const std::string& temp_dir,
                   int request_fd, int result_fd);

}  // namespace thumbmill
