// The coordinator's loop, internal to coordinator/: the Coordinator class
// and the records it keeps per source (InFlight) and per child (Child). Its
// members are defined by concern, one file each:
//   sources.cc      what happens to a source: read, admit (resume verdict),
//                   send to the downloader, finish, report
//   outcomes.cc     what the children report back, frame by frame
//   supervision.cc  children: start, reap, restart (throttled), settle the
//                   jobs of a crashed worker, deadlines, fatal
//   run_loop.cc     the loop itself: poll, signals, stopping, progress and
//                   the summary
// coordinator_main (coordinator.cc) is the only user; nothing here is part
// of coordinator.h's interface.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "coordinator/child_deadlines.h"
#include "coordinator/coordinator.h"
#include "coordinator/report.h"
#include "coordinator/resume_book.h"
#include "coordinator/source_feed.h"
#include "shared/fd_io.h"
#include "shared/source_list.h"
#include "shared/wire.h"

namespace thumbmill::run_loop {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

/// A source handed out and not yet finished.
struct InFlight {
  SourceLine line;
  // Its stem, and for kAskServer the record that says it is done: the
  // request is conditional, and a 304 means skipped.
  ResumeBook::Entry book;
  bool queued = false;  // false: with the downloader (sent, or waiting to be)
  bool uploading = false;  // its thumbnails are in the upload queue (an --out bucket)
  std::int64_t started_ms = 0;
  FetchFacts fetch;     // the job's own (from its ResizeOutcome), else its FetchOutcome's
  std::uint32_t resize_ms = 0;
};

/// Restarts of one role of child, throttled: a child that ends young without
/// having done anything, again and again, is broken (a missing library, a
/// bad binary), so each such end delays the next start (doubling up to 2 s),
/// and six in a row end the run instead of a busy loop.
struct RestartThrottle {
  static constexpr int kMaxQuickDeaths = 6;
  int quick_deaths = 0;
  Clock::time_point not_before{};

  /// Records an unexpected end; false when it is time to give up.
  bool Record(bool startup_failure);
  bool ready() const { return Clock::now() >= not_before; }
};

struct Child {
  Child(Role r, int fd) : role(r), result_fd(fd) {}
  Role role;
  int result_fd = -1;
  FrameReader reader;
  std::uint64_t jobs = 0;
  Clock::time_point started = Clock::now();
  Liveness liveness{Clock::now()};  // reset by every frame it sends
  EndOfRunDeadline end;             // applies once the queue is closed
  bool killed_silent = false;       // killed by CheckDownloaderAlive
  // Set by StopChild: the run signalled it on purpose (its end is shown as
  // "stopped (<stop_reason>)" when that signal ended it).
  int stop_signal = 0;
  std::string stop_reason;
};

/// One run: owns every source in flight and every child, and one blocking
/// call (PollOnce). REQUIRES: the pipeline and the list outlive it.
class Coordinator {
 public:
  /// `s3_out`: what the --out bucket holds (REQUIRES: given with an --out
  /// bucket, and only then).
  /// `shared_claims`: see ResumeBook (null unless a batch's nodes share an
  /// --out bucket).
  Coordinator(const Options& options, Pipeline& pipeline, SourceFeed& list, ReportWriter& report,
              std::shared_ptr<const S3OutputIndex> s3_out = nullptr, SharedStemClaims* shared_claims = nullptr)
      : options_(options),
        pipe_(pipeline),
        queue_(*pipeline.queue),
        uploads_(pipeline.upload_queue ? &*pipeline.upload_queue : nullptr),
        list_(list),
        report_(report),
        book_(options, std::move(s3_out), shared_claims) {}

  int Run();
  /// Children left running because they cannot be stopped (threads stuck
  /// past --job-timeout): the caller must end the process without joining.
  bool abandoned_children() const { return !abandoned_.empty(); }

 private:
  // Sources (sources.cc).
  void ReadSources();
  void Admit(SourceLine line);
  void FinishSkipped(const InFlight& s, std::optional<std::uint64_t> id = std::nullopt);
  void RecordOutcome(const InFlight& s, const SourceResult& r);
  void SendRequests();
  void Conclude(const SourceResult& r);
  void Finish(std::uint64_t id, SourceResult result);
  void FinishFailed(std::uint64_t id, Code code, std::string error, std::uint32_t attempts = 0);
  SourceResult ResultFor(const InFlight& s) const;

  // Outcomes (outcomes.cc).
  void DrainChild(std::int32_t id);
  void OnFetchOutcome(const FetchOutcome& o);
  void OnResizeOutcome(const ResizeOutcome& o);
  void OnUploadOutcome(const UploadOutcome& o);
  /// The report line of a source its worker finished (`r`'s outputs named
  /// by the plan), made by OnResizeOutcome and OnUploadOutcome alike.
  SourceResult ResizedResult(InFlight& s, const ResizeOutcome& o);

  // Children (supervision.cc).
  Status StartDownloader();
  Status StartWorker();
  Result<std::int32_t> StartReporter(Role role);
  bool WantReplacement(const ChildExit& e, RestartThrottle& throttle, bool quick_death,
                       std::string_view cannot_start, std::string_view keeps_failing);
  void ReapChildren();
  void OnDownloaderExit(const ChildExit& e, double lived_s, std::uint64_t jobs);
  void RestartDownloader();
  Status StartUploader();
  void OnUploaderExit(const ChildExit& e, double lived_s, std::uint64_t jobs);
  void RestartUploader();
  void OnWorkerExit(const ChildExit& e, double lived_s, std::uint64_t jobs);
  void SettleCrashedJob(const SlotView& job, Code code, const std::string& reason);
  void RespawnWorkers();
  void CheckDeadlines();
  void AbandonStuckJob(const SlotView& job, const std::string& why);
  void CheckAlive(std::int32_t id, bool due, std::string_view what, Clock::time_point now);
  void CheckDownloaderAlive(Clock::time_point now);
  void CheckUploaderAlive(Clock::time_point now);
  void CheckEndOfRun(Clock::time_point now);
  void Fatal(std::string message);
  /// Sends `signo` to child `id` on purpose (`reason`: why, for its row);
  /// false when it cannot be signalled (a thread).
  bool StopChild(std::int32_t id, int signo, const std::string& reason);
  /// How a reaped child ended, for its row in the summary.
  std::string EndedText(const ChildExit& e, const Child* child) const;

  // Stopping (run_loop.cc).
  void HandleSignal(int signo);
  void BeginDrain();
  void DropUnstarted();
  bool Finished() const;

  // Loop plumbing (run_loop.cc).
  void PollOnce();
  void ShowProgress(bool force);
  /// Prints one message line on standard error without garbling the
  /// progress line (cleared first, drawn again after). Nothing with -q
  /// unless `even_quiet` (fatal errors).
  void Say(const std::string& line, bool even_quiet = false);
  std::vector<ProcessRow> ProcessRows() const;

  const Options& options_;
  Pipeline& pipe_;
  JobQueue& queue_;
  JobQueue* uploads_;  // workers -> uploader; null without an --out bucket
  SourceFeed& list_;
  ReportWriter& report_;

  // Sources.
  std::unordered_map<std::uint64_t, InFlight> inflight_;
  std::deque<std::uint64_t> to_send_;  // ids for the downloader, oldest first
  std::unordered_set<std::uint64_t> seen_;  // stable_hash of each source location
  ResumeBook book_;  // names, manifest records, what is done
  std::uint64_t next_id_ = 1;
  bool list_done_ = false;
  std::size_t window_ = 0;

  // Children.
  std::map<std::int32_t, Child> children_;
  std::int32_t downloader_ = 0;
  int request_fd_ = -1;  // our end of the downloader's request pipe
  int workers_wanted_ = 0;
  static constexpr std::uint32_t kMaxAttempts = 2;  // resize attempts per source
  // Uploaders that may die holding one source's thumbnails before it fails.
  // Generous: an uploader only sends bytes (nothing in a bundle is parsed
  // but its checked header), so its deaths are kills from outside or a
  // failing machine, and a replacement takes the requeued bundles first; the
  // bound only keeps a bundle that somehow killed every uploader from
  // looping for ever.
  static constexpr std::uint32_t kMaxUploadHolds = 8;
  std::int32_t uploader_ = 0;
  RestartThrottle uploader_throttle_;
  bool uploader_wanted_ = false;
  RestartThrottle worker_throttle_;
  RestartThrottle downloader_throttle_;
  bool downloader_wanted_ = false;  // it ended; start another when allowed
  std::map<std::int32_t, std::string> kill_reasons_;
  std::vector<ProcessRow> ended_rows_;
  std::unordered_set<std::int32_t> abandoned_;  // stuck threads, see abandoned_children()

  // Run state.
  RunTotals totals_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_progress_{};
  bool progress_drawn_ = false;  // the progress line is on screen, unfinished
  Clock::time_point last_deadline_check_{};
  int signal_fd_ = -1;
  int interrupts_ = 0;
  bool draining_ = false;  // no more work will be handed out
  std::string fatal_;
};

}  // namespace thumbmill::run_loop
