// What happens to a source: read from the list as the window allows,
// admitted (refused, a duplicate, or given its output names and a resume
// verdict: skip, ask the server, fetch), sent to the downloader, and finished
// with one report line. The manifest is kept true to what is on disk here.
#include "coordinator/run_loop.h"

#include <algorithm>
#include <cstddef>

#include "shared/fixed_text.h"
#include "shared/job_queue.h"
#include "shared/output_names.h"

namespace thumbmill::run_loop {

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
    ++totals_.sources_read;
    Conclude(failed_result(line, line.status.code(), line.status.message()));
    return;
  }
  // A batch adds each source once (by digest) and its feed hands out each
  // job once, so a batch's sources are not checked here: one handed back
  // (its stem could not be claimed yet) may come again, and must.
  if (line.ticket.empty() && !seen_.insert(stable_hash(line.location)).second) {
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
    SourceResult r = ResultFor(s);
    // A registry of names out of reach now (a batch's Redis restarting) is
    // no fault of the source: it ends as not started, and a batch hands it
    // back for later.
    r.code = entry.status().code() == Code::kNetwork ? Code::kInterrupted : Code::kIoError;
    r.error = "cannot name its outputs: " + entry.status().message();
    Conclude(r);
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
  Conclude(r);
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
  r.ticket = s.line.ticket;
  r.fetch_attempts = s.fetch.tries;
  r.http_status = s.fetch.http_status;
  r.bytes_downloaded = s.fetch.bytes;
  r.fetch_ms = s.fetch.fetch_ms;
  r.resize_ms = s.resize_ms;
  r.ms = static_cast<std::uint64_t>(std::max<std::int64_t>(0, monotonic_ms() - s.started_ms));
  return r;
}

/// Counts one source's outcome, writes its report line and tells the user:
/// a failure always (but with -q), an ok or skipped source with -v. An
/// interrupted source is counted apart from the failures and not announced
/// one by one (a Ctrl-C would print a screenful); the summary counts them.
void Coordinator::Conclude(const SourceResult& r) {
  if (r.skipped) {
    ++totals_.skipped;
  } else if (r.ok) {
    ++totals_.ok;
    totals_.thumbnails += r.outputs.size();
    for (const auto& o : r.outputs) totals_.bytes_out += o.bytes;
  } else if (r.code == Code::kInterrupted) {
    ++totals_.interrupted;
  } else {
    ++totals_.failed;
    ++totals_.failed_by_code[std::string(code_name(r.code))];
  }
  report_.Write(r);
  list_.Settle(r);
  if (r.code == Code::kInterrupted && !r.ok) return;
  if (!r.ok || options_.verbose) Say(format_source_line(r));
}

void Coordinator::Finish(std::uint64_t id, SourceResult result) {
  Conclude(result);
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

}  // namespace thumbmill::run_loop
