// s3://bucket/key parsing: S3's bucket naming rules and what a key may hold.
#include "shared/s3_location.h"

#include <cstddef>
#include <string>

namespace thumbmill {
namespace {

constexpr std::string_view kScheme = "s3://";
constexpr std::size_t kMaxKeyBytes = 1024;  // S3's limit on a key's UTF-8 bytes

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

/// `text` for a message: control characters as \xHH, so an error never
/// carries a terminal escape or a line break into a log or the report.
std::string printable(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text) {
    if (is_control(c)) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

/// Empty when `bucket` follows S3's rules, else why not.
std::string bucket_problem(std::string_view bucket) {
  if (bucket.size() < 3 || bucket.size() > 63) return "a bucket name has 3 to 63 characters";
  for (char c : bucket) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
    if (!ok) return "a bucket name holds only a-z, 0-9, '.' and '-'";
  }
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(bucket.front()) || !alnum(bucket.back()))
    return "a bucket name starts and ends with a letter or a digit";
  if (bucket.find("..") != std::string_view::npos) return "a bucket name has no '..'";
  return "";
}

/// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates).
bool valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    int extra;
    char32_t cp;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xe0) == 0xc0) { extra = 1; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { extra = 2; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { extra = 3; cp = c & 0x07; }
    else return false;
    if (i + extra >= text.size()) return false;
    for (int k = 1; k <= extra; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr char32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += extra + 1;
  }
  return true;
}

}  // namespace

bool is_s3_url(std::string_view text) {
  if (text.size() < kScheme.size()) return false;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kScheme[i]) return false;
  }
  return true;
}

Result<S3Location> parse_s3_url(std::string_view text) {
  const auto bad = [&](const std::string& why) {
    return Status(Code::kInvalidArgument, "'" + printable(text) + "' is not an S3 location: " + why);
  };
  if (!is_s3_url(text)) return bad("it does not start with s3://");
  const std::string_view rest = text.substr(kScheme.size());
  const std::size_t slash = rest.find('/');
  S3Location location;
  location.bucket = std::string(rest.substr(0, slash));
  if (slash != std::string_view::npos) location.key = std::string(rest.substr(slash + 1));
  if (location.bucket.empty()) return bad("no bucket (s3://BUCKET/KEY)");
  if (const std::string why = bucket_problem(location.bucket); !why.empty())
    return bad("bucket '" + printable(location.bucket) + "': " + why);
  for (unsigned char c : location.key)
    if (is_control(c)) return bad("a control character in the key");
  if (location.key.size() > kMaxKeyBytes) return bad("a key has at most 1024 bytes");
  if (!valid_utf8(location.key)) return bad("the key is not UTF-8");
  return location;
}

}  // namespace thumbmill
