// SharedStemClaims: who owns which output stem when several writers share an
// --out bucket at once (the nodes of one batch, redis_batch.h).
//
// In a directory the file system arbitrates (shared/stem_claims.h: a claim
// file made with link(2), on one machine or a shared file system). A bucket
// cannot: S3 has no create-if-absent that every store honours, and the
// listing taken at start (s3_output_index.h) knows nothing of what another
// node names a minute later. So the nodes of a batch claim stems in Redis,
// first come first served, for good, in one hash per --out target (not per
// batch: two batches into one prefix share it too). The same rules as a
// claim file: a stem owned by another source is never this one's; one owned
// by this source is its again; compared without case.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "coordinator/redis_client.h"
#include "shared/status.h"

namespace thumbmill {

class SharedStemClaims {
 public:
  virtual ~SharedStemClaims() = default;
  /// true: `source` owns `stem` (now or before); false: another source does.
  /// kNetwork when the registry cannot be asked now.
  virtual Result<bool> Claim(std::string_view stem, std::string_view source) = 0;
};

/// The claims of `target` ("s3://bucket/prefix/") in the Redis at
/// `address`, over a connection of its own (made again after a failure).
class RedisStemClaims : public SharedStemClaims {
 public:
  RedisStemClaims(RedisAddress address, const std::string& target);
  Result<bool> Claim(std::string_view stem, std::string_view source) override;
  /// The hash that holds the claims.
  const std::string& key() const { return key_; }

 private:
  RedisAddress address_;
  std::string key_;
  std::unique_ptr<RedisConnection> conn_;
};

}  // namespace thumbmill
