// The distributed mode's commands other than working on a batch (a node
// runs the usual loop over a RedisFeed, redis_feed.h):
//   --enqueue   the inputs added to the batch, streamed, each source once
//   --status    the batch's counts, nodes and rate
//   --report F  (without --out) the batch's report from its results stream
// Each returns the process's exit code and prints its own messages.
#pragma once

#include <optional>
#include <string>

#include "coordinator/redis_batch.h"
#include "coordinator/redis_feed.h"
#include "shared/options.h"

namespace thumbmill {

/// With --queue, before anything else: connects (unreachable: a message and
/// kExitFatal), then runs --enqueue, --status or a batch's --report (`--report`
/// without `out_given`) and returns its exit code; for a node, checks its
/// settings agree with the batch's, sets `node` and returns nullopt.
std::optional<int> run_batch_command(const Options& options, bool out_given, std::optional<BatchStore>& node);

int enqueue_inputs(const Options& options, BatchStore& store);
int print_batch_status(BatchStore& store);
int export_batch_report(BatchStore& store, const std::string& path);

/// The node's lines after the run's summary: what it took and recorded.
std::string format_node_summary(const NodeTally& tally, const std::string& batch);

/// Checks that this node makes the batch's thumbnails as its first node
/// did (sizes, formats, quality, image options, names, the --out bucket);
/// kInvalidArgument saying what differs otherwise.
Status agree_on_output(const Options& options, BatchStore& store);

/// This node's name and settings (consumer "host:pid").
NodeSettings node_settings(const Options& options, const RedisAddress& address);

}  // namespace thumbmill
