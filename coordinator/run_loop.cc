// The loop (after ninja's SubprocessSet::DoWork and nginx's master cycle):
// each turn reads sources, sends requests, polls once on every descriptor
// (signals through a signalfd, the request pipe, the list, every child's
// results), then reaps, restarts and checks deadlines. Also how a run stops
// (first signal drains, second kills) and the progress line and summary.
#include "coordinator/run_loop.h"

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace thumbmill::run_loop {

void Coordinator::HandleSignal(int signo) {
  if (signo == SIGCHLD) return;  // reaped below
  ++interrupts_;
  if (interrupts_ == 1) {
    Say("thumbmill: stopping: finishing the jobs already started (again to stop at once)");
    BeginDrain();
    DropUnstarted();
    if (downloader_) StopChild(downloader_, SIGKILL, "the run was interrupted");
  } else {
    for (const auto& [id, c] : children_) StopChild(id, SIGKILL, "the run was interrupted twice");
  }
}

/// No more sources are read or handed out; children are told to finish.
void Coordinator::BeginDrain() {
  if (draining_) return;
  draining_ = true;
  to_send_.clear();
  close_fd(request_fd_);  // the downloader finishes its transfers and exits
  queue_.Close();
  if (uploads_) uploads_->Close();  // the uploader finishes what it took and exits
}

/// Jobs no worker has started, and sources not yet in the queue, end as
/// interrupted.
void Coordinator::DropUnstarted() {
  for (const SlotView& v : queue_.Snapshot()) {
    if (v.state != SlotState::kReady) continue;
    const std::optional<SlotView> freed = queue_.FreeIfReady(v.slot, v.source_id);
    if (freed && freed->path_is_temp) ::unlink(freed->path.c_str());
  }
  if (!uploads_) return;
  for (const SlotView& v : uploads_->Snapshot())
    if (v.state == SlotState::kReady) (void)uploads_->FreeIfReady(v.slot, v.source_id);
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
  progress_drawn_ = true;
}

void Coordinator::Say(const std::string& line, bool even_quiet) {
  if (options_.quiet && !even_quiet) return;
  // One write per message, so a child's own line cannot land inside it.
  std::string text = progress_drawn_ ? "\r\x1b[K" : "";
  text += line;
  text += '\n';
  std::fputs(text.c_str(), stderr);
  progress_drawn_ = false;
  ShowProgress(true);
}

std::vector<ProcessRow> Coordinator::ProcessRows() const {
  // The coordinator's own thread: in the threaded build the children are
  // threads of this process, and RUSAGE_SELF would count them twice.
  rusage self{};
  ::getrusage(RUSAGE_THREAD, &self);
  ProcessRow me{"coordinator", static_cast<std::int32_t>(::getpid()),
                {self.ru_utime.tv_sec + self.ru_utime.tv_usec / 1e6, self.ru_stime.tv_sec + self.ru_stime.tv_usec / 1e6,
                 self.ru_maxrss},
                totals_.done() - totals_.skipped, "-"};
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
  list_.set_window(window_);
  if (Status st = StartDownloader(); !st.ok()) Fatal(st.ToString());
  // The sequential baseline (workers 0) uploads in its one thread.
  if (uploads_ && pipe_.workers > 0)
    if (Status st = StartUploader(); !st.ok()) Fatal(st.ToString());
  RespawnWorkers();

  while (!Finished()) {
    ReadSources();
    SendRequests();
    if (!draining_ && list_done_ && inflight_.empty()) BeginDrain();
    PollOnce();
    while (auto notice = list_.TakeNotice()) Say(*notice);
    ReapChildren();
    RestartDownloader();
    RestartUploader();
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
  // A run stopped before the end of its list: the lines never read are not
  // started. They are counted only where that is cheap and bounded (the
  // rest of a regular file); otherwise the summary says they were not read.
  totals_.stopped_early = interrupts_ > 0 || !fatal_.empty();
  if (totals_.stopped_early) totals_.not_started = list_done_ ? std::optional<std::uint64_t>(0) : list_.CountRest();
  ShowProgress(true);
  if (progress_drawn_) std::fputc('\n', stderr);
  const std::string destination = options_.out_is_s3() ? options_.out_s3 : options_.out_dir.string();
  if (!options_.quiet)
    std::fputs(format_summary(totals_, seconds_since(start_), ProcessRows(), destination).c_str(), stderr);
  ::close(signal_fd_);
  if (!fatal_.empty()) return kExitFatal;
  if (interrupts_) return kExitInterrupted;
  return totals_.failed ? kExitFailures : kExitOk;
}

}  // namespace thumbmill::run_loop
