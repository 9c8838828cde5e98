// RedisFeed, continued: who this node is to the others. Its heartbeat (what
// --status shows, and what lets a later node of this machine tell that it
// is gone), and the taking over of jobs that dead earlier nodes of this
// machine held, without waiting for --claim-idle. See redis_feed.h.
#include <unistd.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "coordinator/redis_feed.h"
#include "shared/proc_stat.h"

namespace thumbmill {
namespace {

// A node of this machine whose process is gone and whose last beat is older
// than this is dead: its jobs are taken at once, without waiting for
// --claim-idle. (Its beat is checked too, so a node in another pid namespace
// that shares the host name is never mistaken for a dead one.)
constexpr long long kSiblingSilentMs = 3000;

std::string boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

/// This process's start time in clock ticks since boot: with the pid and the
/// boot id it names this process and no later one that reuses the pid.
unsigned long long own_start_ticks() {
  auto st = read_proc_stat(::getpid());
  return st ? st->start_time : 0;
}

/// A node of this host that cannot be running any more.
bool sibling_gone(const nlohmann::json& node) {
  if (node.value("boot_id", "") != boot_id()) return true;
  const long pid = node.value("pid", 0L);
  const auto st = read_proc_stat(pid);
  return !st || st->state == 'Z' || st->state == 'X' || st->start_time != node.value("start_ticks", 0ULL);
}

}  // namespace

std::string RedisFeed::NodeJson(const char* state) const {
  static const std::string boot = boot_id();
  static const unsigned long long start = own_start_ticks();
  nlohmann::json j = {{"host", settings_.host},   {"pid", ::getpid()},         {"boot_id", boot},
                      {"start_ticks", start},     {"state", state},            {"in_flight", held_.size()},
                      {"taken", tally_.taken},    {"claimed", tally_.claimed}, {"recorded", tally_.recorded},
                      {"superseded", tally_.superseded}};
  return j.dump();
}

bool RedisFeed::Beat(const char* state) {
  std::string json;
  {
    std::lock_guard lock(mu_);
    json = NodeJson(state);
  }
  if (!Ok(store_.Heartbeat(settings_.consumer, json).status())) return false;
  return true;
}

bool RedisFeed::ClaimFromDeadSiblings(bool& took) {
  auto beat_ms = store_.Heartbeat(settings_.consumer, [this] {
    std::lock_guard lock(mu_);
    return NodeJson("working");
  }());
  if (!Ok(beat_ms.status())) return false;
  // Only nodes silent for a few seconds but less than --claim-idle: older
  // ones' jobs are claimed by ClaimIdle anyway, by any node.
  auto nodes = store_.Nodes(*beat_ms - settings_.claim_idle.count(), *beat_ms - kSiblingSilentMs);
  if (!Ok(nodes.status())) return false;
  for (const BatchStore::NodeBeat& n : *nodes) {
    if (n.name == settings_.consumer) continue;
    const nlohmann::json j = nlohmann::json::parse(n.json, nullptr, false);
    if (!j.is_object() || j.value("host", "") != settings_.host || j.value("state", "") == "left") continue;
    if (!sibling_gone(j)) continue;
    auto jobs = store_.ClaimFrom(settings_.consumer, n.name, 1);
    if (!Ok(jobs.status())) return false;
    if (jobs->empty()) continue;
    if (siblings_said_.insert(n.name).second)
      Notice("thumbmill: taking over the sources of " + n.name +
             ", an earlier node of this machine that is gone (one at a time)");
    Accept(std::move(*jobs), true, true);
    took = true;
    break;
  }
  return true;
}

}  // namespace thumbmill
