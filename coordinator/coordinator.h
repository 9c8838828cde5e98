// The coordinator: reads the list, hands sources to the downloader, collects
// every outcome, supervises the children, and writes the report and summary.
//
// This is policy (after nginx's ngx_process_cycle.c): one loop, one blocking
// call (poll), signals read through a signalfd, children reaped only by the
// Crew. What a child is (process or thread) and where the queue lives
// (shared memory or ordinary memory) is decided by whoever builds the
// Pipeline; the loop is the same for both builds.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>

#include "coordinator/crew.h"
#include "shared/job_queue.h"
#include "shared/options.h"
#include "shared/shm_segment.h"

namespace thumbmill {

/// Exit statuses of the coordinator.
enum ExitCode : int {
  kExitOk = 0,           // every source ok (or skipped)
  kExitFailures = 1,     // finished, some sources failed
  kExitUsage = 2,        // bad option, value or list file
  kExitFatal = 3,        // the run could not go on (/dev/shm full, children cannot start)
  kExitInterrupted = 130,
};

/// A temp directory removed, with its contents, when this goes away.
class TempDir {
 public:
  TempDir() = default;
  explicit TempDir(std::filesystem::path path) : path_(std::move(path)) {}
  TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  TempDir& operator=(TempDir&& other) noexcept;
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// What the loop runs over. Members are destroyed bottom-up: the crew
/// (children stopped) before the memory they used, the temp dir last.
struct Pipeline {
  TempDir temp_dir;
  std::unique_ptr<SharedSegment> segment;     // process build
  std::unique_ptr<HeapQueueMemory> heap;      // threaded build
  std::unique_ptr<HeapQueueMemory> upload_heap;  // threaded build, --out bucket
  std::optional<JobQueue> queue;  // a view into `segment` or `heap`
  // Workers -> uploader, with an --out bucket only (queue_layout.h).
  std::optional<JobQueue> upload_queue;
  std::unique_ptr<Crew> crew;
  // Resize workers the loop keeps running. 0 for the sequential baseline,
  // whose one "downloader" child also resizes.
  int workers = 1;
};

/// The process build: the queues in a new shared-memory segment, children as
/// processes of the sibling executables `downloader`, `worker` and
/// `uploader`.
Result<Pipeline> make_process_pipeline(const Options& options);

using PipelineMaker = std::function<Result<Pipeline>(const Options&)>;

/// Runs a whole job: parses the command line, builds the pipeline with
/// `make_pipeline`, runs the loop, prints the summary. Returns the exit code.
int coordinator_main(int argc, char** argv, const PipelineMaker& make_pipeline);

}  // namespace thumbmill
