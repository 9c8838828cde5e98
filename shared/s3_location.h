// S3Location: an object or a prefix in an S3-compatible store, as users
// write it: s3://bucket/key. The key is taken verbatim (any UTF-8 but
// control characters; spaces, unicode, "+=&" included): it is percent-encoded
// only when a request is made (shared/s3_request.h), never in the report.
#pragma once

#include <string>
#include <string_view>

#include "shared/status.h"

namespace thumbmill {

struct S3Location {
  std::string bucket;
  std::string key;  // an object key, or a prefix ("" or ending in '/': a "directory")

  /// "s3://bucket/key".
  std::string url() const { return "s3://" + bucket + "/" + key; }
  bool operator==(const S3Location&) const = default;
};

/// Whether `text` starts with the s3:// scheme (any case).
bool is_s3_url(std::string_view text);

/// Parses "s3://bucket" or "s3://bucket/key". The bucket follows S3's naming
/// rules (3-63 characters of a-z 0-9 . -, starting and ending with a letter or
/// digit, no ".."); the key is everything after the first '/' after it,
/// unchanged ("s3://b" and "s3://b/" both give the key ""). kInvalidArgument
/// naming what is wrong otherwise (no bucket, a bad bucket name, a control
/// character in the key, a key over 1024 bytes, a key that is not UTF-8, which
/// S3 refuses); control characters in the message are shown as \xHH.
Result<S3Location> parse_s3_url(std::string_view text);

}  // namespace thumbmill
