// What S3 answers in XML: a ListObjectsV2 page, and an error body. Read
// with libxml2: entities are decoded exactly once (radosgw's continuation
// token is the last key, XML-escaped: "&amp;" must come back as "&"), and
// no DTD or external entity is ever loaded.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shared/status.h"

namespace thumbmill {

struct S3Object {
  std::string key;            // XML entities decoded
  std::uint64_t size = 0;
  std::string etag;           // as sent, quotes included
  std::string last_modified;  // as sent (ISO 8601)
};

struct S3ListPage {
  std::vector<S3Object> objects;
  bool truncated = false;
  std::string next_token;  // NextContinuationToken, entities decoded; "" when not truncated
};

/// Parses a ListBucketResult (ListObjectsV2). kInvalidArgument when the body
/// is not one (an error body, HTML, a truncated document), or says it is
/// truncated without a continuation token (the loop would never end), or
/// holds an entry without a Key or with a Size that is not a number.
Result<S3ListPage> parse_list_objects_v2(std::string_view xml);

/// One line for a failed S3 request: "HTTP 404 NoSuchBucket: The specified
/// bucket does not exist" from an <Error> body, else "HTTP 404". The body's
/// text is used only when it is that XML, never quoted otherwise; control
/// characters become spaces and the message is cut at 200 characters.
std::string s3_error_summary(long http_status, std::string_view body);

}  // namespace thumbmill
