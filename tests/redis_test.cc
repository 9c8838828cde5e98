// The Redis client (coordinator/redis_client.h) and the batch operations
// (coordinator/redis_batch.h) against a real redis-server on loopback.
#include <doctest/doctest.h>

#include "coordinator/redis_batch.h"
#include "coordinator/redis_client.h"
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

}  // namespace
}  // namespace thumbmill
