// S3Client: blocking S3 requests for the coordinator, which needs a few
// before and beside its loop: the preflight, the pages of a prefix listing
// (on the lister's thread, coordinator/s3_lister.h), and the small manifest
// records of an S3 output prefix (many at once, on one multi handle).
// Every request is signed by shared/s3_request.h; every connection goes to
// the configured endpoint.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shared/aws_config.h"
#include "shared/s3_listing.h"
#include "shared/s3_location.h"
#include "shared/s3_request.h"
#include "shared/status.h"

namespace thumbmill {

class S3Client {
 public:
  /// `timeout_s`: connect and whole-request limit for each request.
  explicit S3Client(S3Settings settings, int timeout_s = 30);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  const S3Settings& settings() const { return settings_; }

  /// Whether the bucket exists and these credentials may use it, as one
  /// clear message (a HEAD of the bucket; when refused, a one-key listing
  /// for the reason the HEAD's empty body cannot give): kNetwork "bucket 'x':
  /// cannot reach the S3 endpoint http://...: ..." (kTimeout when it did not
  /// answer in time),
  /// kHttpStatus "bucket 'x' does not exist (HTTP 404 NoSuchBucket)",
  /// kHttpStatus "access to bucket 'x' denied: ... (HTTP 403
  /// SignatureDoesNotMatch): check AWS_SECRET_ACCESS_KEY ...".
  Status CheckBucket(std::string_view bucket);

  /// One ListObjectsV2 page. kHttpStatus with s3_error_summary's line for a
  /// refused request; parse_list_objects_v2's error for a body that is not a
  /// page; messages start "listing s3://bucket/prefix: ".
  Result<S3ListPage> ListPage(std::string_view bucket, std::string_view prefix,
                              std::string_view continuation_token, int max_keys = 1000);

  /// The bytes of one object, at most `max_bytes` (kTooLarge past that).
  /// kHttpStatus "GET s3://b/k: HTTP 404 NoSuchKey: ..." when refused.
  Result<std::string> Get(const S3Location& object, std::uint64_t max_bytes);

  /// Many small objects at once (up to `parallel` in flight, on easy handles
  /// of their own), results in the order asked, each as Get's.
  std::vector<Result<std::string>> GetMany(const std::vector<S3Location>& objects,
                                           std::uint64_t max_bytes, int parallel = 16);

  /// Stores `bytes` (tests, and small records).
  Status Put(const S3Location& object, std::string_view bytes, const S3PutFields& fields);

  /// Removes one object (tests).
  Status Delete(const S3Location& object);

  /// Creates a bucket (tests, scripts/demo).
  Status CreateBucket(std::string_view bucket);

 private:
  S3Settings settings_;
  int timeout_s_;
  void* easy_;  // CURL*, reused: one connection for the client's requests
};

}  // namespace thumbmill
