#include "coordinator/redis_feed.h"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include <nlohmann/json.hpp>

namespace thumbmill {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kBeatEvery{1000};
constexpr milliseconds kReadBlock{200};
constexpr milliseconds kTrimEvery{30000};
constexpr milliseconds kDrainCheckEvery{500};
// How often dead nodes of this machine are looked for (redis_feed_node.cc).
constexpr milliseconds kSiblingCheckEvery{2000};
}  // namespace

RedisFeed::RedisFeed(NodeSettings settings, BatchStore store)
    : settings_(std::move(settings)), store_(std::move(store)), wake_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  thread_ = std::thread([this] {
    block_signals_in_this_thread();
    Run();
  });
}

RedisFeed::~RedisFeed() {
  if (thread_.joinable()) (void)Close(milliseconds(5000));
}

std::optional<SourceLine> RedisFeed::TryNext() {
  std::lock_guard lock(mu_);
  if (ready_.empty()) {
    std::uint64_t n;
    (void)!::read(wake_.get(), &n, sizeof n);  // cleared under the lock: see Wake
    return std::nullopt;
  }
  SourceLine line = std::move(ready_.front());
  ready_.pop_front();
  // Test hook (tests/redis_e2e_test.cc): a node handed a source whose text
  // holds $THUMBMILL_TEST_DIE_ON dies on the spot, children and all, as a
  // node that such a source brings down would (the poison case).
  static const char* const die_on = std::getenv("THUMBMILL_TEST_DIE_ON");
  if (die_on && *die_on && line.text.find(die_on) != std::string::npos) ::kill(::getpid(), SIGKILL);
  return line;
}

bool RedisFeed::done() const {
  std::lock_guard lock(mu_);
  reported_ = status_;  // status() hands out the loop's own copy
  return ready_.empty() && (drained_ || !status_.ok());
}

const Status& RedisFeed::status() const { return reported_; }

void RedisFeed::set_window(std::size_t n) {
  {
    std::lock_guard lock(mu_);
    window_ = std::clamp<std::size_t>(n, 1, settings_.max_in_hand);
  }
  cv_.notify_all();
}

void RedisFeed::Settle(const SourceResult& result) {
  const bool release = result.code == Code::kInterrupted && !result.ok;
  // The report line is made before taking the lock the feed's thread shares.
  std::string json = release ? std::string() : ReportWriter::ToJson(result);
  {
    std::lock_guard lock(mu_);
    auto it = held_.find(result.ticket);
    if (it == held_.end()) return;
    if (release) {
      to_release_.push_back(it->second.job);
    } else {
      const char* outcome = result.skipped ? "skipped" : result.ok ? "ok" : "failed";
      settled_.push_back({result.ticket, std::move(json), outcome, false, {}});
    }
  }
  cv_.notify_all();
}

std::optional<std::string> RedisFeed::TakeNotice() {
  std::lock_guard lock(mu_);
  if (notices_.empty()) return std::nullopt;
  std::string n = std::move(notices_.front());
  notices_.pop_front();
  return n;
}

NodeTally RedisFeed::tally() const {
  std::lock_guard lock(mu_);
  return tally_;
}

void RedisFeed::Notice(std::string line) {
  {
    std::lock_guard lock(mu_);
    notices_.push_back(std::move(line));
  }
  Wake();
}

// The eventfd is written after the state it announces is in place, and read
// (cleared) by TryNext under the lock only when it finds nothing: a wake-up
// is never lost.
void RedisFeed::Wake() {
  const std::uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
}

void RedisFeed::Run() {
  // After a failure, the next try waits: 100 ms doubling to 2 s. A lost
  // connection is made again; a server that answers but cannot serve yet
  // (LOADING its AOF after a restart) is simply asked again.
  milliseconds backoff{100};
  bool lost_said = false;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    bool ok = true;
    if (store_.broken()) {
      ok = store_.Reconnect().ok();
      if (ok) ++tally_.reconnects;
    }
    if (ok) ok = Turn();
    if (ok) {
      if (lost_said) Notice("thumbmill: redis: connected again to " + settings_.address.display());
      lost_said = false;
      backoff = milliseconds(100);
      continue;
    }
    {
      std::lock_guard lock(mu_);
      if (stop_) return;  // failed for good (status_ says why)
    }
    if (!lost_said) {
      lost_said = true;
      Notice("thumbmill: redis: " + settings_.address.display() +
             " out of reach; retrying (the sources in hand go on, their results wait)");
    }
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, backoff, [this] { return stop_; });
    backoff = std::min(backoff * 2, milliseconds(2000));
  }
}

/// Whether `st` is ok. A lost connection is not ok but passes (the caller
/// returns false and Run connects again); anything else fails the feed for
/// good (the batch itself is unusable, e.g. its group was deleted).
bool RedisFeed::Ok(const Status& st) {
  if (st.ok()) return true;
  if (st.code() != Code::kNetwork) {
    {
      std::lock_guard lock(mu_);
      status_ = Status(st.code(), "batch " + settings_.address.batch + ": " + st.message());
      stop_ = true;
    }
    Wake();
  }
  return false;
}

bool RedisFeed::Turn() {
  if (!FlushSettled()) return false;
  const auto now = Clock::now();
  if (now >= next_beat_) {
    if (!Beat("working")) return false;
    next_beat_ = now + kBeatEvery;
  }
  if (now >= next_touch_) {
    if (!TouchHeld()) return false;
    next_touch_ = now + std::max(milliseconds(100), settings_.claim_idle / 6);
  }
  if (now >= next_trim_) {
    if (!Ok(store_.Trim())) return false;
    next_trim_ = now + kTrimEvery;
  }
  std::size_t room = 0;
  {
    std::lock_guard lock(mu_);
    if (!stopping_ && !drained_ && held_.size() < window_) room = window_ - held_.size();
  }
  if (room > 0) return TakeJobs(room);
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, milliseconds(100), [this] {
    return stop_ || !settled_.empty() || !to_release_.empty() || (held_.size() < window_ && !stopping_ && !drained_);
  });
  return true;
}

bool RedisFeed::TakeJobs(std::size_t room) {
  const auto now = Clock::now();
  bool suspect_held = false;
  {
    std::lock_guard lock(mu_);
    suspect_held = !suspect_.empty();
  }
  // Jobs another node held (or an earlier process under this name) are
  // taken one at a time, while no other such job is in hand (see suspect_).
  if (!own_read_ && !suspect_held) {
    // Jobs left under this very name (a pid reused after a restart), one
    // after another from a cursor. They are older than any job this
    // process reads new (those come after every job delivered before), so
    // the first job met that this process holds already ends the backlog.
    auto own = store_.ReadOwn(settings_.consumer, 1, own_cursor_);
    if (!Ok(own.status())) return false;
    bool ours = own->empty();
    if (!ours) {
      own_cursor_ = own->front().id;
      std::lock_guard lock(mu_);
      ours = held_.count(own_cursor_) > 0;
    }
    own_read_ = ours;
    if (!ours) Accept(std::move(*own), false, true);
    return true;
  }
  if (!suspect_held && now >= next_sibling_check_) {
    // A node restarted here finishes what an earlier node of this machine
    // held before anything new (and keeps looking a while: that node may
    // have beaten a moment before it died).
    next_sibling_check_ = now + kSiblingCheckEvery;
    bool took = false;
    if (!ClaimFromDeadSiblings(took)) return false;
    if (took) {
      next_sibling_check_ = {};  // the next one as soon as this one is done
      return true;
    }
  }
  if (!suspect_held && now >= next_claim_) {
    auto claimed = store_.ClaimIdle(settings_.consumer, settings_.claim_idle, 1, claim_cursor_);
    if (!Ok(claimed.status())) return false;
    next_claim_ = now + std::min(milliseconds(1000), std::max(milliseconds(100), settings_.claim_idle / 4));
    if (!claimed->empty()) {
      Accept(std::move(*claimed), true, true);
      return true;
    }
  }
  bool pending_work = false, holding = false;
  {
    std::lock_guard lock(mu_);
    pending_work = !settled_.empty() || !to_release_.empty();
    holding = !held_.empty();
  }
  // Nothing in hand: the batch may be drained; ask before blocking on a
  // read, so a node leaves as soon as the last source is done.
  if (!holding && !pending_work && !settings_.follow && Clock::now() >= next_drain_check_) {
    next_drain_check_ = Clock::now() + kDrainCheckEvery;
    auto drained = store_.Drained();
    if (!Ok(drained.status())) return false;
    if (*drained) {
      {
        std::lock_guard lock(mu_);
        drained_ = true;
      }
      Wake();
      return true;
    }
  }
  // Block in Redis only with nothing in hand: with sources in hand the
  // thread waits here instead, where a result wakes it, so results go out
  // as they come (and the drain is seen right after the last) instead of
  // after a blocked read times out.
  auto fresh = store_.ReadNew(settings_.consumer, room, pending_work || holding ? milliseconds(0) : kReadBlock);
  if (!Ok(fresh.status())) return false;
  if (!fresh->empty()) {
    Accept(std::move(*fresh), false, false);
    return true;
  }
  if (holding && !pending_work) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, kReadBlock, [this] { return stop_ || stopping_ || !settled_.empty() || !to_release_.empty(); });
  }
  return true;
}

void RedisFeed::Accept(std::vector<BatchJob> jobs, bool claimed, bool redelivered) {
  if (jobs.empty()) return;
  {
    std::lock_guard lock(mu_);
    const auto now = Clock::now();
    for (BatchJob& job : jobs) {
      if (held_.count(job.id)) continue;  // ours already (claimed back from ourselves)
      ++tally_.taken;
      if (claimed) ++tally_.claimed;
      SourceLine line = parse_source_line(job.text, job.line);
      if (!job.display.empty()) line.display = job.display;
      line.ticket = job.id;
      if (job.deliveries > settings_.max_deliveries) {
        // Every node that took it before died holding it: it is not tried
        // again (it would take this node down too).
        const SourceResult r =
            failed_result(line, Code::kPoison,
                          "poison: taken " + std::to_string(job.deliveries - 1) +
                              " times by nodes that stopped before finishing it (--max-deliveries " +
                              std::to_string(settings_.max_deliveries) + ")");
        Completion c{job.id, ReportWriter::ToJson(r), "failed", true, job};
        std::string id = job.id;
        held_.emplace(std::move(id), Held{std::move(job), now});
        settled_.push_back(std::move(c));
        ++tally_.poison;
        notices_.push_back("thumbmill: failed: " + r.url + ": " + r.error + " [poison]");
        continue;
      }
      std::string id = job.id;  // not job.id: the Held is made (and job moved) first
      held_.emplace(std::move(id), Held{std::move(job), now});
      if (redelivered) {
        suspect_ = line.ticket;
        ready_.push_front(std::move(line));  // the next one handed out: it waits for nothing else
      } else {
        ready_.push_back(std::move(line));
      }
    }
  }
  Wake();
}

bool RedisFeed::FlushSettled() {
  std::vector<Completion> completions;
  std::vector<BatchJob> releases;
  {
    std::lock_guard lock(mu_);
    completions.swap(settled_);
    releases.swap(to_release_);
    sending_ = completions.size() + releases.size();  // Close waits for these too
  }
  auto put_back = [&] {
    std::lock_guard lock(mu_);
    settled_.insert(settled_.begin(), completions.begin(), completions.end());
    to_release_.insert(to_release_.begin(), releases.begin(), releases.end());
    sending_ = 0;
  };
  if (!completions.empty()) {
    auto recorded = store_.Complete(settings_.consumer, completions);
    if (!recorded.ok()) {
      put_back();
      return Ok(recorded.status());  // false; the feed ends unless the connection was lost
    }
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < completions.size(); ++i) {
      held_.erase(completions[i].id);
      if (completions[i].id == suspect_) {
        suspect_.clear();
        next_claim_ = {};  // the next one at once
      }
      if ((*recorded)[i]) {
        ++tally_.recorded;
      } else {
        ++tally_.superseded;
      }
    }
    completions.clear();
  }
  if (!releases.empty()) {
    if (Status st = store_.Release(releases); !st.ok()) {
      put_back();
      return Ok(st);
    }
    std::lock_guard lock(mu_);
    for (const BatchJob& j : releases) {
      held_.erase(j.id);
      if (j.id == suspect_) suspect_.clear();
    }
    tally_.released += releases.size();
  }
  {
    std::lock_guard lock(mu_);
    sending_ = 0;
  }
  cv_.notify_all();  // Close may be waiting for the last of them
  return true;
}

bool RedisFeed::TouchHeld() {
  std::vector<std::string> ids;
  const auto now = Clock::now();
  {
    std::lock_guard lock(mu_);
    for (auto& [id, h] : held_)
      if (now - h.touched >= settings_.claim_idle / 3) ids.push_back(id);
  }
  if (ids.empty()) return true;
  auto lost = store_.Touch(settings_.consumer, ids);
  if (!Ok(lost.status())) return false;
  std::lock_guard lock(mu_);
  for (const std::string& id : ids)
    if (auto it = held_.find(id); it != held_.end()) it->second.touched = now;
  return true;
}

Status RedisFeed::Close(milliseconds deadline) {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    // Read but never handed to the loop: back to the batch.
    while (!ready_.empty()) {
      auto it = held_.find(ready_.front().ticket);
      if (it != held_.end()) to_release_.push_back(it->second.job);
      ready_.pop_front();
    }
  }
  cv_.notify_all();
  std::size_t left = 0;
  {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, deadline,
                 [this] { return stop_ || (settled_.empty() && to_release_.empty() && sending_ == 0); });
    left = settled_.size() + to_release_.size() + sending_;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (!store_.broken()) {
    std::string json;
    {
      std::lock_guard lock(mu_);
      json = NodeJson("left");
    }
    (void)store_.Heartbeat(settings_.consumer, json);
    (void)store_.Retire(settings_.consumer);
    (void)store_.Trim();  // a batch drained in less than the trim period is trimmed too
  }
  std::lock_guard lock(mu_);
  if (!status_.ok()) return status_;
  if (left)
    return Status(Code::kNetwork, std::to_string(left) +
                                      " results could not be sent to redis; their sources stay pending and "
                                      "another node will take them after --claim-idle");
  return Status::Ok();
}

}  // namespace thumbmill
