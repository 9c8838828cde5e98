// One source's tries: libcurl callbacks, byte bounds, and how a try ended
// (see transfer.h).
#include "downloader/transfer.h"

#include "shared/s3_location.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "downloader/address_policy.h"
#include "shared/fixed_text.h"

namespace thumbmill::fetch {
namespace {

// What libcurl receives into per transfer (CURLOPT_BUFFERSIZE; see its use).
constexpr long kReceiveBufferBytes = 256 * 1024;

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

}  // namespace

Transfer::Transfer(const Context& ctx, const FetchRequest& request)
    : ctx(ctx),
      source_id(request.source_id),
      kind(static_cast<SourceKind>(request.kind)),
      stem(request.stem, ::strnlen(request.stem, sizeof request.stem)),
      url(request.url, ::strnlen(request.url, std::min<std::size_t>(request.url_length,
                                                                   sizeof request.url))),
      if_none_match(text_of(request.if_none_match)),
      if_modified_since(text_of(request.if_modified_since)),
      body(ctx, source_id, stem, url) {}

std::string Transfer::SpillPath() const {
  return ctx.temp_dir + "/body-" + std::to_string(source_id) + "-" + std::to_string(tries) + ".bin";
}

void Transfer::BeginTry() {
  tries += 1;
  phase = Phase::kRunning;
  response = {};
  received = 0;
  header_bytes = body_bytes_earlier_hops = body_bytes_this_hop = 0;
  paused = false;
  abort.reset();
  blocked.reset();
  errbuf[0] = '\0';
  body.Reset(SpillPath());
}

void Transfer::Attach(CURL* handle) {
  easy = handle;
  if (kind == SourceKind::kS3) {
    // A signed GET of the object (shared/s3_request.h), conditional like
    // any other source when an earlier run left a validator.
    std::vector<std::string> conditions;
    if (!if_none_match.empty()) conditions.push_back("If-None-Match: " + if_none_match);
    if (!if_modified_since.empty()) conditions.push_back("If-Modified-Since: " + if_modified_since);
    if (auto object = parse_s3_url(url); object.ok()) s3_prepare_get(easy, ctx.options.s3, *object, s3_headers, conditions);
  } else {
    curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  }
  curl_easy_setopt(easy, CURLOPT_PRIVATE, this);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, this);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, this);
  curl_easy_setopt(easy, CURLOPT_XFERINFODATA, this);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, this);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
  if (conditional() && kind != SourceKind::kS3) {
    if (!headers) {
      if (!if_none_match.empty())
        headers = curl_slist_append(headers, ("If-None-Match: " + if_none_match).c_str());
      if (!if_modified_since.empty())
        headers = curl_slist_append(headers, ("If-Modified-Since: " + if_modified_since).c_str());
    }
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  }
}

TryEnd Transfer::EndOfTry(CURLcode result) const {
  if (abort) return *abort;  // whatever libcurl says after our abort
  if (blocked && result == CURLE_COULDNT_CONNECT) return {*blocked};
  if (result == CURLE_OK) {
    if (response.keep_body) return {};
    if (response.not_modified) return {Status::Ok(), false, true};
    return {http_error(response.status, response.reason)};  // e.g. a 3xx without Location
  }
  return describe_curl_error(try_info(easy, result, errbuf), ctx.options, received, response.expected);
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

bool Transfer::OnHeaderLine(std::string_view line) {
  header_bytes += line.size();
  if (!WithinWireBound()) return false;
  // libcurl passes the headers of every response, redirects included, and
  // a status line starts each one.
  if (read_header_line(response, line)) return OnHeadersDone();
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
  // libcurl's default 16 KiB receive buffer means a recv() and a copy into
  // the arena per 16 KiB. 256 KiB a transfer (4 MiB at 16 transfers) took the
  // downloader's CPU over 578 MB of loopback downloads from 0.73 s to 0.59 s
  // (128 KiB: 0.61, 512 KiB: 0.56).
  curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, kReceiveBufferBytes);
}

}  // namespace thumbmill::fetch
