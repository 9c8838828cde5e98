// How a try that failed is told: libcurl results and HTTP statuses mapped to
// thumbmill Status codes with a short human reason ("HTTP 404 Not Found",
// "connection refused", "timed out after 10 s connecting"), and whether the
// failure is worth another try (connection failures, timeouts, stalls,
// bodies cut short, 5xx and 429 are; a 404, a bad URL or a refused scheme
// are not).
#pragma once

#include <curl/curl.h>

#include <cstdint>
#include <string>

#include "shared/options.h"
#include "shared/status.h"

namespace thumbmill::fetch {

/// How one try ended.
struct TryEnd {
  Status status;
  bool retryable = false;
  bool not_modified = false;  // with an ok status: 304, nothing to publish
};

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

/// Reads TryInfo from `easy`, which just finished with `result`; `errbuf`
/// is its CURLOPT_ERRORBUFFER.
TryInfo try_info(CURL* easy, CURLcode result, const char* errbuf);

/// A failed libcurl result (not CURLE_OK) told for a report. `received` and
/// `expected` (Content-Length, -1: unknown) describe a body cut short.
TryEnd describe_curl_error(const TryInfo& info, const Options& options, std::uint64_t received,
                           std::int64_t expected);

/// "HTTP 404 Not Found": what a >= 300 final status becomes.
Status http_error(long status, const std::string& reason);
/// Whether a final HTTP status is worth another try: 5xx and 429.
bool retryable_status(long status);

/// The body of the source is over Options::max_bytes.
Status too_large(const Options& options);
/// The whole try read over Options::max_bytes plus its allowance.
Status too_much_received(const Options& options);

}  // namespace thumbmill::fetch
