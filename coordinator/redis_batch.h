// A batch in Redis: the keys, the Lua scripts and the operations every
// distributed-mode command is made of (enqueue, take, claim, complete,
// release, status, export). The pattern and its traps are in the README's
// "Many machines" section; in short:
//
//   thumbmill:{B}:jobs       stream of sources ("s": the line to parse, "n":
//                            its line number, "d": what reports show when
//                            that differs), read by the consumer group
//                            "thumbmill" (one consumer per node, host:pid)
//   thumbmill:{B}:results    stream of report lines ("r": one JSON line of
//                            the --report schema, "job", "node")
//   thumbmill:{B}:dead       dead letters: sources that failed as poison
//   thumbmill:{B}:seen       set of 16-byte digests of every source added,
//                            so adding a source twice makes one job
//   thumbmill:{B}:stats      hash of counts: enqueued, ok, failed, skipped,
//                            poison
//   thumbmill:{B}:nodes      hash node -> its last heartbeat (JSON)
//   thumbmill:{B}:beats      sorted set node -> server time of that beat
//   thumbmill:{B}:enqueuers  sorted set enqueuer -> lease expiry (ms): a
//                            batch is not drained while one is adding
//   thumbmill:{B}:meta       hash: "output", what the batch's thumbnails
//                            are (set by its first node, kept by the rest)
//   thumbmill:{B}:ticks      hash: results per 10 s of server time
//
// The {B} hash tag keeps a batch's keys in one slot of a Redis Cluster, so
// each script touches one node.
//
// Exactly one result per source: a result is written only by the script that
// acknowledges the job (XACK returned 1), in the same atomic step. A node
// that finishes a source another node already completed (it stalled past
// --claim-idle, the other claimed and finished it) gets 0 and writes nothing.
// Entries still pending are never trimmed or deleted, and a consumer is
// deleted only when nothing is pending for it (either would lose jobs).
#pragma once

#include <chrono>
#include <functional>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/redis_client.h"
#include "shared/status.h"

namespace thumbmill {

struct BatchKeys {
  explicit BatchKeys(const std::string& batch);
  std::string jobs, results, dead, seen, stats, nodes, beats, enqueuers, meta, ticks;
  static constexpr const char* kGroup = "thumbmill";
};

/// One job as delivered to a node.
struct BatchJob {
  std::string id;       // the stream entry id, "1732971234567-0"
  std::string text;     // the source line to parse
  std::uint64_t line = 0;
  std::string display;  // "" : the parsed line's own
  long long deliveries = 1;  // times handed to a node, this one included
};

/// What one completion asks: acknowledge job `id` and, only if that
/// acknowledgement counted, record `json` as its result (counted under
/// `outcome`: "ok", "failed" or "skipped"). A poison job also goes to the
/// dead-letter stream.
struct Completion {
  std::string id;
  std::string json;
  std::string outcome;
  bool poison = false;
  BatchJob job;  // for a poison job's dead letter
};

/// The batch's counts at one moment (--status).
struct BatchCounts {
  long long enqueued = 0, ok = 0, failed = 0, skipped = 0, poison = 0;
  long long pending = 0;  // delivered to a node, not completed
  long long enqueuers = 0;  // adding sources now
  bool unread = false;    // entries no node has taken yet
  bool exists = false;
  long long server_ms = 0;
  long long first_result_ms = 0;  // server time of the batch's first result
  long long waiting() const;  // enqueued and not yet taken
  long long done() const { return ok + failed + skipped; }
};

/// The operations, over one connection. Every call may fail with kNetwork
/// (the connection must then be replaced and the call repeated: each is
/// safe to repeat).
class BatchStore {
 public:
  BatchStore(const RedisAddress& address, RedisConnection conn)
      : address_(address), keys_(address.batch), conn_(std::move(conn)) {}
  static Result<BatchStore> Connect(const RedisAddress& address);
  /// A new connection after a failure (same address).
  Status Reconnect();
  bool broken() const { return conn_.broken(); }
  RedisConnection& connection() { return conn_; }
  const BatchKeys& keys() const { return keys_; }
  const RedisAddress& address() const { return address_; }

  /// The stream and its consumer group exist (made when missing).
  Status EnsureGroup();
  /// What the batch's outputs are: `mine` when this is the first node to
  /// say, else what the first said (nodes of one batch must agree).
  Result<std::string> AgreeOnOutput(const std::string& mine);

  /// Adds sources: each (digest, job) once; a malformed line is recorded
  /// straight away as a failed result (`failed_json`). Pipelined: call
  /// Add as often as wanted, then Flush. Returns how many were new.
  struct Entry {
    std::string digest;  // 16 bytes
    BatchJob job;        // for a job
    std::string failed_json;  // for a malformed line: its result
  };
  void AppendAdd(const std::vector<Entry>& entries);
  /// Holds an enqueuer's lease for `ttl` more (0: gives it up).
  void AppendLease(const std::string& enqueuer, std::chrono::milliseconds ttl);
  /// Reads the replies of every pipelined call; the sum of AppendAdd's
  /// new entries.
  Result<long long> CollectReplies(std::size_t calls);

  /// Up to `count` new jobs for `consumer`, waiting up to `block` for one.
  Result<std::vector<BatchJob>> ReadNew(const std::string& consumer, std::size_t count,
                                        std::chrono::milliseconds block);
  /// Jobs pending for `consumer` itself (a node restarted under its name),
  /// those with ids after `after` ("0": from the first).
  Result<std::vector<BatchJob>> ReadOwn(const std::string& consumer, std::size_t count,
                                        const std::string& after = "0");
  /// Jobs idle for at least `min_idle` in any consumer, taken over by
  /// `consumer` (XAUTOCLAIM from `cursor`, which is advanced).
  Result<std::vector<BatchJob>> ClaimIdle(const std::string& consumer, std::chrono::milliseconds min_idle,
                                          std::size_t count, std::string& cursor);
  /// Every job pending for `dead` (a node known to be gone), taken over
  /// at once; `dead` is deleted once nothing is pending for it.
  Result<std::vector<BatchJob>> ClaimFrom(const std::string& consumer, const std::string& dead, std::size_t count);
  /// Resets the idle time of the jobs still pending for `consumer`; returns
  /// how many of `ids` another consumer has taken over.
  Result<long long> Touch(const std::string& consumer, const std::vector<std::string>& ids);
  /// Completes jobs, pipelined; for each, whether its result was the one
  /// recorded (false: completed already, by another node or by an earlier
  /// try of this one).
  Result<std::vector<bool>> Complete(const std::string& node, const std::vector<Completion>& completions);
  /// Hands jobs back unstarted (a node stopping): acknowledged and added
  /// again at the end of the stream for another node.
  Status Release(const std::vector<BatchJob>& jobs);
  /// Records the node's heartbeat (`json`), stamped with the server's clock;
  /// returns that time (ms).
  Result<long long> Heartbeat(const std::string& node, const std::string& json);
  /// The node's consumer goes when nothing is pending for it.
  Status Retire(const std::string& consumer);
  /// Trims acknowledged entries from the head of the job stream (never a
  /// pending or unread one).
  Status Trim();

  Result<BatchCounts> Counts();
  /// Drained: nothing pending, nothing unread, nobody adding.
  Result<bool> Drained();

  struct NodeBeat {
    std::string name;
    std::string json;
    long long beat_ms = 0;
  };
  /// The nodes whose last heartbeat (server ms) lies in [min_ms, max_ms],
  /// the most recent first (by default every node).
  Result<std::vector<NodeBeat>> Nodes(long long min_ms = 0, long long max_ms = -1);
  /// Pending jobs per consumer (XPENDING's summary).
  Result<std::vector<std::pair<std::string, long long>>> PendingByConsumer();
  /// Results per second over the last minute before server time `now_ms`
  /// (or since `first_ms`, the batch's first result, when more recent).
  Result<double> RecentRate(long long now_ms, long long first_ms = 0);
  /// Walks the results stream in order, `page` at a time, calling `each`
  /// with each result's JSON line.
  Status ForEachResult(const std::function<Status(std::string_view)>& each, std::size_t page = 1000);

 private:
  RedisAddress address_;
  BatchKeys keys_;
  RedisConnection conn_;
};

/// 16 bytes of SHA-256 of `location`: a source's identity in the batch.
std::string source_digest(std::string_view location);

/// A timeout for ordinary replies.
inline constexpr std::chrono::milliseconds kRedisTimeout{10000};

}  // namespace thumbmill
