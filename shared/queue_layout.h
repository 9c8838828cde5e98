// QueueLayout: the sizes of a run's queues and where each sits in the one
// block of memory that holds them (a shared-memory segment in the process
// build, anonymous memory in the threaded one):
//
//   [fetch queue: downloader -> workers][upload queue: workers -> uploader]
//    offset 0                            upload_offset() (page aligned)
//
// The upload queue exists only with an --out bucket. A child finds both
// from the block alone (attach_upload_queue): the fetch queue's header says
// where it ends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "shared/job_queue.h"
#include "shared/options.h"

namespace thumbmill {

struct QueueLayout {
  std::uint32_t fetch_slots = 0;
  std::uint64_t fetch_arena = 0;
  std::uint32_t upload_slots = 0;  // 0: no upload queue
  std::uint64_t upload_arena = 0;

  bool has_upload() const { return upload_slots > 0; }
  std::size_t fetch_bytes() const { return JobQueue::RequiredBytes(fetch_slots, fetch_arena); }
  std::size_t upload_offset() const;
  std::size_t upload_bytes() const { return has_upload() ? JobQueue::RequiredBytes(upload_slots, upload_arena) : 0; }
  std::size_t total_bytes() const { return has_upload() ? upload_offset() + upload_bytes() : fetch_bytes(); }
};

/// The layout for a run: fetch slots for every transfer, every worker and a
/// backlog of ready jobs; --queue-mb of fetch arena; with an --out bucket,
/// upload slots for every PUT in flight and every worker, and
/// --upload-queue-mb of upload arena.
QueueLayout queue_layout(const Options& options);

/// `n` rounded up to a whole page: where the upload queue starts after a
/// fetch queue of `n` bytes.
std::size_t page_aligned_offset(std::size_t n);

/// The upload queue of a block whose fetch queue is `fetch` (attached at
/// `block`), or nullopt when the block holds none (an error when it holds
/// something else).
Result<std::optional<JobQueue>> attach_upload_queue(void* block, std::size_t size, const JobQueue& fetch);

}  // namespace thumbmill
