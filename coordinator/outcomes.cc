// What the children report back: frames read from each child's result
// pipe, a FetchOutcome from the downloader (failed, not modified, or queued)
// and a ResizeOutcome from a worker (the source's thumbnails, or why not).
#include "coordinator/run_loop.h"

#include <algorithm>

#include "shared/fixed_text.h"
#include "shared/output_plan.h"

namespace thumbmill::run_loop {

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

}  // namespace thumbmill::run_loop
