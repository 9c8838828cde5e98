// The fetcher's loop: the multi handle, the pool of easy handles, the
// transfers and their timers (retry back-off, paused transfers and jobs
// waiting for a queue slot). What one try does lives in transfer.h, where
// its bytes go in body.h, how a failure is told in curl_errors.h.
#include "downloader/fetcher.h"

#include "shared/s3_location.h"

#include <curl/curl.h>
#include <poll.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <mutex>

#include "downloader/fetch_context.h"
#include "downloader/transfer.h"
#include "shared/fixed_text.h"

namespace thumbmill {
namespace {

using fetch::Context;
using fetch::now_ms;
using fetch::Phase;
using fetch::Transfer;
using fetch::TryEnd;

/// Loop period while something waits on the queue (paused transfers, jobs
/// waiting for a slot): the queue only signals space on a semaphore, which
/// this single-threaded loop cannot poll together with its sockets.
constexpr std::int64_t kQueuePollMs = 20;
/// Retry n waits kBackoffMs << (n - 1), at most kMaxBackoffMs.
constexpr std::int64_t kBackoffMs = 250;
constexpr std::int64_t kMaxBackoffMs = 8000;
/// A Retry-After longer than this is cut to it.
constexpr std::int64_t kMaxRetryAfterS = 30;

bool curl_ready() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] { ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; });
  return ok;
}

std::int64_t retry_delay_ms(int tries_done, curl_off_t retry_after_s) {
  const std::int64_t backoff = std::min(kMaxBackoffMs, kBackoffMs << std::min(tries_done - 1, 16));
  const std::int64_t asked = std::min<std::int64_t>(retry_after_s, kMaxRetryAfterS) * 1000;
  return std::max(backoff, asked);
}

}  // namespace

struct Fetcher::Impl {
  Impl(JobQueue& queue, const Options& options, std::string temp_dir, std::int32_t owner)
      : ctx{queue, options, std::move(temp_dir), owner}, curl_ok(curl_ready()) {
    if (curl_ok) multi = curl_multi_init();
    if (multi) curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  }
  ~Impl();

  void Start(const FetchRequest& request);
  void StartLocal(Transfer& t);
  void StartTry(Transfer& t);
  void OnTryDone(Transfer& t, CURLcode result);
  void TryPublish(Transfer& t);
  void Finish(Transfer& t, const Status& status, bool not_modified = false);
  void ServiceWaiting();
  void Unpause(Transfer& t);
  void Poll(int extra_fd, int timeout_ms);
  void ReadMessages();
  std::int64_t NextWakeMs(std::int64_t max_wait_ms) const;
  CURL* TakeHandle();
  void ReturnHandle(Transfer& t);
  /// Forgets the transfers that were answered (their outcome is queued).
  void DropFinished() {
    std::erase_if(transfers, [](const auto& t) { return t->phase == Phase::kDone; });
  }

  Context ctx;
  bool curl_ok;
  CURLM* multi = nullptr;
  std::vector<CURL*> idle_handles;  // reused: they keep their settings
  std::vector<std::unique_ptr<Transfer>> transfers;
  std::vector<FetchOutcome> outcomes;
  std::uint64_t frees_seen = 0;  // JobQueue::frees() at the last ServiceWaiting
};

Fetcher::Impl::~Impl() {
  for (auto& t : transfers)
    if (t->easy) ReturnHandle(*t);
  transfers.clear();  // each Body gives back its slot and removes its file
  for (CURL* easy : idle_handles) curl_easy_cleanup(easy);
  if (multi) curl_multi_cleanup(multi);
}

CURL* Fetcher::Impl::TakeHandle() {
  if (!idle_handles.empty()) {
    CURL* easy = idle_handles.back();
    idle_handles.pop_back();
    return easy;
  }
  CURL* easy = curl_easy_init();
  if (easy) fetch::configure_handle(easy, ctx.options);
  return easy;
}

void Fetcher::Impl::ReturnHandle(Transfer& t) {
  curl_multi_remove_handle(multi, t.easy);
  curl_easy_setopt(t.easy, CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(t.easy, CURLOPT_PRIVATE, nullptr);
  curl_easy_setopt(t.easy, CURLOPT_XFERINFODATA, nullptr);
  curl_easy_setopt(t.easy, CURLOPT_OPENSOCKETDATA, nullptr);
  curl_easy_setopt(t.easy, CURLOPT_HTTPHEADER, nullptr);
  // A handle that signed for S3 keeps its credentials and settings: it is
  // not reused for other sources (connections stay in the multi's pool).
  if (t.kind == SourceKind::kS3)
    curl_easy_cleanup(t.easy);
  else
    idle_handles.push_back(t.easy);
  t.easy = nullptr;
}

void Fetcher::Impl::Start(const FetchRequest& request) {
  auto& t = *transfers.emplace_back(std::make_unique<Transfer>(ctx, request));
  t.first_start_ms = now_ms();
  if (t.url.empty()) return Finish(t, Status(Code::kInvalidArgument, "empty source"));
  if (t.kind == SourceKind::kFile) return StartLocal(t);
  if (t.kind != SourceKind::kHttp && t.kind != SourceKind::kS3)
    return Finish(t, Status(Code::kInternal, "unknown source kind"));
  if (t.kind == SourceKind::kS3 && !parse_s3_url(t.url).ok())
    return Finish(t, Status(Code::kInvalidArgument, "malformed s3 URL"));
  if (!multi) return Finish(t, Status(Code::kInternal, "libcurl failed to initialise"));
  StartTry(t);
}

void Fetcher::Impl::StartLocal(Transfer& t) {
  // No copy: the worker reads the file itself. Checked here so that the
  // common failures get a clear message and never occupy a slot.
  t.tries = 1;
  // The coordinator refuses these already; this holds for any other caller.
  if (ctx.options.no_local) return Finish(t, Status(Code::kInvalidArgument, "local source refused (--no-local)"));
  struct stat st;
  if (::stat(t.url.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return Finish(t, Status(Code::kIoError, "no such file: " + t.url));
    return Finish(t, Status::FromErrno(t.url));
  }
  if (S_ISDIR(st.st_mode)) return Finish(t, Status(Code::kIoError, "is a directory: " + t.url));
  if (!S_ISREG(st.st_mode)) return Finish(t, Status(Code::kIoError, "not a regular file: " + t.url));
  if (static_cast<std::uint64_t>(st.st_size) > ctx.options.max_bytes)
    return Finish(t, Status(Code::kTooLarge, "file over --max-bytes (" +
                                                 std::to_string(ctx.options.max_bytes) + " bytes)"));
  if (t.url.size() >= kMaxJobPath)
    return Finish(t, Status(Code::kInvalidArgument, "path too long for a job (" +
                                                        std::to_string(kMaxJobPath - 1) + " bytes at most)"));
  t.body.SetLocalFile(t.url, static_cast<std::uint64_t>(st.st_size));
  t.phase = Phase::kPublishWait;
  TryPublish(t);
}

void Fetcher::Impl::StartTry(Transfer& t) {
  t.BeginTry();
  CURL* easy = TakeHandle();
  if (!easy) return Finish(t, Status(Code::kInternal, "curl_easy_init failed"));
  t.Attach(easy);
  if (curl_multi_add_handle(multi, t.easy) != CURLM_OK) {
    ReturnHandle(t);
    Finish(t, Status(Code::kInternal, "curl_multi_add_handle failed"));
  }
}

void Fetcher::Impl::OnTryDone(Transfer& t, CURLcode result) {
  const TryEnd end = t.EndOfTry(result);
  curl_off_t retry_after_s = 0;
  curl_easy_getinfo(t.easy, CURLINFO_RETRY_AFTER, &retry_after_s);
  ReturnHandle(t);
  t.paused = false;
  if (end.status.ok() && end.not_modified) return Finish(t, end.status, true);
  if (end.status.ok()) {
    t.phase = Phase::kPublishWait;
    return TryPublish(t);
  }
  t.body.Discard();
  if (end.retryable && t.tries < ctx.options.fetch_attempts) {
    t.phase = Phase::kRetryWait;
    t.retry_at_ms = now_ms() + retry_delay_ms(t.tries, retry_after_s);
    return;
  }
  if (t.tries <= 1) return Finish(t, end.status);
  Finish(t, Status(end.status.code(), end.status.message() + " (after " + std::to_string(t.tries) + " tries)"));
}

void Fetcher::Impl::TryPublish(Transfer& t) {
  const std::uint64_t bytes = t.body.length();
  // The job carries what its fetch did to the worker's outcome.
  FetchFacts facts;
  facts.bytes = bytes;
  facts.tries = static_cast<std::uint32_t>(t.tries);
  facts.http_status = static_cast<std::int32_t>(t.response.status);
  facts.fetch_ms = static_cast<std::uint32_t>(now_ms() - t.first_start_ms);
  // validator_value kept only validators that fit their fields whole.
  (void)copy_whole(facts.etag, t.response.etag);
  (void)copy_whole(facts.last_modified, t.response.last_modified);
  if (!t.body.Publish(facts)) return;  // no free slot: ServiceWaiting tries again
  t.received = bytes;
  Finish(t, Status::Ok());
}

void Fetcher::Impl::Finish(Transfer& t, const Status& status, bool not_modified) {
  FetchOutcome& out = outcomes.emplace_back();
  out.source_id = t.source_id;
  out.bytes = t.received;
  out.fetch_ms = static_cast<std::uint32_t>(now_ms() - t.first_start_ms);
  out.tries = static_cast<std::uint32_t>(t.tries);
  out.http_status = static_cast<std::int32_t>(t.response.status);
  out.code = static_cast<std::uint32_t>(status.code());
  out.not_modified = not_modified ? 1 : 0;
  copy_text(out.error, status.message());  // a long message is cut, visibly
  t.phase = Phase::kDone;
  t.body.Discard();  // nothing left to give back after a publish
}

void Fetcher::Impl::Unpause(Transfer& t) {
  // libcurl hands the held bytes to on_body from inside curl_easy_pause;
  // on_body pauses again if there is still no room.
  const CURLcode result = curl_easy_pause(t.easy, CURLPAUSE_CONT);
  if (result != CURLE_OK) {
    if (!t.abort) t.abort = TryEnd{Status(Code::kInternal, "curl_easy_pause failed")};
    OnTryDone(t, result);
  }
}

void Fetcher::Impl::ServiceWaiting() {
  const std::int64_t now = now_ms();
  // A paused transfer is retried only when the queue gave something back
  // since, or when it has waited long enough to be spilled: unpausing makes
  // libcurl run at once, so unpausing every turn would spin this loop.
  const std::uint64_t frees = ctx.queue.frees();
  const bool space_freed = frees != frees_seen;
  frees_seen = frees;
  for (auto& p : transfers) {
    Transfer& t = *p;
    if (t.phase == Phase::kRunning && t.paused) {
      if (space_freed || now - t.paused_since_ms >= fetch::kMaxPauseMs) Unpause(t);
    } else if (t.phase == Phase::kRetryWait && now >= t.retry_at_ms) {
      StartTry(t);
    } else if (t.phase == Phase::kPublishWait) {
      TryPublish(t);
    }
  }
}

void Fetcher::Impl::Poll(int extra_fd, int timeout_ms) {
  if (!multi) {  // libcurl unusable: every HTTP source failed at Start
    pollfd fd{extra_fd, POLLIN, 0};
    ::poll(&fd, extra_fd >= 0 ? 1 : 0, timeout_ms);
    return;
  }
  curl_waitfd extra{extra_fd, CURL_WAIT_POLLIN, 0};
  curl_multi_poll(multi, extra_fd >= 0 ? &extra : nullptr, extra_fd >= 0 ? 1 : 0, timeout_ms, nullptr);
  int running = 0;
  curl_multi_perform(multi, &running);
}

void Fetcher::Impl::ReadMessages() {
  if (!multi) return;
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Transfer* t = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
    if (t) OnTryDone(*t, msg->data.result);
  }
}

std::int64_t Fetcher::Impl::NextWakeMs(std::int64_t max_wait_ms) const {
  if (!outcomes.empty()) return 0;  // answers to send: do not sleep first
  const std::int64_t now = now_ms();
  std::int64_t wait = max_wait_ms;
  for (const auto& t : transfers) {
    if (t->phase == Phase::kPublishWait || (t->phase == Phase::kRunning && t->paused))
      wait = std::min(wait, kQueuePollMs);
    else if (t->phase == Phase::kRetryWait)
      wait = std::min(wait, std::max<std::int64_t>(0, t->retry_at_ms - now));
  }
  return wait;
}

// ----- public face ----------------------------------------------------------

Fetcher::Fetcher(JobQueue& queue, const Options& options, std::string temp_dir, std::int32_t owner)
    : impl_(std::make_unique<Impl>(queue, options, std::move(temp_dir), owner)) {}

Fetcher::~Fetcher() = default;

std::size_t Fetcher::active() const { return impl_->transfers.size(); }

bool Fetcher::CanStart() {
  if (active() >= static_cast<std::size_t>(std::max(1, impl_->ctx.options.downloads))) return false;
  // Every active source without a slot will want one of the free ones.
  std::size_t wanting = 0;
  for (const auto& t : impl_->transfers) wanting += t->body.has_slot() ? 0 : 1;
  return impl_->ctx.queue.Stats().free > wanting;
}

void Fetcher::Start(const FetchRequest& request) {
  impl_->Start(request);
  impl_->DropFinished();
}

void Fetcher::Wait(int extra_fd, std::chrono::milliseconds max_wait) {
  Impl& impl = *impl_;
  impl.ServiceWaiting();
  impl.Poll(extra_fd, static_cast<int>(impl.NextWakeMs(max_wait.count())));
  impl.ReadMessages();
  impl.DropFinished();
}

std::vector<FetchOutcome> Fetcher::TakeOutcomes() {
  std::vector<FetchOutcome> out;
  out.swap(impl_->outcomes);
  return out;
}

}  // namespace thumbmill
