// ThreadCrew: the threaded build's children, as threads of one process.
//
// The same loops as the process build (run_downloader, run_worker,
// run_uploader), on the
// same queue code (placed in ordinary memory by make_thread_pipeline), wired
// to the coordinator with the same pipes. Only what a process can do and a
// thread cannot differs: a thread cannot be killed alone (Kill returns
// false: a job past --job-timeout ends the run with exit 3, supervision.cc),
// and a crash takes the whole run.
//
// Threads are named "downloader" and "worker", so `top -H` shows them as
// `top` shows the processes of the process build.
#pragma once

#include <atomic>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <thread>

#include "coordinator/coordinator.h"
#include "coordinator/crew.h"
#include "shared/job_queue.h"
#include "shared/options.h"

namespace thumbmill {

class ThreadCrew : public Crew {
 public:
  /// With `sequential`, the downloader role runs the sequential baseline:
  /// one thread that fetches a source, then resizes it, then the next.
  /// `uploads`: the upload queue, with an --out bucket (else null).
  ThreadCrew(JobQueue& queue, JobQueue* uploads, const Options& options, std::string temp_dir, bool sequential);
  /// Joins every thread. REQUIRES: they were told to stop (their request
  /// pipe closed, the queue closed), or this waits for them.
  ~ThreadCrew() override;

  Result<std::int32_t> Start(Role role, int request_fd, int result_fd) override;
  std::vector<ChildExit> Reap() override;
  bool Kill(std::int32_t, int) override { return false; }
  std::size_t running() const override { return members_.size(); }

 private:
  struct Member;
  void Body(Member& member, int request_fd, int result_fd);

  JobQueue queue_;  // a view: copies share the same memory
  std::optional<JobQueue> uploads_;
  const Options options_;
  const std::string temp_dir_;
  const bool sequential_;
  std::map<std::int32_t, std::unique_ptr<Member>> members_;
};

/// The threaded build: the queue in ordinary memory, children as threads.
/// `--workers 0` gives the sequential baseline.
Result<Pipeline> make_thread_pipeline(const Options& options);

}  // namespace thumbmill
