#include "uploader/put.h"

#include <algorithm>
#include <cstring>

#include "shared/s3_listing.h"

namespace thumbmill::upload {
namespace {

/// Error answers are read for their <Code> and <Message>, never kept whole.
constexpr std::size_t kMaxAnswer = 4096;

std::size_t read_body(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto& put = *static_cast<Put*>(user);
  const std::size_t n = std::min<std::uint64_t>(size * count, put.body.size() - put.read_at);
  std::memcpy(buffer, put.body.data() + put.read_at, n);
  put.read_at += n;
  return n;
}

/// libcurl rewinds the body to send it again (a reused connection that was
/// closed under it, a 100-continue refused then retried).
int seek_body(void* user, curl_off_t offset, int origin) {
  auto& put = *static_cast<Put*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<std::uint64_t>(offset) > put.body.size())
    return CURL_SEEKFUNC_FAIL;
  put.read_at = static_cast<std::uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

std::size_t keep_answer(char* data, std::size_t size, std::size_t count, void* user) {
  auto& put = *static_cast<Put*>(user);
  const std::size_t n = size * count;
  if (put.answer.size() < kMaxAnswer) put.answer.append(data, std::min(n, kMaxAnswer - put.answer.size()));
  return n;
}

}  // namespace

void Put::BeginTry(CURL* handle, const Options& options) {
  ++tries;
  easy = handle;
  read_at = 0;
  answer.clear();
  errbuf[0] = '\0';
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "thumbmill/0.1");
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, static_cast<long>(options.connect_timeout_s));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT, static_cast<long>(options.transfer_timeout_s));
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options.stall_timeout_s));
  // libcurl 7.88 sends "Expect: 100-continue" with every PUT and waits for
  // the 100 (a round trip) before the body; the header cannot be dropped
  // (it is signed, and an empty one makes servers refuse the signature), so
  // the body goes at once instead: a thumbnail is a few KB, and a refusal
  // costs that much.
  curl_easy_setopt(easy, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
  curl_easy_setopt(easy, CURLOPT_READFUNCTION, read_body);
  curl_easy_setopt(easy, CURLOPT_READDATA, this);
  curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, seek_body);
  curl_easy_setopt(easy, CURLOPT_SEEKDATA, this);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, keep_answer);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, this);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, this);
  s3_prepare_put(easy, options.s3, object, body.size(), sha256, fields, headers);
}

TryResult Put::EndTry(CURLcode result) const {
  TryResult r;
  if (result != CURLE_OK) {
    const std::string detail = errbuf[0] ? errbuf : curl_easy_strerror(result);
    switch (result) {
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
      case CURLE_COULDNT_CONNECT:
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_PARTIAL_FILE:
      case CURLE_HTTP2:
      case CURLE_HTTP2_STREAM:
        r.status = Status(Code::kNetwork, "upload of " + object.url() + ": " + detail);
        r.retryable = true;
        return r;
      case CURLE_OPERATION_TIMEDOUT:
        r.status = Status(Code::kTimeout, "upload of " + object.url() + ": " + detail);
        r.retryable = true;
        return r;
      default:
        r.status = Status(Code::kNetwork, "upload of " + object.url() + ": " + detail);
        return r;
    }
  }
  long http = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &http);
  if (http >= 200 && http < 300) return r;
  r.status = Status(Code::kHttpStatus, "upload of " + object.url() + ": " + s3_error_summary(http, answer));
  r.retryable = http >= 500 || http == 429 || http == 408;
  curl_off_t retry_after_s = 0;
  if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &retry_after_s) == CURLE_OK && retry_after_s > 0)
    r.retry_after_ms = std::min<std::int64_t>(retry_after_s, 60) * 1000;
  return r;
}

}  // namespace thumbmill::upload
