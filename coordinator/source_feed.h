// SourceFeed: where the coordinator's loop gets its sources, without ever
// blocking it.
//
// The loop has one blocking call, its poll (style rule 9). A feed hands out
// the lines it has now and otherwise names a descriptor for that poll that
// becomes readable when it may have more. The feeds: a LIST file, pipe,
// FIFO or standard input, read through a non-blocking descriptor (here); an
// S3 prefix listed on a thread into a pipe (s3_prefix_feed.h); a directory
// walked a bounded step at a time (directory_walk_feed.h); and the chain of
// every argument in order (input_chain.h); and a Redis batch shared by many
// machines (redis_feed.h), read on a thread that wakes the loop through an
// eventfd. Parsing stays in SourceList (shared/source_list.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "coordinator/report.h"
#include "shared/fd_io.h"
#include "shared/source_list.h"
#include "shared/status.h"

namespace thumbmill {

class SourceFeed {
 public:
  virtual ~SourceFeed() = default;

  /// The next line if one is ready now; nullopt when none is (then either
  /// done(), or poll wait_fd() for POLLIN and ask again). Never blocks.
  virtual std::optional<SourceLine> TryNext() = 0;
  /// Every line has been returned, or reading failed (see status()).
  virtual bool done() const = 0;
  /// The descriptor to poll for POLLIN while !done(); -1 when there is none
  /// (then ask again after any wake-up).
  virtual int wait_fd() const = 0;
  /// Not ok when reading the list itself failed (not a malformed line).
  virtual const Status& status() const = 0;
  /// For a run that stops early: how many lines are left that TryNext has
  /// not returned (blank lines and comments not counted), read and counted
  /// now without being processed, when that is cheap and bounded (the rest
  /// of a regular file of reasonable size); nullopt when the rest cannot be
  /// counted so (a pipe, a terminal, a bucket listing). Consumes the rest.
  virtual std::optional<std::uint64_t> CountRest() { return std::nullopt; }

  // --- for feeds that lend their sources (a shared batch) ------------------
  /// The loop holds at most `n` sources in flight: a feed that takes work
  /// from a queue others share takes no more than that at a time.
  virtual void set_window(std::size_t n) { (void)n; }
  /// How a source this feed returned ended: every line TryNext returned is
  /// settled here exactly once (its `ticket` is in `result`). An interrupted
  /// source (the run stopped first) is handed back rather than recorded.
  virtual void Settle(const SourceResult& result) { (void)result; }
  /// A line for the user (a lost connection, a source taken over), when the
  /// feed has one; the loop prints it.
  virtual std::optional<std::string> TakeNotice() { return std::nullopt; }
};

/// The first call of every thread a feed starts: the loop takes signals
/// through its signalfd (run_loop.cc), and a signal the kernel hands to a
/// thread that has them unblocked bypasses it: SIGTERM or SIGINT would end
/// the process at once instead of stopping the run. (A thread started
/// before the loop blocks them would otherwise keep them unblocked.)
void block_signals_in_this_thread();

/// A LIST argument: a file, a pipe or FIFO, or standard input for "-". Opening a FIFO waits for its writer, as opening it always does; after
/// that nothing blocks. A list that cannot be opened is a kIoError naming the
/// path and the reason. Standard input gets O_NONBLOCK while the feed lives
/// and its flags back afterwards (the descriptor is shared with the shell).
Result<std::unique_ptr<SourceFeed>> open_list_feed(const std::string& path);

/// A list read from `fd` (a pipe another thread writes, say), owned; made
/// non-blocking here. `name` is for messages.
Result<std::unique_ptr<SourceFeed>> open_fd_feed(UniqueFd fd, std::string name);

}  // namespace thumbmill
