// SourceList: one line of the list at a time, each classified as an
// http(s) URL, a local file (a file:// URL or a path), or a malformed line.
#include "shared/source_list.h"

#include <fcntl.h>

#include <ext/stdio_filebuf.h>

#include <cctype>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>

#include "shared/s3_location.h"
#include "shared/url.h"

namespace thumbmill {
namespace {

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

/// An istream over a descriptor it owns and closes at the end.
class FdInputStream : public std::istream {
 public:
  explicit FdInputStream(int fd) : std::istream(nullptr), buf_(fd, std::ios::in | std::ios::binary) { rdbuf(&buf_); }

 private:
  __gnu_cxx::stdio_filebuf<char> buf_;
};
constexpr std::string_view kBlanks = " \t\r\n\v\f";

std::string_view trim(std::string_view text) {
  const std::size_t first = text.find_first_not_of(kBlanks);
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(kBlanks) - first + 1);
}

bool is_ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_ascii_digit(char c) { return c >= '0' && c <= '9'; }
bool is_control(char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

/// The scheme of "scheme:..." (RFC 3986: a letter, then letters, digits,
/// '+', '-', '.'), or empty when `text` has none. One letter is not taken for
/// a scheme, so "C:\x" stays a path.
std::string_view scheme_of(std::string_view text) {
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon < 2 || !is_ascii_alpha(text[0])) return {};
  for (char c : text.substr(0, colon)) {
    if (!is_ascii_alpha(c) && !is_ascii_digit(c) && c != '+' && c != '-' && c != '.') return {};
  }
  return text.substr(0, colon);
}

/// A malformed line: the entry carries the reason, prefixed "line N: ".
SourceLine malformed(SourceLine line, const std::string& why) {
  line.display = redact_credentials(line.text);
  line.status = Status(Code::kInvalidArgument, "line " + std::to_string(line.line_number) + ": " + why);
  return line;
}

/// Where the first control character is, or npos.
std::size_t find_control(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (is_control(text[i])) return i;
  }
  return std::string_view::npos;
}

/// "control character 0x09" for the byte at `at`.
std::string describe_control(std::string_view text, std::size_t at) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto byte = static_cast<unsigned char>(text[at]);
  return std::string("control character 0x") + kHex[byte >> 4] + kHex[byte & 15];
}

/// Parses a URL line with libcurl's URL API (shared/url.h). On success the
/// line is displayed as the normalised URL without credentials (a line that
/// does not parse gets its credentials removed by malformed()).
Result<ParsedUrl> parse_line_url(SourceLine& line) {
  if (line.text.find(' ') != std::string::npos) return Status(Code::kInvalidArgument, "space in URL (write it as %20)");
  Result<ParsedUrl> url = parse_url(line.text);
  if (!url.ok()) return url.status();
  line.display = url->display.empty() ? redact_credentials(line.text) : url->display;
  return url;
}

/// http:// and https://: what libcurl will fetch is its normalised URL.
SourceLine classify_http(SourceLine line) {
  Result<ParsedUrl> url = parse_line_url(line);
  if (!url.ok()) {
    const std::string why = url.status().message();
    if (why.starts_with("space")) return malformed(line, why);
    if (why.find("No host") != std::string::npos) return malformed(line, "URL has no host");
    return malformed(line, "malformed URL: " + why);
  }
  line.kind = SourceKind::kHttp;
  line.location = std::move(url->url);
  return line;
}

/// file:///abs/path, file://localhost/abs/path or file:/abs/path, decoded
/// into the local path (libcurl drops localhost, query and fragment).
SourceLine classify_file_url(SourceLine line) {
  Result<ParsedUrl> url = parse_line_url(line);
  if (!url.ok()) {
    const std::string why = url.status().message();
    if (why.starts_with("space")) return malformed(line, why);
    return malformed(line, "malformed file URL (only file:///path and file://localhost/path are local): " + why);
  }
  if (!url->path.starts_with('/')) return malformed(line, "file URL has no absolute path");
  if (!url->decoded_path) return malformed(line, "file URL path decodes to a control character");
  if (std::size_t at = find_control(*url->decoded_path); at != std::string::npos)
    return malformed(line, "file URL path decodes to a " + describe_control(*url->decoded_path, at));
  line.kind = SourceKind::kFile;
  line.location = std::move(*url->decoded_path);
  return line;
}

/// s3://bucket/key: the key as written (encoded only when requested).
SourceLine classify_s3(SourceLine line) {
  Result<S3Location> object = parse_s3_url(line.text);
  if (!object.ok()) return malformed(line, object.status().message());
  if (object->key.empty() || object->key.back() == '/')
    return malformed(line, "s3 URL names a prefix, not an object (give a prefix as LIST to list it)");
  line.kind = SourceKind::kS3;
  line.location = object->url();
  line.display = line.location;
  return line;
}

}  // namespace

SourceLine parse_source_line(std::string_view text, std::uint64_t line_number) {
  SourceLine line;
  line.line_number = line_number;
  line.text = std::string(trim(text));
  line.display = line.text;
  if (line.text.size() > kMaxSourceLength) {
    return malformed(std::move(line), "source is " + std::to_string(line.text.size()) +
                                          " bytes long (at most " + std::to_string(kMaxSourceLength) + ")");
  }
  if (std::size_t at = find_control(line.text); at != std::string::npos) {
    const std::string why = describe_control(line.text, at) + " at column " + std::to_string(at + 1);
    return malformed(std::move(line), why);
  }
  const std::string_view scheme = scheme_of(line.text);
  if (scheme.empty()) {  // a local path, relative or absolute, kept as written
    line.kind = SourceKind::kFile;
    line.location = line.text;
    return line;
  }
  if (iequals(scheme, "http") || iequals(scheme, "https")) return classify_http(std::move(line));
  if (iequals(scheme, "file")) return classify_file_url(std::move(line));
  if (iequals(scheme, "s3")) return classify_s3(std::move(line));
  const std::string why =
      "unsupported scheme '" + std::string(scheme) + "' (only http, https, s3, file and local paths)";
  return malformed(std::move(line), why);
}

Result<std::unique_ptr<SourceList>> SourceList::Open(const std::string& path) {
  if (path == "-") {
    auto list = std::make_unique<SourceList>(std::cin);
    list->name_ = "standard input";
    return list;
  }
  const std::string context = "cannot open source list " + path;
  // An ifstream opens a directory happily and fails on the first read.
  std::error_code ignored;
  if (std::filesystem::is_directory(path, ignored)) return Status::FromErrno(context, EISDIR);
  // O_CLOEXEC, which std::ifstream cannot do: the list must not leak into
  // the children (it did, as their fd 3).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(context);
  auto file = std::make_unique<FdInputStream>(fd);
  return std::unique_ptr<SourceList>(new SourceList(std::move(file), path));
}

bool SourceList::ReadLine(std::string_view& line, bool& too_long) {
  // getline into a buffer one byte larger than a line may be: it stops there
  // (failbit) on a longer line, whose rest is then skipped. The buffer is
  // sized once per list, not per line.
  if (buffer_.size() != kMaxLineBytes + 2) buffer_.resize(kMaxLineBytes + 2);
  in_.getline(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
  const auto got = static_cast<std::size_t>(in_.gcount());  // counts the newline, if read
  if (got == 0 && in_.fail()) return false;  // the end (or a read error: see Next)
  const bool stopped_short = in_.fail() && !in_.eof();   // kMaxLineBytes + 1 bytes, no newline yet
  line = std::string_view(buffer_.data(), in_.eof() || stopped_short ? got : got - 1);  // NULs and all
  too_long = line.size() > kMaxLineBytes;
  if (stopped_short) {
    in_.clear();
    in_.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return true;
}

std::optional<SourceLine> SourceList::Next() {
  std::string_view line;
  bool too_long = false;
  errno = 0;
  while (ReadLine(line, too_long)) {
    ++line_number_;
    if (too_long) {
      SourceLine cut;
      cut.line_number = line_number_;
      cut.text = std::string(line.substr(0, 80));
      cut.display = cut.text;
      return malformed(std::move(cut), "line is longer than " + std::to_string(kMaxLineBytes) + " bytes");
    }
    std::string_view text = line;
    if (line_number_ == 1 && text.starts_with(kUtf8Bom)) text.remove_prefix(kUtf8Bom.size());
    text = trim(text);
    if (text.empty() || text.front() == '#') continue;
    return parse_source_line(text, line_number_);
  }
  if (in_.bad()) {
    const std::string context = "reading " + name_ + " after line " + std::to_string(line_number_);
    read_status_ = errno != 0 ? Status::FromErrno(context) : Status(Code::kIoError, context + " failed");
  }
  return std::nullopt;
}

}  // namespace thumbmill
