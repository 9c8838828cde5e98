#include "uploader/uploader_loop.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "shared/fd_io.h"
#include "shared/fixed_text.h"
#include "shared/manifest.h"
#include "shared/output_plan.h"
#include "shared/upload_bundle.h"
#include "shared/wire.h"
#include "uploader/put.h"

namespace thumbmill {
namespace {

using upload::Put;
using upload::TryResult;

/// A metadata value as printable ASCII: other bytes (and '%') as %XX, so a
/// URL with unicode or a control character cannot break the header.
std::string metadata_value(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (c < 0x20 || c > 0x7e || c == '%') {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

/// One source's bundle, from Take to its outcome.
struct Bundle {
  JobQueue::SlotId slot = 0;
  UploadBundle header;
  std::string stem;
  std::string source;
  std::string record_json;  // the manifest record, PUT after the thumbnails
  std::vector<std::unique_ptr<Put>> puts;
  int unfinished = 0;       // PUTs of the current stage not yet ended
  bool record_stage = false;
  Status failure;           // the first PUT that failed for good
  std::uint32_t attempts = 0;
  std::uint64_t bytes = 0;
  std::int64_t taken_ms = 0;
};

class Uploader {
 public:
  Uploader(JobQueue& queue, const Options& options, int result_fd, std::int32_t owner)
      : queue_(queue), options_(options), plan_(options), result_fd_(result_fd), owner_(owner),
        fingerprint_(options_fingerprint(options)) {}
  ~Uploader() {
    for (CURL* e : idle_) curl_easy_cleanup(e);
    if (multi_) curl_multi_cleanup(multi_);
  }

  int Run(bool until_empty);

 private:
  /// Puts queued or running: the bound on how many bundles are taken.
  std::size_t Load() const { return waiting_.size() + running_; }
  void TakeBundles(bool may_wait);
  void StartBundle(JobQueue::SlotId slot);
  void StartThumbnails(Bundle& b);
  void StartRecord(Bundle& b);
  void StartDue();
  void OnDone(CURL* easy, CURLcode result);
  void EndOfPut(Bundle& b, const Status& status);
  bool Report(Bundle& b, const Status& status);
  void Heartbeat();

  JobQueue& queue_;
  const Options& options_;
  const OutputPlan plan_;
  const int result_fd_;
  const std::int32_t owner_;
  const std::string fingerprint_;
  CURLM* multi_ = nullptr;
  std::vector<CURL*> idle_;
  std::list<Bundle> bundles_;
  std::deque<Put*> waiting_;  // ready to start (now, or at retry_at_ms)
  std::size_t running_ = 0;
  bool closed_ = false;
  bool broken_ = false;  // the result pipe
  std::int64_t last_beat_ms_ = 0;
};

void Uploader::TakeBundles(bool may_wait) {
  const auto limit = static_cast<std::size_t>(options_.uploads);
  while (!closed_ && Load() < limit) {
    JobQueue::SlotId slot;
    const auto wait = std::chrono::milliseconds(may_wait && bundles_.empty() ? 250 : 0);
    const TakeResult taken = queue_.Take(owner_, wait, &slot);
    if (taken == TakeResult::kClosed) closed_ = true;
    if (taken != TakeResult::kJob) return;
    StartBundle(slot);
  }
}

void Uploader::StartBundle(JobQueue::SlotId slot) {
  Bundle& b = bundles_.emplace_back();
  b.slot = slot;
  b.taken_ms = monotonic_ms();
  const JobSlot& job = queue_.slot(slot);
  b.stem = text_of(job.stem);
  b.source = text_of(job.source);
  const auto header = read_upload_bundle(queue_.body(slot));
  if (!header || header->resize.source_id != job.source_id || header->part_count != plan_.count()) {
    b.header.resize.source_id = job.source_id;
    b.header.resize.fetch = job.fetch;
    b.failure = Status(Code::kInternal, "upload bundle is malformed (another build, or damaged)");
    if (!Report(b, b.failure)) broken_ = true;
    return;
  }
  b.header = *header;
  StartThumbnails(b);
}

void Uploader::StartThumbnails(Bundle& b) {
  const std::span<const std::byte> extent = queue_.body(b.slot);
  const FetchFacts& fetch = b.header.resize.fetch;
  S3PutFields fields;
  fields.cache_control = options_.cache_control;
  // No name may be a prefix of another ("source" beside "source-etag"):
  // libcurl 7.88 sorts the signed headers as "name:value" strings, so such a
  // pair is signed in an order a real server does not use (radosgw: 403
  // SignatureDoesNotMatch; s3rver makes the same mistake and accepts it).
  fields.metadata = {{"source-url", metadata_value(b.source)}, {"thumbmill-options", metadata_value(fingerprint_)}};
  if (fetch.etag[0]) fields.metadata.emplace_back("source-etag", metadata_value(text_of(fetch.etag)));
  if (fetch.last_modified[0])
    fields.metadata.emplace_back("source-last-modified", metadata_value(text_of(fetch.last_modified)));
  for (std::uint32_t i = 0; i < b.header.part_count; ++i) {
    const UploadPart& part = b.header.parts[i];
    const OutputRecord& made = b.header.resize.outputs[i];
    fields.content_type = std::string(plan_.content_type(i));
    auto put = std::make_unique<Put>(plan_.object({b.stem, b.source}, i, made.width, made.height),
                                     extent.subspan(part.offset, part.length),
                                     std::string(text_of(part.sha256)), fields);
    put->owner = &b;
    waiting_.push_back(put.get());
    b.puts.push_back(std::move(put));
  }
  b.unfinished = static_cast<int>(b.header.part_count);
}

/// The record that says this source's thumbnails are whole: stored last.
void Uploader::StartRecord(Bundle& b) {
  b.record_stage = true;
  ManifestRecord record;
  record.source = b.source;
  record.stem = b.stem;
  record.options = fingerprint_;
  const ResizeOutcome& r = b.header.resize;
  for (std::uint32_t i = 0; i < r.output_count; ++i)
    record.outputs.push_back({plan_.file_name({b.stem, b.source}, i, r.outputs[i].width, r.outputs[i].height), r.outputs[i].width, r.outputs[i].height, r.outputs[i].bytes});
  if (r.fetch.http_status == 0) {  // a local file: its size and mtime, as a local run records
    if (auto v = local_file_validator(b.source); v.ok()) record.validator = *v;
  } else {
    record.validator.etag = text_of(r.fetch.etag);
    record.validator.last_modified = text_of(r.fetch.last_modified);
  }
  try {
    b.record_json = manifest_record_to_json(record);
  } catch (const std::exception&) {
    // Not UTF-8: no record; the thumbnails are stored, the source is redone next time.
    b.unfinished = 0;
    if (!Report(b, Status::Ok())) broken_ = true;
    return;
  }
  const auto bytes = std::as_bytes(std::span(b.record_json.data(), b.record_json.size()));
  S3PutFields fields;
  fields.content_type = "application/json";
  auto put = std::make_unique<Put>(plan_.object_named(manifest_record_name(b.source)), bytes, sha256_hex(bytes), fields);
  put->owner = &b;
  waiting_.push_back(put.get());
  b.puts.push_back(std::move(put));
  b.unfinished = 1;
}

void Uploader::StartDue() {
  const std::int64_t now = monotonic_ms();
  const auto limit = static_cast<std::size_t>(options_.uploads);
  for (auto it = waiting_.begin(); it != waiting_.end() && running_ < limit;) {
    Put& put = **it;
    if (put.retry_at_ms > now) {
      ++it;
      continue;
    }
    CURL* easy = idle_.empty() ? curl_easy_init() : idle_.back();
    if (!idle_.empty()) idle_.pop_back();
    it = waiting_.erase(it);
    if (!easy) {
      EndOfPut(*static_cast<Bundle*>(put.owner), Status(Code::kInternal, "curl_easy_init failed"));
      continue;
    }
    put.BeginTry(easy, options_);
    static_cast<Bundle*>(put.owner)->attempts += 1;
    curl_multi_add_handle(multi_, easy);
    ++running_;
  }
}

void Uploader::OnDone(CURL* easy, CURLcode result) {
  Put* put = nullptr;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, reinterpret_cast<char**>(&put));
  curl_multi_remove_handle(multi_, easy);
  --running_;
  const TryResult end = put->EndTry(result);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, nullptr);
  idle_.push_back(easy);
  put->easy = nullptr;
  Bundle& b = *static_cast<Bundle*>(put->owner);
  if (end.status.ok()) {
    b.bytes += put->body.size();
    return EndOfPut(b, Status::Ok());
  }
  if (end.retryable && put->tries < options_.upload_attempts && b.failure.ok()) {
    // Backoff doubling from 100 ms, at most 5 s, or what the server asked.
    const std::int64_t backoff = std::min<std::int64_t>(5000, std::int64_t{100} << std::min(put->tries, 6));
    put->retry_at_ms = monotonic_ms() + std::max(backoff, end.retry_after_ms);
    waiting_.push_back(put);
    return;
  }
  Status failure = end.status;
  if (end.retryable)
    failure = Status(end.status.code(), end.status.message() + " (after " + std::to_string(put->tries) + " tries)");
  EndOfPut(b, failure);
}

/// One PUT of `b` ended for good.
void Uploader::EndOfPut(Bundle& b, const Status& status) {
  if (!status.ok() && b.failure.ok()) b.failure = status;
  if (--b.unfinished > 0) return;
  if (b.failure.ok() && !b.record_stage) return StartRecord(b);
  if (!Report(b, b.failure)) broken_ = true;
}

/// The source's one outcome; then the bundle goes. False when the
/// coordinator cannot be told (the bundle is then left taken, for it to
/// requeue).
bool Uploader::Report(Bundle& b, const Status& status) {
  UploadOutcome out;
  out.resize = b.header.resize;
  out.code = static_cast<std::uint32_t>(status.code());
  out.attempts = b.attempts;
  out.bytes = b.bytes;
  out.upload_ms = static_cast<std::uint32_t>(std::max<std::int64_t>(0, monotonic_ms() - b.taken_ms));
  if (!status.ok()) copy_text(out.error, status.message());
  if (!write_record(result_fd_, MessageType::kUploadOutcome, out).ok()) return false;
  queue_.Release(b.slot);
  for (auto it = bundles_.begin(); it != bundles_.end(); ++it)
    if (&*it == &b) {
      bundles_.erase(it);
      break;
    }
  return true;
}

/// Alive, with work: as the downloader does (wire.h's Heartbeat).
void Uploader::Heartbeat() {
  const std::int64_t now = monotonic_ms();
  if (bundles_.empty() || now - last_beat_ms_ < kHeartbeatIntervalMs) return;
  last_beat_ms_ = now;
  thumbmill::Heartbeat beat;
  beat.transfers = static_cast<std::uint32_t>(running_);
  beat.waiting = static_cast<std::uint32_t>(waiting_.size());
  if (!write_record(result_fd_, MessageType::kHeartbeat, beat).ok()) broken_ = true;
}

int Uploader::Run(bool until_empty) {
  multi_ = curl_multi_init();
  if (!multi_) return kChildFatalExit;
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(options_.uploads));
  for (;;) {
    TakeBundles(!until_empty && running_ == 0 && waiting_.empty());
    if (broken_) return 1;
    if ((closed_ || until_empty) && bundles_.empty()) return 0;
    StartDue();
    int still = 0;
    curl_multi_perform(multi_, &still);
    while (CURLMsg* msg = curl_multi_info_read(multi_, &still))
      if (msg->msg == CURLMSG_DONE) OnDone(msg->easy_handle, msg->data.result);
    if (broken_) return 1;
    Heartbeat();
    if (broken_) return 1;
    if (running_ > 0 || !waiting_.empty()) {
      // Short: new bundles and due retries are looked for between waits.
      curl_multi_poll(multi_, nullptr, 0, 20, nullptr);
    }
  }
}

}  // namespace

int run_uploader(JobQueue& uploads, const Options& options, int result_fd, std::int32_t owner, bool until_empty) {
  Uploader uploader(uploads, options, result_fd, owner);
  return uploader.Run(until_empty);
}

}  // namespace thumbmill
