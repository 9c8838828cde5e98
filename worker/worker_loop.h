// The resize worker's loop: take a job, make its thumbnails, write them
// (or, with an --out bucket, hand them to the uploader through the upload
// queue), report, give the job back.
//
// The order matters for crash safety: thumbnails are renamed into place,
// then the outcome is reported, and only then is the slot released. A worker
// killed anywhere in between leaves its slot kTaken under its pid; the
// coordinator either sees the outcome (the source is done, the slot is just
// freed) or does not (the job is requeued, its body still in the arena).
// With an --out bucket the bundle is published before the outcome is
// reported: a worker killed between the two makes the job run again, and the
// second bundle is a second PUT of the same bytes to the same keys.
#pragma once

#include <cstdint>

#include "shared/job_queue.h"
#include "shared/options.h"

namespace thumbmill {

/// Makes the thumbnails of the job this caller took (`slot`), writes them,
/// reports a ResizeOutcome to `result_fd`, then releases the slot. Returns
/// false when the outcome could not be reported (the slot is then left
/// taken, for the supervisor to reclaim).
/// `uploads`: the upload queue, with an --out bucket (else null).
bool handle_job(JobQueue& queue, JobQueue::SlotId slot, const Options& options, int result_fd,
                JobQueue* uploads = nullptr);

/// Runs until the queue is closed and drained, or the result pipe breaks.
/// `owner` identifies this worker in the queue (its pid, or its thread id in
/// the threaded build). REQUIRES: init_vips was called in this process.
/// Returns 0 on a normal end, 1 if the result pipe broke.
int run_worker(JobQueue& queue, const Options& options, int result_fd, std::int32_t owner,
               JobQueue* uploads = nullptr);

}  // namespace thumbmill
