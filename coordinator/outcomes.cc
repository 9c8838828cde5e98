// What the children report back: frames read from each child's result
// pipe, a FetchOutcome from the downloader (failed, not modified, or queued),
// a ResizeOutcome from a worker (the source's thumbnails, or why not, or
// that they went to the uploader) and an UploadOutcome from the uploader
// (all of them stored, or why not).
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
    } else if (frame->type == MessageType::kUploadOutcome) {
      const auto outcome = frame->as<UploadOutcome>();
      if (!well_formed(outcome)) continue;
      OnUploadOutcome(outcome);
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
  if (o.handed_to_uploader && static_cast<Code>(o.code) == Code::kOk) {
    // Finished by the uploader's outcome, which carries this one.
    s.queued = s.uploading = true;
    s.fetch = o.fetch;
    s.resize_ms = o.resize_ms;
    return;
  }
  SourceResult r = ResizedResult(s, o);
  RecordOutcome(s, r);
  Finish(o.source_id, std::move(r));
}

void Coordinator::OnUploadOutcome(const UploadOutcome& o) {
  // A source finished already (a worker that died after handing over its
  // thumbnails made them twice): its second upload is not reported again.
  auto it = inflight_.find(o.resize.source_id);
  if (it == inflight_.end()) return;
  InFlight& s = it->second;
  SourceResult r = ResizedResult(s, o.resize);
  r.uploaded = true;
  r.upload_attempts = o.attempts;
  r.upload_bytes = o.bytes;
  r.upload_ms = o.upload_ms;
  if (static_cast<Code>(o.code) != Code::kOk) {  // the upload's reason comes first
    r.ok = false;
    r.code = static_cast<Code>(o.code);
    r.error = text_of(o.error);
    r.outputs.clear();
  }
  RecordOutcome(s, r);
  Finish(o.resize.source_id, std::move(r));
}

SourceResult Coordinator::ResizedResult(InFlight& s, const ResizeOutcome& o) {
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
              std::to_string(plan.count()) + " (sizes x formats)";
  }
  for (std::size_t i = 0; r.ok && i < count; ++i)
    r.outputs.push_back({plan.location({s.book.stem, s.line.location}, i, o.outputs[i].width, o.outputs[i].height),
                         o.outputs[i].width, o.outputs[i].height, o.outputs[i].bytes});
  return r;
}

}  // namespace thumbmill::run_loop
