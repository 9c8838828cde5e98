// Url: every URL of the list is parsed, checked and normalised by libcurl's
// URL API (curl_url), the parser that will fetch it, so that what is checked
// (scheme, host, path) is what is fetched: no second, hand-written parser
// can read a hostile URL differently.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "shared/status.h"

namespace thumbmill {

struct ParsedUrl {
  std::string scheme;   // lower case: "http", "https", "file", ...
  std::string host;     // as libcurl has it; empty for file URLs
  std::string path;     // as written (escapes kept); "/" at least for http(s)
  // `path` percent-decoded; nullopt when an escape decodes to a control
  // character (libcurl refuses those).
  std::optional<std::string> decoded_path;
  std::string url;      // normalised, credentials kept: what is fetched
  std::string display;  // normalised, user:password@ removed: what is shown
};

/// Parses an absolute URL of any scheme libcurl knows. kInvalidArgument with
/// libcurl's reason ("Port number was not a decimal number between 0 and
/// 65535", ...) otherwise.
Result<ParsedUrl> parse_url(std::string_view text);

/// `text` with its %XX escapes decoded by libcurl (curl_easy_unescape): any
/// byte, control characters included; a malformed escape stays as written.
std::string percent_decode(std::string_view text);

/// `text` with any "user:password@" after "scheme://" removed, for showing a
/// line that parse_url rejected (it cannot be normalised, but it must not
/// leak credentials either).
std::string redact_credentials(std::string_view text);

}  // namespace thumbmill
