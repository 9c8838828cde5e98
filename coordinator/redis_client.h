// A Redis connection for the distributed mode (redis_batch.h), over hiredis
// 0.14 from Debian 12: blocking calls with a timeout, binary-safe argument
// vectors, replies owned by an object, pipelining, and Lua scripts loaded
// once per connection and then run by digest (EVALSHA).
//
// Errors are Status values: kNetwork when the connection is lost, refused
// or timed out (the connection is then broken() and must be replaced: a
// reply may have been lost mid-way), transient server
// states (LOADING after a restart, BUSY, TRYAGAIN) are kNetwork too so the
// caller retries them the same way; any other error reply is kInternal with
// the server's words.
//
// Not thread-safe: one connection per thread.
#pragma once

#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/status.h"

namespace thumbmill {

/// redis://[:password@]host[:port]/batch, or with "user:password@" (Redis
/// 6 ACL users). The batch name is 1-64 of [A-Za-z0-9._-].
struct RedisAddress {
  std::string host;
  int port = 6379;
  std::string user;
  std::string password;
  std::string batch;
  /// The URL without its password, for messages.
  std::string display() const;
};

/// kInvalidArgument with the reason for anything else.
Result<RedisAddress> parse_redis_url(std::string_view url);

/// A read-only view of one reply (or one element of an array reply).
class ReplyView {
 public:
  ReplyView() = default;
  explicit ReplyView(const redisReply* r) : r_(r) {}
  bool nil() const { return !r_ || r_->type == REDIS_REPLY_NIL; }
  bool is_array() const { return r_ && r_->type == REDIS_REPLY_ARRAY; }
  bool is_integer() const { return r_ && r_->type == REDIS_REPLY_INTEGER; }
  bool is_string() const { return r_ && (r_->type == REDIS_REPLY_STRING || r_->type == REDIS_REPLY_STATUS); }
  /// An integer reply, or a string holding one (XPENDING counts); 0 else.
  long long integer() const;
  /// A string or status reply; "" for anything else.
  std::string_view str() const;
  std::size_t size() const { return is_array() ? r_->elements : 0; }
  ReplyView operator[](std::size_t i) const { return i < size() ? ReplyView(r_->element[i]) : ReplyView(); }
  /// In a flat [name, value, name, value, ...] array (XINFO, HGETALL):
  /// the value after `name`.
  ReplyView field(std::string_view name) const;

 private:
  const redisReply* r_ = nullptr;
};

/// An owned reply.
class Reply {
 public:
  Reply() = default;
  explicit Reply(redisReply* r) : r_(r) {}
  ReplyView view() const { return ReplyView(r_.get()); }
  ReplyView operator[](std::size_t i) const { return view()[i]; }
  std::size_t size() const { return view().size(); }
  long long integer() const { return view().integer(); }
  std::string_view str() const { return view().str(); }
  bool nil() const { return view().nil(); }

 private:
  struct Free {
    void operator()(redisReply* r) const { freeReplyObject(r); }
  };
  std::unique_ptr<redisReply, Free> r_;
};

/// A Lua script: its text and SHA-1 digest (computed once).
class RedisScript {
 public:
  explicit RedisScript(std::string text);
  const std::string& text() const { return text_; }
  const std::string& sha1() const { return sha1_; }

 private:
  std::string text_;
  std::string sha1_;
};

class RedisConnection {
 public:
  /// Connects, authenticates (when the address has a password) and sets
  /// `timeout` for every later reply. kNetwork when the server cannot be
  /// reached; kInvalidArgument when AUTH is refused.
  static Result<RedisConnection> Connect(const RedisAddress& address, std::chrono::milliseconds timeout);

  RedisConnection(RedisConnection&&) noexcept = default;
  RedisConnection& operator=(RedisConnection&&) noexcept = default;

  /// One command and its reply.
  Result<Reply> Command(const std::vector<std::string>& args);
  /// Runs `script` by its digest, loading it first on this connection.
  Result<Reply> Eval(const RedisScript& script, const std::vector<std::string>& keys,
                     const std::vector<std::string>& args);

  /// Pipelining: Append any number of commands, then read their replies in
  /// order with GetReply.
  void Append(const std::vector<std::string>& args);
  /// A script in a pipeline: by digest when loaded here, else its text.
  void AppendEval(const RedisScript& script, const std::vector<std::string>& keys,
                  const std::vector<std::string>& args);
  /// Loads `script` on this connection (once; a new connection loads again,
  /// which also covers a restarted server).
  Status Load(const RedisScript& script);
  Result<Reply> GetReply();

  /// The connection failed; it must be replaced.
  bool broken() const { return !ctx_ || ctx_->err != 0; }
  /// Sets the reply timeout (a blocking XREADGROUP needs more than its BLOCK).
  void SetTimeout(std::chrono::milliseconds timeout);

 private:
  struct Free {
    void operator()(redisContext* c) const { redisFree(c); }
  };
  explicit RedisConnection(redisContext* c) : ctx_(c) {}
  Status ConnectionError() const;
  /// Turns an error reply into a Status; ok for any other reply.
  static Status ReplyStatus(const Reply& reply);

  std::unique_ptr<redisContext, Free> ctx_;
  std::vector<std::string> loaded_;  // digests of scripts loaded here
};

}  // namespace thumbmill
