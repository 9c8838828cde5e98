#include "coordinator/coordinator.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "coordinator/child_deadlines.h"
#include "coordinator/process_crew.h"
#include "coordinator/report.h"
#include "coordinator/resume_book.h"
#include "coordinator/source_feed.h"
#include "shared/fd_io.h"
#include "shared/manifest.h"
#include "shared/memory_bound.h"
#include "shared/output_files.h"
#include "shared/output_names.h"
#include "shared/process_setup.h"
#include "shared/source_list.h"
#include "shared/wire.h"

namespace thumbmill {

// ----- pipeline ------------------------------------------------------------

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

// ----- the loop ------------------------------------------------------------

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

/// A source handed out and not yet finished.
struct InFlight {
  SourceLine line;
  // Its stem, and for kAskServer the record that says it is done: the
  // request is conditional, and a 304 means skipped.
  ResumeBook::Entry book;
  bool queued = false;  // false: with the downloader (sent, or waiting to be)
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
  bool Record(bool startup_failure) {
    if (!startup_failure) {
      quick_deaths = 0;
      return true;
    }
    if (++quick_deaths >= kMaxQuickDeaths) return false;
    not_before = Clock::now() + std::chrono::milliseconds(std::min(2000, 50 << quick_deaths));
    return true;
  }
  bool ready() const { return Clock::now() >= not_before; }
};

/// Whether a child's end looks like a failure to start: it lived under a
/// second and did nothing. One killed from outside (SIGKILL) does not count.
bool startup_failure(const ChildExit& e, double lived_s, std::uint64_t jobs) {
  return jobs == 0 && lived_s < 1.0 && e.signal != SIGKILL;
}

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
};

class Coordinator {
 public:
  Coordinator(const Options& options, Pipeline& pipeline, SourceFeed& list, ReportWriter& report)
      : options_(options), pipe_(pipeline), queue_(*pipeline.queue), list_(list), report_(report) {}

  int Run();
  /// Children left running because they cannot be stopped (threads stuck
  /// past --job-timeout): the caller must end the process without joining.
  bool abandoned_children() const { return !abandoned_.empty(); }

 private:
  // Sources.
  void ReadSources();
  void Admit(SourceLine line);
  void FinishSkipped(const InFlight& s, std::optional<std::uint64_t> id = std::nullopt);
  void RecordOutcome(const InFlight& s, const SourceResult& r);
  void SendRequests();
  void Finish(std::uint64_t id, SourceResult result);
  void FinishFailed(std::uint64_t id, Code code, std::string error, std::uint32_t attempts = 0);
  SourceResult ResultFor(const InFlight& s) const;

  // Outcomes.
  void DrainChild(std::int32_t id);
  void OnFetchOutcome(const FetchOutcome& o);
  void OnResizeOutcome(const ResizeOutcome& o);

  // Children.
  Status StartDownloader();
  Status StartWorker();
  void ReapChildren();
  void OnDownloaderExit(const ChildExit& e, double lived_s, std::uint64_t jobs);
  void RestartDownloader();
  void OnWorkerExit(const ChildExit& e, double lived_s, std::uint64_t jobs);
  void SettleCrashedJob(const SlotView& job, Code code, const std::string& reason);
  void RespawnWorkers();
  void CheckDeadlines();
  void AbandonStuckJob(const SlotView& job, const std::string& why);
  void CheckDownloaderAlive(Clock::time_point now);
  void CheckEndOfRun(Clock::time_point now);
  void Fatal(std::string message);

  // Stopping.
  void HandleSignal(int signo);
  void BeginDrain();
  void DropUnstarted();
  bool Finished() const;

  // Loop plumbing.
  void PollOnce();
  void ShowProgress(bool force);
  std::vector<ProcessRow> ProcessRows() const;

  const Options& options_;
  Pipeline& pipe_;
  JobQueue& queue_;
  SourceFeed& list_;
  ReportWriter& report_;

  // Sources.
  std::unordered_map<std::uint64_t, InFlight> inflight_;
  std::deque<std::uint64_t> to_send_;  // ids for the downloader, oldest first
  std::unordered_set<std::uint64_t> seen_;  // stable_hash of each source location
  ResumeBook book_{options_};  // names, manifest records, what is done
  std::uint64_t next_id_ = 1;
  bool list_done_ = false;
  std::size_t window_ = 0;

  // Children.
  std::map<std::int32_t, Child> children_;
  std::int32_t downloader_ = 0;
  int request_fd_ = -1;  // our end of the downloader's request pipe
  int workers_wanted_ = 0;
  static constexpr std::uint32_t kMaxAttempts = 2;  // resize attempts per source
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
  Clock::time_point last_deadline_check_{};
  int signal_fd_ = -1;
  int interrupts_ = 0;
  bool draining_ = false;  // no more work will be handed out
  std::string fatal_;
};

// --- sources ---------------------------------------------------------------

void Coordinator::ReadSources() {
  while (!list_done_ && !draining_ && inflight_.size() < window_) {
    auto line = list_.TryNext();
    if (!line) {
      if (!list_.done()) return;  // nothing more yet: PollOnce waits on the list too
      list_done_ = true;
      totals_.list_done = true;
      if (!list_.status().ok()) Fatal(list_.status().ToString());
      return;
    }
    Admit(std::move(*line));
  }
}

void Coordinator::Admit(SourceLine line) {
  if (line.status.ok() && line.kind == SourceKind::kFile && options_.no_local)
    line.status = Status(Code::kInvalidArgument,
                         "line " + std::to_string(line.line_number) + ": local source refused (--no-local)");
  if (!line.status.ok()) {
    SourceResult r;
    r.url = line.display;
    r.line = line.line_number;
    r.code = line.status.code();
    r.error = line.status.message();
    ++totals_.sources_read;
    ++totals_.failed;
    report_.Write(r);
    return;
  }
  if (!seen_.insert(stable_hash(line.location)).second) {
    ++totals_.duplicates;
    return;
  }
  ++totals_.sources_read;
  const std::uint64_t id = next_id_++;
  InFlight s;
  s.line = std::move(line);
  s.started_ms = monotonic_ms();
  auto entry = book_.Admit(s.line);
  if (!entry.ok()) {
    ++totals_.failed;
    SourceResult r = ResultFor(s);
    r.code = Code::kIoError;
    r.error = "cannot name its outputs: " + entry.status().message();
    report_.Write(r);
    return;
  }
  s.book = std::move(*entry);
  if (s.book.verdict == ResumeBook::Verdict::kSkip) return FinishSkipped(s);
  inflight_.emplace(id, std::move(s));
  to_send_.push_back(id);
}

/// Reports `s` as done before, with the outputs its record names; `id` when
/// it was in flight (a 304).
void Coordinator::FinishSkipped(const InFlight& s, std::optional<std::uint64_t> id) {
  SourceResult r = ResultFor(s);
  r.ok = r.skipped = true;
  r.outputs = book_.Outputs(*s.book.record);
  ++totals_.skipped;
  report_.Write(r);
  if (id) inflight_.erase(*id);
}

/// Keeps the manifest true to what is on disk: a source made whole gets its
/// record; one that failed loses any record, since its earlier outputs may
/// be gone or half replaced. A manifest that cannot be kept ends the run.
void Coordinator::RecordOutcome(const InFlight& s, const SourceResult& r) {
  const Status st = r.ok ? book_.RecordMade(s.line, s.book, s.fetch, r.outputs) : book_.Forget(s.line.location);
  if (!st.ok()) Fatal("cannot keep the manifest in " + options_.out_dir.string() + ": " + st.message());
}

void Coordinator::SendRequests() {
  while (request_fd_ >= 0 && !to_send_.empty()) {
    const std::uint64_t id = to_send_.front();
    auto it = inflight_.find(id);
    if (it == inflight_.end() || it->second.queued) {
      to_send_.pop_front();
      continue;
    }
    const InFlight& s = it->second;
    FetchRequest req;
    req.source_id = id;
    req.kind = static_cast<std::uint32_t>(s.line.kind);
    // A shortened URL or stem would name another source or file: refused.
    // (The list reader caps a source at kMaxSourceLength and stems are far
    // shorter, so this holds today; it is checked, not assumed.)
    if (!copy_whole(req.url, s.line.location) || !copy_whole(req.stem, s.book.stem)) {
      to_send_.pop_front();
      FinishFailed(id, Code::kInvalidArgument, "source or its output name too long for a request");
      continue;
    }
    req.url_length = static_cast<std::uint32_t>(s.line.location.size());
    if (s.book.verdict == ResumeBook::Verdict::kAskServer) {
      // A validator that does not fit is not sent: the source is then
      // fetched whole, which is only slower.
      (void)copy_whole(req.if_none_match, s.book.record->validator.etag);
      (void)copy_whole(req.if_modified_since, s.book.record->validator.last_modified);
    }
    const std::size_t size = offsetof(FetchRequest, url) + req.url_length + 1;
    const TryWrite w = try_write_frame(request_fd_, MessageType::kFetchRequest, &req, size);
    if (w == TryWrite::kFull) return;       // poll tells us when there is room
    if (w == TryWrite::kBroken) return;     // the downloader died; its exit resends
    to_send_.pop_front();
  }
}

SourceResult Coordinator::ResultFor(const InFlight& s) const {
  SourceResult r;
  r.url = s.line.display;
  r.line = s.line.line_number;
  r.fetch_attempts = s.fetch.tries;
  r.http_status = s.fetch.http_status;
  r.bytes_downloaded = s.fetch.bytes;
  r.fetch_ms = s.fetch.fetch_ms;
  r.resize_ms = s.resize_ms;
  r.ms = static_cast<std::uint64_t>(std::max<std::int64_t>(0, monotonic_ms() - s.started_ms));
  return r;
}

void Coordinator::Finish(std::uint64_t id, SourceResult result) {
  if (result.ok) {
    ++totals_.ok;
    totals_.thumbnails += result.outputs.size();
    for (const auto& o : result.outputs) totals_.bytes_out += o.bytes;
  } else {
    ++totals_.failed;
  }
  report_.Write(result);
  inflight_.erase(id);
  // A report that cannot be written (a full disk) ends the run: exit 3.
  if (!report_.status().ok()) Fatal(report_.status().ToString());
}

void Coordinator::FinishFailed(std::uint64_t id, Code code, std::string error, std::uint32_t attempts) {
  auto it = inflight_.find(id);
  if (it == inflight_.end()) return;
  SourceResult r = ResultFor(it->second);
  r.attempts = attempts;
  r.code = code;
  r.error = std::move(error);
  Finish(id, std::move(r));
}

// --- outcomes --------------------------------------------------------------

void Coordinator::DrainChild(std::int32_t id) {
  auto it = children_.find(id);
  if (it == children_.end() || it->second.result_fd < 0) return;
  Child& child = it->second;
  const bool open = child.reader.Fill(child.result_fd);
  while (auto frame = child.reader.Next()) {
    child.liveness.Reset(Clock::now());  // any frame, heartbeats included
    if (frame->type == MessageType::kFetchOutcome) {
      const auto outcome = frame->as<FetchOutcome>();
      if (!well_formed(outcome)) continue;  // counts out of range: never indexed
      OnFetchOutcome(outcome);
      ++child.jobs;
    } else if (frame->type == MessageType::kResizeOutcome) {
      const auto outcome = frame->as<ResizeOutcome>();
      if (!well_formed(outcome)) continue;
      OnResizeOutcome(outcome);
      ++child.jobs;
    }
  }
  // EOF: the child is ending. A corrupt stream cannot be resynchronised:
  // closing it ends the child (EPIPE), and its jobs are settled as a crash.
  if (!open || child.reader.corrupt()) close_fd(child.result_fd);
}

void Coordinator::OnFetchOutcome(const FetchOutcome& o) {
  totals_.bytes_in += o.bytes;
  auto it = inflight_.find(o.source_id);
  if (it == inflight_.end()) return;  // already finished by a fast worker
  InFlight& s = it->second;
  // What a failed fetch did; a published job brings its own facts to its
  // ResizeOutcome, which may arrive before or after this.
  if (!s.queued) {
    s.fetch.bytes = o.bytes;
    s.fetch.tries = o.tries;
    s.fetch.http_status = o.http_status;
    s.fetch.fetch_ms = o.fetch_ms;
  }
  if (static_cast<Code>(o.code) == Code::kOk && o.not_modified) {
    if (s.book.verdict != ResumeBook::Verdict::kAskServer)
      return FinishFailed(o.source_id, Code::kInternal, "304 to a request that was not conditional");
    return FinishSkipped(s, o.source_id);
  }
  if (static_cast<Code>(o.code) == Code::kOk) {
    s.queued = true;
    return;
  }
  FinishFailed(o.source_id, static_cast<Code>(o.code), std::string(text_of(o.error)));
}

void Coordinator::OnResizeOutcome(const ResizeOutcome& o) {
  auto it = inflight_.find(o.source_id);
  if (it == inflight_.end()) return;
  InFlight& s = it->second;
  s.queued = true;
  s.fetch = o.fetch;  // the job's own facts: one path for what the source did
  s.resize_ms = o.resize_ms;
  SourceResult r = ResultFor(s);
  r.attempts = o.attempt;
  r.code = static_cast<Code>(o.code);
  r.ok = r.code == Code::kOk;
  if (!r.ok) r.error = text_of(o.error);
  const OutputPlan& plan = book_.plan();
  const std::size_t count = std::min<std::size_t>({o.output_count, kMaxOutputs, plan.count()});
  if (r.ok && count != plan.count()) {
    r.ok = false;
    r.code = Code::kInternal;
    r.error = "worker reported " + std::to_string(o.output_count) + " outputs for " +
              std::to_string(plan.count()) + " sizes";
  }
  for (std::size_t i = 0; r.ok && i < count; ++i)
    r.outputs.push_back({plan.final_path(s.book.stem, i).string(), o.outputs[i].width, o.outputs[i].height,
                         o.outputs[i].bytes});
  RecordOutcome(s, r);
  Finish(o.source_id, std::move(r));
}

// --- children --------------------------------------------------------------

Status Coordinator::StartDownloader() {
  auto requests = make_pipe();
  if (!requests.ok()) return requests.status();
  auto results = make_pipe();
  Status ours = results.ok() ? set_nonblocking(requests->write_fd) : results.status();
  // Our ends must never block the loop.
  if (ours.ok()) ours = set_nonblocking(results->read_fd);
  if (!ours.ok()) {
    for (int fd : {requests->read_fd, requests->write_fd}) ::close(fd);
    if (results.ok())
      for (int fd : {results->read_fd, results->write_fd}) ::close(fd);
    return ours;
  }
  auto id = pipe_.crew->Start(Role::kDownloader, requests->read_fd, results->write_fd);
  if (!id.ok()) {
    ::close(requests->write_fd);
    ::close(results->read_fd);
    return id.status();
  }
  request_fd_ = requests->write_fd;
  downloader_ = *id;
  children_.emplace(*id, Child(Role::kDownloader, results->read_fd));
  return Status::Ok();
}

Status Coordinator::StartWorker() {
  auto results = make_pipe();
  if (!results.ok()) return results.status();
  if (Status ours = set_nonblocking(results->read_fd); !ours.ok()) {  // never block the loop
    for (int fd : {results->read_fd, results->write_fd}) ::close(fd);
    return ours;
  }
  auto id = pipe_.crew->Start(Role::kWorker, -1, results->write_fd);
  if (!id.ok()) {
    ::close(results->read_fd);
    return id.status();
  }
  children_.emplace(*id, Child(Role::kWorker, results->read_fd));
  return Status::Ok();
}

void Coordinator::ReapChildren() {
  for (const ChildExit& e : pipe_.crew->Reap()) {
    // Outcomes it wrote before dying are still in the pipe: read them first,
    // so a job it finished is not mistaken for one it dropped.
    DrainChild(e.id);
    auto it = children_.find(e.id);
    std::uint64_t jobs = 0;
    double lived_s = 0;
    std::string ended = e.Describe();
    if (it != children_.end()) {
      if (it->second.end.signalled()) ended += ", stopped at the end of the run";
      if (it->second.killed_silent) ended += ", silent with work due";
      jobs = it->second.jobs;
      lived_s = seconds_since(it->second.started);
      close_fd(it->second.result_fd);
      children_.erase(it);
    }
    ended_rows_.push_back({std::string(role_name(e.role)), e.id, e.usage, jobs, ended});
    if (e.role == Role::kDownloader)
      OnDownloaderExit(e, lived_s, jobs);
    else
      OnWorkerExit(e, lived_s, jobs);
  }
}

void Coordinator::OnDownloaderExit(const ChildExit& e, double lived_s, std::uint64_t jobs) {
  close_fd(request_fd_);
  downloader_ = 0;
  queue_.ReclaimDead(e.id);  // frees the bodies it was still filling
  const bool clean = !e.signaled && e.exit_code == 0;
  if (draining_ && clean) return;
  if (!e.signaled && e.exit_code == kChildFatalExit) return Fatal("the downloader could not start (see above)");
  if (draining_) return;
  // Whatever it had not put in the queue is fetched again by a new one.
  std::unordered_set<std::uint64_t> in_queue;
  for (const SlotView& v : queue_.Snapshot()) in_queue.insert(v.source_id);
  to_send_.clear();
  for (auto& [id, s] : inflight_) {
    if (s.queued || in_queue.count(id)) {
      s.queued = true;
      continue;
    }
    to_send_.push_back(id);
  }
  std::sort(to_send_.begin(), to_send_.end());
  if (!downloader_throttle_.Record(startup_failure(e, lived_s, jobs)))
    return Fatal("the downloader keeps failing at start-up (last: " + e.Describe() + ")");
  ++totals_.downloader_restarts;
  downloader_wanted_ = true;  // RestartDownloader starts it when the throttle allows
}

void Coordinator::RestartDownloader() {
  if (!downloader_wanted_ || draining_ || !fatal_.empty() || !downloader_throttle_.ready()) return;
  downloader_wanted_ = false;
  if (Status st = StartDownloader(); !st.ok()) Fatal("cannot restart the downloader: " + st.ToString());
}

void Coordinator::OnWorkerExit(const ChildExit& e, double lived_s, std::uint64_t jobs) {
  std::string reason = "worker crashed (" + e.Describe() + ")";
  Code code = Code::kWorkerCrashed;
  if (!e.signaled && e.exit_code == kWorkerOutOfMemoryExit) {
    code = Code::kTooMuchMemory;
    reason = "worker out of memory (over its limit of " +
             std::to_string(worker_memory_limit_mib(options_.max_decode_mb)) + " MiB)";
  }
  if (auto k = kill_reasons_.find(e.id); k != kill_reasons_.end()) {
    reason = k->second;
    kill_reasons_.erase(k);
  }
  const std::vector<SlotView> held = queue_.ReclaimDead(e.id);
  for (const SlotView& job : held) SettleCrashedJob(job, code, reason);

  const bool clean = !e.signaled && e.exit_code == 0;
  if (draining_ && clean) return;
  if (!e.signaled && e.exit_code == kChildFatalExit) return Fatal("a worker could not start (see above)");
  if (draining_) return;
  // One that died on a job is not failing to start, however young.
  if (!worker_throttle_.Record(held.empty() && startup_failure(e, lived_s, jobs)))
    return Fatal("workers keep failing at start-up (last: " + e.Describe() + ")");
  ++totals_.worker_restarts;
}

/// A job whose worker died: tried again once (its body is still in the
/// arena), failed on the second death (a poison pill must not take down
/// workers forever), or just freed if its outcome had already arrived.
void Coordinator::SettleCrashedJob(const SlotView& job, Code code, const std::string& reason) {
  // A worker killed mid-write leaves a hidden temp file; its name is known.
  book_.plan().RemoveTemps(job.stem, job.owner);
  auto it = inflight_.find(job.source_id);
  const bool pending = it != inflight_.end();
  if (pending && job.attempt < kMaxAttempts && !draining_) {
    queue_.Requeue(job.slot);
    return;
  }
  if (job.path_is_temp) ::unlink(job.path.c_str());
  queue_.Free(job.slot);
  if (!pending) return;
  it->second.fetch = job.fetch;
  (void)book_.Forget(it->second.line.location);  // its outputs may be half replaced
  if (draining_ && job.attempt < kMaxAttempts)
    return FinishFailed(job.source_id, Code::kInterrupted, "interrupted before it finished", job.attempt);
  FinishFailed(job.source_id, code, reason + " on " + std::to_string(job.attempt) + " attempts",
               job.attempt);
}

/// Keeps `workers_wanted_` workers running, throttled: a worker that dies
/// soon after it started delays the next start (doubling up to 2 s), and a
/// run of such deaths ends the run instead of looping.
void Coordinator::RespawnWorkers() {
  if (draining_ || !fatal_.empty()) return;
  int running = 0;
  for (const auto& [id, c] : children_) running += c.role == Role::kWorker;
  if (running >= workers_wanted_ || !worker_throttle_.ready()) return;
  for (; running < workers_wanted_; ++running) {
    if (Status st = StartWorker(); !st.ok()) return Fatal("cannot start a worker: " + st.ToString());
  }
}

void Coordinator::CheckDeadlines() {
  if (seconds_since(last_deadline_check_) < 0.25) return;
  last_deadline_check_ = Clock::now();
  const std::int64_t now = monotonic_ms();
  const std::int64_t limit = static_cast<std::int64_t>(options_.job_timeout_s) * 1000;
  for (const SlotView& v : queue_.Snapshot()) {
    if (v.state != SlotState::kTaken || now - v.taken_at_ms <= limit) continue;
    if (kill_reasons_.count(v.owner) || abandoned_.count(v.owner)) continue;
    const std::string why = "job timed out after " + std::to_string(options_.job_timeout_s) + " s (--job-timeout)";
    if (pipe_.crew->Kill(v.owner, SIGKILL))
      kill_reasons_[v.owner] = why + "; worker killed";
    else
      AbandonStuckJob(v, why);
  }
  CheckDownloaderAlive(last_deadline_check_);
  CheckEndOfRun(last_deadline_check_);
}

/// A job past its deadline on a child that cannot be killed (a thread): its
/// source fails as timed out and the run ends as fatal without waiting for
/// that child (the caller exits without joining it, abandoned_children()).
void Coordinator::AbandonStuckJob(const SlotView& job, const std::string& why) {
  abandoned_.insert(job.owner);
  FinishFailed(job.source_id, Code::kTimeout, why + "; its thread cannot be stopped, so the run ends", job.attempt);
  Fatal(why + " on a thread that cannot be stopped");
}

/// A downloader silent for kDownloaderSilenceLimit while transfers are due
/// (it beats every kHeartbeatIntervalMs while it has work) is stopped or
/// wedged: it is killed, and its exit restarts it like a crash.
void Coordinator::CheckDownloaderAlive(Clock::time_point now) {
  auto it = children_.find(downloader_);
  if (downloader_ == 0 || it == children_.end() || it->second.killed_silent) return;
  Child& d = it->second;
  const bool due =
      std::any_of(inflight_.begin(), inflight_.end(), [](const auto& entry) { return !entry.second.queued; });
  if (!due) return d.liveness.Reset(now);
  if (!d.liveness.Overdue(now, kDownloaderSilenceLimit)) return;
  // A thread cannot be killed alone; its transfers end by --timeout.
  if (!pipe_.crew->Kill(downloader_, SIGKILL)) return d.liveness.Reset(now);
  d.killed_silent = true;
  std::fprintf(stderr, "\nthumbmill: the downloader (%d) sent nothing for %lld ms with transfers due; killed, restarting it\n",
               downloader_, static_cast<long long>(kDownloaderSilenceLimit.count()));
}

/// Once the queue is closed every child should exit by itself; one that
/// stays (stopped, wedged) with nothing left to do is stopped by
/// EndOfRunDeadline's TERM-then-KILL, and its end is not a failure.
void Coordinator::CheckEndOfRun(Clock::time_point now) {
  if (!draining_) return;
  std::unordered_set<std::int32_t> busy;
  for (const SlotView& v : queue_.Snapshot())
    if (v.state == SlotState::kTaken || v.state == SlotState::kFilling) busy.insert(v.owner);
  for (auto& [id, child] : children_) {
    if (abandoned_.count(id)) continue;
    if (const int signo = child.end.Due(busy.count(id) > 0, now)) (void)pipe_.crew->Kill(id, signo);
  }
}

void Coordinator::Fatal(std::string message) {
  if (!fatal_.empty()) return;
  fatal_ = std::move(message);
  std::fprintf(stderr, "\nthumbmill: fatal: %s\n", fatal_.c_str());
  BeginDrain();
  DropUnstarted();
  for (const auto& [id, c] : children_) pipe_.crew->Kill(id, SIGKILL);
}

// --- stopping --------------------------------------------------------------

void Coordinator::HandleSignal(int signo) {
  if (signo == SIGCHLD) return;  // reaped below
  ++interrupts_;
  if (interrupts_ == 1) {
    std::fprintf(stderr, "\nthumbmill: stopping: finishing the jobs already started (again to stop at once)\n");
    BeginDrain();
    DropUnstarted();
    if (downloader_) pipe_.crew->Kill(downloader_, SIGKILL);
  } else {
    for (const auto& [id, c] : children_) pipe_.crew->Kill(id, SIGKILL);
  }
}

/// No more sources are read or handed out; children are told to finish.
void Coordinator::BeginDrain() {
  if (draining_) return;
  draining_ = true;
  to_send_.clear();
  close_fd(request_fd_);  // the downloader finishes its transfers and exits
  queue_.Close();
}

/// Jobs no worker has started, and sources not yet in the queue, end as
/// interrupted.
void Coordinator::DropUnstarted() {
  for (const SlotView& v : queue_.Snapshot()) {
    if (v.state != SlotState::kReady) continue;
    const std::optional<SlotView> freed = queue_.FreeIfReady(v.slot, v.source_id);
    if (freed && freed->path_is_temp) ::unlink(freed->path.c_str());
  }
}

/// Done when every child has ended, or every one left is abandoned.
bool Coordinator::Finished() const {
  return draining_ && std::all_of(children_.begin(), children_.end(),
                                  [this](const auto& entry) { return abandoned_.count(entry.first) > 0; });
}

// --- loop plumbing ---------------------------------------------------------

void Coordinator::PollOnce() {
  std::vector<pollfd> fds;
  std::vector<std::int32_t> owners;
  fds.push_back({signal_fd_, POLLIN, 0});
  owners.push_back(0);
  if (request_fd_ >= 0 && !to_send_.empty()) {
    fds.push_back({request_fd_, POLLOUT, 0});
    owners.push_back(0);
  }
  // The list wakes the loop when it has more (ReadSources reads it next).
  if (!list_done_ && !draining_ && inflight_.size() < window_ && list_.wait_fd() >= 0) {
    fds.push_back({list_.wait_fd(), POLLIN, 0});
    owners.push_back(0);
  }
  for (const auto& [id, c] : children_) {
    if (c.result_fd < 0) continue;
    fds.push_back({c.result_fd, POLLIN, 0});
    owners.push_back(id);
  }
  const int timeout_ms = options_.progress ? 100 : 250;
  if (::poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) Fatal("poll: " + std::string(strerror(errno)));

  if (fds[0].revents & POLLIN) {
    signalfd_siginfo info;
    while (::read(signal_fd_, &info, sizeof info) == sizeof info) HandleSignal(static_cast<int>(info.ssi_signo));
  }
  for (std::size_t i = 1; i < fds.size(); ++i)
    if (owners[i] && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) DrainChild(owners[i]);
}

void Coordinator::ShowProgress(bool force) {
  if (!options_.progress || options_.quiet) return;
  if (!force && seconds_since(last_progress_) < 0.2) return;
  last_progress_ = Clock::now();
  std::fprintf(stderr, "\r%s\x1b[K", format_progress(totals_, seconds_since(start_)).c_str());
  std::fflush(stderr);
}

std::vector<ProcessRow> Coordinator::ProcessRows() const {
  // The coordinator's own thread: in the threaded build the children are
  // threads of this process, and RUSAGE_SELF would count them twice.
  rusage self{};
  ::getrusage(RUSAGE_THREAD, &self);
  ProcessRow me{"coordinator", static_cast<std::int32_t>(::getpid()),
                {self.ru_utime.tv_sec + self.ru_utime.tv_usec / 1e6, self.ru_stime.tv_sec + self.ru_stime.tv_usec / 1e6,
                 self.ru_maxrss},
                totals_.ok + totals_.failed, "-"};
  std::vector<ProcessRow> rows{me};
  rows.insert(rows.end(), ended_rows_.begin(), ended_rows_.end());
  return rows;
}

int Coordinator::Run() {
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGCHLD, SIGINT, SIGTERM, SIGHUP}) sigaddset(&mask, s);
  ::sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal_fd_ = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd_ < 0) return std::perror("signalfd"), kExitFatal;

  workers_wanted_ = pipe_.workers;
  window_ = queue_.slot_count() + 2 * static_cast<std::size_t>(options_.downloads);
  if (Status st = StartDownloader(); !st.ok()) Fatal(st.ToString());
  RespawnWorkers();

  while (!Finished()) {
    ReadSources();
    SendRequests();
    if (!draining_ && list_done_ && inflight_.empty()) BeginDrain();
    PollOnce();
    ReapChildren();
    RestartDownloader();
    RespawnWorkers();
    CheckDeadlines();
    ShowProgress(false);
  }
  // Whatever is still in flight did not finish.
  std::vector<std::uint64_t> left;
  for (const auto& [id, s] : inflight_) left.push_back(id);
  std::sort(left.begin(), left.end());
  for (std::uint64_t id : left)
    FinishFailed(id, Code::kInterrupted, fatal_.empty() ? "interrupted before it finished" : "run stopped: " + fatal_);
  ShowProgress(true);
  if (options_.progress && !options_.quiet) std::fputc('\n', stderr);
  if (!options_.quiet) std::fputs(format_summary(totals_, seconds_since(start_), ProcessRows()).c_str(), stderr);
  ::close(signal_fd_);
  if (!fatal_.empty()) return kExitFatal;
  if (interrupts_) return kExitInterrupted;
  return totals_.failed ? kExitFailures : kExitOk;
}

}  // namespace

// ----- entry point -----------------------------------------------------------

int coordinator_main(int argc, char** argv, const PipelineMaker& make_pipeline) {
  ParsedCommandLine cmd = parse_command_line(argc, argv);
  if (cmd.exit_now) return cmd.exit_code;
  if (!cmd.error.empty()) {
    std::fprintf(stderr, "coordinator: %s\nRun with --help for the options.\n", cmd.error.c_str());
    return kExitUsage;
  }
  Options& options = cmd.options;
  if (Status st = finalize_options(options); !st.ok()) {
    std::fprintf(stderr, "coordinator: %s\n", st.ToString().c_str());
    return kExitUsage;
  }
  ::signal(SIGPIPE, SIG_IGN);
  // `top` and `pgrep thumbmill` find the whole run: the children are
  // thumbmill-dl and thumbmill-w1..N (process_crew.h).
  ::prctl(PR_SET_NAME, "thumbmill", 0, 0, 0);

  auto list = open_list_feed(options.list_path);
  if (!list.ok()) {
    std::fprintf(stderr, "coordinator: %s\n", list.status().ToString().c_str());
    return kExitUsage;
  }
  if (Status st = check_report_path(options); !st.ok()) {
    std::fprintf(stderr, "coordinator: %s\n", st.ToString().c_str());
    return kExitUsage;
  }
  std::error_code ec;
  std::filesystem::create_directories(options.out_dir, ec);
  if (ec || ::access(options.out_dir.c_str(), W_OK) != 0) {
    std::fprintf(stderr, "coordinator: fatal: output directory %s is not writable%s%s\n", options.out_dir.c_str(),
                 ec ? ": " : "", ec ? ec.message().c_str() : "");
    return kExitFatal;
  }
  remove_stale_run_files(default_temp_root());
  remove_orphan_temp_files(options.out_dir);
  remove_orphan_manifest_temps(options.out_dir);

  auto pipeline = make_pipeline(options);
  if (!pipeline.ok()) {
    std::fprintf(stderr, "coordinator: fatal: %s\n", pipeline.status().ToString().c_str());
    return kExitFatal;
  }
  // Only now, with every start-up check passed, is an earlier report
  // replaced.
  auto report = ReportWriter::Open(options.report_path);
  if (!report.ok()) {
    std::fprintf(stderr, "coordinator: %s\n", report.status().ToString().c_str());
    return kExitUsage;
  }
  Coordinator coordinator(options, *pipeline, **list, *report);
  int code = coordinator.Run();
  if (Status st = report->Close(); !st.ok()) {
    std::fprintf(stderr, "coordinator: fatal: the report is incomplete: %s\n", st.ToString().c_str());
    code = kExitFatal;
  }
  if (coordinator.abandoned_children()) {
    // A thread stuck past --job-timeout can be neither stopped nor joined:
    // the report and summary are out, so end here instead of in ~ThreadCrew.
    pipeline->temp_dir = TempDir();
    list->reset();  // gives standard input its flags back
    std::fflush(nullptr);
    std::_Exit(code);
  }
  return code;
}

}  // namespace thumbmill
