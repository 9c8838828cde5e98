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

int hex_value(char c) {
  if (is_ascii_digit(c)) return c - '0';
  c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/// %XX escapes decoded; nullopt when an escape is malformed.
std::optional<std::string> percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int high = hex_value(text[i + 1]), low = hex_value(text[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

/// A malformed line: the entry carries the reason, prefixed "line N: ".
SourceLine malformed(SourceLine line, const std::string& why) {
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

/// The host of "[userinfo@]host[:port]" (host may be "[v6 address]"), or
/// nullopt when the port is not a number or a '[' is not closed.
std::optional<std::string_view> host_of(std::string_view authority) {
  authority.remove_prefix(authority.rfind('@') + 1);  // npos + 1 == 0: no userinfo
  const bool bracketed = authority.starts_with('[');
  if (bracketed && authority.find(']') == std::string_view::npos) return std::nullopt;
  const std::size_t host_end = bracketed ? authority.find(']') + 1 : authority.rfind(':');
  const std::string_view host = authority.substr(0, host_end);
  const std::string_view port = host_end >= authority.size() ? "" : authority.substr(host_end);
  if (!port.empty() && (port[0] != ':' || port.find_first_not_of("0123456789", 1) != std::string_view::npos)) {
    return std::nullopt;
  }
  return host;
}

/// http:// and https://: the URL is kept as written, for libcurl.
SourceLine classify_http(SourceLine line, std::string_view scheme) {
  const std::string_view text = line.text;
  if (text.find(' ') != std::string_view::npos) return malformed(line, "space in URL (write it as %20)");
  const std::string_view rest = text.substr(scheme.size() + 1);
  if (!rest.starts_with("//")) return malformed(line, "URL has no host");
  const std::string_view authority = rest.substr(2, rest.find_first_of("/?#", 2) - 2);
  const std::optional<std::string_view> host = host_of(authority);
  if (!host) return malformed(line, "URL has a malformed host or port");
  if (host->empty()) return malformed(line, "URL has no host");
  line.kind = SourceKind::kHttp;
  line.location = line.text;
  return line;
}

/// file:///abs/path, file://localhost/abs/path or file:/abs/path, decoded
/// into the local path. Query and fragment are dropped.
SourceLine classify_file_url(SourceLine line) {
  const std::string_view text = line.text;
  if (text.find(' ') != std::string_view::npos) return malformed(line, "space in URL (write it as %20)");
  std::string_view path = text.substr(std::string_view("file:").size());
  if (path.starts_with("//")) {
    const std::string_view host = path.substr(2, path.find('/', 2) - 2);
    if (!host.empty() && !iequals(host, "localhost")) {
      return malformed(line, "file URL names host '" + std::string(host) +
                                 "' (only file:///path and file://localhost/path are local)");
    }
    path.remove_prefix(2 + host.size());
  }
  path = path.substr(0, path.find_first_of("?#"));
  if (!path.starts_with('/')) return malformed(line, "file URL has no absolute path");
  std::optional<std::string> decoded = percent_decode(path);
  if (!decoded) return malformed(line, "file URL has a malformed %-escape");
  if (std::size_t at = find_control(*decoded); at != std::string::npos) {
    return malformed(line, "file URL path decodes to a " + describe_control(*decoded, at));
  }
  line.kind = SourceKind::kFile;
  line.location = std::move(*decoded);
  return line;
}

}  // namespace

SourceLine parse_source_line(std::string_view text, std::uint64_t line_number) {
  SourceLine line;
  line.line_number = line_number;
  line.text = std::string(trim(text));
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
  if (iequals(scheme, "http") || iequals(scheme, "https")) return classify_http(std::move(line), scheme);
  if (iequals(scheme, "file")) return classify_file_url(std::move(line));
  const std::string why =
      "unsupported scheme '" + std::string(scheme) + "' (only http, https, file and local paths)";
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

std::optional<SourceLine> SourceList::Next() {
  std::string line;
  errno = 0;
  while (std::getline(in_, line)) {
    ++line_number_;
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
