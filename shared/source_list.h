// SourceList: reads the list of sources one line at a time, so a list of a
// million lines starts producing thumbnails at once and is never held whole.
//
// A line is an http:// or https:// URL, a file:// URL, or a local path.
// Blank lines and lines starting with '#' (after leading blanks) are skipped;
// surrounding whitespace is trimmed. A line that is none of these (another
// scheme, a URL without a host, a control character, too long) is returned
// as an error entry carrying its line number, so it can be reported as one
// failed source while the run goes on.
#pragma once

#include <cstdint>
#include <istream>
#include <memory>
#include <optional>
#include <string>

#include "shared/status.h"

namespace thumbmill {

enum class SourceKind { kHttp, kFile };

/// Longest accepted source, in bytes (a line longer than this is an error).
inline constexpr std::size_t kMaxSourceLength = 3000;

struct SourceLine {
  std::uint64_t line_number = 0;  // 1-based
  std::string text;               // the trimmed line as written
  // When `status` is ok:
  SourceKind kind = SourceKind::kHttp;
  std::string location;  // the URL for kHttp; the decoded local path for kFile
  Status status;         // not ok: the line is malformed; message says why
};

class SourceList {
 public:
  /// Reads from `in`, which must outlive this object.
  explicit SourceList(std::istream& in) : in_(in) {}
  /// Opens `path`, or standard input for "-".
  static Result<std::unique_ptr<SourceList>> Open(const std::string& path);

  /// The next non-blank, non-comment line; nullopt at the end of the list.
  std::optional<SourceLine> Next();
  /// Set when reading the list itself failed (not a malformed line).
  const Status& read_status() const { return read_status_; }

 private:
  std::unique_ptr<std::istream> owned_;
  std::istream& in_;
  std::uint64_t line_number_ = 0;
  Status read_status_;
};

/// Classifies one trimmed line (the work behind Next()).
SourceLine parse_source_line(std::string_view text, std::uint64_t line_number);

}  // namespace thumbmill
