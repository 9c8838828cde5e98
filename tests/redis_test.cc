// The Redis client (coordinator/redis_client.h) and the batch operations
// (coordinator/redis_batch.h) against a real redis-server on loopback.
#include <doctest/doctest.h>

#include "coordinator/batch_commands.h"
#include "coordinator/redis_batch.h"
#include "coordinator/redis_client.h"
#include "coordinator/shared_stem_claims.h"
#include "tests/redis_test_server.h"
#include "tests/skip.h"

namespace thumbmill {
namespace {

TEST_CASE("parse_redis_url: host, port, password, batch") {
  auto a = parse_redis_url("redis://:s%40cret@127.0.0.1:6390/june");
  REQUIRE(a.ok());
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 6390);
  CHECK(a->password == "s@cret");
  CHECK(a->batch == "june");
  CHECK(a->display() == "redis://:***@127.0.0.1:6390/june");
  auto v6 = parse_redis_url("redis://[::1]/b-1.x");
  REQUIRE(v6.ok());
  CHECK(v6->host == "::1");
  CHECK(v6->port == 6379);
  for (const char* bad : {"http://127.0.0.1/b", "redis://127.0.0.1", "redis://127.0.0.1/", "redis://127.0.0.1:0/b",
                          "redis://127.0.0.1:x/b", "redis://127.0.0.1/a/b", "redis://pw@127.0.0.1/b"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_redis_url(bad).ok());
  }
  // The message never repeats the URL: it may hold a password.
  CHECK(parse_redis_url("redis://:hunter2@127.0.0.1/").status().message().find("hunter2") == std::string::npos);
}

TEST_CASE("a connection to a closed port is kNetwork") {
  RedisAddress a{"127.0.0.1", 1, "", "", "b"};
  auto c = RedisConnection::Connect(a, std::chrono::milliseconds(500));
  REQUIRE_FALSE(c.ok());
  CHECK(c.status().code() == Code::kNetwork);
}

TEST_CASE("the test server keeps a batch across a kill and a restart (AOF)") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  auto address = parse_redis_url(redis.url("aof"));
  REQUIRE(address.ok());
  {
    auto store = BatchStore::Connect(*address);
    REQUIRE(store.ok());
    REQUIRE(store->EnsureGroup().ok());
    store->AppendAdd({{source_digest("http://127.0.0.1/a.jpg"), {"", "http://127.0.0.1/a.jpg", 1, "", 1}, ""}});
    auto added = store->CollectReplies(1);
    REQUIRE(added.ok());
    CHECK(*added == 1);
  }
  redis.Kill();
  auto gone = BatchStore::Connect(*address);
  CHECK_FALSE(gone.ok());
  redis.Restart();
  auto store = BatchStore::Connect(*address);
  REQUIRE(store.ok());
  auto counts = store->Counts();
  REQUIRE(counts.ok());
  CHECK(counts->enqueued == 1);
  CHECK(counts->unread);
}

TEST_CASE("AUTH: the URL's password is sent; a wrong or missing one is refused clearly") {
  testing::RedisTestServer redis("pass word@1");
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  auto good = parse_redis_url("redis://:pass%20word%401@127.0.0.1:" + std::to_string(redis.port()) + "/b");
  REQUIRE(good.ok());
  auto store = BatchStore::Connect(*good);
  REQUIRE_MESSAGE(store.ok(), store.status().message());
  CHECK(store->EnsureGroup().ok());
  auto wrong = *good;
  wrong.password = "nope";
  auto refused = BatchStore::Connect(wrong);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == Code::kInvalidArgument);
  CHECK(refused.status().message().find("refused the password") != std::string::npos);
  auto none = *good;
  none.password.clear();
  auto anonymous = BatchStore::Connect(none);
  REQUIRE(anonymous.ok());  // connecting needs no password; commands do
  const Status st = anonymous->EnsureGroup();
  CHECK(st.code() == Code::kInternal);
  CHECK(st.message().find("NOAUTH") != std::string::npos);
}

TEST_CASE("RedisStemClaims: nodes sharing a bucket never give one name to two sources") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  auto address = parse_redis_url(redis.url("claims"));
  REQUIRE(address.ok());
  RedisStemClaims node_a(*address, "s3://thumbs/t/"), node_b(*address, "s3://thumbs/t/");
  RedisStemClaims other_target(*address, "s3://thumbs/u/");
  auto a = node_a.Claim("cat", "http://127.0.0.1/a/cat.jpg");
  REQUIRE(a.ok());
  CHECK(*a);
  auto b = node_b.Claim("CAT", "http://127.0.0.1/b/cat.jpg");  // without case, as on disk
  REQUIRE(b.ok());
  CHECK_FALSE(*b);
  auto again = node_b.Claim("cat", "http://127.0.0.1/a/cat.jpg");  // the owner, from any node
  REQUIRE(again.ok());
  CHECK(*again);
  auto elsewhere = other_target.Claim("cat", "http://127.0.0.1/b/cat.jpg");  // another prefix: free
  REQUIRE(elsewhere.ok());
  CHECK(*elsewhere);
  // A restarted server (AOF) still knows; the claimer connects again by itself.
  redis.Kill();
  auto down = node_b.Claim("dog", "http://127.0.0.1/b/dog.jpg");
  REQUIRE_FALSE(down.ok());
  CHECK(down.status().code() == Code::kNetwork);
  redis.Restart();
  auto after = node_b.Claim("cat", "http://127.0.0.1/b/cat.jpg");
  REQUIRE(after.ok());
  CHECK_FALSE(*after);
}

TEST_CASE("agree_on_output: every node of a batch makes the same thumbnails") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  auto address = parse_redis_url(redis.url("agree"));
  REQUIRE(address.ok());
  auto store = BatchStore::Connect(*address);
  REQUIRE(store.ok());
  Options first;
  first.out_s3 = "s3://thumbs/t/";
  CHECK(agree_on_output(first, *store).ok());
  CHECK(agree_on_output(first, *store).ok());  // the same again
  Options sizes = first;
  sizes.sizes = {{100, 0}};
  const Status differs = agree_on_output(sizes, *store);
  CHECK(differs.code() == Code::kInvalidArgument);
  CHECK(differs.message().find("sizes=100") != std::string::npos);
  Options bucket = first;
  bucket.out_s3 = "s3://thumbs/other/";
  CHECK(agree_on_output(bucket, *store).message().find("s3://thumbs/other/") != std::string::npos);
}

}  // namespace
}  // namespace thumbmill
