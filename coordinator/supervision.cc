// Supervision of the children (policy; the Crew is the mechanism, after
// nginx's ngx_process_cycle.c): starting the downloader, the workers and
// the uploader with their pipes, reaping them, restarting them behind a RestartThrottle,
// settling the jobs a dead worker held (tried again once, then failed),
// the deadlines (--job-timeout, a silent downloader, children that stay
// after the end of the run) and the one way a run ends as fatal.
#include "coordinator/run_loop.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "shared/memory_bound.h"
#include "shared/output_plan.h"

namespace thumbmill::run_loop {

bool RestartThrottle::Record(bool startup_failure) {
  if (!startup_failure) {
    quick_deaths = 0;
    return true;
  }
  if (++quick_deaths >= kMaxQuickDeaths) return false;
  not_before = Clock::now() + std::chrono::milliseconds(std::min(2000, 50 << quick_deaths));
  return true;
}

namespace {

/// Whether a child's end looks like a failure to start: it lived under a
/// second and did nothing. One killed from outside (SIGKILL) does not count.
bool startup_failure(const ChildExit& e, double lived_s, std::uint64_t jobs) {
  return jobs == 0 && lived_s < 1.0 && e.signal != SIGKILL;
}

}  // namespace

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

/// A child that only reports (a worker, the uploader): its result pipe,
/// our end non-blocking, and its record in children_.
Result<std::int32_t> Coordinator::StartReporter(Role role) {
  auto results = make_pipe();
  if (!results.ok()) return results.status();
  if (Status ours = set_nonblocking(results->read_fd); !ours.ok()) {  // never block the loop
    for (int fd : {results->read_fd, results->write_fd}) ::close(fd);
    return ours;
  }
  auto id = pipe_.crew->Start(role, -1, results->write_fd);
  if (!id.ok()) {
    ::close(results->read_fd);
    return id.status();
  }
  children_.emplace(*id, Child(role, results->read_fd));
  return *id;
}

Status Coordinator::StartUploader() {
  auto id = StartReporter(Role::kUploader);
  if (!id.ok()) return id.status();
  uploader_ = *id;
  return Status::Ok();
}

Status Coordinator::StartWorker() { return StartReporter(Role::kWorker).status(); }

void Coordinator::ReapChildren() {
  for (const ChildExit& e : pipe_.crew->Reap()) {
    // Outcomes it wrote before dying are still in the pipe: read them first,
    // so a job it finished is not mistaken for one it dropped.
    DrainChild(e.id);
    auto it = children_.find(e.id);
    std::uint64_t jobs = 0;
    double lived_s = 0;
    const std::string ended = EndedText(e, it != children_.end() ? &it->second : nullptr);
    if (it != children_.end()) {
      jobs = it->second.jobs;
      lived_s = seconds_since(it->second.started);
      close_fd(it->second.result_fd);
      children_.erase(it);
    }
    ended_rows_.push_back({std::string(role_name(e.role)), e.id, e.usage, jobs, ended});
    if (e.role == Role::kDownloader)
      OnDownloaderExit(e, lived_s, jobs);
    else if (e.role == Role::kUploader)
      OnUploaderExit(e, lived_s, jobs);
    else
      OnWorkerExit(e, lived_s, jobs);
  }
}

/// A child that the run itself signalled (StopChild) and that ended by that
/// signal is "stopped (<why>)", not a crash: it is what the user asked for
/// (Ctrl-C) or the end-of-run rule. A child killed from outside keeps its
/// signal ("signal 9 (Killed)"), and one that exited by itself its status.
std::string Coordinator::EndedText(const ChildExit& e, const Child* child) const {
  if (!child) return e.Describe();
  if (child->stop_signal && e.signaled && e.signal == child->stop_signal) return "stopped (" + child->stop_reason + ")";
  std::string ended = e.Describe();
  if (child->killed_silent) ended += ", silent with work due";
  return ended;
}

bool Coordinator::StopChild(std::int32_t id, int signo, const std::string& reason) {
  if (!pipe_.crew->Kill(id, signo)) return false;
  auto it = children_.find(id);
  if (it != children_.end() && !it->second.killed_silent) {
    it->second.stop_signal = signo;
    it->second.stop_reason = reason;
  }
  return true;
}

/// Whether a child that ended should be replaced: not while the run drains,
/// not when it said it cannot start (fatal: `cannot_start`), and not after a
/// run of quick deaths (`quick_death` counted by `throttle`; fatal:
/// `keeps_failing`).
bool Coordinator::WantReplacement(const ChildExit& e, RestartThrottle& throttle, bool quick_death,
                                  std::string_view cannot_start, std::string_view keeps_failing) {
  if (!e.signaled && e.exit_code == kChildFatalExit) {
    Fatal(std::string(cannot_start) + " (see above)");
    return false;
  }
  if (draining_) return false;
  if (!throttle.Record(quick_death)) {
    Fatal(std::string(keeps_failing) + " (last: " + e.Describe() + ")");
    return false;
  }
  return true;
}

void Coordinator::OnDownloaderExit(const ChildExit& e, double lived_s, std::uint64_t jobs) {
  close_fd(request_fd_);
  downloader_ = 0;
  queue_.ReclaimDead(e.id);  // frees the bodies it was still filling
  if (!WantReplacement(e, downloader_throttle_, startup_failure(e, lived_s, jobs), "the downloader could not start",
                       "the downloader keeps failing at start-up"))
    return;
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
  ++totals_.downloader_restarts;
  downloader_wanted_ = true;  // RestartDownloader starts it when the throttle allows
}

void Coordinator::RestartDownloader() {
  if (!downloader_wanted_ || draining_ || !fatal_.empty() || !downloader_throttle_.ready()) return;
  downloader_wanted_ = false;
  if (Status st = StartDownloader(); !st.ok()) Fatal("cannot restart the downloader: " + st.ToString());
}

/// The bundles it held go back to the head of the upload queue for its
/// replacement (their thumbnails are still in the arena: nothing is made
/// again), unless the run is stopping or they have outlived
/// kMaxUploadHolds uploaders.
void Coordinator::OnUploaderExit(const ChildExit& e, double lived_s, std::uint64_t jobs) {
  uploader_ = 0;
  const std::vector<SlotView> held = uploads_->ReclaimDead(e.id);
  for (const SlotView& bundle : held) {
    const bool pending = inflight_.count(bundle.source_id) > 0;
    if (pending && bundle.attempt < kMaxUploadHolds && !draining_) {
      uploads_->Requeue(bundle.slot);
      continue;
    }
    uploads_->Free(bundle.slot);
    if (!pending) continue;
    if (draining_) {
      FinishFailed(bundle.source_id, Code::kInterrupted, "interrupted before its thumbnails were stored", bundle.attempt);
      continue;
    }
    FinishFailed(bundle.source_id, Code::kWorkerCrashed,
                 "uploader died (" + e.Describe() + ") while storing it, " + std::to_string(bundle.attempt) + " times",
                 bundle.attempt);
  }
  if (!WantReplacement(e, uploader_throttle_, held.empty() && startup_failure(e, lived_s, jobs),
                       "the uploader could not start", "the uploader keeps failing at start-up"))
    return;
  ++totals_.uploader_restarts;
  uploader_wanted_ = true;
}

void Coordinator::RestartUploader() {
  if (!uploader_wanted_ || draining_ || !fatal_.empty() || !uploader_throttle_.ready()) return;
  uploader_wanted_ = false;
  if (Status st = StartUploader(); !st.ok()) Fatal("cannot restart the uploader: " + st.ToString());
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

  // One that died on a job is not failing to start, however young.
  if (!WantReplacement(e, worker_throttle_, held.empty() && startup_failure(e, lived_s, jobs),
                       "a worker could not start", "workers keep failing at start-up"))
    return;
  ++totals_.worker_restarts;
}

/// A job whose worker died: tried again once (its body is still in the
/// arena), failed on the second death (a poison pill must not take down
/// workers forever), or just freed if its outcome had already arrived.
void Coordinator::SettleCrashedJob(const SlotView& job, Code code, const std::string& reason) {
  // A worker killed mid-write leaves a hidden temp file; its name is known.
  book_.plan().RemoveTemps({job.stem, job.source}, job.owner);
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
  CheckUploaderAlive(last_deadline_check_);
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

/// A child that beats while it has work (the downloader every
/// kHeartbeatIntervalMs with transfers due, the uploader likewise with
/// bundles due), silent for kDownloaderSilenceLimit with `due` work, is
/// stopped or wedged: it is killed, and its exit replaces it like a crash
/// (the uploader's requeues what it held). A thread cannot be killed alone:
/// its transfers end by --timeout.
void Coordinator::CheckAlive(std::int32_t id, bool due, std::string_view what, Clock::time_point now) {
  auto it = children_.find(id);
  if (id == 0 || it == children_.end() || it->second.killed_silent) return;
  Child& c = it->second;
  if (!due) return c.liveness.Reset(now);
  if (!c.liveness.Overdue(now, kDownloaderSilenceLimit)) return;
  if (!pipe_.crew->Kill(id, SIGKILL)) return c.liveness.Reset(now);
  c.killed_silent = true;
  Say("thumbmill: the " + std::string(role_name(c.role)) + " (" + std::to_string(id) + ") sent nothing for " +
      std::to_string(kDownloaderSilenceLimit.count()) + " ms with " + std::string(what) +
      " due; killed, restarting it");
}

void Coordinator::CheckDownloaderAlive(Clock::time_point now) {
  if (downloader_ == 0) return;
  const bool due =
      std::any_of(inflight_.begin(), inflight_.end(), [](const auto& entry) { return !entry.second.queued; });
  CheckAlive(downloader_, due, "transfers", now);
}

void Coordinator::CheckUploaderAlive(Clock::time_point now) {
  if (!uploads_ || uploader_ == 0) return;
  bool due = false;  // held by it, or waiting to be taken
  for (const SlotView& v : uploads_->Snapshot())
    due = due || v.state == SlotState::kReady || (v.state == SlotState::kTaken && v.owner == uploader_);
  CheckAlive(uploader_, due, "uploads", now);
}

/// Once the queue is closed every child should exit by itself; one that
/// stays (stopped, wedged) with nothing left to do is stopped by
/// EndOfRunDeadline's TERM-then-KILL, and its end is not a failure.
void Coordinator::CheckEndOfRun(Clock::time_point now) {
  if (!draining_) return;
  std::unordered_set<std::int32_t> busy;
  for (const SlotView& v : queue_.Snapshot())
    if (v.state == SlotState::kTaken || v.state == SlotState::kFilling) busy.insert(v.owner);
  if (uploads_)
    for (const SlotView& v : uploads_->Snapshot())
      if (v.state == SlotState::kTaken || v.state == SlotState::kFilling) busy.insert(v.owner);
  for (auto& [id, child] : children_) {
    if (abandoned_.count(id)) continue;
    if (const int signo = child.end.Due(busy.count(id) > 0, now))
      (void)StopChild(id, signo, "idle at the end of the run");
  }
}

void Coordinator::Fatal(std::string message) {
  if (!fatal_.empty()) return;
  fatal_ = std::move(message);
  Say("thumbmill: fatal: " + fatal_, /*even_quiet=*/true);
  BeginDrain();
  DropUnstarted();
  for (const auto& [id, c] : children_) StopChild(id, SIGKILL, "the run ended: fatal error");
}

}  // namespace thumbmill::run_loop
