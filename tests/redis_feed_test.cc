// RedisFeed (coordinator/redis_feed.h) against a real redis-server: a node's
// share of a batch as the coordinator's loop sees it (TryNext, wait_fd,
// set_window, Settle, done, Close), checked against the server's own view
// of the batch (tests/redis_batch_probe.h), and across a server restart.
#include <doctest/doctest.h>
#include <poll.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "coordinator/redis_feed.h"
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
using testing::open_batch;
using testing::pending_count;
using testing::result_entries;
using testing::urls;
using testing::xlen;

using Clock = std::chrono::steady_clock;

NodeSettings node_settings(const testing::RedisTestServer& redis, const std::string& batch,
                           const std::string& consumer) {
  NodeSettings s;
  auto address = parse_redis_url(redis.url(batch));
  REQUIRE(address.ok());
  s.address = *address;
  s.host = "redis-feed-test-host";  // no real node of this machine is its sibling
  s.consumer = consumer;
  s.claim_idle = 60s;  // nothing is claimed by time unless a test says so
  return s;
}

/// A feed on `settings`' batch with `window`, set at once as the loop does.
std::unique_ptr<RedisFeed> start_feed(const NodeSettings& settings, std::size_t window) {
  auto store = BatchStore::Connect(settings.address);
  REQUIRE(store.ok());
  REQUIRE(store->EnsureGroup().ok());
  auto feed = std::make_unique<RedisFeed>(settings, std::move(*store));
  feed->set_window(window);
  return feed;
}

/// The next line, waiting on wait_fd() as the loop's poll does; nullopt
/// when the feed is done, or when nothing came within `timeout` (a wake-up
/// the feed failed to give counts as nothing).
std::optional<SourceLine> next_line(RedisFeed& feed, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto line = feed.TryNext()) return line;
    if (feed.done()) return std::nullopt;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{feed.wait_fd(), POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    REQUIRE(ready >= 0);
    if (ready == 0) return std::nullopt;  // not woken: what came meanwhile does not count
  }
}

SourceResult ok_result(const SourceLine& line) {
  SourceResult r;
  r.url = line.display;
  r.line = line.line_number;
  r.ok = true;
  r.ticket = line.ticket;
  return r;
}

/// The "url" of each result line, with how often it occurs.
std::map<std::string, int> result_urls(BatchStore& probe) {
  std::map<std::string, int> seen;
  for (const auto& e : result_entries(probe)) ++seen[nlohmann::json::parse(e.json).value("url", "")];
  return seen;
}

std::map<std::string, int> each_once(const std::vector<std::string>& list) {
  std::map<std::string, int> m;
  for (const std::string& u : list) m[u] = 1;
  return m;
}

TEST_CASE("RedisFeed: wakes its poll, holds at most its window, records each settled result once") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  const std::vector<std::string> all = urls(1, 12);
  BatchStore probe = open_batch(redis, "feed");
  add_urls(probe, all);
  const NodeSettings settings = node_settings(redis, "feed", "unit:1");
  auto feed = start_feed(settings, 3);
  REQUIRE(feed->wait_fd() >= 0);
  long long most_pending = 0;
  const auto sample = [&] {
    most_pending = std::max(most_pending, pending_count(probe, settings.consumer));
    return most_pending;
  };
  std::deque<SourceLine> in_hand;
  std::string interrupted;  // the source handed back once
  int handed = 0, settled = 0;
  while (handed < 13 || !in_hand.empty()) {  // 12 sources, one of them handed out twice
    if (handed < 13 && in_hand.size() < 3) {
      auto line = next_line(*feed);
      REQUIRE(line);
      ++handed;
      CHECK(sample() <= 3);
      in_hand.push_back(std::move(*line));
      if (in_hand.size() < 3 && handed < 13) continue;
    }
    if (in_hand.size() == 3) {
      // The loop holds three: the feed takes no fourth, however long it waits.
      const auto until = Clock::now() + 300ms;
      while (Clock::now() < until) {
        sample();
        std::this_thread::sleep_for(10ms);  // sampling, not waiting for an event
      }
      CHECK(most_pending <= 3);
      CHECK_FALSE(feed->TryNext());
    }
    SourceLine first = std::move(in_hand.front());
    in_hand.pop_front();
    if (interrupted.empty() && settled == 4) {
      // The run stopped before this one finished: handed back, not recorded.
      interrupted = first.text;
      const long long length = xlen(probe, probe.keys().jobs);
      SourceResult r = ok_result(first);
      r.ok = false;
      r.code = Code::kInterrupted;
      feed->Settle(r);
      REQUIRE(testing::eventually([&] { return xlen(probe, probe.keys().jobs) == length + 1; }, 10s));
      CHECK(counts(probe).done() == settled);
      continue;
    }
    feed->Settle(ok_result(first));
    ++settled;
    REQUIRE(testing::eventually([&] { return counts(probe).ok == settled; }, 10s));
  }
  REQUIRE(testing::eventually([&] { return feed->done(); }, 10s));
  CHECK(feed->status().ok());
  CHECK(settled == 12);
  CHECK(most_pending == 3);
  CHECK_FALSE(interrupted.empty());
  CHECK(result_urls(probe) == each_once(all));  // the interrupted one too, once, done on its second take
  const BatchCounts c = counts(probe);
  CHECK(c.ok == 12);
  CHECK(c.pending == 0);
  const NodeTally t = feed->tally();
  CHECK(t.taken == 13);
  CHECK(t.recorded == 12);
  CHECK(t.released == 1);
  CHECK(t.superseded == 0);
  CHECK(feed->Close(5s).ok());
}

TEST_CASE("RedisFeed: takes nothing before the loop has set its window") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  BatchStore probe = open_batch(redis, "window");
  add_urls(probe, urls(1, 20));
  const NodeSettings settings = node_settings(redis, "window", "unit:1");
  auto store = BatchStore::Connect(settings.address);
  REQUIRE(store.ok());
  RedisFeed feed(settings, std::move(*store));
  // Its thread runs (it beats), and keeps its hands empty for a while:
  // the loop may take time to say how many sources it can hold.
  const auto beating = [&] {
    auto nodes = probe.Nodes();
    return nodes.ok() && !nodes->empty() && (*nodes)[0].name == settings.consumer;
  };
  REQUIRE(testing::eventually(beating, 10s));
  long long held_early = 0;
  const auto until = Clock::now() + 500ms;
  while (Clock::now() < until) {
    held_early = std::max(held_early, pending_count(probe, settings.consumer));
    std::this_thread::sleep_for(10ms);  // sampling, not waiting for an event
  }
  CHECK(held_early == 0);
  CHECK_FALSE(feed.TryNext());
  feed.set_window(2);
  REQUIRE(testing::eventually([&] { return pending_count(probe, settings.consumer) == 2; }, 10s));
  auto line = next_line(feed);
  REQUIRE(line);
  CHECK(pending_count(probe, settings.consumer) <= 2);
  feed.Settle(ok_result(*line));
  CHECK(feed.Close(5s).ok());
}

TEST_CASE("RedisFeed: a source settled after another node completed it adds nothing") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  BatchStore probe = open_batch(redis, "late");
  add_urls(probe, {image_url(1)});
  const NodeSettings settings = node_settings(redis, "late", "unit:1");
  auto feed = start_feed(settings, 4);
  auto line = next_line(*feed);
  REQUIRE(line);
  // This node stalls past the claim time; another takes the source over and finishes it.
  age(probe, line->ticket, 120000);
  std::string cursor = "0-0";
  auto other = probe.ClaimIdle("other", 60s, 10, cursor);
  REQUIRE(other.ok());
  REQUIRE(other->size() == 1);
  REQUIRE(probe.Complete("other", {testing::ok_completion((*other)[0])}).ok());
  feed->Settle(ok_result(*line));
  REQUIRE(testing::eventually([&] { return feed->tally().recorded + feed->tally().superseded == 1; }, 10s));
  CHECK(feed->tally().superseded == 1);
  CHECK(feed->tally().recorded == 0);
  CHECK(result_entries(probe).size() == 1);
  CHECK(counts(probe).ok == 1);
  REQUIRE(testing::eventually([&] { return feed->done(); }, 10s));
  CHECK(feed->Close(5s).ok());
}

TEST_CASE("RedisFeed: a source delivered more than --max-deliveries times fails as poison") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  BatchStore probe = open_batch(redis, "poison");
  // Source 1 was taken by three nodes that died with it; source 3 by two.
  add_urls(probe, {image_url(1), image_url(3)});
  auto a = probe.ReadNew("dead-a", 2, 0ms);
  REQUIRE(a.ok());
  REQUIRE(a->size() == 2);
  const BatchJob killer = (*a)[0], survivor = (*a)[1];
  age(probe, killer.id, 100000);
  age(probe, survivor.id, 100000);
  std::string cursor = "0-0";
  REQUIRE(probe.ClaimIdle("dead-b", 5s, 10, cursor)->size() == 2);
  age(probe, killer.id, 100000);
  cursor = "0-0";
  REQUIRE(probe.ClaimIdle("dead-c", 5s, 10, cursor)->size() == 1);
  age(probe, killer.id, 100000);
  age(probe, survivor.id, 100000);
  add_urls(probe, {image_url(2)});  // and a new one, unread
  REQUIRE(testing::pending_entry(probe, killer.id)->deliveries == 3);

  NodeSettings settings = node_settings(redis, "poison", "unit:1");
  settings.claim_idle = 5s;
  settings.max_deliveries = 3;
  auto feed = start_feed(settings, 8);
  std::set<std::string> handed;
  while (auto line = next_line(*feed)) {
    handed.insert(line->text);
    feed->Settle(ok_result(*line));
  }
  REQUIRE(feed->done());
  CHECK(handed == std::set<std::string>{image_url(2), image_url(3)});  // its 3rd delivery is still tried
  const auto results = result_entries(probe);
  REQUIRE(results.size() == 3);
  int poisoned = 0;
  for (const auto& r : results) {
    const auto j = nlohmann::json::parse(r.json);
    if (j.value("error_code", "") != "poison") continue;
    ++poisoned;
    CHECK(r.job == killer.id);
    CHECK(j.value("url", "") == image_url(1));
    CHECK(j.value("status", "") == "failed");
  }
  CHECK(poisoned == 1);
  Reply dead = testing::raw(probe, {"XRANGE", probe.keys().dead, "-", "+"});
  REQUIRE(dead.size() == 1);
  CHECK(dead[0][1].field("job").str() == killer.id);
  CHECK(dead[0][1].field("s").str() == image_url(1));
  CHECK(dead[0][1].field("deliveries").integer() == 4);
  const BatchCounts c = counts(probe);
  CHECK(c.poison == 1);
  CHECK(c.failed == 1);
  CHECK(c.ok == 2);
  CHECK(c.pending == 0);
  CHECK(feed->tally().poison == 1);
  bool said = false;
  while (auto notice = feed->TakeNotice()) said = said || notice->find("[poison]") != std::string::npos;
  CHECK(said);
  CHECK(feed->Close(5s).ok());
}

TEST_CASE("RedisFeed: a node restarted here first finishes what it and dead nodes of this machine held") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  BatchStore probe = open_batch(redis, "restarted");
  add_urls(probe, urls(1, 7));
  const NodeSettings settings = node_settings(redis, "restarted", "unit:1");
  // An earlier node under this very name (the pid reused), one that died on
  // this machine 5 s ago, and one that died on another machine.
  auto own = probe.ReadNew(settings.consumer, 1, 0ms);
  auto dead = probe.ReadNew("unit:dead", 2, 0ms);
  auto elsewhere = probe.ReadNew("far:dead", 1, 0ms);
  REQUIRE(own.ok());
  REQUIRE(dead.ok());
  REQUIRE(elsewhere.ok());
  const long long now_ms = counts(probe).server_ms;
  const auto beat = [&](const std::string& node, const std::string& host) {
    const nlohmann::json j = {{"host", host}, {"pid", 1}, {"boot_id", "an earlier boot"}, {"start_ticks", 1},
                              {"state", "working"}};
    testing::raw(probe, {"HSET", probe.keys().nodes, node, j.dump()});
    testing::raw(probe, {"ZADD", probe.keys().beats, std::to_string(now_ms - 5000), node});
  };
  beat("unit:dead", settings.host);
  beat("far:dead", "elsewhere");
  auto feed = start_feed(settings, 5);  // room for more than those three
  // Each job another process held comes alone and first (it may be what
  // killed that process): the next is taken once it is settled. New jobs
  // may come alongside.
  const std::set<std::string> redelivered{(*own)[0].text, (*dead)[0].text, (*dead)[1].text};
  std::set<std::string> seen;
  std::vector<SourceLine> lines;
  for (int guard = 0; seen.size() < redelivered.size() && guard < 20; ++guard) {
    auto line = next_line(*feed);
    INFO("seen " << seen.size() << ", others " << lines.size());
    REQUIRE(line);
    if (guard == 0) CHECK(line->text == (*own)[0].text);  // its own first
    if (redelivered.count(line->text)) {
      CHECK(seen.insert(line->text).second);
      feed->Settle(ok_result(*line));
    } else {
      lines.push_back(std::move(*line));
    }
  }
  CHECK(seen == redelivered);
  const auto names = testing::consumers(probe);
  CHECK(std::count(names.begin(), names.end(), "unit:dead") == 0);  // nothing left pending for it
  CHECK(pending_count(probe, "far:dead") == 1);  // another machine's: claimed after --claim-idle only
  CHECK(feed->tally().claimed == 2);
  bool said = false;
  while (auto notice = feed->TakeNotice()) said = said || notice->find("unit:dead") != std::string::npos;
  CHECK(said);
  for (const SourceLine& line : lines) feed->Settle(ok_result(line));
  REQUIRE(probe.Complete("far:dead", {testing::ok_completion((*elsewhere)[0])}).ok());
  while (auto line = next_line(*feed)) feed->Settle(ok_result(*line));
  REQUIRE(feed->done());
  CHECK(result_urls(probe) == each_once(urls(1, 7)));
  CHECK(feed->Close(5s).ok());
}

TEST_CASE("RedisFeed: Close hands back what was read but not handed out, and keeps what was") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  BatchStore probe = open_batch(redis, "close");
  add_urls(probe, urls(1, 5));
  const NodeSettings settings = node_settings(redis, "close", "unit:1");
  auto feed = start_feed(settings, 4);
  auto first = next_line(*feed);
  auto second = next_line(*feed);
  REQUIRE(first);
  REQUIRE(second);
  feed->Settle(ok_result(*first));
  // The fifth source comes in the room the first left.
  REQUIRE(testing::eventually([&] { return counts(probe).ok == 1 && !counts(probe).unread; }, 10s));
  REQUIRE(testing::eventually([&] { return pending_count(probe, settings.consumer) == 4; }, 10s));
  // The loop never finishes the second: at Close it is still in its hands.
  REQUIRE(feed->Close(5s).ok());
  CHECK(feed->tally().released == 3);
  const auto left = testing::pending(probe);
  REQUIRE(left.size() == 1);
  CHECK(left[0].id == second->ticket);  // claimed after --claim-idle elsewhere
  auto others = probe.ReadNew("other", 10, 0ms);
  REQUIRE(others.ok());
  std::set<std::string> texts;
  for (const BatchJob& j : *others) texts.insert(j.text);
  CHECK(texts == std::set<std::string>{image_url(3), image_url(4), image_url(5)});
  CHECK(counts(probe).ok == 1);
}

TEST_CASE("RedisFeed: survives a redis-server kill and restart; every result recorded exactly once") {
  testing::RedisTestServer redis;
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason());
  const std::vector<std::string> all = urls(1, 20);
  BatchStore probe = open_batch(redis, "restart");
  add_urls(probe, all);
  const NodeSettings settings = node_settings(redis, "restart", "unit:1");
  auto feed = start_feed(settings, 4);
  int settled = 0;
  while (settled < 8) {
    auto line = next_line(*feed);
    REQUIRE(line);
    feed->Settle(ok_result(*line));
    ++settled;
  }
  REQUIRE(testing::eventually([&] { return counts(probe).ok == 8; }, 10s));
  // Four in hand (ready, not yet handed out), so the feed is not reading
  // when the server goes. (Counted by the feed: the server's pending count
  // may include a reply still on its way, which a killed server's reset
  // connection would lose; those would wait for --claim-idle.)
  REQUIRE(testing::eventually([&] { return feed->tally().taken == 12; }, 10s));
  CHECK(pending_count(probe, settings.consumer) == 4);
  redis.Kill();
  int while_down = 0;
  while (auto line = next_line(*feed, 500ms)) {
    feed->Settle(ok_result(*line));
    ++while_down;
  }
  CHECK(while_down == 4);
  CHECK_FALSE(feed->done());
  redis.Restart();
  REQUIRE(probe.Reconnect().ok());
  REQUIRE(testing::eventually([&] { return counts(probe).ok == 12; }, 15s));
  settled += while_down;
  while (auto line = next_line(*feed, 15s)) {
    feed->Settle(ok_result(*line));
    ++settled;
  }
  REQUIRE(feed->done());
  CHECK(feed->status().ok());
  CHECK(settled == 20);
  CHECK(result_urls(probe) == each_once(all));
  const BatchCounts c = counts(probe);
  CHECK(c.ok == 20);
  CHECK(c.pending == 0);
  const NodeTally t = feed->tally();
  CHECK(t.reconnects >= 1);
  CHECK(t.recorded == 20);
  CHECK(t.superseded == 0);
  bool lost = false, back = false;
  while (auto notice = feed->TakeNotice()) {
    lost = lost || notice->find("retrying") != std::string::npos;
    back = back || notice->find("connected again") != std::string::npos;
  }
  CHECK(lost);
  CHECK(back);
  CHECK(feed->Close(5s).ok());
}

}  // namespace
}  // namespace thumbmill
