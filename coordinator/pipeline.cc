// Making the process pipeline: a run's temp directory, the job queue in a
// new shared-memory segment sized by queue_slots(), and a ProcessCrew that
// starts the sibling `downloader` and `worker` executables. (The threaded
// build makes its own, coordinator/thread_crew.cc.)
#include <algorithm>
#include <system_error>

#include "coordinator/coordinator.h"
#include "coordinator/process_crew.h"
#include "shared/process_setup.h"

namespace thumbmill {

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  std::swap(path_, other.path_);
  return *this;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

std::uint32_t queue_slots(const Options& options) {
  const int wanted = options.downloads + 8 * options.workers + 64;
  return static_cast<std::uint32_t>(std::clamp(wanted, 128, 4096));
}

Result<Pipeline> make_process_pipeline(const Options& options) {
  const auto downloader = find_sibling_executable("downloader");
  const auto worker = find_sibling_executable("worker");
  if (downloader.empty() || worker.empty())
    return Status(Code::kInternal, "cannot find the downloader and worker helpers (looked in the build tree and in " THUMBMILL_HELPER_DIR ")");

  Pipeline p;
  auto temp = create_run_temp_dir(default_temp_root());
  if (!temp.ok()) return temp.status();
  p.temp_dir = TempDir(*temp);

  const std::uint32_t slots = queue_slots(options);
  const std::uint64_t arena = static_cast<std::uint64_t>(options.queue_mb) << 20;
  auto segment = SharedSegment::Create(JobQueue::RequiredBytes(slots, arena));
  if (!segment.ok()) return segment.status();
  p.segment = std::move(segment.value());
  // The header and slots, which Create writes now; arena pages are reserved
  // by the downloader as it fills them.
  if (Status st = p.segment->Reserve(0, JobQueue::RequiredBytes(slots, 0)); !st.ok()) return st;
  p.queue = JobQueue::Create(p.segment->data(), p.segment->size(), slots, arena, Placement::kShared);
  p.crew = std::make_unique<ProcessCrew>(downloader, worker,
                                         child_command(p.segment->name(), options, p.temp_dir.path()));
  p.workers = std::max(1, options.workers);
  return p;
}

}  // namespace thumbmill
