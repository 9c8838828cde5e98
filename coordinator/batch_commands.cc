#include "coordinator/batch_commands.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "coordinator/coordinator.h"
#include "coordinator/inputs.h"
#include "coordinator/report.h"
#include "shared/checked_file.h"
#include "shared/manifest.h"
#include "shared/output_plan.h"

namespace thumbmill {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

/// Sources per script call, and calls in flight, when adding.
constexpr std::size_t kAddBatch = 200;
constexpr std::size_t kAddCallsInFlight = 8;
/// An enqueuer's lease: renewed every kLeaseEvery, lapses after kLeaseTtl
/// (an enqueuer that died stops holding the batch open).
constexpr milliseconds kLeaseTtl{15000};
constexpr milliseconds kLeaseEvery{3000};

/// The job for one well-formed line: what a node parses again (a local
/// path made absolute, since nodes do not share our working directory), and
/// the name reports show when that differs.
BatchJob job_for(const SourceLine& line) {
  BatchJob job;
  job.line = line.line_number;
  if (line.kind == SourceKind::kFile) {
    std::error_code ec;
    const auto abs = std::filesystem::absolute(line.location, ec);
    job.text = ec ? line.location : abs.lexically_normal().string();
  } else {
    job.text = line.location;
    if (line.display != line.location) job.display = line.display;
  }
  return job;
}

/// Adds entries through a pipeline, resending after a lost connection (each
/// add is idempotent: a source already there is not added again).
class Adder {
 public:
  Adder(BatchStore& store, std::string name) : store_(store), name_(std::move(name)) {}

  Status Add(BatchStore::Entry entry) {
    batch_.push_back(std::move(entry));
    if (batch_.size() >= kAddBatch) return Send();
    return Status::Ok();
  }
  Status Finish() {
    if (Status st = Send(); !st.ok()) return st;
    if (Status st = Collect(); !st.ok()) return st;
    store_.AppendLease(name_, milliseconds(0));
    return store_.CollectReplies(1).status();
  }
  /// Sends what is gathered and waits for the answers: called whenever the
  /// list has nothing ready, so sources trickling in through a pipe reach
  /// the batch (and the lease stays fresh) without waiting for a full
  /// pipeline. hiredis sends appended commands only when a reply is read.
  Status Flush() {
    if (Status st = Send(); !st.ok()) return st;
    return Collect();
  }
  long long added() const { return added_; }

 private:
  Status Send() {
    if (!batch_.empty()) {
      in_flight_.push_back(std::move(batch_));
      batch_.clear();
      store_.AppendAdd(in_flight_.back());
    }
    if (Clock::now() >= next_lease_) {
      store_.AppendLease(name_, kLeaseTtl);
      ++leases_;
      next_lease_ = Clock::now() + kLeaseEvery;
    }
    if (in_flight_.size() >= kAddCallsInFlight) return Collect();
    return Status::Ok();
  }
  Status Collect() {
    for (int tries = 0;; ++tries) {
      auto r = store_.CollectReplies(in_flight_.size() + leases_);
      if (r.ok()) {
        added_ += *r;
        in_flight_.clear();
        leases_ = 0;
        return Status::Ok();
      }
      if (r.status().code() != Code::kNetwork || tries >= 30) return r.status();
      // Lost on the way: connect again and send the same calls again.
      std::fprintf(stderr, "thumbmill: %s; retrying\n", r.status().message().c_str());
      std::this_thread::sleep_for(milliseconds(std::min(2000, 100 << std::min(tries, 5))));
      if (!store_.Reconnect().ok()) continue;
      store_.AppendLease(name_, kLeaseTtl);
      leases_ = 1;
      for (const auto& calls : in_flight_) store_.AppendAdd(calls);
    }
  }

  BatchStore& store_;
  std::string name_;
  std::vector<BatchStore::Entry> batch_;
  std::vector<std::vector<BatchStore::Entry>> in_flight_;
  std::size_t leases_ = 0;
  Clock::time_point next_lease_{};
  long long added_ = 0;
};

std::string age_text(long long ms) {
  char buf[32];
  if (ms < 60000) {
    std::snprintf(buf, sizeof buf, "%.1f s", ms / 1000.0);
  } else if (ms < 3600000) {
    std::snprintf(buf, sizeof buf, "%lld min", ms / 60000);
  } else {
    std::snprintf(buf, sizeof buf, "%lld h", ms / 3600000);
  }
  return buf;
}

}  // namespace

NodeSettings node_settings(const Options& options, const RedisAddress& address) {
  NodeSettings s;
  s.address = address;
  s.host = host_name();
  s.consumer = s.host + ":" + std::to_string(::getpid());
  s.claim_idle = milliseconds(1000LL * options.claim_idle_s);
  s.max_deliveries = options.max_deliveries;
  s.follow = options.follow;
  // The transfers, and two jobs per worker: one resizing, one waiting.
  s.max_in_hand = static_cast<std::size_t>(options.downloads) + 2 * static_cast<std::size_t>(std::max(1, options.workers));
  return s;
}

std::string format_node_summary(const NodeTally& t, const std::string& batch) {
  std::string out = "batch " + batch + ": this node took " + std::to_string(t.taken) + " sources (" +
                    std::to_string(t.claimed) + " taken over from other nodes), recorded " +
                    std::to_string(t.recorded) + " results";
  if (t.superseded) out += ", " + std::to_string(t.superseded) + " completed by another node first (not recorded again)";
  if (t.released) out += ", handed back " + std::to_string(t.released) + " unstarted";
  if (t.poison) out += ", " + std::to_string(t.poison) + " poison";
  if (t.reconnects) out += ", connections to redis made again: " + std::to_string(t.reconnects);
  return out + "\n";
}

std::optional<int> run_batch_command(const Options& options, bool out_given, std::optional<BatchStore>& node) {
  auto address = parse_redis_url(options.queue_url);
  if (!address.ok()) {
    std::fprintf(stderr, "thumbmill: %s\n", address.status().ToString().c_str());
    return kExitUsage;
  }
  auto store = BatchStore::Connect(*address);
  if (!store.ok()) {
    std::fprintf(stderr, "thumbmill: fatal: --queue %s: %s\n", address->display().c_str(),
                 store.status().message().c_str());
    return kExitFatal;
  }
  if (options.enqueue) return enqueue_inputs(options, *store);
  if (options.batch_status) return print_batch_status(*store);
  if (!options.report_path.empty() && !out_given) return export_batch_report(*store, options.report_path);
  if (Status st = store->EnsureGroup(); !st.ok()) {
    std::fprintf(stderr, "thumbmill: fatal: --queue %s: %s\n", address->display().c_str(), st.message().c_str());
    return kExitFatal;
  }
  if (Status st = agree_on_output(options, *store); !st.ok()) {
    std::fprintf(stderr, "thumbmill: %s\n", st.ToString().c_str());
    return st.code() == Code::kInvalidArgument ? kExitUsage : kExitFatal;
  }
  node.emplace(std::move(*store));
  return std::nullopt;
}

Status agree_on_output(const Options& options, BatchStore& store) {
  // A directory is not compared: machines may mount one share at different paths.
  const nlohmann::json mine = {{"options", options_fingerprint(options)},
                               {"name", OutputPlan(options).name_template().text()},
                               {"out", options.out_is_s3() ? options.out_s3 : "a directory"}};
  auto agreed = store.AgreeOnOutput(mine.dump());
  if (!agreed.ok()) return agreed.status();
  if (*agreed == mine.dump()) return Status::Ok();
  const nlohmann::json first = nlohmann::json::parse(*agreed, nullptr, false);
  std::string differs;
  for (const char* key : {"options", "name", "out"}) {
    if (!first.is_object() || first.value(key, "") != mine.value(key, ""))
      differs += std::string(differs.empty() ? "" : "; ") + key + ": the batch has '" +
                 (first.is_object() ? first.value(key, "?") : "?") + "', this node '" + mine.value(key, "") + "'";
  }
  return Status(Code::kInvalidArgument, "batch " + store.address().batch +
                                            " is made with other settings than this node's (" + differs +
                                            "): give its nodes the same options, or use another batch name");
}

int enqueue_inputs(const Options& options, BatchStore& store) {
  auto feed = open_inputs(options);
  if (!feed.ok()) {
    std::fprintf(stderr, "thumbmill: %s\n", feed.status().ToString().c_str());
    return feed.status().code() == Code::kInvalidArgument || feed.status().code() == Code::kIoError ? kExitUsage
                                                                                                    : kExitFatal;
  }
  if (Status st = store.EnsureGroup(); !st.ok()) {
    std::fprintf(stderr, "thumbmill: fatal: %s\n", st.ToString().c_str());
    return kExitFatal;
  }
  Adder adder(store, "enqueue:" + host_name() + ":" + std::to_string(::getpid()));
  SourceFeed& list = **feed;
  std::uint64_t read = 0, malformed = 0;
  Status st;
  while (st.ok()) {
    auto line = list.TryNext();
    if (!line) {
      if (list.done()) break;
      // Nothing ready: send what is gathered, then wait for the list.
      if (st = adder.Flush(); !st.ok()) break;
      pollfd p{list.wait_fd(), POLLIN, 0};
      (void)::poll(&p, list.wait_fd() >= 0 ? 1 : 0, 100);
      continue;
    }
    ++read;
    BatchStore::Entry e;
    if (line->status.ok()) {
      e.digest = source_digest(line->kind == SourceKind::kFile ? job_for(*line).text : line->location);
      e.job = job_for(*line);
    } else {
      ++malformed;
      const SourceResult r = failed_result(*line, line->status.code(), line->status.message());
      std::fprintf(stderr, "%s\n", format_source_line(r).c_str());
      e.digest = source_digest("malformed\n" + std::to_string(line->line_number) + "\n" + line->text);
      e.failed_json = ReportWriter::ToJson(r);
    }
    st = adder.Add(std::move(e));
  }
  if (st.ok()) st = list.status();
  if (Status fin = adder.Finish(); st.ok()) st = fin;
  if (!st.ok()) {
    std::fprintf(stderr, "thumbmill: fatal: %s\n", st.ToString().c_str());
    return kExitFatal;
  }
  if (!options.quiet)
    std::fprintf(stderr, "thumbmill: batch %s: %lld sources added, %" PRIu64 " already there%s\n",
                 store.address().display().c_str(), adder.added(), read - static_cast<std::uint64_t>(adder.added()),
                 malformed ? (", " + std::to_string(malformed) + " malformed lines recorded as failed").c_str() : "");
  return malformed ? kExitFailures : kExitOk;
}

int print_batch_status(BatchStore& store) {
  auto counts = store.Counts();
  if (!counts.ok()) {
    std::fprintf(stderr, "thumbmill: fatal: %s\n", counts.status().ToString().c_str());
    return kExitFatal;
  }
  const BatchCounts& c = *counts;
  if (!c.exists && c.enqueued == 0) {
    std::fprintf(stderr, "thumbmill: no batch named '%s' at %s\n", store.address().batch.c_str(),
                 store.address().display().c_str());
    return kExitUsage;
  }
  auto nodes = store.Nodes();
  auto pending = store.PendingByConsumer();
  auto recent = store.RecentRate(c.server_ms, c.first_result_ms);
  if (!nodes.ok() || !pending.ok() || !recent.ok()) {
    std::fprintf(stderr, "thumbmill: fatal: cannot read the batch's nodes and results\n");
    return kExitFatal;
  }
  std::printf("batch %s\n", store.address().display().c_str());
  std::printf("  sources    %lld enqueued: %lld ok, %lld failed", c.enqueued, c.ok, c.failed);
  if (c.poison) std::printf(" (%lld poison)", c.poison);
  std::printf(", %lld skipped, %lld in progress, %lld waiting\n", c.skipped, c.pending, c.waiting());
  const bool drained = c.exists && c.pending == 0 && !c.unread && c.enqueuers == 0;
  std::printf("  state      %s%s\n", drained ? "drained" : "working",
              c.enqueuers ? (", " + std::to_string(c.enqueuers) + " enqueuer(s) adding").c_str() : "");
  std::printf("  rate       %.1f sources/s over the last minute\n", *recent);
  std::printf("  nodes      %zu\n", nodes->size());
  // The most recent first; a batch worked for weeks by restarted pods
  // would list hundreds.
  constexpr std::size_t kShown = 20;
  for (std::size_t i = 0; i < nodes->size() && i < kShown; ++i) {
    const BatchStore::NodeBeat& n = (*nodes)[i];
    const nlohmann::json j = nlohmann::json::parse(n.json, nullptr, false);
    long long in_flight = 0;
    for (const auto& [name, count] : *pending)
      if (name == n.name) in_flight = count;
    const std::string state = j.is_object() ? j.value("state", "?") : "?";
    std::printf("    %-28s %-8s %5lld in flight  %7lld done  last beat %s ago\n", n.name.c_str(), state.c_str(),
                in_flight, j.is_object() ? j.value("recorded", 0LL) : 0LL,
                age_text(std::max(0LL, c.server_ms - n.beat_ms)).c_str());
  }
  if (nodes->size() > kShown) std::printf("    ... and %zu more, silent longer\n", nodes->size() - kShown);
  return kExitOk;
}

int export_batch_report(BatchStore& store, const std::string& path) {
  auto file = path == "-" ? Result<CheckedFile>(CheckedFile::Adopt(::dup(STDOUT_FILENO), "standard output"))
                          : CheckedFile::OpenForWriting(path);
  if (!file.ok()) {
    std::fprintf(stderr, "thumbmill: --report: %s\n", file.status().ToString().c_str());
    return kExitUsage;
  }
  std::uint64_t lines = 0;
  Status st = store.ForEachResult([&](std::string_view json) {
    ++lines;
    return file->Write(std::string(json) + "\n");
  });
  if (Status closed = file->Close(); st.ok()) st = closed;
  if (!st.ok()) {
    std::fprintf(stderr, "thumbmill: fatal: %s\n", st.ToString().c_str());
    return kExitFatal;
  }
  std::fprintf(stderr, "thumbmill: %" PRIu64 " results of batch %s written to %s\n", lines,
               store.address().batch.c_str(), path.c_str());
  return kExitOk;
}

}  // namespace thumbmill
