// S3 requests through libcurl: how a bucket, a key and a body become one
// signed request on an easy handle, for the downloader (GET of s3://
// sources), the uploader (PUT) and the coordinator (listing, preflight).
//
// Signing is libcurl's (CURLOPT_AWS_SIGV4 "aws:amz:REGION:s3" with
// CURLOPT_USERNAME / CURLOPT_PASSWORD); what libcurl 7.88 leaves to its caller is done here, in
// one place (../shared/notes/s3.md): the x-amz-content-sha256 header on every
// request, keys and query values percent-encoded exactly once (uppercase
// hex; '/' kept in keys), query parameters sorted by name, CURLOPT_PATH_AS_IS
// (libcurl would collapse "..": another key), Content-Length on every PUT
// (a real server refuses chunked uploads), and x-amz-security-token for
// session credentials. Anonymous settings make unsigned requests.
#pragma once

#include <curl/curl.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shared/aws_config.h"
#include "shared/s3_location.h"

namespace thumbmill {

/// SHA-256 of nothing: the payload hash of GET, HEAD and list requests.
inline constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Lowercase hex SHA-256 of `bytes` (OpenSSL libcrypto).
std::string sha256_hex(std::span<const std::byte> bytes);
std::string sha256_hex(std::string_view bytes);

/// Every byte but A-Z a-z 0-9 - _ . ~ and '/' as %XX (uppercase).
std::string s3_encode_key(std::string_view key);
/// Every byte but A-Z a-z 0-9 - _ . ~ as %XX (uppercase): a query value.
std::string s3_encode_query_value(std::string_view value);

/// The request URL of `bucket`/`key` with an optional query (already
/// encoded and sorted), path style or virtual-hosted as `settings` say; the
/// key is encoded here (s3_encode_key). An empty endpoint is AWS's,
/// https://s3.REGION.amazonaws.com. Path style with an empty key gives
/// ".../bucket" (no trailing '/').
std::string s3_request_url(const S3Settings& settings, std::string_view bucket,
                           std::string_view key, std::string_view query = "");

/// A curl_slist owned: freed with the object. A request's headers must live
/// until its transfer is done.
class CurlHeaders {
 public:
  CurlHeaders() = default;
  ~CurlHeaders() { curl_slist_free_all(list_); }
  CurlHeaders(CurlHeaders&& other) noexcept : list_(std::exchange(other.list_, nullptr)) {}
  CurlHeaders& operator=(CurlHeaders&& other) noexcept {
    std::swap(list_, other.list_);
    return *this;
  }
  CurlHeaders(const CurlHeaders&) = delete;
  CurlHeaders& operator=(const CurlHeaders&) = delete;

  void Append(const std::string& line) { list_ = curl_slist_append(list_, line.c_str()); }
  void Clear() { curl_slist_free_all(std::exchange(list_, nullptr)); }
  curl_slist* get() const { return list_; }

 private:
  curl_slist* list_ = nullptr;
};

/// What a PUT stores beside the bytes.
struct S3PutFields {
  std::string content_type;   // "image/jpeg"
  std::string cache_control;  // "" : none
  // x-amz-meta-<name>: <value>; names lowercase a-z 0-9 -; values printable
  // ASCII (callers percent-encode anything else). No name may be a prefix
  // of another (not "source" with "source-etag"): libcurl 7.88 sorts the
  // signed headers as "name:value" strings and would sign such a pair in
  // an order real servers reject (radosgw: 403 SignatureDoesNotMatch).
  std::vector<std::pair<std::string, std::string>> metadata;
};

// Each prepare_* sets the URL, the method, the signing options and
// `headers` (cleared first, then set on the handle) on `easy`, which may be
// fresh or reused (it does not reset the handle: the caller's callbacks,
// timeouts and private data stay). The caller keeps `headers` alive for the
// transfer. `extra_headers` (e.g. "If-None-Match: ...") are added and signed.
// Anonymous settings clear any signing and credentials a reused handle had.
// The method is set from scratch (a GET after a PUT or a DELETE is a GET).

void s3_prepare_get(CURL* easy, const S3Settings& settings, const S3Location& object,
                    CurlHeaders& headers, const std::vector<std::string>& extra_headers = {});
/// HEAD of the bucket: the preflight's probe (200, 403, 404).
void s3_prepare_head_bucket(CURL* easy, const S3Settings& settings, std::string_view bucket,
                            CurlHeaders& headers);
/// PUT of `length` bytes whose SHA-256 is `sha256_hex`; the caller gives the
/// body with CURLOPT_READFUNCTION/READDATA (CURLOPT_INFILESIZE_LARGE is set
/// here to `length`).
void s3_prepare_put(CURL* easy, const S3Settings& settings, const S3Location& object,
                    std::uint64_t length, std::string_view sha256_hex, const S3PutFields& fields,
                    CurlHeaders& headers);
/// The query of a ListObjectsV2 request, encoded and sorted by name:
/// "[continuation-token=T&]list-type=2&max-keys=N[&prefix=P]".
std::string s3_list_query(std::string_view prefix, std::string_view continuation_token, int max_keys);

/// ListObjectsV2 of `prefix` in `bucket`, one page of at most `max_keys`,
/// continuing after `continuation_token` ("" for the first page).
void s3_prepare_list(CURL* easy, const S3Settings& settings, std::string_view bucket,
                     std::string_view prefix, std::string_view continuation_token,
                     CurlHeaders& headers, int max_keys = 1000);
/// DELETE of one object.
void s3_prepare_delete(CURL* easy, const S3Settings& settings, const S3Location& object, CurlHeaders& headers);
/// PUT of a bucket (CreateBucket, empty body; tests and scripts).
void s3_prepare_create_bucket(CURL* easy, const S3Settings& settings, std::string_view bucket,
                              CurlHeaders& headers);

}  // namespace thumbmill
