// Response header lines: status line, Location, Content-Length, validators
// (see http_response.h).
#include "downloader/http_response.h"

#include <strings.h>

#include <cstdint>

#include "shared/fetch_facts.h"

namespace thumbmill::fetch {
namespace {

/// Reason phrases are untrusted text: kept short and printable.
constexpr std::size_t kMaxReasonPhrase = 60;

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && ::strncasecmp(text.data(), prefix.data(), prefix.size()) == 0;
}

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

}  // namespace

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

bool read_header_line(Response& response, std::string_view line) {
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
    return true;
  }
  return false;
}

}  // namespace thumbmill::fetch
