// BatchStore (coordinator/redis_batch.h) against a real redis-server on
// loopback: each guarantee of a batch, one operation at a time, checked
// against the server's own view of the streams (tests/redis_batch_probe.h).
#include <doctest/doctest.h>

#include <algorithm>

#include "coordinator/redis_batch.h"
#include "tests/redis_batch_probe.h"
#include "tests/redis_test_server.h"
#include "tests/skip.h"
#include "tests/test_support.h"

namespace thumbmill {
namespace {

using namespace std::chrono_literals;
using testing::add_urls;
using testing::age;
using testing::counts;
using testing::image_url;
using testing::ok_completion;
using testing::open_batch;
using testing::pending;
using testing::pending_entry;
using testing::result_entries;
using testing::urls;
using testing::xlen;

/// Reads new jobs for `consumer` without waiting; REQUIREs success.
std::vector<BatchJob> read_new(BatchStore& store, const std::string& consumer, std::size_t count) {
  auto jobs = store.ReadNew(consumer, count, 0ms);
  REQUIRE_MESSAGE(jobs.ok(), jobs.status().ToString());
  return std::move(*jobs);
}

std::vector<BatchJob> claim_idle(BatchStore& store, const std::string& consumer, std::chrono::milliseconds min_idle,
                                 std::size_t count = 100) {
  std::string cursor = "0-0";
  auto jobs = store.ClaimIdle(consumer, min_idle, count, cursor);
  REQUIRE_MESSAGE(jobs.ok(), jobs.status().ToString());
  return std::move(*jobs);
}

std::vector<bool> complete(BatchStore& store, const std::string& node, const std::vector<Completion>& completions) {
  auto r = store.Complete(node, completions);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  return *r;
}

bool drained(BatchStore& store) {
  auto d = store.Drained();
  REQUIRE_MESSAGE(d.ok(), d.status().ToString());
  return *d;
}


TEST_CASE("BatchStore: adding a source twice makes one job; a malformed line is a failed result at once") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  BatchStore store = open_batch(redis, "add");
  CHECK(add_urls(store, {image_url(1), image_url(2), image_url(1)}) == 2);  // twice in one call
  CHECK(add_urls(store, {image_url(2), image_url(3)}) == 1);                // again in a later one
  BatchStore::Entry bad;
  bad.digest = source_digest("ftp://nope");
  bad.job.line = 9;
  bad.failed_json = R"({"url":"ftp://nope","ok":false,"error_code":"invalid_argument"})";
  store.AppendAdd({bad, bad});
  store.AppendAdd({bad});
  auto added = store.CollectReplies(2);
  REQUIRE(added.ok());
  CHECK(*added == 1);
  CHECK(xlen(store, store.keys().jobs) == 3);  // the malformed line is no job
  const auto results = result_entries(store);
  REQUIRE(results.size() == 1);
  CHECK(results[0].json == bad.failed_json);
  const BatchCounts c = counts(store);
  CHECK(c.enqueued == 4);
  CHECK(c.failed == 1);
  CHECK(c.ok == 0);
  CHECK(c.unread);
  CHECK(c.waiting() == 3);
  // The jobs carry their text and line number.
  auto jobs = read_new(store, "a", 10);
  REQUIRE(jobs.size() == 3);
  CHECK(jobs[0].text == image_url(1));
  CHECK(jobs[0].line == 1);
  CHECK(jobs[2].text == image_url(3));
  CHECK(jobs[2].line == 2);
}

TEST_CASE("BatchStore: Complete records exactly one result per job, however often it is completed") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  BatchStore store = open_batch(redis, "once");
  add_urls(store, urls(1, 3));
  auto a = read_new(store, "a", 3);
  REQUIRE(a.size() == 3);
  // Node a stalls past the claim time; b takes job 0 over and finishes it.
  age(store, a[0].id, 120000);
  auto b = claim_idle(store, "b", 60s);
  REQUIRE(b.size() == 1);
  CHECK(b[0].id == a[0].id);
  CHECK(complete(store, "b", {ok_completion(b[0])}) == std::vector<bool>{true});
  // a wakes up and completes it late: nothing more is recorded.
  CHECK(complete(store, "a", {ok_completion(a[0])}) == std::vector<bool>{false});
  CHECK(result_entries(store).size() == 1);
  CHECK(counts(store).ok == 1);
  // Job 1: a finishes first after b took it over; b's completion is the late one.
  age(store, a[1].id, 120000);
  REQUIRE(claim_idle(store, "b", 60s).size() == 1);
  CHECK(complete(store, "a", {ok_completion(a[1])}) == std::vector<bool>{true});
  CHECK(complete(store, "b", {ok_completion(a[1])}) == std::vector<bool>{false});
  // Job 2 twice in one pipelined call: the first counts.
  Completion failed = ok_completion(a[2]);
  failed.outcome = "failed";
  CHECK(complete(store, "a", {failed, ok_completion(a[2])}) == std::vector<bool>{true, false});
  const auto results = result_entries(store);
  REQUIRE(results.size() == 3);
  CHECK(results[0].job == a[0].id);
  CHECK(results[1].job == a[1].id);
  CHECK(results[2].job == a[2].id);
  const BatchCounts c = counts(store);
  CHECK(c.ok == 2);
  CHECK(c.failed == 1);
  CHECK(c.poison == 0);
  CHECK(c.pending == 0);
  CHECK(drained(store));
}

TEST_CASE("BatchStore: ClaimIdle takes only jobs idle for min_idle, and counts their deliveries") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  BatchStore store = open_batch(redis, "claim");
  add_urls(store, urls(1, 3));
  auto a = read_new(store, "a", 3);
  REQUIRE(a.size() == 3);
  CHECK(a[0].deliveries == 1);
  CHECK(claim_idle(store, "b", 300ms).empty());  // just read: idle for less than that
  age(store, a[0].id, 10000);
  age(store, a[1].id, 2000);
  auto b = claim_idle(store, "b", 5000ms);
  REQUIRE(b.size() == 1);
  CHECK(b[0].id == a[0].id);
  CHECK(b[0].text == image_url(1));
  CHECK(b[0].deliveries == 2);
  CHECK(pending_entry(store, a[0].id)->owner == "b");
  CHECK(pending_entry(store, a[1].id)->owner == "a");
  // Taken over again and again: each claim is one more delivery.
  age(store, a[0].id, 10000);
  auto c = claim_idle(store, "c", 5000ms);
  REQUIRE(c.size() == 1);
  CHECK(c[0].deliveries == 3);
  CHECK(pending_entry(store, a[0].id)->deliveries == 3);
  REQUIRE(complete(store, "c", {ok_completion(c[0])}) == std::vector<bool>{true});
  // Real time too: job 2, left alone, becomes claimable once 300 ms have passed.
  const auto job2_idle = [&] { return pending_entry(store, a[2].id)->idle_ms >= 300; };
  REQUIRE(testing::eventually(job2_idle, 5s));
  auto d = claim_idle(store, "d", 300ms);
  REQUIRE(d.size() == 2);  // jobs 1 (aged 2 s) and 2
  CHECK(d[0].id == a[1].id);
  CHECK(d[1].id == a[2].id);
  CHECK(d[1].deliveries == 2);
  // A count bounds a claim; the cursor goes on from where it stopped.
  age(store, a[1].id, 10000);
  age(store, a[2].id, 10000);
  std::string cursor = "0-0";
  auto one = store.ClaimIdle("e", 5000ms, 1, cursor);
  REQUIRE(one.ok());
  REQUIRE(one->size() == 1);
  CHECK((*one)[0].id == a[1].id);
  auto next = store.ClaimIdle("e", 5000ms, 1, cursor);
  REQUIRE(next.ok());
  REQUIRE(next->size() == 1);
  CHECK((*next)[0].id == a[2].id);
}

TEST_CASE("BatchStore: Touch keeps a job from being claimed, and never takes one another node took over") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  BatchStore store = open_batch(redis, "touch");
  add_urls(store, urls(1, 2));
  auto a = read_new(store, "a", 2);
  REQUIRE(a.size() == 2);
  age(store, a[0].id, 10000);
  age(store, a[1].id, 10000);
  auto lost = store.Touch("a", {a[0].id});
  REQUIRE(lost.ok());
  CHECK(*lost == 0);
  CHECK(pending_entry(store, a[0].id)->idle_ms < 5000);
  CHECK(pending_entry(store, a[0].id)->deliveries == 1);  // a touch is no delivery
  auto b = claim_idle(store, "b", 5000ms);
  REQUIRE(b.size() == 1);  // only the untouched one
  CHECK(b[0].id == a[1].id);
  // b stalls too; a, still thinking job 1 is its own, touches both.
  age(store, a[1].id, 10000);
  lost = store.Touch("a", {a[0].id, a[1].id});
  REQUIRE(lost.ok());
  CHECK(*lost == 1);
  const auto job1 = pending_entry(store, a[1].id);
  CHECK(job1->owner == "b");         // not taken back
  CHECK(job1->idle_ms >= 10000);     // nor kept fresh for b
  auto c = claim_idle(store, "c", 5000ms);
  REQUIRE(c.size() == 1);
  CHECK(c[0].id == a[1].id);
  // A completed job is lost to a touch too.
  REQUIRE(complete(store, "c", {ok_completion(c[0])}) == std::vector<bool>{true});
  lost = store.Touch("a", {a[1].id});
  REQUIRE(lost.ok());
  CHECK(*lost == 1);
  CHECK_FALSE(pending_entry(store, a[1].id));
}

TEST_CASE("BatchStore: ClaimFrom takes a dead node's jobs and deletes it only once nothing is pending for it") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  BatchStore store = open_batch(redis, "claimfrom");
  add_urls(store, urls(1, 6));
  auto dead = read_new(store, "dead", 5);
  REQUIRE(dead.size() == 5);
  REQUIRE(read_new(store, "alive", 1).size() == 1);
  auto first = store.ClaimFrom("b", "dead", 3);
  REQUIRE(first.ok());
  REQUIRE(first->size() == 3);
  CHECK((*first)[0].id == dead[0].id);
  CHECK((*first)[0].text == image_url(1));
  CHECK((*first)[0].deliveries == 2);
  // Two still pending for it: it stays, and so do they.
  const auto names = testing::consumers(store);
  CHECK(std::count(names.begin(), names.end(), "dead") == 1);
  CHECK(pending(store).size() == 6);
  CHECK(testing::pending_count(store, "dead") == 2);
  CHECK(testing::pending_count(store, "alive") == 1);  // not a dead node's
  auto rest = store.ClaimFrom("b", "dead", 3);
  REQUIRE(rest.ok());
  REQUIRE(rest->size() == 2);
  CHECK((*rest)[1].id == dead[4].id);
  const auto after = testing::consumers(store);
  CHECK(std::count(after.begin(), after.end(), "dead") == 0);
  CHECK(testing::pending_count(store, "b") == 5);
  CHECK(testing::pending_count(store, "alive") == 1);
  CHECK(pending(store).size() == 6);
  // A claim that takes exactly what is left deletes it too (no later claim
  // may come: a consumer would stay in the group for ever).
  auto all = store.ClaimFrom("c", "alive", 1);
  REQUIRE(all.ok());
  CHECK(all->size() == 1);
  const auto last = testing::consumers(store);
  CHECK(std::count(last.begin(), last.end(), "alive") == 0);
}

TEST_CASE("BatchStore: Trim removes acknowledged entries, never a pending or unread one") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  BatchStore store = open_batch(redis, "trim");
  REQUIRE(store.Trim().ok());  // an empty batch
  add_urls(store, urls(1, 6));
  REQUIRE(store.Trim().ok());  // nothing read yet: nothing goes
  CHECK(xlen(store, store.keys().jobs) == 6);
  auto a = read_new(store, "a", 4);
  REQUIRE(a.size() == 4);
  // 0, 1 and 3 done; 2 pending (its node stalled); 4 and 5 unread.
  REQUIRE(complete(store, "a", {ok_completion(a[0]), ok_completion(a[1]), ok_completion(a[3])}) ==
          std::vector<bool>{true, true, true});
  REQUIRE(store.Trim().ok());
  CHECK(xlen(store, store.keys().jobs) == 4);  // 0 and 1 gone; 2 and everything after it kept
  age(store, a[2].id, 10000);
  auto b = claim_idle(store, "b", 5000ms);
  REQUIRE(b.size() == 1);
  CHECK(b[0].id == a[2].id);
  CHECK(b[0].text == image_url(3));
  auto fresh = read_new(store, "b", 10);
  REQUIRE(fresh.size() == 2);
  CHECK(fresh[0].text == image_url(5));
  CHECK(fresh[1].text == image_url(6));
  REQUIRE(complete(store, "b", {ok_completion(b[0]), ok_completion(fresh[0])}) == std::vector<bool>{true, true});
  REQUIRE(store.Trim().ok());
  CHECK(xlen(store, store.keys().jobs) == 1);  // only the one still pending
  auto own = store.ReadOwn("b", 10);
  REQUIRE(own.ok());
  REQUIRE(own->size() == 1);
  CHECK((*own)[0].text == image_url(6));
  REQUIRE(complete(store, "b", {ok_completion(fresh[1])}) == std::vector<bool>{true});
  REQUIRE(store.Trim().ok());
  CHECK(xlen(store, store.keys().jobs) <= 1);
  CHECK(drained(store));
  CHECK(counts(store).ok == 6);
}

TEST_CASE("BatchStore: Release hands a job back, unless it was completed elsewhere meanwhile") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  BatchStore store = open_batch(redis, "release");
  add_urls(store, urls(1, 3));
  auto a = read_new(store, "a", 3);
  REQUIRE(a.size() == 3);
  REQUIRE(store.Release({a[0]}).ok());
  CHECK_FALSE(pending_entry(store, a[0].id));
  auto b = read_new(store, "b", 10);
  REQUIRE(b.size() == 1);
  CHECK(b[0].text == a[0].text);
  CHECK(b[0].line == a[0].line);
  CHECK(b[0].id != a[0].id);
  // Job 1: b took it over and finished it while a was stopping.
  age(store, a[1].id, 10000);
  REQUIRE(claim_idle(store, "b", 5000ms).size() == 1);
  REQUIRE(complete(store, "b", {ok_completion(a[1])}) == std::vector<bool>{true});
  const long long length = xlen(store, store.keys().jobs);
  REQUIRE(store.Release({a[1], a[2]}).ok());
  CHECK(xlen(store, store.keys().jobs) == length + 1);  // job 2 only
  auto again = read_new(store, "c", 10);
  REQUIRE(again.size() == 1);
  CHECK(again[0].text == a[2].text);
  REQUIRE(complete(store, "b", {ok_completion(b[0])}) == std::vector<bool>{true});
  REQUIRE(complete(store, "c", {ok_completion(again[0])}) == std::vector<bool>{true});
  CHECK(drained(store));
  CHECK(counts(store).ok == 3);
  CHECK(result_entries(store).size() == 3);
}

TEST_CASE("BatchStore: Drained only when nothing is pending, nothing unread and nobody adding") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  BatchStore store = open_batch(redis, "drained");
  store.AppendLease("enqueuer-1", 60s);
  REQUIRE(store.CollectReplies(1).ok());
  CHECK_FALSE(drained(store));  // nothing yet, but it is being added
  CHECK(counts(store).enqueuers == 1);
  add_urls(store, urls(1, 2));
  store.AppendLease("enqueuer-1", 0ms);
  REQUIRE(store.CollectReplies(1).ok());
  CHECK_FALSE(drained(store));  // unread
  auto a = read_new(store, "a", 1);
  REQUIRE(a.size() == 1);
  CHECK_FALSE(drained(store));  // pending and unread
  auto b = read_new(store, "b", 1);
  REQUIRE(b.size() == 1);
  CHECK_FALSE(counts(store).unread);
  CHECK_FALSE(drained(store));  // pending
  REQUIRE(complete(store, "a", {ok_completion(a[0])}) == std::vector<bool>{true});
  CHECK_FALSE(drained(store));
  REQUIRE(complete(store, "b", {ok_completion(b[0])}) == std::vector<bool>{true});
  CHECK(drained(store));
  // A lease runs out by itself (an enqueuer that died).
  store.AppendLease("enqueuer-2", 300ms);
  REQUIRE(store.CollectReplies(1).ok());
  CHECK_FALSE(drained(store));
  CHECK(testing::eventually([&] { return drained(store); }, 5s));
}

TEST_CASE("BatchStore: ForEachResult walks every result in order, a page at a time") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  BatchStore store = open_batch(redis, "export");
  std::vector<BatchStore::Entry> bad;
  for (int i = 0; i < 25; ++i) {
    BatchStore::Entry e;
    e.digest = source_digest("bad " + std::to_string(i));
    e.failed_json = R"({"i":)" + std::to_string(i) + "}";
    bad.push_back(e);
  }
  store.AppendAdd(bad);
  REQUIRE(store.CollectReplies(1).ok());
  for (std::size_t page : {1, 5, 7, 1000}) {
    CAPTURE(page);
    std::vector<std::string> seen;
    REQUIRE(store.ForEachResult([&](std::string_view line) {
      seen.emplace_back(line);
      return seen.size() > 100 ? Status(Code::kInternal, "the walk goes round") : Status::Ok();
    }, page).ok());
    REQUIRE(seen.size() == 25);
    for (int i = 0; i < 25; ++i) CHECK(seen[i] == R"({"i":)" + std::to_string(i) + "}");
  }
  // The walk stops at the first error of `each`, and returns it.
  int calls = 0;
  Status st = store.ForEachResult([&](std::string_view) {
    return ++calls == 8 ? Status(Code::kIoError, "disk full") : Status::Ok();
  }, 5);
  CHECK(st.code() == Code::kIoError);
  CHECK(calls == 8);
}

}  // namespace
}  // namespace thumbmill
