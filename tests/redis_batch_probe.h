// What the redis unit tests (redis_test.cc, redis_feed_test.cc) need beside
// BatchStore itself: a batch on a RedisTestServer, jobs to add, and a look
// at the server's own view of it (XPENDING, XLEN, XRANGE) that does not go
// through the code under test. Also a way to age a pending entry (XCLAIM
// ... IDLE to its own owner) so a claim time passes without waiting for it.
#pragma once

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "coordinator/redis_batch.h"
#include "tests/redis_test_server.h"

namespace thumbmill::testing {

inline std::string image_url(int i) { return "http://127.0.0.1/img-" + std::to_string(i) + ".jpg"; }

inline BatchStore::Entry job_entry(const std::string& url, std::uint64_t line) {
  BatchStore::Entry e;
  e.digest = source_digest(url);
  e.job.text = url;
  e.job.line = line;
  return e;
}

/// A connected store on `batch`, its group made.
inline BatchStore open_batch(const RedisTestServer& redis, const std::string& batch) {
  auto address = parse_redis_url(redis.url(batch));
  REQUIRE(address.ok());
  auto store = BatchStore::Connect(*address);
  REQUIRE_MESSAGE(store.ok(), store.status().ToString());
  REQUIRE(store->EnsureGroup().ok());
  return std::move(*store);
}

/// Adds `urls` as jobs (lines 1, 2, ...); how many were new.
inline long long add_urls(BatchStore& store, const std::vector<std::string>& urls) {
  std::vector<BatchStore::Entry> entries;
  for (std::size_t i = 0; i < urls.size(); ++i) entries.push_back(job_entry(urls[i], i + 1));
  store.AppendAdd(entries);
  auto added = store.CollectReplies(1);
  REQUIRE_MESSAGE(added.ok(), added.status().ToString());
  return *added;
}

inline std::vector<std::string> urls(int first, int count) {
  std::vector<std::string> out;
  for (int i = first; i < first + count; ++i) out.push_back(image_url(i));
  return out;
}

/// A command straight to the server.
inline Reply raw(BatchStore& store, const std::vector<std::string>& args) {
  auto r = store.connection().Command(args);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  return std::move(*r);
}

inline long long xlen(BatchStore& store, const std::string& key) { return raw(store, {"XLEN", key}).integer(); }

/// The server's pending entries list, oldest first.
struct PendingEntry {
  std::string id, owner;
  long long idle_ms = 0, deliveries = 0;
};
inline std::vector<PendingEntry> pending(BatchStore& store) {
  Reply r = raw(store, {"XPENDING", store.keys().jobs, BatchKeys::kGroup, "-", "+", "100000"});
  std::vector<PendingEntry> out;
  for (std::size_t i = 0; i < r.size(); ++i)
    out.push_back({std::string(r[i][0].str()), std::string(r[i][1].str()), r[i][2].integer(), r[i][3].integer()});
  return out;
}
inline long long pending_count(BatchStore& store, const std::string& consumer) {
  long long n = 0;
  for (const PendingEntry& p : pending(store)) n += p.owner == consumer;
  return n;
}
inline std::optional<PendingEntry> pending_entry(BatchStore& store, const std::string& id) {
  for (const PendingEntry& p : pending(store))
    if (p.id == id) return p;
  return std::nullopt;
}

/// Makes pending entry `id` look idle for `idle_ms`, leaving its owner and
/// delivery count as they are.
inline void age(BatchStore& store, const std::string& id, long long idle_ms) {
  auto p = pending_entry(store, id);
  REQUIRE_MESSAGE(p, "not pending: " << id);
  raw(store, {"XCLAIM", store.keys().jobs, BatchKeys::kGroup, p->owner, "0", id, "IDLE", std::to_string(idle_ms),
              "JUSTID"});
}

/// The consumers of the group.
inline std::vector<std::string> consumers(BatchStore& store) {
  Reply r = raw(store, {"XINFO", "CONSUMERS", store.keys().jobs, BatchKeys::kGroup});
  std::vector<std::string> out;
  for (std::size_t i = 0; i < r.size(); ++i) out.emplace_back(r[i].field("name").str());
  return out;
}

/// The results stream's entries: their "r" lines and "job" ids, in order.
struct ResultEntry {
  std::string job, json;
};
inline std::vector<ResultEntry> result_entries(BatchStore& store) {
  Reply r = raw(store, {"XRANGE", store.keys().results, "-", "+"});
  std::vector<ResultEntry> out;
  for (std::size_t i = 0; i < r.size(); ++i)
    out.push_back({std::string(r[i][1].field("job").str()), std::string(r[i][1].field("r").str())});
  return out;
}

inline BatchCounts counts(BatchStore& store) {
  auto c = store.Counts();
  REQUIRE_MESSAGE(c.ok(), c.status().ToString());
  return *c;
}

inline Completion ok_completion(const BatchJob& job) {
  return {job.id, R"({"url":")" + job.text + R"(","ok":true})", "ok", false, {}};
}

}  // namespace thumbmill::testing
