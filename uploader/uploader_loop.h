// The uploader: the third stage of the seed's workflow (download, resize,
// upload), one process with many PUTs in flight on one libcurl multi handle
// (--uploads), so a worker never waits for a PUT: an upload's latency is
// several times the CPU a thumbnail costs.
//
// It takes bundles (upload_bundle.h: one source's encoded thumbnails) from
// the upload queue, PUTs each thumbnail with its SHA-256, Content-Type,
// --cache-control and provenance metadata (x-amz-meta-source-url,
// -source-etag, -source-last-modified, -thumbmill-options), then the source's
// manifest record (the record goes last: it says the thumbnails are whole),
// reports one UploadOutcome, and only then releases the bundle.
//
// Crash safety is the workers': a bundle stays kTaken under this process's
// id until its outcome is reported, so if the uploader dies the coordinator
// requeues what it held and a new uploader PUTs it again (the same bytes to
// the same keys: harmless). Retries: connection errors, timeouts, 5xx, 408
// and 429 (after Retry-After when the server gives one), up to
// --upload-attempts tries per object.
#pragma once

#include <cstdint>

#include "shared/job_queue.h"
#include "shared/options.h"

namespace thumbmill {

/// Runs until the upload queue is closed and drained, or the result pipe
/// breaks. `owner` identifies this uploader in the queue (its pid, or its
/// thread id in the threaded build). Returns 0 on a normal end, 1 if the
/// result pipe broke, kChildFatalExit if libcurl cannot start. With
/// `until_empty` (the sequential baseline) it returns 0 as soon as it holds
/// nothing and nothing is ready to take.
int run_uploader(JobQueue& uploads, const Options& options, int result_fd, std::int32_t owner,
                 bool until_empty = false);

}  // namespace thumbmill
