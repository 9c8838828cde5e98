#include "worker/worker_loop.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "shared/fd_io.h"
#include "shared/output_files.h"
#include "shared/output_plan.h"
#include "shared/s3_request.h"
#include "shared/upload_bundle.h"
#include "shared/wire.h"
#include "worker/decode_estimate.h"
#include "worker/memory_limit.h"
#include "worker/resize.h"

namespace thumbmill {
namespace {

using Clock = std::chrono::steady_clock;

std::uint32_t ms_since(Clock::time_point start) {
  return static_cast<std::uint32_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

void set_error(ResizeOutcome& out, const Status& status) {
  out.code = static_cast<std::uint32_t>(status.code());
  copy_text(out.error, status.message());  // a long message is cut, visibly
}

/// Writes every thumbnail or none: on a failure the ones already written
/// for this source are removed again. Thumbnail i is the plan's output i.
Status write_outputs(const std::vector<EncodedThumbnail>& thumbs, SourceNames who, const Options& options,
                     ResizeOutcome& out) {
  const OutputPlan plan(options);
  if (thumbs.size() > plan.count() || thumbs.size() > kMaxOutputs)
    return Status(Code::kInternal, "more thumbnails than sizes");
  std::vector<std::filesystem::path> written;
  // finalize_options refuses more sizes, here too; this guard keeps a
  // mismatch from ever writing past `outputs` (and leaves no files behind).
  if (thumbs.size() > kMaxOutputs)
    return Status(Code::kInternal, std::to_string(thumbs.size()) + " thumbnails for a record of " +
                                       std::to_string(kMaxOutputs));
  for (std::size_t i = 0; i < thumbs.size(); ++i) {
    const EncodedThumbnail& t = thumbs[i];
    // Named after it is made: the template may hold {width} and {height}.
    const std::string name = plan.file_name(who, i, t.width, t.height);
    const auto path = plan.out_dir() / name;
    Status status = write_output_file(plan.out_dir(), name, t.bytes, options.fsync);
    if (!status.ok()) {
      for (const auto& p : written) ::unlink(p.c_str());
      return status;
    }
    written.push_back(path);
    out.outputs[out.output_count++] = {t.width, t.height, t.bytes.size()};
  }
  return Status::Ok();
}

/// Hands every thumbnail to the uploader in one bundle (upload_bundle.h),
/// waiting while the upload queue is full (memory stays bounded; the job's
/// deadline is restarted while it waits, since the wait is the uploader's).
Status queue_for_upload(const std::vector<EncodedThumbnail>& thumbs, JobQueue& queue, JobQueue::SlotId id,
                        JobQueue& uploads, std::int32_t owner, ResizeOutcome& out) {
  if (thumbs.size() > kMaxOutputs) return Status(Code::kInternal, "more thumbnails than sizes");
  std::vector<std::uint64_t> lengths;
  for (const EncodedThumbnail& t : thumbs) lengths.push_back(t.bytes.size());
  const std::uint64_t bytes = upload_bundle_bytes(lengths);
  if (bytes > uploads.arena_size())
    return Status(Code::kTooLarge, "thumbnails of " + std::to_string(bytes) + " bytes do not fit the upload queue (--upload-queue-mb)");
  UploadBundle bundle;
  for (std::size_t i = 0; i < thumbs.size(); ++i)
    out.outputs[out.output_count++] = {thumbs[i].width, thumbs[i].height, thumbs[i].bytes.size()};
  const JobSlot& job = queue.slot(id);
  const JobInfo info{job.source_id, text_of(job.stem), "", false, text_of(job.source)};
  std::optional<JobQueue::SlotId> slot;
  while (!(slot = uploads.Reserve(info, bytes, owner))) {
    if (uploads.closed()) return Status(Code::kInterrupted, "run stopped before its thumbnails could be uploaded");
    queue.Touch(id);
    uploads.WaitForSpace(std::chrono::milliseconds(250));
  }
  std::uint64_t at = sizeof(UploadBundle);
  for (std::size_t i = 0; i < thumbs.size(); ++i) {
    const auto& b = thumbs[i].bytes;
    if (Status st = uploads.Fill(*slot, at, std::as_bytes(std::span(b))); !st.ok()) {
      uploads.Abandon(*slot);
      return st;
    }
    UploadPart& part = bundle.parts[i];
    part.offset = at;
    part.length = b.size();
    const std::string digest = sha256_hex(b);
    std::memcpy(part.sha256, digest.data(), std::min(digest.size(), sizeof part.sha256 - 1));
    at += b.size();
  }
  bundle.part_count = static_cast<std::uint32_t>(thumbs.size());
  bundle.resize = out;
  bundle.resize.handed_to_uploader = 1;
  if (Status st = uploads.Fill(*slot, 0, std::as_bytes(std::span(&bundle, 1))); !st.ok()) {
    uploads.Abandon(*slot);
    return st;
  }
  out.handed_to_uploader = 1;
  uploads.Publish(*slot, bytes, job.fetch);
  return Status::Ok();
}

/// Test-only fault hooks, read only when set: a job whose stem contains
/// $THUMBMILL_TEST_CRASH_ON crashes its worker (a poison pill), and one whose
/// stem contains $THUMBMILL_TEST_HANG_ON hangs it (a decoder stuck in a loop).
void maybe_fault_for_test(const char* stem) {
  static const char* crash = std::getenv("THUMBMILL_TEST_CRASH_ON");
  static const char* hang = std::getenv("THUMBMILL_TEST_HANG_ON");
  if (crash && *crash && std::strstr(stem, crash)) ::abort();
  if (hang && *hang && std::strstr(stem, hang))
    for (;;) ::pause();
}

/// The resizer's settings for this run. Test-only: with
/// $THUMBMILL_TEST_SKIP_DECODE_ESTIMATE set the estimate lets every image
/// through, so the hard memory limit alone has to hold (tests/memory_bound_test.cc).
ResizeSettings resize_settings(const Options& options) {
  static const bool skip_estimate = std::getenv("THUMBMILL_TEST_SKIP_DECODE_ESTIMATE") != nullptr;
  ResizeSettings settings = ResizeSettings::From(options);
  if (skip_estimate) settings.max_decode_bytes = std::numeric_limits<std::uint64_t>::max();
  return settings;
}

ResizeOutcome process(JobQueue& queue, JobQueue::SlotId id, const Options& options, JobQueue* uploads,
                      std::int32_t owner) {
  const JobSlot& job = queue.slot(id);
  ResizeOutcome out;
  out.source_id = job.source_id;
  out.attempt = job.attempt;
  out.fetch = job.fetch;
  // Read within their arrays: a slot is memory other processes write.
  const std::string stem(text_of(job.stem));
  const std::string path(text_of(job.path));
  const std::string location(text_of(job.source));
  maybe_fault_for_test(stem.c_str());

  ImageSource source;
  if (!path.empty()) {
    source.path = path;
    std::error_code ec;
    out.body_bytes = std::filesystem::file_size(source.path, ec);
  } else {
    auto body = queue.body(id);
    source.bytes = {body.data(), body.size()};
    out.body_bytes = body.size();
  }
  const auto start = Clock::now();
  auto thumbs = make_thumbnails(source, resize_settings(options));
  // Under a hard limit an allocation that failed ends the worker, so the job
  // is requeued once, like any crash, and the next try has a fresh heap.
  if (!thumbs.ok() && is_out_of_memory(thumbs.status()) && worker_memory_limited()) {
    exit_out_of_memory(thumbs.status().message());
  }
  out.resize_ms = ms_since(start);  // the bundle carries it: set before queueing
  Status status = !thumbs.ok() ? thumbs.status()
                  : uploads    ? queue_for_upload(*thumbs, queue, id, *uploads, owner, out)
                               : write_outputs(*thumbs, {stem, location}, options, out);
  if (!status.ok()) {
    out.output_count = 0;
    set_error(out, status);
  }
  return out;
}

}  // namespace

bool handle_job(JobQueue& queue, JobQueue::SlotId id, const Options& options, int result_fd, JobQueue* uploads) {
  const ResizeOutcome out = process(queue, id, options, uploads, queue.slot(id).owner.load());
  if (!write_record(result_fd, MessageType::kResizeOutcome, out).ok()) return false;
  // A spilled body's file is ours to remove once the job is done with.
  const std::string temp_path = queue.slot(id).path_is_temp ? std::string(text_of(queue.slot(id).path)) : "";
  queue.Release(id);
  if (!temp_path.empty()) ::unlink(temp_path.c_str());
  return true;
}

int run_worker(JobQueue& queue, const Options& options, int result_fd, std::int32_t owner, JobQueue* uploads) {
  for (;;) {
    JobQueue::SlotId id;
    const TakeResult taken = queue.Take(owner, std::chrono::milliseconds(500), &id);
    if (taken == TakeResult::kClosed) return 0;
    if (taken == TakeResult::kTimeout) continue;
    if (!handle_job(queue, id, options, result_fd, uploads)) return 1;  // coordinator gone
  }
}

}  // namespace thumbmill
