// Fetcher: many downloads at once in one thread (the libcurl multi
// interface), each body streamed straight into the job queue's arena and
// published there for the resize workers.
//
// A source is one FetchRequest in and exactly one FetchOutcome out: kOk when
// the job was published, else a code and a short human reason ("HTTP 404 Not
// Found", "connection refused (after 3 tries)").
//
// Where a body goes (see downloader/body.h for the details):
//   - into an arena extent reserved at its first bytes (Content-Length bytes
//     when known, else a guess that doubles with Grow);
//   - when the queue has no slot or room now, the transfer is paused (the
//     server waits, memory stays bounded) and retried every loop turn;
//   - after ~2 s paused, or when the body is larger than the arena, or Grow
//     fails, it is spilled to `<temp_dir>/body-<source_id>-<try>.bin` and the
//     job travels as a path: the downloader never waits on the workers for
//     long, so it cannot deadlock with them.
// Local sources (kFile) are not read at all: they become path jobs (refused
// under Options::no_local).
//
// Bounds on what the network can make us do: every byte read in a try
// (header lines of every response, redirect and error bodies libcurl reads
// and discards, the body) counts against Options::max_bytes plus a 64 KiB
// allowance, and the body itself against max_bytes; every connection, each
// redirect hop included, is checked by downloader/address_policy.h on the
// address about to be connected, before connect (kBlockedAddress).
//
// Retries: connection failures, timeouts, stalls, bodies cut short, 5xx and
// 429 are tried again up to Options::fetch_attempts times, after 250 ms,
// 500 ms, ... (or the server's Retry-After, capped), on a timer of the loop,
// so a waiting retry never holds up other transfers.
//
// Thread use: one Fetcher belongs to one thread. It keeps no global state;
// it calls curl_global_init once per process (std::call_once). REQUIRES:
// SIGPIPE is ignored by the process (libcurl runs with CURLOPT_NOSIGNAL).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "shared/job_queue.h"
#include "shared/options.h"
#include "shared/wire.h"

namespace thumbmill {

class Fetcher {
 public:
  /// `owner` is the id recorded in the queue slots this fetcher fills (the
  /// process id: the supervisor reclaims them by it when we die).
  Fetcher(JobQueue& queue, const Options& options, std::string temp_dir, std::int32_t owner);
  /// Gives back every slot still being filled and removes spilled files.
  ~Fetcher();
  Fetcher(const Fetcher&) = delete;
  Fetcher& operator=(const Fetcher&) = delete;

  /// Sources started and not yet answered (transferring, paused, waiting to
  /// retry or waiting for a queue slot).
  std::size_t active() const;

  /// Whether starting one more source now makes sense: fewer than
  /// Options::downloads active, and a free queue slot for it (else it would
  /// only sit paused on an open connection).
  bool CanStart();

  /// Starts one source. A request that cannot be started at all (bad kind,
  /// missing local file) is answered at once.
  void Start(const FetchRequest& request);

  /// The one blocking call: waits up to `max_wait` (less when a timer is due)
  /// for network activity or for `extra_fd` (-1: none) to become readable,
  /// then advances every transfer.
  void Wait(int extra_fd, std::chrono::milliseconds max_wait);

  /// Outcomes of the sources finished since the last call, in finishing order.
  std::vector<FetchOutcome> TakeOutcomes();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace thumbmill
