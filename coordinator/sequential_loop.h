// The sequential baseline: one thread fetches a source, then resizes it,
// then (with an --out bucket) uploads it, then takes the next, like the
// single-threaded version of the Python Thumbnail Maker. It uses the same Fetcher and the same job handling as
// the concurrent builds, so the three differ only in how work overlaps.
#pragma once

#include <string>

#include "shared/job_queue.h"
#include "shared/options.h"

namespace thumbmill {

/// Reads FetchRequests from `request_fd` one at a time; for each, fetches it
/// into `queue`, reports the FetchOutcome, and if it was fetched makes its
/// thumbnails and reports the ResizeOutcome, and with `uploads` stores them
/// and reports the UploadOutcome, all on `result_fd`. Returns 0 at the end
/// of the requests, 1 if `result_fd` broke.
/// REQUIRES: init_vips was called; nothing else consumes from `queue` or
/// `uploads`.
int run_sequential(JobQueue& queue, JobQueue* uploads, const Options& options, const std::string& temp_dir,
                   int request_fd, int result_fd);

}  // namespace thumbmill
