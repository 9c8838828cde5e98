// Signed S3 requests on a libcurl easy handle (what libcurl 7.88 leaves to
// its caller: ../shared/notes/s3.md).
#include "shared/s3_request.h"

#include <openssl/evp.h>

#include <algorithm>

namespace thumbmill {
namespace {

constexpr char kHex[] = "0123456789ABCDEF";

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '~';
}

std::string percent_encode(std::string_view text, bool keep_slash) {
  std::string out;
  out.reserve(text.size() * 3);
  for (unsigned char c : text) {
    if (unreserved(c) || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

/// What every request sets, whatever the handle did before: the URL, no
/// method left over from a previous request, paths sent as written, the
/// signing (or none, for anonymous settings), and the headers every request
/// carries, then `headers` on the handle.
void prepare_common(CURL* easy, const S3Settings& settings, const std::string& url, std::string_view payload_sha256,
                    CurlHeaders& headers, const std::vector<std::string>& extra_headers) {
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, nullptr);
  // libcurl would turn "a/../b" into "b": another key, and a signature of a
  // path it did not send.
  curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);
  if (settings.anonymous()) {
    curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, nullptr);
    curl_easy_setopt(easy, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_NONE));
    curl_easy_setopt(easy, CURLOPT_USERNAME, nullptr);
    curl_easy_setopt(easy, CURLOPT_PASSWORD, nullptr);
  } else {
    // Region and service always given: with "aws:amz" alone libcurl guesses
    // them from the host name, which fails for any endpoint but AWS's.
    const std::string sigv4 = "aws:amz:" + settings.region + ":s3";
    curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, sigv4.c_str());
    // Separately, not as CURLOPT_USERPWD "id:secret": a ':' in the key id
    // would move the split.
    curl_easy_setopt(easy, CURLOPT_USERNAME, settings.access_key_id.c_str());
    curl_easy_setopt(easy, CURLOPT_PASSWORD, settings.secret_access_key.c_str());
  }
  headers.Clear();
  // libcurl 7.88 does not add it; both servers refuse a request without it.
  headers.Append("x-amz-content-sha256: " + std::string(payload_sha256));
  // Signed by libcurl like every x-amz-* header.
  if (!settings.anonymous() && !settings.session_token.empty())
    headers.Append("x-amz-security-token: " + settings.session_token);
  for (const std::string& line : extra_headers) headers.Append(line);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers.get());
}

}  // namespace

std::string sha256_hex(std::span<const std::byte> bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char kLowerHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += kLowerHex[digest[i] >> 4];
    out += kLowerHex[digest[i] & 15];
  }
  return out;
}

std::string sha256_hex(std::string_view bytes) {
  return sha256_hex(std::as_bytes(std::span(bytes.data(), bytes.size())));
}

std::string s3_encode_key(std::string_view key) { return percent_encode(key, true); }

std::string s3_encode_query_value(std::string_view value) { return percent_encode(value, false); }

std::string s3_request_url(const S3Settings& settings, std::string_view bucket, std::string_view key,
                           std::string_view query) {
  const std::string base =
      settings.endpoint.empty() ? "https://s3." + settings.region + ".amazonaws.com" : settings.endpoint;
  std::string url;
  if (settings.path_style) {
    url = base + "/" + std::string(bucket);
    if (!key.empty()) url += "/" + s3_encode_key(key);
  } else {
    const auto sep = base.find("://") + 3;
    url = base.substr(0, sep) + std::string(bucket) + "." + base.substr(sep) + "/" + s3_encode_key(key);
  }
  if (!query.empty()) url += "?" + std::string(query);
  return url;
}

std::string s3_list_query(std::string_view prefix, std::string_view continuation_token, int max_keys) {
  // Sorted by name, as SigV4's canonical query string is: libcurl signs the
  // query exactly as written.
  std::string query;
  if (!continuation_token.empty()) query += "continuation-token=" + s3_encode_query_value(continuation_token) + "&";
  query += "list-type=2&max-keys=" + std::to_string(std::max(max_keys, 0));
  if (!prefix.empty()) query += "&prefix=" + s3_encode_query_value(prefix);
  return query;
}

void s3_prepare_get(CURL* easy, const S3Settings& settings, const S3Location& object, CurlHeaders& headers,
                    const std::vector<std::string>& extra_headers) {
  prepare_common(easy, settings, s3_request_url(settings, object.bucket, object.key), kEmptySha256, headers,
                 extra_headers);
  curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
}

void s3_prepare_head_bucket(CURL* easy, const S3Settings& settings, std::string_view bucket, CurlHeaders& headers) {
  prepare_common(easy, settings, s3_request_url(settings, bucket, ""), kEmptySha256, headers, {});
  curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
}

void s3_prepare_put(CURL* easy, const S3Settings& settings, const S3Location& object, std::uint64_t length,
                    std::string_view sha256_hex, const S3PutFields& fields, CurlHeaders& headers) {
  std::vector<std::string> extra;
  if (!fields.content_type.empty()) extra.push_back("Content-Type: " + fields.content_type);
  if (!fields.cache_control.empty()) extra.push_back("Cache-Control: " + fields.cache_control);
  for (const auto& [name, value] : fields.metadata) extra.push_back("x-amz-meta-" + name + ": " + value);
  prepare_common(easy, settings, s3_request_url(settings, object.bucket, object.key), sha256_hex, headers, extra);
  curl_easy_setopt(easy, CURLOPT_NOBODY, 0L);
  curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
  // A length, never chunked: a real server answers a chunked PUT with 411.
  curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(length));
}

void s3_prepare_list(CURL* easy, const S3Settings& settings, std::string_view bucket, std::string_view prefix,
                     std::string_view continuation_token, CurlHeaders& headers, int max_keys) {
  prepare_common(easy, settings, s3_request_url(settings, bucket, "", s3_list_query(prefix, continuation_token, max_keys)),
                 kEmptySha256, headers, {});
  curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
}

void s3_prepare_delete(CURL* easy, const S3Settings& settings, const S3Location& object, CurlHeaders& headers) {
  prepare_common(easy, settings, s3_request_url(settings, object.bucket, object.key), kEmptySha256, headers, {});
  curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "DELETE");
}

void s3_prepare_create_bucket(CURL* easy, const S3Settings& settings, std::string_view bucket, CurlHeaders& headers) {
  prepare_common(easy, settings, s3_request_url(settings, bucket, ""), kEmptySha256, headers, {});
  curl_easy_setopt(easy, CURLOPT_NOBODY, 0L);
  curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(0));
}

}  // namespace thumbmill
