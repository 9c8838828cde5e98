// Url: curl_url in one place, with its handles owned.
#include "shared/url.h"

#include <curl/curl.h>

#include <memory>

namespace thumbmill {
namespace {

struct UrlDeleter {
  void operator()(CURLU* h) const { curl_url_cleanup(h); }
};
using UrlHandle = std::unique_ptr<CURLU, UrlDeleter>;

struct CurlString {
  char* text = nullptr;
  ~CurlString() { curl_free(text); }
};

/// One part of `h`, or "" when it has none (CURLUE_NO_*).
Result<std::string> get_part(CURLU* h, CURLUPart part, unsigned flags = 0) {
  CurlString out;
  const CURLUcode rc = curl_url_get(h, part, &out.text, flags);
  if (rc == CURLUE_OK) return std::string(out.text ? out.text : "");
  if (rc == CURLUE_NO_HOST || rc == CURLUE_NO_USER || rc == CURLUE_NO_PASSWORD || rc == CURLUE_NO_QUERY ||
      rc == CURLUE_NO_FRAGMENT || rc == CURLUE_NO_PORT || rc == CURLUE_NO_OPTIONS)
    return std::string();
  return Status(Code::kInvalidArgument, curl_url_strerror(rc));
}

}  // namespace

Result<ParsedUrl> parse_url(std::string_view text) {
  UrlHandle h(curl_url());
  if (!h) return Status(Code::kInternal, "curl_url failed");
  const std::string input(text);
  // No flags: only absolute URLs, no guessed scheme, no spaces, no
  // re-encoding; a scheme this libcurl does not support is an error.
  if (const CURLUcode rc = curl_url_set(h.get(), CURLUPART_URL, input.c_str(), 0); rc != CURLUE_OK)
    return Status(Code::kInvalidArgument, curl_url_strerror(rc));
  ParsedUrl parsed;
  Result<std::string> scheme = get_part(h.get(), CURLUPART_SCHEME);
  Result<std::string> host = get_part(h.get(), CURLUPART_HOST);
  Result<std::string> path = get_part(h.get(), CURLUPART_PATH);
  Result<std::string> url = get_part(h.get(), CURLUPART_URL);
  for (const Result<std::string>* r : {&scheme, &host, &path, &url})
    if (!r->ok()) return r->status();
  parsed.scheme = *scheme;
  parsed.host = *host;
  parsed.path = *path;
  // libcurl refuses to decode an escape of a control character.
  if (Result<std::string> decoded = get_part(h.get(), CURLUPART_PATH, CURLU_URLDECODE); decoded.ok())
    parsed.decoded_path = std::move(*decoded);
  parsed.url = *url;
  curl_url_set(h.get(), CURLUPART_USER, nullptr, 0);
  curl_url_set(h.get(), CURLUPART_PASSWORD, nullptr, 0);
  curl_url_set(h.get(), CURLUPART_OPTIONS, nullptr, 0);
  Result<std::string> display = get_part(h.get(), CURLUPART_URL);
  if (!display.ok()) return display.status();
  parsed.display = *display;
  return parsed;
}

std::string percent_decode(std::string_view text) {
  int length = 0;
  char* decoded = curl_easy_unescape(nullptr, text.data(), static_cast<int>(text.size()), &length);
  if (!decoded) return std::string(text);
  std::string out(decoded, static_cast<std::size_t>(length));
  curl_free(decoded);
  return out;
}

std::string redact_credentials(std::string_view text) {
  const std::size_t start = text.find("://");
  if (start == std::string_view::npos) return std::string(text);
  const std::size_t authority = start + 3;
  const std::size_t end = text.find_first_of("/?#", authority);
  const std::size_t at = text.substr(0, end).rfind('@');
  if (at == std::string_view::npos || at < authority) return std::string(text);
  return std::string(text.substr(0, authority)) + std::string(text.substr(at + 1));
}

}  // namespace thumbmill
