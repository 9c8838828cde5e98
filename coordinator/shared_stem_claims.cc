#include "coordinator/shared_stem_claims.h"

#include "coordinator/redis_batch.h"
#include "shared/output_names.h"

namespace thumbmill {
namespace {

// KEYS: the claims hash. ARGV: stem_key(stem), source. 1: the source's.
const RedisScript kClaim(R"lua(
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then return 1 end
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 1 end
return 0
)lua");

}  // namespace

RedisStemClaims::RedisStemClaims(RedisAddress address, const std::string& target)
    : address_(std::move(address)), key_("thumbmill:stems:{" + target + "}") {}

Result<bool> RedisStemClaims::Claim(std::string_view stem, std::string_view source) {
  // One try on the connection there is, one on a new one: a server restarted
  // since the last claim is not a failure of this source.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!conn_ || conn_->broken()) {
      auto c = RedisConnection::Connect(address_, kRedisTimeout);
      if (!c.ok()) return c.status();
      conn_ = std::make_unique<RedisConnection>(std::move(*c));
    }
    auto r = conn_->Eval(kClaim, {key_}, {stem_key(stem), std::string(source)});
    if (r.ok()) return r->integer() == 1;
    if (r.status().code() != Code::kNetwork || attempt == 1) return r.status();
  }
  return Status(Code::kInternal, "unreachable");
}

}  // namespace thumbmill
