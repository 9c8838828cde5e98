// Put: one object PUT to S3 across its tries. It owns what one request
// needs while it runs (its signed headers, the read position in a body that
// lives elsewhere: the upload queue's arena or the bundle's record text, the
// first bytes of an error answer) and says how a try ended: stored, worth
// another try, or failed for good.
#pragma once

#include <curl/curl.h>

#include <cstdint>
#include <span>
#include <string>

#include "shared/options.h"
#include "shared/s3_location.h"
#include "shared/s3_request.h"
#include "shared/status.h"

namespace thumbmill::upload {

struct TryResult {
  Status status;           // ok: stored
  bool retryable = false;  // connection error, timeout, 5xx, 408, 429
  std::int64_t retry_after_ms = 0;  // the server's Retry-After, 0 when none
};

struct Put {
  Put(S3Location object, std::span<const std::byte> body, std::string sha256, S3PutFields fields)
      : object(std::move(object)), body(body), sha256(std::move(sha256)), fields(std::move(fields)) {}
  Put(const Put&) = delete;
  Put& operator=(const Put&) = delete;

  const S3Location object;
  const std::span<const std::byte> body;  // REQUIRES: outlives the Put
  const std::string sha256;
  const S3PutFields fields;

  int tries = 0;
  std::int64_t retry_at_ms = 0;  // when waiting for another try
  void* owner = nullptr;         // the loop's bundle

  // The current try.
  CURL* easy = nullptr;
  CurlHeaders headers;
  std::uint64_t read_at = 0;
  std::string answer;  // the first bytes of the response body (an error's XML)
  char errbuf[CURL_ERROR_SIZE] = {};

  /// Sets up `handle` (fresh or reused) for the next try of this PUT:
  /// signed request, body callbacks, --connect-timeout, --timeout and
  /// --stall-timeout, no redirects. Counts the try.
  void BeginTry(CURL* handle, const Options& options);
  /// How the try that libcurl finished with `result` ended.
  TryResult EndTry(CURLcode result) const;
};

}  // namespace thumbmill::upload
