// Making the process pipeline: a run's temp directory, the queues in a new
// shared-memory segment laid out by queue_layout(), and a ProcessCrew that
// starts the sibling `downloader`, `worker` and `uploader` executables. (The threaded
// build makes its own, coordinator/thread_crew.cc.)
#include <algorithm>
#include <system_error>

#include "coordinator/coordinator.h"
#include "coordinator/process_crew.h"
#include "shared/process_setup.h"
#include "shared/queue_layout.h"

namespace thumbmill {

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  std::swap(path_, other.path_);
  return *this;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

Result<Pipeline> make_process_pipeline(const Options& options) {
  const auto downloader = find_sibling_executable("downloader");
  const auto worker = find_sibling_executable("worker");
  const auto uploader = find_sibling_executable("uploader");
  if (downloader.empty() || worker.empty() || (options.out_is_s3() && uploader.empty()))
    return Status(Code::kInternal, "cannot find the downloader, worker and uploader helpers (looked in the build tree and in " THUMBMILL_HELPER_DIR ")");

  Pipeline p;
  auto temp = create_run_temp_dir(default_temp_root());
  if (!temp.ok()) return temp.status();
  p.temp_dir = TempDir(*temp);

  const QueueLayout layout = queue_layout(options);
  auto segment = SharedSegment::Create(layout.total_bytes());
  if (!segment.ok()) return segment.status();
  p.segment = std::move(segment.value());
  // The headers and slots, which Create writes now; arena pages are
  // reserved by the producers (downloader, workers) as they fill them.
  if (Status st = p.segment->Reserve(0, JobQueue::RequiredBytes(layout.fetch_slots, 0)); !st.ok()) return st;
  p.queue = JobQueue::Create(p.segment->data(), layout.fetch_bytes(), layout.fetch_slots, layout.fetch_arena,
                             Placement::kShared);
  if (layout.has_upload()) {
    const std::size_t at = layout.upload_offset();
    if (Status st = p.segment->Reserve(at, JobQueue::RequiredBytes(layout.upload_slots, 0)); !st.ok()) return st;
    p.upload_queue = JobQueue::Create(static_cast<std::byte*>(p.segment->data()) + at, layout.upload_bytes(),
                                      layout.upload_slots, layout.upload_arena, Placement::kShared);
  }
  p.crew = std::make_unique<ProcessCrew>(downloader, worker, uploader,
                                         child_command(p.segment->name(), options, p.temp_dir.path()));
  p.workers = std::max(1, options.workers);
  return p;
}

}  // namespace thumbmill
