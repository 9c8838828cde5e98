// The fetcher in three parts: Body (where one try's bytes go: arena slot or
// spill file), Transfer (one source: its tries, libcurl callbacks, and how a
// failed try is described), and Fetcher::Impl (the multi handle, the handle
// pool and the timers).
#include "downloader/fetcher.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <string_view>

#include "downloader/address_policy.h"
#include "shared/fd_io.h"

namespace thumbmill {
namespace {

using Clock = std::chrono::steady_clock;

/// First arena extent for a body of unknown length (it doubles from there).
constexpr std::uint64_t kUnknownLengthGuess = 1 << 20;
/// A transfer paused this long for want of a slot or arena room goes to a
/// spill file instead: the workers may be busy for a long time, and the
/// server must not be kept waiting into a timeout.
constexpr std::int64_t kMaxPauseMs = 2000;
/// Loop period while something waits on the queue (paused transfers, jobs
/// waiting for a slot): the queue only signals space on a semaphore, which
/// this single-threaded loop cannot poll together with its sockets.
constexpr std::int64_t kQueuePollMs = 20;
/// Retry n waits kBackoffMs << (n - 1), at most kMaxBackoffMs.
constexpr std::int64_t kBackoffMs = 250;
constexpr std::int64_t kMaxBackoffMs = 8000;
/// A Retry-After longer than this is cut to it.
constexpr std::int64_t kMaxRetryAfterS = 30;
/// What a try may receive beyond --max-bytes: the headers of its responses
/// and the bodies of redirects and errors that libcurl reads and discards
/// (it reads a redirect's whole body to keep the connection). The body that
/// becomes the source is held to --max-bytes itself.
constexpr std::uint64_t kOverheadAllowance = 64 * 1024;
/// Reason phrases are untrusted text: kept short and printable.
constexpr std::size_t kMaxReasonPhrase = 60;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

bool curl_ready() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] { ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; });
  return ok;
}

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && ::strncasecmp(text.data(), prefix.data(), prefix.size()) == 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

/// What a Fetcher's parts share.
struct Context {
  JobQueue& queue;
  const Options& options;
  std::string temp_dir;
  std::int32_t owner;
};

// ===== Body ================================================================

/// One try's body. It lives in an arena extent while it fits; otherwise in a
/// spill file (then the slot, if any, becomes a path job). Whatever it still
/// holds when discarded (slot, file) is given back.
class Body {
 public:
  enum class Put { kStored, kNoRoom, kFailed };

  Body(const Context& ctx, std::uint64_t source_id, const std::string& stem)
      : ctx_(ctx), source_id_(source_id), stem_(stem) {}
  ~Body() { Discard(); }
  Body(const Body&) = delete;
  Body& operator=(const Body&) = delete;

  /// Starts a new try; a spill, if one is needed, goes to `spill_path`.
  void Reset(std::string spill_path) {
    Discard();
    spill_path_ = std::move(spill_path);
  }

  /// A local source: published as its own path, never copied or removed.
  void SetLocalFile(const std::string& path, std::uint64_t size) {
    local_path_ = path;
    length_ = size;
  }

  /// Appends `data`. kNoRoom: no slot or arena room now, nothing stored
  /// (unless `may_spill`: then it goes to the spill file). `expected` is the
  /// Content-Length, or -1.
  Put Append(std::string_view data, std::int64_t expected, bool may_spill);

  /// Hands the finished body to the workers. False: no free slot now; call
  /// again later. After true the job owns the slot and any spill file.
  bool Publish(const FetchFacts& facts);

  /// Gives the slot back and removes the spill file.
  void Discard();

  bool has_slot() const { return slot_.has_value(); }
  std::uint64_t length() const { return length_; }
  const Status& error() const { return error_; }

 private:
  JobInfo info(std::string_view path, bool is_temp) const {
    return JobInfo{source_id_, stem_, path, is_temp};
  }
  Put AppendToArena(std::string_view data, std::int64_t expected, bool may_spill);
  bool GrowFor(std::uint64_t needed);
  Put SpillAndAppend(std::string_view data);
  Put AppendToFile(std::string_view data);
  bool WriteAll(const void* data, std::size_t size);

  const Context& ctx_;
  std::uint64_t source_id_;
  const std::string& stem_;
  std::optional<JobQueue::SlotId> slot_;
  std::uint64_t capacity_ = 0;  // of our extent; 0 once spilled
  std::uint64_t length_ = 0;
  int fd_ = -1;
  std::string spill_path_;
  bool spilled_ = false;  // a file of ours exists at spill_path_
  std::string local_path_;
  Status error_;
};

Body::Put Body::Append(std::string_view data, std::int64_t expected, bool may_spill) {
  if (fd_ >= 0) return AppendToFile(data);
  return AppendToArena(data, expected, may_spill);
}

Body::Put Body::AppendToArena(std::string_view data, std::int64_t expected, bool may_spill) {
  JobQueue& queue = ctx_.queue;
  if (!slot_) {
    // Content-Length when known; else a guess that leaves room for others.
    std::uint64_t want = expected >= 0 ? static_cast<std::uint64_t>(expected)
                                       : std::min(kUnknownLengthGuess, queue.arena_size() / 8);
    want = std::max<std::uint64_t>(want, data.size());
    if (want > queue.arena_size()) return SpillAndAppend(data);  // would never fit
    slot_ = queue.Reserve(info("", false), want, ctx_.owner);
    if (!slot_) return may_spill ? SpillAndAppend(data) : Put::kNoRoom;
    capacity_ = want;
  }
  // A body outgrowing its extent is spilled at once rather than paused: it
  // holds arena while waiting, and two such bodies could wait on each other.
  if (length_ + data.size() > capacity_ && !GrowFor(length_ + data.size()))
    return SpillAndAppend(data);
  std::memcpy(queue.body(*slot_).data() + length_, data.data(), data.size());
  length_ += data.size();
  return Put::kStored;
}

bool Body::GrowFor(std::uint64_t needed) {
  const std::uint64_t arena = ctx_.queue.arena_size();
  if (needed > arena) return false;
  const std::uint64_t target = std::min(arena, std::max(needed, capacity_ * 2));
  if (!ctx_.queue.Grow(*slot_, target)) return false;
  capacity_ = target;
  return true;
}

Body::Put Body::SpillAndAppend(std::string_view data) {
  if (ctx_.temp_dir.empty()) {
    error_ = Status(Code::kIoError, "body does not fit the queue and there is no temp dir to spill to");
    return Put::kFailed;
  }
  if (spill_path_.size() >= kMaxJobPath) {
    error_ = Status(Code::kIoError, "temp dir path too long for a job: " + spill_path_);
    return Put::kFailed;
  }
  // Never opens a name that exists (O_EXCL, O_NOFOLLOW): nothing planted can
  // redirect the body. The temp dir is the run's own (mkdtemp, 0700), so a
  // name found there was left by a downloader of this run killed before it
  // could remove it: that one is replaced, once.
  constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  fd_ = ::open(spill_path_.c_str(), kFlags, 0600);
  if (fd_ < 0 && errno == EEXIST && ::unlink(spill_path_.c_str()) == 0) fd_ = ::open(spill_path_.c_str(), kFlags, 0600);
  if (fd_ < 0) {
    error_ = Status::FromErrno("creating " + spill_path_);
    return Put::kFailed;
  }
  spilled_ = true;
  if (slot_) {
    // What is in the arena goes first; then the extent is given back.
    if (length_ > 0 && !WriteAll(ctx_.queue.body(*slot_).data(), length_)) return Put::kFailed;
    if (!ctx_.queue.SpillToPath(*slot_, spill_path_)) {  // checked above; never shortened
      error_ = Status(Code::kIoError, "temp dir path too long for a job: " + spill_path_);
      return Put::kFailed;
    }
    capacity_ = 0;
  }
  return AppendToFile(data);
}

Body::Put Body::AppendToFile(std::string_view data) {
  if (!WriteAll(data.data(), data.size())) return Put::kFailed;
  length_ += data.size();
  return Put::kStored;
}

bool Body::WriteAll(const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error_ = Status::FromErrno("writing " + spill_path_);
      return false;
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool Body::Publish(const FetchFacts& facts) {
  if (fd_ >= 0) close_fd(fd_);
  if (!slot_) {
    // A path job (local source, or spilled before any slot was free) or an
    // empty body: it needs a slot only now.
    const JobInfo job = !local_path_.empty() ? info(local_path_, false)
                        : spilled_           ? info(spill_path_, true)
                                             : info("", false);
    slot_ = ctx_.queue.Reserve(job, 0, ctx_.owner);
    if (!slot_) return false;
  }
  // For a path job `length` is the file's size although its extent is 0.
  ctx_.queue.Publish(*slot_, length_, facts);
  slot_.reset();
  spilled_ = false;  // the job owns the file now
  return true;
}

void Body::Discard() {
  if (fd_ >= 0) close_fd(fd_);
  if (slot_) ctx_.queue.Abandon(*slot_);
  if (spilled_) ::unlink(spill_path_.c_str());
  slot_.reset();
  spilled_ = false;
  capacity_ = length_ = 0;
  error_ = Status::Ok();
}

// ===== Transfer ============================================================

/// The response libcurl is currently reading (there is one per redirect).
struct Response {
  long status = 0;
  std::string reason;
  bool has_location = false;
  bool keep_body = false;     // the final 2xx: its body is the source
  std::int64_t expected = -1;  // Content-Length; -1 when not sent
  std::string etag;            // validators, recorded for the next run
  std::string last_modified;
  bool not_modified = false;   // a 304 to our conditional request
};

/// How one try ended.
struct TryEnd {
  Status status;
  bool retryable = false;
  bool not_modified = false;  // with an ok status: 304, nothing to publish
};

enum class Phase { kRunning, kRetryWait, kPublishWait, kDone };

/// One source from request to outcome, across its tries.
struct Transfer {
  Transfer(const Context& ctx, const FetchRequest& request)
      : ctx(ctx),
        source_id(request.source_id),
        kind(static_cast<SourceKind>(request.kind)),
        stem(request.stem, ::strnlen(request.stem, sizeof request.stem)),
        url(request.url, ::strnlen(request.url, std::min<std::size_t>(request.url_length,
                                                                     sizeof request.url))),
        if_none_match(text_of(request.if_none_match)),
        if_modified_since(text_of(request.if_modified_since)),
        body(ctx, source_id, stem) {}
  ~Transfer() { curl_slist_free_all(headers); }
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  const Context& ctx;
  const std::uint64_t source_id;
  const SourceKind kind;
  const std::string stem;
  const std::string url;  // or the local path
  // A conditional request (validators from an earlier run), sent on every try.
  const std::string if_none_match;
  const std::string if_modified_since;
  curl_slist* headers = nullptr;  // the conditional headers, built once
  Body body;

  bool conditional() const { return !if_none_match.empty() || !if_modified_since.empty(); }

  Phase phase = Phase::kRunning;
  int tries = 0;
  std::int64_t first_start_ms = 0;
  std::int64_t retry_at_ms = 0;

  // The current try.
  CURL* easy = nullptr;
  Response response;
  std::uint64_t received = 0;
  // Every byte libcurl read for this try, over all its responses: header
  // lines (counted in OnHeaderLine) and body bytes, kept or discarded
  // (libcurl's download counter, which restarts at each redirect hop).
  std::uint64_t header_bytes = 0;
  std::uint64_t body_bytes_earlier_hops = 0;
  std::uint64_t body_bytes_this_hop = 0;
  bool paused = false;
  std::int64_t paused_since_ms = 0;
  std::optional<TryEnd> abort;  // set by a callback that stopped the try
  // Set when the address policy refused a connection of this try; it is the
  // reason only if the try then failed to connect (another address of the
  // same name may have been allowed).
  std::optional<Status> blocked;
  char errbuf[CURL_ERROR_SIZE] = {};

  std::string SpillPath() const {
    return ctx.temp_dir + "/body-" + std::to_string(source_id) + "-" + std::to_string(tries) + ".bin";
  }
  bool OnHeaderLine(std::string_view line);
  bool OnHeadersDone();
  std::size_t OnBody(std::string_view data);
  bool OnProgress(curl_off_t body_bytes_now);
  /// Bytes read from the network in this try so far.
  std::uint64_t wire_bytes() const { return header_bytes + body_bytes_earlier_hops + body_bytes_this_hop; }
  /// False (and `abort` set) once wire_bytes() is past the try's bound.
  bool WithinWireBound();
};

/// "HTTP 404 Not Found": what a >= 300 final status becomes.
Status http_error(long status, const std::string& reason) {
  std::string text = "HTTP " + std::to_string(status);
  if (!reason.empty()) text += " " + reason;
  return Status(Code::kHttpStatus, text);
}

Status too_large(const Options& options) {
  return Status(Code::kTooLarge, "body over --max-bytes (" + std::to_string(options.max_bytes) + " bytes)");
}

Status too_much_received(const Options& options) {
  return Status(Code::kTooLarge, "received over --max-bytes (" + std::to_string(options.max_bytes) +
                                     " bytes) counting headers and redirect or error bodies");
}

bool retryable_status(long status) { return status >= 500 || status == 429; }

Response parse_status_line(std::string_view line) {
  // "HTTP/1.1 404 Not Found\r\n", "HTTP/2 200 \r\n"
  Response r;
  const std::size_t sp = line.find(' ');
  if (sp == std::string_view::npos) return r;
  std::string_view rest = line.substr(sp + 1);
  const std::size_t sp2 = rest.find(' ');
  if (sp2 == std::string_view::npos) return r;
  for (char c : trim(rest.substr(sp2 + 1))) {
    if (r.reason.size() >= kMaxReasonPhrase) break;
    if (c >= 0x20 && c < 0x7f) r.reason += c;
  }
  return r;
}

std::int64_t parse_content_length(std::string_view value) {
  value = trim(value);
  if (value.empty()) return -1;
  std::int64_t n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return -1;
    if (n > (INT64_MAX - 9) / 10) return INT64_MAX;  // absurd: certainly too large
    n = n * 10 + (c - '0');
  }
  return n;
}

bool Transfer::WithinWireBound() {
  if (wire_bytes() <= ctx.options.max_bytes + kOverheadAllowance) return true;
  if (!abort) abort = TryEnd{too_much_received(ctx.options)};
  return false;
}

bool Transfer::OnProgress(curl_off_t body_bytes_now) {
  // libcurl's counter restarts for each response of a redirect chain: a
  // drop means a new hop, and what the last one read is banked. (What a hop
  // read after our last look is not seen; that is at most one read loop.)
  const auto now = static_cast<std::uint64_t>(std::max<curl_off_t>(0, body_bytes_now));
  if (now < body_bytes_this_hop) body_bytes_earlier_hops += body_bytes_this_hop;
  body_bytes_this_hop = now;
  return WithinWireBound();
}

/// A validator header's value as we keep it: printable ASCII that fits its
/// field whole, else "" (not kept: a cut or odd validator would only cost a
/// useless conditional request).
std::string validator_value(std::string_view value, std::size_t field_size) {
  value = trim(value);
  if (value.size() >= field_size) return {};
  for (char c : value)
    if (c < 0x20 || c > 0x7e) return {};
  return std::string(value);
}

bool Transfer::OnHeaderLine(std::string_view line) {
  header_bytes += line.size();
  if (!WithinWireBound()) return false;
  // libcurl passes the headers of every response, redirects included, and
  // a status line starts each one.
  if (line.starts_with("HTTP/")) {
    response = parse_status_line(line);
  } else if (starts_with_nocase(line, "location:")) {
    response.has_location = true;
  } else if (starts_with_nocase(line, "content-length:")) {
    response.expected = parse_content_length(line.substr(15));
  } else if (starts_with_nocase(line, "etag:")) {
    response.etag = validator_value(line.substr(5), kMaxEtag);
  } else if (starts_with_nocase(line, "last-modified:")) {
    response.last_modified = validator_value(line.substr(14), kMaxHttpDate);
  } else if (line == "\r\n" || line == "\n") {
    return OnHeadersDone();
  }
  return true;
}

bool Transfer::OnHeadersDone() {
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &response.status);
  const long status = response.status;
  if (status < 200) return true;                              // interim
  if (status < 300) {
    if (response.expected > 0 && static_cast<std::uint64_t>(response.expected) > ctx.options.max_bytes) {
      abort = TryEnd{too_large(ctx.options)};
      return false;
    }
    response.keep_body = true;
    return true;
  }
  if (status == 304 && conditional()) {                       // unchanged since the last run
    response.not_modified = true;
    return true;
  }
  if (status < 400 && response.has_location) return true;     // libcurl follows it
  // Not worth reading the error page: stop here.
  abort = TryEnd{http_error(status, response.reason), retryable_status(status)};
  return false;
}

std::size_t Transfer::OnBody(std::string_view data) {
  if (abort) return 0;
  if (!response.keep_body) {  // not the source's body, but read all the same
    curl_off_t hop_bytes = 0;
    curl_easy_getinfo(easy, CURLINFO_SIZE_DOWNLOAD_T, &hop_bytes);
    return OnProgress(hop_bytes) ? data.size() : 0;
  }
  if (received + data.size() > ctx.options.max_bytes) {
    abort = TryEnd{too_large(ctx.options)};
    return 0;
  }
  const bool may_spill = paused && now_ms() - paused_since_ms >= kMaxPauseMs;
  switch (body.Append(data, response.expected, may_spill)) {
    case Body::Put::kStored:
      received += data.size();
      paused = false;
      return data.size();
    case Body::Put::kNoRoom:
      // libcurl keeps these bytes and hands them to us again on unpause.
      if (!paused) paused_since_ms = now_ms();
      paused = true;
      return CURL_WRITEFUNC_PAUSE;
    case Body::Put::kFailed:
      break;
  }
  abort = TryEnd{body.error()};
  return 0;
}

std::size_t on_header(char* buffer, std::size_t size, std::size_t count, void* user) {
  const std::size_t n = size * count;
  return static_cast<Transfer*>(user)->OnHeaderLine({buffer, n}) ? n : 0;
}

std::size_t on_body(char* buffer, std::size_t size, std::size_t count, void* user) {
  return static_cast<Transfer*>(user)->OnBody({buffer, size * count});
}

/// Opens every socket libcurl connects with (each redirect hop too), after
/// the name was resolved and before connect: a refused address is never
/// connected to, so no packet leaves for it.
curl_socket_t on_open_socket(void* user, curlsocktype purpose, curl_sockaddr* address) {
  auto& t = *static_cast<Transfer*>(user);
  const sockaddr* peer = &address->addr;
  const AddressVerdict verdict = check_address(peer, address->addrlen, t.ctx.options.deny_private);
  if (purpose == CURLSOCKTYPE_IPCXN && verdict != AddressVerdict::kAllowed) {
    const char* why = verdict == AddressVerdict::kLinkLocal ? "a link-local or cloud metadata address"
                                                            : "a private address (--deny-private)";
    t.blocked = Status(Code::kBlockedAddress,
                       "refused to connect to " + address_text(peer, address->addrlen) + ": " + why);
    return CURL_SOCKET_BAD;
  }
  return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

int on_progress(void* user, curl_off_t /*dltotal*/, curl_off_t dlnow, curl_off_t, curl_off_t) {
  return static_cast<Transfer*>(user)->OnProgress(dlnow) ? 0 : 1;
}

// ----- describing a failed try ----------------------------------------------

/// What libcurl knows about a try that just ended.
struct TryInfo {
  CURLcode result = CURLE_OK;
  long os_errno = 0;
  // 0: the request was never sent (not connected). Not CONNECT_TIME, which
  // is 0 on a reused connection too.
  curl_off_t pretransfer_us = 0;
  long redirects = 0;
  std::string errbuf;
};

/// 'Protocol "ftp" not supported or disabled in libcurl' -> "ftp".
std::string quoted_word(const std::string& text) {
  const std::size_t a = text.find('"');
  const std::size_t b = a == std::string::npos ? a : text.find('"', a + 1);
  if (b == std::string::npos || b - a > 20) return {};
  return text.substr(a + 1, b - a - 1);
}

TryEnd describe_timeout(const TryInfo& info, const Options& options) {
  if (info.errbuf.starts_with("Operation too slow"))
    return {Status(Code::kTimeout, "stalled: under 1 KiB/s for " +
                                       std::to_string(options.stall_timeout_s) + " s"), true};
  if (info.pretransfer_us == 0)
    return {Status(Code::kTimeout, "timed out after " + std::to_string(options.connect_timeout_s) +
                                       " s connecting"), true};
  return {Status(Code::kTimeout, "timed out after " + std::to_string(options.transfer_timeout_s) + " s"),
          true};
}

TryEnd describe_connect_failure(const TryInfo& info, const Options& options) {
  if (info.os_errno == ECONNREFUSED) return {Status(Code::kNetwork, "connection refused"), true};
  if (info.os_errno == ETIMEDOUT || info.errbuf.find("Timeout") != std::string::npos)
    return describe_timeout(info, options);
  return {Status(Code::kNetwork, "could not connect: " + info.errbuf), true};
}

TryEnd describe_early_end(const Transfer& t) {
  std::string text = "transfer ended early: received " + std::to_string(t.received);
  if (t.response.expected >= 0) text += " of " + std::to_string(t.response.expected);
  return {Status(Code::kNetwork, text + " bytes"), true};
}

TryEnd describe_curl_error(const Transfer& t, const TryInfo& info) {
  const Options& options = t.ctx.options;
  const std::string detail = info.errbuf.empty() ? curl_easy_strerror(info.result) : info.errbuf;
  switch (info.result) {
    case CURLE_COULDNT_CONNECT: return describe_connect_failure(info, options);
    case CURLE_OPERATION_TIMEDOUT: return describe_timeout(info, options);
    case CURLE_PARTIAL_FILE: return describe_early_end(t);
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
      if (info.os_errno == ECONNRESET) return {Status(Code::kNetwork, "connection reset by peer"), true};
      return {Status(Code::kNetwork, "network error: " + detail), true};
    case CURLE_GOT_NOTHING:
      return {Status(Code::kNetwork, "server closed the connection without answering"), true};
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return {Status(Code::kNetwork, "HTTP/2 error: " + detail), true};
    case CURLE_COULDNT_RESOLVE_HOST: {
      // "Could not resolve host: example.invalid"
      const std::size_t colon = detail.rfind(": ");
      return {Status(Code::kNetwork, "could not resolve host " + detail.substr(colon == std::string::npos ? 0 : colon + 2))};
    }
    case CURLE_TOO_MANY_REDIRECTS:
      return {Status(Code::kHttpStatus, "too many redirects (" + std::to_string(options.max_redirects) + ")")};
    case CURLE_UNSUPPORTED_PROTOCOL: {
      const std::string scheme = quoted_word(info.errbuf);
      std::string text = info.redirects > 0 ? "redirect to a disallowed scheme" : "disallowed scheme";
      if (!scheme.empty()) text += " (" + scheme + ")";
      return {Status(Code::kInvalidArgument, text)};
    }
    case CURLE_URL_MALFORMAT: return {Status(Code::kInvalidArgument, "malformed URL: " + detail)};
    default: return {Status(Code::kNetwork, detail)};
  }
}

TryInfo try_info(CURL* easy, CURLcode result, const char* errbuf) {
  TryInfo info;
  info.result = result;
  curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &info.os_errno);
  curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &info.pretransfer_us);
  curl_easy_getinfo(easy, CURLINFO_REDIRECT_COUNT, &info.redirects);
  info.errbuf = trim(errbuf);
  return info;
}

/// How the try that libcurl just finished with `result` ended.
TryEnd end_of_try(const Transfer& t, CURLcode result) {
  if (t.abort) return *t.abort;  // whatever libcurl says after our abort
  if (t.blocked && result == CURLE_COULDNT_CONNECT) return {*t.blocked};
  if (result == CURLE_OK) {
    if (t.response.keep_body) return {};
    if (t.response.not_modified) return {Status::Ok(), false, true};
    return {http_error(t.response.status, t.response.reason)};  // e.g. a 3xx without Location
  }
  return describe_curl_error(t, try_info(t.easy, result, t.errbuf));
}

std::int64_t retry_delay_ms(int tries_done, curl_off_t retry_after_s) {
  const std::int64_t backoff = std::min(kMaxBackoffMs, kBackoffMs << std::min(tries_done - 1, 16));
  const std::int64_t asked = std::min<std::int64_t>(retry_after_s, kMaxRetryAfterS) * 1000;
  return std::max(backoff, asked);
}

void configure_handle(CURL* easy, const Options& options) {
  // URLs come from a file we did not write: only http(s), also after a
  // redirect, a bounded number of redirects, bounded time, no transparent
  // decompression (no ACCEPT_ENCODING), no signals (we are multi-threaded
  // in the threaded build).
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(easy, CURLOPT_MAXREDIRS, static_cast<long>(options.max_redirects));
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, static_cast<long>(options.connect_timeout_s));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT, static_cast<long>(options.transfer_timeout_s));
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options.stall_timeout_s));
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "thumbmill/0.1");
  curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);  // prefer multiplexing on an existing connection
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
  // Also sees the bodies libcurl reads without handing them to on_body.
  curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
}

}  // namespace

// ===== Fetcher ==============================================================

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
  if (easy) configure_handle(easy, ctx.options);
  return easy;
}

void Fetcher::Impl::ReturnHandle(Transfer& t) {
  curl_multi_remove_handle(multi, t.easy);
  curl_easy_setopt(t.easy, CURLOPT_ERRORBUFFER, nullptr);
  curl_easy_setopt(t.easy, CURLOPT_PRIVATE, nullptr);
  curl_easy_setopt(t.easy, CURLOPT_XFERINFODATA, nullptr);
  curl_easy_setopt(t.easy, CURLOPT_OPENSOCKETDATA, nullptr);
  curl_easy_setopt(t.easy, CURLOPT_HTTPHEADER, nullptr);
  idle_handles.push_back(t.easy);
  t.easy = nullptr;
}

void Fetcher::Impl::Start(const FetchRequest& request) {
  auto& t = *transfers.emplace_back(std::make_unique<Transfer>(ctx, request));
  t.first_start_ms = now_ms();
  if (t.url.empty()) return Finish(t, Status(Code::kInvalidArgument, "empty source"));
  if (t.kind == SourceKind::kFile) return StartLocal(t);
  if (t.kind != SourceKind::kHttp) return Finish(t, Status(Code::kInternal, "unknown source kind"));
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
  t.tries += 1;
  t.phase = Phase::kRunning;
  t.response = {};
  t.received = 0;
  t.header_bytes = t.body_bytes_earlier_hops = t.body_bytes_this_hop = 0;
  t.paused = false;
  t.abort.reset();
  t.blocked.reset();
  t.errbuf[0] = '\0';
  t.body.Reset(t.SpillPath());
  t.easy = TakeHandle();
  if (!t.easy) return Finish(t, Status(Code::kInternal, "curl_easy_init failed"));
  curl_easy_setopt(t.easy, CURLOPT_URL, t.url.c_str());
  curl_easy_setopt(t.easy, CURLOPT_PRIVATE, &t);
  curl_easy_setopt(t.easy, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(t.easy, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(t.easy, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(t.easy, CURLOPT_OPENSOCKETDATA, &t);
  curl_easy_setopt(t.easy, CURLOPT_ERRORBUFFER, t.errbuf);
  if (t.conditional()) {
    if (!t.headers) {
      if (!t.if_none_match.empty())
        t.headers = curl_slist_append(t.headers, ("If-None-Match: " + t.if_none_match).c_str());
      if (!t.if_modified_since.empty())
        t.headers = curl_slist_append(t.headers, ("If-Modified-Since: " + t.if_modified_since).c_str());
    }
    curl_easy_setopt(t.easy, CURLOPT_HTTPHEADER, t.headers);
  }
  if (curl_multi_add_handle(multi, t.easy) != CURLM_OK) {
    ReturnHandle(t);
    Finish(t, Status(Code::kInternal, "curl_multi_add_handle failed"));
  }
}

void Fetcher::Impl::OnTryDone(Transfer& t, CURLcode result) {
  const TryEnd end = end_of_try(t, result);
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
      if (space_freed || now - t.paused_since_ms >= kMaxPauseMs) Unpause(t);
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
  std::erase_if(impl_->transfers, [](const auto& t) { return t->phase == Phase::kDone; });
}

void Fetcher::Wait(int extra_fd, std::chrono::milliseconds max_wait) {
  Impl& impl = *impl_;
  impl.ServiceWaiting();
  impl.Poll(extra_fd, static_cast<int>(impl.NextWakeMs(max_wait.count())));
  impl.ReadMessages();
  std::erase_if(impl.transfers, [](const auto& t) { return t->phase == Phase::kDone; });
}

std::vector<FetchOutcome> Fetcher::TakeOutcomes() {
  std::vector<FetchOutcome> out;
  out.swap(impl_->outcomes);
  return out;
}

}  // namespace thumbmill
