// SourceList: reads the list of sources one line at a time, so a list of a
// million lines starts producing thumbnails at once and is never held whole.
//
// A line is an s3://bucket/key object (the key verbatim: spaces, unicode and
// "+=&" are part of it), an http:// or https:// URL (scheme in any case, a non-empty
// host, no spaces), a file:// URL naming this machine (file:///abs/path,
// file://localhost/abs/path; percent-decoded into the path), or a local path
// (anything without a "scheme:" prefix, relative or absolute, spaces allowed;
// a one-letter prefix like "C:" is not a scheme). A UTF-8 byte order mark on
// line 1 is ignored and CR LF line endings are accepted. Blank lines and
// lines starting with '#' (after leading blanks) are skipped; surrounding
// whitespace is trimmed. A line that is none of these (another scheme, a URL
// without a host, a control character, too long) is returned as an error
// entry carrying its line number, so it can be reported as one failed source
// while the run goes on.
//
// URLs are parsed, checked and normalised by libcurl's URL API (shared/url.h),
// the parser that fetches them: the location of an http(s) line is libcurl's
// normalised URL ("HTTP://h" -> "http://h/", "http://2852039166/" ->
// "http://169.254.169.254/"), and a file URL's path is decoded by libcurl.
#pragma once

#include <cstdint>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "shared/status.h"

namespace thumbmill {

enum class SourceKind { kHttp, kFile, kS3 };

/// Longest accepted source, in bytes (a line longer than this is an error).
inline constexpr std::size_t kMaxSourceLength = 3000;

/// Longest line read, whitespace included: a longer one is an error entry,
/// and reading it holds no more than this (a list with no newline in a
/// gigabyte must not cost a gigabyte).
inline constexpr std::size_t kMaxLineBytes = 64 * 1024;

struct SourceLine {
  std::uint64_t line_number = 0;  // 1-based
  std::string text;               // the trimmed line as written
  // What reports and messages show: for a URL its normalised form, never
  // with a user:password@; for a path the text.
  std::string display;
  // When `status` is ok:
  SourceKind kind = SourceKind::kHttp;
  std::string location;  // the URL for kHttp; the decoded local path for kFile; s3://bucket/key for kS3
  Status status;         // not ok: the line is malformed; message says why
  // Set by a feed that must hear how the source ended (SourceFeed::Settle):
  // a Redis batch's job id. Empty otherwise.
  std::string ticket;
};

class SourceList {
 public:
  /// Reads from `in`, which must outlive this object.
  explicit SourceList(std::istream& in) : in_(in) {}
  /// Opens `path`, or standard input for "-" (not owned, not closed). A file
  /// that cannot be opened is a kIoError naming the path and the reason.
  static Result<std::unique_ptr<SourceList>> Open(const std::string& path);

  /// The next non-blank, non-comment line; nullopt at the end of the list.
  /// Reads only as far as that line: the list is never held whole, nor a
  /// line longer than kMaxLineBytes (read past, and returned as malformed).
  std::optional<SourceLine> Next();
  /// Set when reading the list itself failed (not a malformed line).
  const Status& read_status() const { return read_status_; }

 private:
  SourceList(std::unique_ptr<std::istream> owned, std::string name)
      : owned_(std::move(owned)), in_(*owned_), name_(std::move(name)) {}

  std::unique_ptr<std::istream> owned_;
  /// The next line as `line`, a view into buffer_ valid until the next
  /// call (at most kMaxLineBytes + 1 bytes kept; `too_long` when it had
  /// more); false at the end.
  bool ReadLine(std::string_view& line, bool& too_long);

  std::istream& in_;
  std::string name_ = "the source list";  // for read_status()
  std::uint64_t line_number_ = 0;
  Status read_status_;
  std::string buffer_;  // ReadLine's, kMaxLineBytes + 2 bytes once used
};

/// Classifies one line (the work behind Next()); surrounding whitespace is
/// trimmed first. Error messages begin with "line <line_number>: ".
SourceLine parse_source_line(std::string_view text, std::uint64_t line_number);

}  // namespace thumbmill
