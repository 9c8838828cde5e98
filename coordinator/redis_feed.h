// RedisFeed: a node's share of a batch in Redis (redis_batch.h), as a
// SourceFeed, so the coordinator's loop runs a node exactly as it runs a
// list: it takes sources, and tells the feed how each ended (Settle).
//
// One thread owns the connection and does all of the talking: it reads new
// jobs for this node (never more than the loop's window in hand, so a node
// that dies strands at most that many), claims jobs other nodes left idle
// for --claim-idle (and at once those of a dead earlier node of this
// machine), keeps the idle time of its own jobs fresh while it works on
// them, completes each source (its report line into the results stream,
// in the same step as the acknowledgement), sends a heartbeat every second,
// and watches for the batch to drain. The loop never blocks on Redis: lines
// wait in a queue and an eventfd wakes its poll.
//
// When Redis goes away (a restart, a network cut) the thread reconnects
// with backoff and goes on; completions wait in memory meanwhile (at most a
// window's worth) and are sent once it is back. A job seen delivered more
// than --max-deliveries times (each node that took it died) fails as poison.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/redis_batch.h"
#include "coordinator/source_feed.h"

namespace thumbmill {

struct NodeSettings {
  RedisAddress address;
  std::string host;      // this machine's name
  std::string consumer;  // host:pid
  std::chrono::milliseconds claim_idle{60000};
  long long max_deliveries = 3;
  bool follow = false;   // keep waiting for work once the batch is drained
  // Most jobs in hand at once, below the loop's window: enough to keep the
  // transfers and the workers busy, few enough that nodes share the end of
  // a batch (a node holding a hundred sources leaves others idle) and that
  // a node that dies strands few.
  std::size_t max_in_hand = 64;
};

/// What a node did, for its summary.
struct NodeTally {
  std::uint64_t taken = 0;       // jobs received (read, claimed)
  std::uint64_t claimed = 0;     // of which taken over from another node
  std::uint64_t recorded = 0;    // completions that became the source's result
  std::uint64_t superseded = 0;  // completions another node made first
  std::uint64_t released = 0;    // handed back unstarted
  std::uint64_t poison = 0;
  std::uint64_t reconnects = 0;
};

class RedisFeed : public SourceFeed {
 public:
  /// Starts the thread over `store` (connected, group ensured).
  RedisFeed(NodeSettings settings, BatchStore store);
  ~RedisFeed() override;

  std::optional<SourceLine> TryNext() override;
  bool done() const override;
  int wait_fd() const override { return wake_.get(); }
  const Status& status() const override;
  void set_window(std::size_t n) override;
  void Settle(const SourceResult& result) override;
  std::optional<std::string> TakeNotice() override;

  /// Ends the node's part: jobs read but never handed to the loop go back,
  /// every completion is sent (waiting up to `deadline` for Redis), a last
  /// heartbeat says it left, and the thread stops. Not ok when completions
  /// could not be sent (their jobs stay pending and are claimed elsewhere).
  Status Close(std::chrono::milliseconds deadline);
  NodeTally tally() const;
  const RedisAddress& address() const { return settings_.address; }

 private:
  void Run();
  /// One turn of the thread; false when the connection failed.
  bool Turn();
  bool FlushSettled();
  bool TakeJobs(std::size_t room);
  /// `redelivered`: jobs another node (or an earlier process under this
  /// name) held, taken one at a time (suspect_).
  void Accept(std::vector<BatchJob> jobs, bool claimed, bool redelivered);
  bool TouchHeld();
  bool Beat(const char* state);
  /// Takes over one job of a dead node of this machine, if any (`took`).
  bool ClaimFromDeadSiblings(bool& took);
  bool Ok(const Status& st);
  void Notice(std::string line);
  void Wake();
  std::string NodeJson(const char* state) const;  // REQUIRES: mu_ held

  const NodeSettings settings_;
  BatchStore store_;  // the thread's alone (and Close's, once it stopped)
  UniqueFd wake_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<SourceLine> ready_;                 // read, not yet handed out
  struct Held {
    BatchJob job;
    std::chrono::steady_clock::time_point touched;
  };
  std::map<std::string, Held> held_;             // every job in hand, by id
  std::vector<Completion> settled_;              // to send
  std::vector<BatchJob> to_release_;             // to hand back
  std::deque<std::string> notices_;
  // 0 until the loop says how many sources it can hold (set_window): until
  // then the feed takes none, so a node never holds more than its window.
  std::size_t window_ = 0;
  bool drained_ = false;
  bool stopping_ = false;  // Close: take nothing more
  bool stop_ = false;      // the thread ends
  Status status_;
  NodeTally tally_;
  // The one redelivered job in hand ("" none). A node that dies takes every
  // job it holds down with it, and each is delivered once more: were
  // redelivered jobs taken many at a time, the innocent ones taken together
  // with a source that kills every node would reach --max-deliveries with
  // it and fail as poison too. Taken one at a time, an innocent job is in
  // hand beside a killer at most twice: fresh on its first node, and as
  // the one redelivered job while the killer is fresh; a killer that is
  // itself redelivered is in hand beside fresh jobs only.
  std::string suspect_;
  std::size_t sending_ = 0;  // completions and releases on their way now
  mutable Status reported_;  // the loop's copy of status_ (done() takes it)

  // The thread's own.
  std::string claim_cursor_ = "0-0";
  std::chrono::steady_clock::time_point next_claim_{}, next_beat_{}, next_touch_{}, next_drain_check_{},
      next_trim_{}, next_sibling_check_{};
  bool own_read_ = false;
  std::string own_cursor_ = "0";  // the last job of the backlog under our own name
  std::set<std::string> siblings_said_;
  std::thread thread_;
};

}  // namespace thumbmill
