// queue_bench: the queue's own capacity, with no pipeline behind it.
//
//   queue-bench --queue redis://127.0.0.1:PORT/BATCH [--consumers K]
//               [--mode feed|store] [--window N] [--expect N]
//
// K consumers in threads of this one process take the batch's jobs and
// complete each at once, until the batch is drained:
//   feed   each consumer is a RedisFeed, exactly as a node uses it (its own
//          connection and thread, claim, touch, heartbeat, drain check): the
//          loop side takes lines with TryNext and hands each straight back
//          with Settle, so every completion goes through the same Complete
//          (XACK + result in one Lua step) a node's results go through;
//   store  each consumer calls BatchStore::ReadNew and BatchStore::Complete
//          itself: the same two calls without the feed's thread around them.
// Each completion carries a report line shaped like a real one (three
// thumbnails, HTTP 200, timings), so the results stream takes the memory
// a real batch's would.
//
// Prints one line of key=value pairs (scripts/queue-capacity reads it):
// results, seconds, results_per_s, superseded, consumers, mode. Exits 1
// when the batch's counts do not show exactly `--expect` results.
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/redis_batch.h"
#include "coordinator/redis_feed.h"
#include "coordinator/report.h"

namespace thumbmill {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct Args {
  std::string queue;
  int consumers = 4;
  std::string mode = "feed";
  std::size_t window = 64;  // a node's: job slots + 2 x --downloads, about this
  long long expect = -1;
};

[[noreturn]] void usage(int code) {
  std::fputs(
      "usage: queue-bench --queue redis://HOST:PORT/BATCH [--consumers K] [--mode feed|store]\n"
      "                   [--window N] [--expect N]\n"
      "K consumers take the batch's jobs and complete each at once (no pipeline) until it is drained;\n"
      "prints results, seconds and results_per_s. feed: RedisFeed as a node uses it; store: BatchStore\n"
      "ReadNew + Complete directly. --window: jobs a consumer holds at most (default 64).\n",
      code == 0 ? stdout : stderr);
  std::exit(code);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(2);
      return argv[++i];
    };
    if (k == "-h" || k == "--help") usage(0);
    else if (k == "--queue") a.queue = value();
    else if (k == "--consumers") a.consumers = std::atoi(value().c_str());
    else if (k == "--mode") a.mode = value();
    else if (k == "--window") a.window = std::strtoull(value().c_str(), nullptr, 10);
    else if (k == "--expect") a.expect = std::atoll(value().c_str());
    else usage(2);
  }
  if (a.queue.empty() || a.consumers < 1 || a.window < 1 || (a.mode != "feed" && a.mode != "store")) usage(2);
  return a;
}

/// A report line the size of a real one: three JPEG thumbnails of a photo
/// fetched over HTTP.
SourceResult result_for(const SourceLine& line) {
  SourceResult r;
  r.url = line.display;
  r.line = line.line_number;
  r.ok = true;
  const std::string stem = "out/p" + std::to_string(line.line_number);
  r.outputs = {{stem + "_32.jpg", 32, 24, 1534}, {stem + "_64.jpg", 64, 48, 3120}, {stem + "_200.jpg", 200, 150, 14873}};
  r.bytes_downloaded = 3412345;
  r.attempts = 1;
  r.fetch_attempts = 1;
  r.http_status = 200;
  r.ms = 412;
  r.fetch_ms = 97;
  r.resize_ms = 203;
  r.ticket = line.ticket;
  return r;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "queue-bench: %s\n", what.c_str());
  std::exit(1);
}

BatchStore connect(const RedisAddress& address) {
  auto store = BatchStore::Connect(address);
  if (!store.ok()) die(store.status().ToString());
  if (Status st = store->EnsureGroup(); !st.ok()) die(st.ToString());
  return std::move(*store);
}

struct Tally {
  std::atomic<long long> recorded{0}, superseded{0};
};

/// One node's feed, its loop side reduced to "take, complete at once".
void run_feed(const RedisAddress& address, int k, std::size_t window, Tally& tally) {
  NodeSettings s;
  s.address = address;
  s.host = "queue-bench";
  s.consumer = "queue-bench:" + std::to_string(::getpid()) + ":" + std::to_string(k);
  RedisFeed feed(s, connect(address));
  feed.set_window(window);
  while (!feed.done()) {
    bool any = false;
    while (auto line = feed.TryNext()) {
      feed.Settle(result_for(*line));
      any = true;
    }
    while (auto notice = feed.TakeNotice()) std::fprintf(stderr, "%s\n", notice->c_str());
    if (!any && !feed.done()) {
      pollfd p{feed.wait_fd(), POLLIN, 0};
      (void)::poll(&p, 1, 100);
    }
  }
  if (!feed.status().ok()) die(feed.status().ToString());
  if (Status st = feed.Close(milliseconds(30000)); !st.ok()) die(st.ToString());
  tally.recorded += static_cast<long long>(feed.tally().recorded);
  tally.superseded += static_cast<long long>(feed.tally().superseded);
}

/// The same two calls without the feed: read, complete, until drained.
void run_store(const RedisAddress& address, int k, std::size_t window, Tally& tally) {
  BatchStore store = connect(address);
  const std::string me = "queue-bench:" + std::to_string(::getpid()) + ":" + std::to_string(k);
  for (;;) {
    auto jobs = store.ReadNew(me, window, milliseconds(200));
    if (!jobs.ok()) die(jobs.status().ToString());
    if (jobs->empty()) {
      auto drained = store.Drained();
      if (!drained.ok()) die(drained.status().ToString());
      if (*drained) break;
      continue;
    }
    std::vector<Completion> done;
    done.reserve(jobs->size());
    for (const BatchJob& job : *jobs) {
      SourceLine line = parse_source_line(job.text, job.line);
      line.ticket = job.id;
      done.push_back({job.id, ReportWriter::ToJson(result_for(line)), "ok", false, {}});
    }
    auto recorded = store.Complete(me, done);
    if (!recorded.ok()) die(recorded.status().ToString());
    for (bool r : *recorded) (r ? tally.recorded : tally.superseded) += 1;
  }
  (void)store.Retire(me);
}

int run(int argc, char** argv) {
  const Args a = parse(argc, argv);
  auto address = parse_redis_url(a.queue);
  if (!address.ok()) die(address.status().ToString());
  Tally tally;
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (int k = 0; k < a.consumers; ++k)
    threads.emplace_back([&, k] {
      (a.mode == "feed" ? run_feed : run_store)(*address, k, a.window, tally);
    });
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  BatchStore store = connect(*address);
  auto counts = store.Counts();
  if (!counts.ok()) die(counts.status().ToString());
  std::printf("results=%lld seconds=%.3f results_per_s=%.0f superseded=%lld consumers=%d mode=%s batch_done=%lld\n",
              tally.recorded.load(), seconds, tally.recorded.load() / seconds, tally.superseded.load(), a.consumers,
              a.mode.c_str(), counts->done());
  if (a.expect >= 0 && (counts->done() != a.expect || tally.recorded.load() != a.expect)) {
    std::fprintf(stderr, "queue-bench: expected %lld results, the batch counts %lld and the consumers recorded %lld\n",
                 a.expect, counts->done(), tally.recorded.load());
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace thumbmill

int main(int argc, char** argv) { return thumbmill::run(argc, argv); }
