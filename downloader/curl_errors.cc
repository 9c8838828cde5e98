// libcurl results and HTTP statuses told as Status values (see curl_errors.h).
#include "downloader/curl_errors.h"

#include <cerrno>

#include "downloader/http_response.h"

namespace thumbmill::fetch {
namespace {

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

TryEnd describe_early_end(std::uint64_t received, std::int64_t expected) {
  std::string text = "transfer ended early: received " + std::to_string(received);
  if (expected >= 0) text += " of " + std::to_string(expected);
  return {Status(Code::kNetwork, text + " bytes"), true};
}

}  // namespace

TryInfo try_info(CURL* easy, CURLcode result, const char* errbuf) {
  TryInfo info;
  info.result = result;
  curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &info.os_errno);
  curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &info.pretransfer_us);
  curl_easy_getinfo(easy, CURLINFO_REDIRECT_COUNT, &info.redirects);
  info.errbuf = trim(errbuf);
  return info;
}

TryEnd describe_curl_error(const TryInfo& info, const Options& options, std::uint64_t received,
                           std::int64_t expected) {
  const std::string detail = info.errbuf.empty() ? curl_easy_strerror(info.result) : info.errbuf;
  switch (info.result) {
    case CURLE_COULDNT_CONNECT: return describe_connect_failure(info, options);
    case CURLE_OPERATION_TIMEDOUT: return describe_timeout(info, options);
    case CURLE_PARTIAL_FILE: return describe_early_end(received, expected);
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

Status http_error(long status, const std::string& reason) {
  std::string text = "HTTP " + std::to_string(status);
  if (!reason.empty()) text += " " + reason;
  return Status(Code::kHttpStatus, text);
}

bool retryable_status(long status) { return status >= 500 || status == 429; }

Status too_large(const Options& options) {
  return Status(Code::kTooLarge, "body over --max-bytes (" + std::to_string(options.max_bytes) + " bytes)");
}

Status too_much_received(const Options& options) {
  return Status(Code::kTooLarge, "received over --max-bytes (" + std::to_string(options.max_bytes) +
                                     " bytes) counting headers and redirect or error bodies");
}

}  // namespace thumbmill::fetch
