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
#include "tests/redis_nodes.h"
#include "tests/redis_test_server.h"
#include "tests/server_process.h"
#include "tests/s3_test_server.h"
#include "tests/skip.h"
#include "tests/test_support.h"

namespace thumbmill::testing {
namespace {

using namespace redis_nodes;
namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

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
  // Its children go with it (PDEATHSIG): none is left running. A child
  // stops showing the segment in its maps as soon as its exit lets go of its
  // memory, before it is a zombie (tearing down a large mapping, or ASan's
  // shadow, takes a while): so each one's end is waited for too.
  CHECK(eventually([&] { return tree_alive(dead) == 0; }, 2000ms));
  for (pid_t child : children) {
    CAPTURE(child);
    CHECK(eventually([&] { return process_state(child) == '?' || process_state(child) == 'Z'; }, 5000ms));
  }

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
