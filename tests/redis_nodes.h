// The fixture of tests/redis_e2e_test.cc: the batch of photos every case
// works on, what a plain local run makes of it, and Batch, which starts
// nodes (each a coordinator process tree) on one batch in a shared
// redis-server, waits for events in Redis, reads the batch's report, and
// checks that nothing is left behind.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "coordinator/redis_batch.h"
#include "coordinator/redis_client.h"
#include "shared/manifest.h"
#include "shared/output_names.h"
#include "tests/redis_test_server.h"
#include "tests/test_support.h"

namespace thumbmill::testing::redis_nodes {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline constexpr int kPhotos = 600;
inline constexpr int kSizes = 3;  // the default --sizes 32,64,200
inline constexpr const char* kClaimIdle = "2";

/// The batch every case works on: 600 small photos (320x240), made once.
inline const PhotoSet& photos() {
  static const PhotoSet p("redisphotos", kPhotos, {"--width", "320", "--height", "240"});
  return p;
}

/// Every thumbnail under `dir` (the manifest and other dot files left
/// out): file name -> its bytes' hash.
inline std::map<std::string, std::uint64_t> thumbnails(const fs::path& dir) {
  std::map<std::string, std::uint64_t> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name[0] == '.' || !e.is_regular_file()) continue;
    files[name] = stable_hash(read_file(e.path()));
  }
  return files;
}

/// What a plain local run (no queue, one machine) makes of the same photos:
/// the bytes every node's outputs must equal, however often a source ran.
inline const std::map<std::string, std::uint64_t>& reference_outputs() {
  static const auto reference = [] {
    ScratchDir out("redisref");
    const CommandResult r = run_command({coordinator_exe().string(), "--out", out.path().string(), "--workers", "2",
                                         "--no-progress", "-q", photos().dir.path().string()});
    if (r.exit_code != 0) throw std::runtime_error("the reference run failed: " + r.err);
    return thumbnails(out.path());
  }();
  return reference;
}

/// The absolute path of photo `i`, as a node reads it from the batch.
inline std::string photo_path(std::size_t i) { return (photos().dir.path() / photos().names[i]).string(); }

/// A node: `coordinator --queue URL --out DIR`, its own process tree.
struct Node {
  std::unique_ptr<Background> process;
  int exit_code = -1;
  pid_t pid() const { return process->pid(); }
  /// Whether it has exited (then exit_code holds how).
  bool Ended() {
    if (exit_code == -1) exit_code = process->Wait(0);
    return exit_code != -1;
  }
};

/// One case's batch: its name in the shared server, the one output
/// directory every node writes into, the nodes started for it.
class Batch {
 public:
  /// `out`: the nodes' --out ("" : a directory of the case's own);
  /// `env`: added to every command's environment.
  Batch(RedisTestServer& redis, std::string name, std::string out = "",
        std::map<std::string, std::string> env = {})
      : redis_(redis), name_(std::move(name)), out_arg_(out.empty() ? out_.string() : out), env_(std::move(env)) {
    fs::create_directories(temp_);
    env_["TMPDIR"] = temp_.string();
  }

  /// A case that failed half way leaves nothing behind either: nodes still
  /// running are killed (a stopped one too), and the segments of nodes that
  /// died are removed, as the next node to start on the machine would.
  ~Batch() {
    for (Node& n : nodes_) {
      if (n.Ended()) continue;
      ::kill(n.pid(), SIGKILL);
      ::kill(n.pid(), SIGCONT);
      n.exit_code = n.process->Wait(10);
    }
    std::error_code ec;
    for (Node& n : nodes_)
      for (const std::string& what : run_leftovers(n.pid()))
        if (what.rfind("/dev/shm/", 0) == 0) fs::remove(what, ec);
  }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  std::string url() const { return redis_.url(name_); }
  const fs::path& out() const { return out_; }
  std::deque<Node>& nodes() { return nodes_; }

  /// `coordinator --queue URL ARGS...`, waited for.
  CommandResult Command(const std::vector<std::string>& args, double timeout_s = 60) {
    std::vector<std::string> argv = {coordinator_exe().string(), "--queue", url()};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandOptions o;
    o.env = env_;
    o.timeout_s = timeout_s;
    CommandResult r = run_command(argv, o);
    CHECK_FALSE(r.timed_out);
    commands_.push_back(r.pid);
    return r;
  }

  /// `--enqueue` of the whole photo directory; returns how many it added
  /// (from its "N sources added" line).
  long long Enqueue() {
    const CommandResult r = Command({photos().dir.path().string(), "--enqueue"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const auto at = r.err.find(" sources added");
    REQUIRE(at != std::string::npos);
    return std::stoll(r.err.substr(r.err.rfind(' ', at - 1) + 1));
  }

  /// Starts a node (one worker: three nodes share two cores).
  Node& StartNode(const std::map<std::string, std::string>& extra_env = {}) {
    std::map<std::string, std::string> env = extra_env;
    env.insert(env_.begin(), env_.end());
    nodes_.push_back(Node{std::make_unique<Background>(
        std::vector<std::string>{coordinator_exe().string(), "--queue", url(), "--out", out_arg_, "--workers",
                                 "1", "--no-progress", "--claim-idle", kClaimIdle},
        env)});
    return nodes_.back();
  }

  /// The batch's counts now (nullopt while redis is away).
  std::optional<BatchCounts> Counts() const {
    auto address = parse_redis_url(url());
    if (!address.ok()) return std::nullopt;
    auto store = BatchStore::Connect(*address);
    if (!store.ok()) return std::nullopt;
    auto counts = store->Counts();
    if (!counts.ok()) return std::nullopt;
    return *counts;
  }
  /// Nodes that have sent a heartbeat (-1 while redis is away).
  long long NodeCount() const {
    auto address = parse_redis_url(url());
    if (!address.ok()) return -1;
    auto store = BatchStore::Connect(*address);
    if (!store.ok()) return -1;
    auto nodes = store->Nodes();
    return nodes.ok() ? static_cast<long long>(nodes->size()) : -1;
  }
  long long Done() const {
    const auto c = Counts();
    return c ? c->done() : -1;
  }

  /// Waits until `condition` holds, asking every 50 ms (each ask may be a
  /// connection to redis), for at most `timeout`.
  static bool Until(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 120s) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (condition()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return condition();
  }

  /// Waits for every node started to exit; true when all did in time.
  bool WaitAll(std::chrono::milliseconds timeout = 120s) {
    return Until(
        [&] {
          bool all = true;
          for (Node& n : nodes_) all = n.Ended() && all;
          return all;
        },
        timeout);
  }

  /// The batch's report (`--report`, the results stream as JSON lines),
  /// held to the schema; fails the case on a source reported twice.
  std::map<std::string, json> Report() {
    const fs::path path = temp_ / "batch-report.jsonl";
    const CommandResult r = Command({"--report", path.string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    std::map<std::string, json> by_url;
    for (const json& e : read_report(path)) {
      const std::string url = e["url"];
      CHECK_MESSAGE(by_url.count(url) == 0, "reported twice: " << url);
      by_url[url] = e;
    }
    return by_url;
  }

  /// Every photo but those in `failed` reported ok, with its thumbnails on
  /// disk as the manifest records them, and the bytes a local run makes.
  void CheckOutputs(const std::map<std::string, json>& report, const std::set<std::string>& failed = {}) const {
    CHECK(report.size() == static_cast<std::size_t>(kPhotos));
    const Manifest manifest(out_);
    std::size_t ok = 0;
    for (std::size_t i = 0; i < photos().names.size(); ++i) {
      const std::string path = photo_path(i);
      INFO(path);
      const auto it = report.find(path);
      REQUIRE(it != report.end());
      if (failed.count(path)) continue;
      REQUIRE_MESSAGE(it->second["status"] == "ok", it->second.dump());
      const auto record = manifest.Load(path);
      REQUIRE(record.has_value());
      CHECK(record->outputs.size() == static_cast<std::size_t>(kSizes));
      CHECK(manifest.OutputsIntact(*record));
      ++ok;
    }
    CHECK(ok == photos().names.size() - failed.size());
    // The same names and bytes as a plain local run, and nothing else.
    auto made = thumbnails(out_);
    const auto& reference = reference_outputs();
    CHECK(made.size() == reference.size() - failed.size() * kSizes);
    std::size_t differ = 0;
    for (const auto& [name, hash] : made) differ += !reference.count(name) || reference.at(name) != hash;
    CHECK(differ == 0);
  }

  /// No node (nor any of its children) running, no segment of theirs in
  /// /dev/shm, and none of the other commands either. (Only ours by pid:
  /// other test runs on the machine make segments of their own meanwhile.)
  void CheckClean() {
    for (Node& n : nodes_) {
      CHECK(n.Ended());
      const auto left = run_leftovers(n.pid());
      CHECK_MESSAGE(left.empty(), "node " << n.pid() << " left " << (left.empty() ? "" : left[0]));
    }
    for (pid_t pid : commands_) CHECK(run_leftovers(pid).empty());
  }

  /// The sum over every node's stderr of the number right after `after`
  /// (its summary's "recorded N results": after = "recorded ").
  long long SumOfNodes(const std::string& after) {
    long long sum = 0;
    for (Node& n : nodes_) {
      const std::string err = n.process->err();
      const auto at = err.find(after);
      if (at != std::string::npos) sum += std::stoll(err.substr(at + after.size()));
    }
    return sum;
  }
  std::string Logs() {
    std::string all;
    for (Node& n : nodes_) all += "--- node " + std::to_string(n.pid()) + " exit " + std::to_string(n.exit_code) +
                                  "\n" + n.process->err();
    return all;
  }

 private:
  RedisTestServer& redis_;
  std::string name_;
  ScratchDir work_{"redise2e"};
  fs::path out_ = work_ / "out";
  fs::path temp_ = work_ / "tmp";
  std::string out_arg_;
  std::map<std::string, std::string> env_;
  std::deque<Node> nodes_;  // a deque: a Node& stays valid while more start
  std::vector<pid_t> commands_;  // --enqueue, --status, --report
};

}  // namespace thumbmill::testing::redis_nodes
