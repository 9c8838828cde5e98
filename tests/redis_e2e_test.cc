// Many machines on one batch (issue 10), end to end: a real redis-server on
// loopback (tests/redis_test_server.h) and three coordinators, each its own
// process tree with its own workers and downloader, on one batch of 600
// generated photos, all writing into one output directory, as nodes on one
// shared file system would. Then the same with what goes wrong in a
// cluster: a node SIGKILLed, redis-server killed and restarted, a node
// stopped past --claim-idle and woken, a source that kills every node that
// takes it, the batch enqueued twice; and three nodes into one S3 target
// (s3rver), and redis unreachable at start. Each case asserts the exact
// number of results (the batch's --report, every source exactly once), the
// thumbnails and manifest on disk (the same bytes as a plain local run
// makes), and that no /dev/shm segment or process of any node is left.
//
// Every wait is for an event (a count in Redis, a process exiting), never a
// fixed sleep. Skipped when redis-server is not installed.
#include <doctest/doctest.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/socket.h>
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

#include <nlohmann/json.hpp>

#include "coordinator/redis_batch.h"
#include "coordinator/redis_client.h"
#include "shared/manifest.h"
#include "shared/output_names.h"
#include "shared/s3_client.h"
#include "tests/redis_test_server.h"
#include "tests/server_process.h"
#include "tests/s3_test_server.h"
#include "tests/skip.h"
#include "tests/test_support.h"

namespace thumbmill::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kPhotos = 600;
constexpr int kSizes = 3;  // the default --sizes 32,64,200
const char* const kClaimIdle = "2";

/// The batch every case works on: 600 small photos (320x240), made once.
const PhotoSet& photos() {
  static const PhotoSet p("redisphotos", kPhotos, {"--width", "320", "--height", "240"});
  return p;
}

/// Every thumbnail under `dir` (the manifest and other dot files left
/// out): file name -> its bytes' hash.
std::map<std::string, std::uint64_t> thumbnails(const fs::path& dir) {
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
const std::map<std::string, std::uint64_t>& reference_outputs() {
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
std::string photo_path(std::size_t i) { return (photos().dir.path() / photos().names[i]).string(); }

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

#define NEED_REDIS(redis)              \
  RedisTestServer redis;               \
  if (!redis.available()) THUMBMILL_SKIP(redis.skip_reason())

/// The nodes' "(N taken over from other nodes)".
constexpr const char* kTakenOver = " sources (";

TEST_CASE("three nodes on one batch: every source exactly once, ok, thumbnails and manifest complete; --status") {
  NEED_REDIS(redis);
  (void)reference_outputs();  // made before the clock of any case starts
  Batch batch(redis, "clean");
  CHECK(batch.Enqueue() == kPhotos);
  for (int i = 0; i < 3; ++i) batch.StartNode();
  // --status while they work: the counts and every node by name.
  REQUIRE(Batch::Until([&] { return batch.Done() >= 30 && batch.NodeCount() == 3; }));
  const CommandResult status = batch.Command({"--status"});
  INFO(status.out << status.err);
  CHECK(status.exit_code == 0);
  CHECK(status.out.find("600 enqueued: ") != std::string::npos);
  CHECK(status.out.find("in progress") != std::string::npos);
  CHECK(status.out.find("nodes      3") != std::string::npos);
  for (Node& n : batch.nodes()) CHECK(status.out.find(":" + std::to_string(n.pid()) + " ") != std::string::npos);

  REQUIRE(batch.WaitAll());
  INFO(batch.Logs());
  for (Node& n : batch.nodes()) CHECK(n.exit_code == 0);
  // Each node did a share, and the shares add up to the batch.
  for (Node& n : batch.nodes()) CHECK(n.process->err().find("recorded 0 results") == std::string::npos);
  CHECK(batch.SumOfNodes("recorded ") == kPhotos);

  const auto report = batch.Report();
  batch.CheckOutputs(report);
  const CommandResult after = batch.Command({"--status"});
  CHECK(after.out.find("600 enqueued: 600 ok, 0 failed, 0 skipped, 0 in progress, 0 waiting") != std::string::npos);
  CHECK(after.out.find("state      drained") != std::string::npos);
  batch.CheckClean();
}


/// How many processes of node `pid`'s tree are alive (it and its children
/// map its run's segment).
int tree_alive(pid_t pid) {
  int n = 0;
  for (const std::string& what : run_leftovers(pid)) n += what.rfind("process", 0) == 0;
  return n;
}

TEST_CASE("a node SIGKILLed mid-run: its children die with it, the others finish its sources after --claim-idle") {
  NEED_REDIS(redis);
  (void)reference_outputs();
  Batch batch(redis, "killed");
  CHECK(batch.Enqueue() == kPhotos);
  for (int i = 0; i < 3; ++i) batch.StartNode();
  REQUIRE(Batch::Until([&] { return batch.Done() >= 150; }));
  Node& victim = batch.nodes()[0];
  const pid_t dead = victim.pid();
  // The node, its downloader and its worker.
  const std::vector<pid_t> children = children_of(dead);
  REQUIRE(children.size() >= 2);
  REQUIRE(tree_alive(dead) == static_cast<int>(children.size()) + 1);
  ::kill(dead, SIGKILL);
  REQUIRE(Batch::Until([&] { return victim.Ended(); }, 5s));
  CHECK(victim.exit_code == 128 + SIGKILL);
  // Its children go with it (PDEATHSIG): none is left running.
  CHECK(eventually([&] { return tree_alive(dead) == 0; }, 2000ms));
  for (pid_t child : children) CHECK((process_state(child) == '?' || process_state(child) == 'Z'));

  REQUIRE(batch.WaitAll());
  INFO(batch.Logs());
  CHECK(batch.nodes()[1].exit_code == 0);
  CHECK(batch.nodes()[2].exit_code == 0);
  // What the dead node held was taken over (it was pending under its name).
  CHECK(batch.SumOfNodes(kTakenOver) > 0);
  CHECK(batch.Done() == kPhotos);
  // Its segment stays until a node starts again here (as systemd restarts
  // it): that node finds the batch drained, clears it, and exits 0. (Any
  // coordinator started on the machine clears it: other test runs may have.)
  CHECK(run_leftovers(dead).size() <= 1);
  Node& again = batch.StartNode();
  REQUIRE(Batch::Until([&] { return again.Ended(); }, 30s));
  CHECK(again.exit_code == 0);
  CHECK(again.process->err().find("took 0 sources") != std::string::npos);

  batch.CheckOutputs(batch.Report());
  batch.CheckClean();
}

TEST_CASE("redis-server killed and restarted mid-run: the nodes reconnect and finish, nothing lost") {
  NEED_REDIS(redis);
  (void)reference_outputs();
  Batch batch(redis, "restarted");
  CHECK(batch.Enqueue() == kPhotos);
  for (int i = 0; i < 3; ++i) batch.StartNode();
  REQUIRE(Batch::Until([&] { return batch.Done() >= 150; }));
  redis.Kill();
  // Every node has seen the connection go before the server is back.
  CHECK(Batch::Until(
      [&] {
        for (Node& n : batch.nodes())
          if (n.process->err().find("; retrying (the sources in hand go on") == std::string::npos) return false;
        return true;
      },
      20s));
  redis.Restart();
  REQUIRE(batch.WaitAll());
  INFO(batch.Logs());
  for (Node& n : batch.nodes()) {
    CHECK(n.exit_code == 0);
    CHECK(n.process->err().find("connected again") != std::string::npos);
  }
  // The nodes may have recorded more than the batch has: writes the server
  // acknowledged but had not yet written to its AOF when killed are gone
  // (jobs and results alike, in one step), and were done again. The
  // batch's own results are exact (CheckOutputs).
  CHECK(batch.SumOfNodes("recorded ") >= kPhotos);
  CHECK(batch.Done() == kPhotos);
  batch.CheckOutputs(batch.Report());
  batch.CheckClean();
}

TEST_CASE("a node stopped past --claim-idle, then woken: no second result, the same outputs") {
  NEED_REDIS(redis);
  (void)reference_outputs();
  Batch batch(redis, "stopped");
  CHECK(batch.Enqueue() == kPhotos);
  for (int i = 0; i < 3; ++i) batch.StartNode();
  REQUIRE(Batch::Until([&] { return batch.Done() >= 150; }));
  Node& sleeper = batch.nodes()[0];
  ::kill(sleeper.pid(), SIGSTOP);
  // The other two finish the batch, the sleeper's sources included (taken
  // over once idle for --claim-idle): then they exit.
  const bool others_done =
      Batch::Until([&] { return batch.nodes()[1].Ended() && batch.nodes()[2].Ended(); }, 120s);
  CHECK(batch.Done() == kPhotos);
  ::kill(sleeper.pid(), SIGCONT);
  REQUIRE(others_done);
  REQUIRE(batch.WaitAll(60s));
  INFO(batch.Logs());
  for (Node& n : batch.nodes()) CHECK(n.exit_code == 0);
  CHECK(batch.SumOfNodes(kTakenOver) > 0);
  // The sleeper finished what it held, late: not recorded a second time.
  CHECK(sleeper.process->err().find("completed by another node first (not recorded again)") != std::string::npos);
  CHECK(batch.SumOfNodes("recorded ") == kPhotos);
  CHECK(batch.Done() == kPhotos);
  batch.CheckOutputs(batch.Report());
  batch.CheckClean();
}

TEST_CASE("a poison source: the nodes it kills are restarted until it fails as poison; the rest all ok") {
  NEED_REDIS(redis);
  (void)reference_outputs();
  Batch batch(redis, "poisoned");
  const std::string poison = photo_path(kPhotos / 2);
  const std::map<std::string, std::string> env = {{"THUMBMILL_TEST_DIE_ON", "/" + photos().names[kPhotos / 2]}};
  CHECK(batch.Enqueue() == kPhotos);
  for (int i = 0; i < 3; ++i) batch.StartNode(env);
  // As systemd would: a node that died is started again, until the batch
  // is done and every node has exited of its own accord.
  int deaths = 0;
  // Restart loop: every node that died of the poison is replaced once.
  std::set<pid_t> replaced;
  REQUIRE(Batch::Until(
      [&] {
        bool all_ended = true;
        for (std::size_t i = 0; i < batch.nodes().size(); ++i) {
          if (!batch.nodes()[i].Ended()) {
            all_ended = false;
            continue;
          }
          const pid_t pid = batch.nodes()[i].pid();
          if (batch.nodes()[i].exit_code == 128 + SIGKILL && !replaced.count(pid) && deaths < 10) {
            replaced.insert(pid);
            ++deaths;
            batch.StartNode(env);
            all_ended = false;
          }
        }
        return all_ended;
      },
      150s));
  INFO(batch.Logs());
  // Delivered --max-deliveries (3) times, each killing its node; the fourth
  // node to take it records it as poison without trying it.
  CHECK(deaths == 3);
  const auto report = batch.Report();
  REQUIRE(report.count(poison) == 1);
  const json& p = report.at(poison);
  CHECK(p["status"] == "failed");
  CHECK(p["error_code"] == "poison");
  batch.CheckOutputs(report, {poison});
  const auto counts = batch.Counts();
  REQUIRE(counts.has_value());
  CHECK(counts->poison == 1);
  CHECK(counts->failed == 1);
  CHECK(counts->ok == kPhotos - 1);
  // The dead-letter stream holds it, once.
  auto address = parse_redis_url(batch.url());
  REQUIRE(address.ok());
  auto conn = RedisConnection::Connect(*address, 5000ms);
  REQUIRE(conn.ok());
  auto dead = conn->Command({"XRANGE", BatchKeys("poisoned").dead, "-", "+"});
  REQUIRE(dead.ok());
  REQUIRE(dead->size() == 1);
  std::string fields;  // [[id, [field, value, ...]]]
  for (std::size_t i = 0; i < (*dead)[0][1].size(); ++i) fields += std::string((*dead)[0][1][i].str()) + "\n";
  CHECK(fields.find(poison) != std::string::npos);
  batch.CheckClean();
}

TEST_CASE("the batch enqueued twice (and again mid-run, and after): each source one job, one result") {
  NEED_REDIS(redis);
  (void)reference_outputs();
  Batch batch(redis, "twice");
  CHECK(batch.Enqueue() == kPhotos);
  CHECK(batch.Enqueue() == 0);
  for (int i = 0; i < 3; ++i) batch.StartNode();
  REQUIRE(Batch::Until([&] { return batch.Done() >= 100; }));
  CHECK(batch.Enqueue() == 0);
  REQUIRE(batch.WaitAll());
  INFO(batch.Logs());
  for (Node& n : batch.nodes()) CHECK(n.exit_code == 0);
  CHECK(batch.Enqueue() == 0);
  const auto counts = batch.Counts();
  REQUIRE(counts.has_value());
  CHECK(counts->enqueued == kPhotos);
  CHECK(counts->ok == kPhotos);
  CHECK(batch.SumOfNodes("recorded ") == kPhotos);
  batch.CheckOutputs(batch.Report());
  batch.CheckClean();
}

TEST_CASE("three nodes on one batch into one S3 target: every source once, every thumbnail stored") {
  NEED_REDIS(redis);
  S3TestServer s3({"thumbs"});
  if (!s3.available()) THUMBMILL_SKIP(s3.skip_reason());
  const auto& reference = reference_outputs();
  Batch batch(redis, "tos3", "s3://thumbs/t/", s3.env());
  CHECK(batch.Enqueue() == kPhotos);
  for (int i = 0; i < 3; ++i) batch.StartNode();
  REQUIRE(batch.WaitAll(150s));
  INFO(batch.Logs());
  for (Node& n : batch.nodes()) CHECK(n.exit_code == 0);
  CHECK(batch.SumOfNodes("recorded ") == kPhotos);

  S3Client client(s3.settings());
  std::map<std::string, std::uint64_t> objects;  // key -> size
  std::string token;
  do {
    auto page = client.ListPage("thumbs", "t/", token);
    REQUIRE_MESSAGE(page.ok(), page.status().message());
    for (const S3Object& o : page->objects) objects[o.key] = o.size;
    token = page->truncated ? page->next_token : "";
  } while (!token.empty());

  const auto report = batch.Report();
  CHECK(report.size() == static_cast<std::size_t>(kPhotos));
  std::set<std::string> names;
  for (std::size_t i = 0; i < photos().names.size(); ++i) {
    const auto it = report.find(photo_path(i));
    REQUIRE(it != report.end());
    const json& e = it->second;
    INFO(e.dump());
    REQUIRE(e["status"] == "ok");
    REQUIRE(e["outputs"].size() == static_cast<std::size_t>(kSizes));
    for (const json& o : e["outputs"]) {
      const std::string path = o["path"];
      REQUIRE(path.starts_with("s3://thumbs/t/"));
      const std::string key = path.substr(std::string("s3://thumbs/").size());
      REQUIRE(objects.count(key) == 1);
      CHECK(objects.at(key) == o["bytes"].get<std::uint64_t>());
      names.insert(key.substr(2));
    }
  }
  // The names a local run gives, and, for a sample, the same bytes.
  std::set<std::string> want;
  for (const auto& [name, hash] : reference) want.insert(name);
  CHECK(names == want);
  // Nothing else but a manifest record per source.
  std::size_t thumbs = 0, records = 0;
  for (const auto& [key, size] : objects) {
    thumbs += !key.starts_with("t/.");
    records += key.starts_with("t/.thumbmill/manifest/");
  }
  CHECK(thumbs == want.size());
  CHECK(records == static_cast<std::size_t>(kPhotos));
  std::size_t checked = 0;
  for (auto it = reference.begin(); it != reference.end(); std::advance(it, std::min<std::size_t>(61, std::distance(it, reference.end())))) {
    auto bytes = client.Get({"thumbs", "t/" + it->first}, 1 << 20);
    REQUIRE(bytes.ok());
    CHECK(stable_hash(*bytes) == it->second);
    ++checked;
  }
  CHECK(checked >= 20);
  batch.CheckClean();
}


TEST_CASE("redis unreachable at start: a node, --enqueue and --status say so and exit 3") {
  ScratchDir work("redisdown");
  const std::string url = "redis://127.0.0.1:" + std::to_string(testing::free_loopback_port()) + "/june";
  const std::vector<std::vector<std::string>> commands = {
      {"--out", (work / "out").string()},
      {photos().dir.path().string(), "--enqueue"},
      {"--status"},
      {"--report", (work / "r.jsonl").string()},
  };
  for (const auto& args : commands) {
    std::vector<std::string> argv = {coordinator_exe().string(), "--queue", url};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandOptions o;
    o.env = {{"TMPDIR", work.path().string()}};
    o.timeout_s = 30;
    const CommandResult r = run_command(argv, o);
    CAPTURE(args[args.size() - 1]);
    INFO(r.err);
    CHECK(r.exit_code == 3);
    CHECK(r.seconds < 10);
    CHECK(r.err.find("thumbmill: fatal: --queue " + url + ": ") != std::string::npos);
    CHECK(r.err.find("onnect") != std::string::npos);
    CHECK(run_leftovers(r.pid).empty());
  }
  CHECK_FALSE(fs::exists(work / "r.jsonl"));
}

}  // namespace
}  // namespace thumbmill::testing
