// HTTP response headers as the fetcher reads them: libcurl passes the header
// lines of every response of a try (each redirect hop, interim 1xx), one at
// a time; a status line starts each response and a blank line ends its
// headers. Kept from them: the reason phrase, whether there is a Location,
// Content-Length, and the validators (ETag, Last-Modified) recorded for the
// next run's conditional request.
//
// Header text is untrusted: reason phrases are cut short and kept printable,
// validators are kept only whole and printable, and a Content-Length that is
// not a plain number is ignored.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace thumbmill::fetch {

/// The response libcurl is currently reading (there is one per redirect).
struct Response {
  long status = 0;
  std::string reason;
  bool has_location = false;
  bool keep_body = false;      // the final 2xx: its body is the source
  std::int64_t expected = -1;  // Content-Length; -1 when not sent
  std::string etag;            // validators, recorded for the next run
  std::string last_modified;
  bool not_modified = false;   // a 304 to our conditional request
};

/// Takes one header line (with its CRLF) into `response`; a status line
/// starts a new response. Returns true for the blank line that ends a
/// response's headers (the status code is then the caller's to fetch from
/// libcurl: it is not parsed from the status line).
bool read_header_line(Response& response, std::string_view line);

/// `s` without leading spaces and tabs, and without trailing spaces, tabs,
/// CRs and LFs (a header line's value; libcurl's error text).
std::string_view trim(std::string_view s);

}  // namespace thumbmill::fetch
