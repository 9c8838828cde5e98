#include "shared/queue_layout.h"

#include <unistd.h>

#include <algorithm>

namespace thumbmill {
std::size_t page_aligned_offset(std::size_t n) {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return (n + page - 1) / page * page;
}

std::size_t QueueLayout::upload_offset() const { return page_aligned_offset(fetch_bytes()); }

QueueLayout queue_layout(const Options& options) {
  QueueLayout layout;
  const int fetch_wanted = options.downloads + 8 * options.workers + 64;
  layout.fetch_slots = static_cast<std::uint32_t>(std::clamp(fetch_wanted, 128, 4096));
  layout.fetch_arena = static_cast<std::uint64_t>(options.queue_mb) << 20;
  if (options.out_is_s3()) {
    // A bundle per PUT batch in flight, two per worker (one being written,
    // one waiting), and a backlog; the arena bounds the bytes either way.
    const int upload_wanted = 2 * options.uploads + 2 * std::max(1, options.workers) + 32;
    layout.upload_slots = static_cast<std::uint32_t>(std::clamp(upload_wanted, 64, 4096));
    layout.upload_arena = static_cast<std::uint64_t>(options.upload_queue_mb) << 20;
  }
  return layout;
}

Result<std::optional<JobQueue>> attach_upload_queue(void* block, std::size_t size, const JobQueue& fetch) {
  const std::size_t offset = page_aligned_offset(fetch.block_bytes());
  if (size <= offset) return std::optional<JobQueue>();
  auto upload = JobQueue::Attach(static_cast<std::byte*>(block) + offset, size - offset);
  if (!upload.ok()) return Status(upload.status().code(), "upload queue: " + upload.status().message());
  return std::optional<JobQueue>(*upload);
}

}  // namespace thumbmill
