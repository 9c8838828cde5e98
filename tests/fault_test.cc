// Fault injection: any process of a run may die at any moment, and nothing
// is lost. Each test runs the real executables against scripts/serve, does
// violence to them (SIGKILL storms, hung decoders, a killed coordinator,
// a too-small /dev/shm, a full disk), and then checks the contract: every
// source ends exactly once, ok with all its thumbnails or failed with a
// reason, and no segment, temp file, partial output or process is left.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/skip.h"
#include "tests/test_support.h"

using namespace thumbmill::testing;
using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path exe(const std::string& name) { return fs::weakly_canonical(build_dir() / name / name); }

/// 300 photos of about 1 MP (quick to make, each a few tens of ms to resize).
struct Photos {
  ScratchDir dir{"fault-photos"};
  std::vector<std::string> names;
  Photos() {
    make_images(dir.path(), 300, {"--megapixels", "1", "--mixed"});
    for (const auto& e : fs::directory_iterator(dir.path()))
      if (e.path().filename().string()[0] != '.') names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
  }
  std::string list(const Server& server, std::size_t count) const {
    std::string text;
    for (std::size_t i = 0; i < count && i < names.size(); ++i) text += server.url(names[i]) + "\n";
    return text;
  }
};

Photos& photos() {
  static Photos p;
  return p;
}

/// One coordinator run in its own directories, in the background.
struct Run {
  ScratchDir work{"fault"};
  fs::path out = work / "out";
  fs::path temp = work / "tmp";
  fs::path report = work / "report.jsonl";
  fs::path list = work / "urls.txt";
  std::unique_ptr<Background> process;
  std::vector<pid_t> coordinators;  // every coordinator run here, for CheckClean

  explicit Run(const std::string& list_text) {
    fs::create_directories(temp);
    write_file(list, list_text);
  }

  std::vector<std::string> Argv(const std::vector<std::string>& flags) const {
    std::vector<std::string> argv = {exe("coordinator").string(), "--out", out.string(), "--report", report.string(),
                                     "--no-progress"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(list.string());
    return argv;
  }

  std::map<std::string, std::string> Env(std::map<std::string, std::string> env = {}) const {
    env["TMPDIR"] = temp.string();
    return env;
  }

  void Start(const std::vector<std::string>& flags, const std::map<std::string, std::string>& env = {}) {
    process = std::make_unique<Background>(Argv(flags), Env(env));
    coordinators.push_back(process->pid());
  }

  CommandResult RunToEnd(const std::vector<std::string>& flags, const std::map<std::string, std::string>& env = {},
                         double timeout_s = 300) {
    CommandOptions options;
    options.env = Env(env);
    options.timeout_s = timeout_s;
    CommandResult r = run_command(Argv(flags), options);
    coordinators.push_back(r.pid);
    CHECK_FALSE(r.timed_out);
    return r;
  }

  pid_t pid() const { return process->pid(); }
  std::vector<pid_t> Workers() const { return children_running(pid(), exe("worker")); }
  std::vector<pid_t> Downloaders() const { return children_running(pid(), exe("downloader")); }

  /// Each source of the list exactly once in the report.
  std::map<std::string, json> ReportByUrl(std::size_t expected) const {
    std::map<std::string, json> m;
    const auto entries = read_report(report);
    for (const auto& e : entries) {
      INFO(e.dump());
      CHECK(m.count(e["url"]) == 0);
      m[e["url"]] = e;
    }
    CHECK(entries.size() == expected);
    return m;
  }

  /// Nothing of any run here is left: no segment, no child process, no temp
  /// file, no half-written output.
  void CheckClean() const {
    for (pid_t pid : coordinators) {
      std::vector<std::string> left;
      for (int i = 0; i < 100 && !(left = run_leftovers(pid)).empty(); ++i) std::this_thread::sleep_for(10ms);
      CHECK(left.empty());
    }
    CHECK(fs::is_empty(temp));
    if (fs::exists(out))
      for (const auto& e : fs::directory_iterator(out))  // .thumbmill: the manifest and name claims
        if (e.path().filename() != ".thumbmill") CHECK(e.path().filename().string()[0] != '.');
  }
};

/// The thumbnails of a clean run of `list`, by file name; its wall time in
/// `seconds` if given.
std::map<std::string, std::string> clean_outputs(const std::string& list, std::vector<std::string> flags = {},
                                                 double* seconds = nullptr) {
  Run run(list);
  if (flags.empty()) flags = {"--workers", "2"};
  const CommandResult r = run.RunToEnd(flags);
  if (seconds) *seconds = r.seconds;
  REQUIRE(r.exit_code == 0);
  std::map<std::string, std::string> files;
  for (const auto& e : fs::directory_iterator(run.out))
    if (e.is_regular_file()) files[e.path().filename().string()] = read_file(e.path());
  return files;
}

void check_same_outputs(const fs::path& out, const std::map<std::string, std::string>& expected) {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(out)) {
    if (!e.is_regular_file()) continue;  // .thumbmill
    const std::string name = e.path().filename().string();
    INFO(name);
    REQUIRE(expected.count(name) == 1);
    CHECK(read_file(e.path()) == expected.at(name));
    ++n;
  }
  CHECK(n == expected.size());
}

int count_done(const fs::path& report) { return static_cast<int>(read_report(report, ReportCheck::kNone).size()); }

}  // namespace

TEST_CASE("kill storm: 20 SIGKILLs of busy workers, every source exactly once, outputs as in a clean run") {
  Photos& p = photos();
  // Downloads pace the run (one at a time, 30 ms each) so it lasts ~10 s,
  // long enough for 20 well-spaced kills.
  Server server(p.dir.path(), /*delay_ms=*/30);
  const std::string list = p.list(server, 300);
  const std::vector<std::string> flags = {"--workers", "2", "--downloads", "1"};
  double clean_s = 0;
  const auto clean = clean_outputs(list, flags, &clean_s);

  Run run(list);
  run.Start(flags);
  std::mt19937 rng(42);
  int kills = 0;
  const auto start = std::chrono::steady_clock::now();
  std::map<pid_t, std::chrono::steady_clock::time_point> first_seen;
  // Entries that needed a second attempt: each is a job whose worker was
  // killed and that was then finished by another.
  auto retried = [&] {
    int n = 0;
    for (const auto& e : read_report(run.report, ReportCheck::kNone)) n += e["attempts"] == 2;
    return n;
  };
  while (kills < 20 && run.process->Wait(0) == -1) {
    std::this_thread::sleep_for(2ms);
    // A busy worker: on a CPU right now, and past its start-up (a starting
    // worker is on a CPU too, but holds no job).
    const auto now = std::chrono::steady_clock::now();
    std::vector<pid_t> busy;
    for (pid_t w : run.Workers()) {
      const auto seen = first_seen.emplace(w, now).first->second;
      if (now - seen > 300ms && process_state(w) == 'R') busy.push_back(w);
    }
    if (busy.empty()) continue;
    const int retried_before = retried();
    if (::kill(busy[rng() % busy.size()], SIGKILL) != 0) continue;
    ++kills;
    // The victim's job goes back to the head of the queue: wait until it is
    // done before the next kill, so no source is hit twice (a second hit
    // would rightly fail it as a poison pill). A victim caught between jobs
    // held none: then just go on after a while.
    eventually([&] { return retried() > retried_before || run.process->Wait(0) != -1; }, 1000ms);
  }
  const double storm_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int status = run.process->Wait(120);
  const double run_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(run.process->err());
  CHECK(status == 0);
  CHECK(kills == 20);
  const auto report = run.ReportByUrl(300);
  for (const auto& [url, e] : report) {
    INFO(e.dump());
    CHECK(e["status"] == "ok");
  }
  check_same_outputs(run.out, clean);
  MESSAGE("kill storm: " << kills << " kills over " << storm_s << " s; run " << run_s << " s against "
                          << clean_s << " s clean\n"
                          << run.process->err());
  run.CheckClean();
}

TEST_CASE("idle kills: workers killed while waiting for work, then the run goes on") {
  Photos& p = photos();
  Server server(p.dir.path(), /*delay_ms=*/3000);  // workers idle while the first bodies come
  Run run(p.list(server, 10));
  run.Start({"--workers", "2", "--downloads", "10"});
  int kills = 0;
  while (kills < 20) {
    std::this_thread::sleep_for(50ms);
    auto workers = run.Workers();
    if (workers.size() < 2) continue;  // let the replacement start: kill idle workers, not starting ones
    if (::kill(workers[0], SIGKILL) == 0) ++kills;
  }
  CHECK(count_done(run.report) == 0);  // they really were idle
  CHECK(run.process->Wait(60) == 0);
  const auto report = run.ReportByUrl(10);
  for (const auto& [url, e] : report) CHECK(e["status"] == "ok");
  CHECK(run.process->err().find("20 worker") != std::string::npos);
  run.CheckClean();
}

TEST_CASE("poison pill: a source that crashes its worker fails after exactly 2 attempts, the rest are ok") {
  Photos& p = photos();
  ScratchDir dir("poison");
  for (int i = 0; i < 10; ++i) fs::copy_file(p.dir / p.names[i], dir / p.names[i]);
  fs::copy_file(p.dir / p.names[10], dir / "poison.jpg");
  Server server(dir.path());
  std::string list = server.url("poison.jpg") + "\n";
  for (int i = 0; i < 10; ++i) list += server.url(p.names[i]) + "\n";
  Run run(list);
  const CommandResult r = run.RunToEnd({"--workers", "2"}, {{"THUMBMILL_TEST_CRASH_ON", "poison"}});
  INFO(r.err);
  CHECK(r.exit_code == 1);
  const auto report = run.ReportByUrl(11);
  const json& pill = report.at(server.url("poison.jpg"));
  CHECK(pill["status"] == "failed");
  CHECK(pill["attempts"] == 2);
  CHECK(pill["error_code"] == "worker-crashed");
  CHECK(pill["error"].get<std::string>().find("worker crashed (signal 6") == 0);
  for (int i = 0; i < 10; ++i) CHECK(report.at(server.url(p.names[i]))["status"] == "ok");
  CHECK(r.err.find("2 worker") != std::string::npos);  // two restarts
  run.CheckClean();
}

TEST_CASE("a hung decoder is killed at --job-timeout and counts as an attempt") {
  Photos& p = photos();
  ScratchDir dir("hang");
  for (int i = 0; i < 6; ++i) fs::copy_file(p.dir / p.names[i], dir / p.names[i]);
  fs::copy_file(p.dir / p.names[6], dir / "stuck.jpg");
  std::string list = (dir / "stuck.jpg").string() + "\n";
  for (int i = 0; i < 6; ++i) list += (dir / p.names[i]).string() + "\n";
  Run run(list);
  const CommandResult r = run.RunToEnd({"--workers", "2", "--job-timeout", "1"}, {{"THUMBMILL_TEST_HANG_ON", "stuck"}}, 60);
  INFO(r.err);
  CHECK(r.exit_code == 1);
  const auto report = run.ReportByUrl(7);
  const json& stuck = report.at((dir / "stuck.jpg").string());
  CHECK(stuck["status"] == "failed");
  CHECK(stuck["attempts"] == 2);
  CHECK(stuck["error"].get<std::string>().find("timed out after 1 s") != std::string::npos);
  for (int i = 0; i < 6; ++i) CHECK(report.at((dir / p.names[i]).string())["status"] == "ok");
  CHECK(r.seconds < 30);
  run.CheckClean();
}

TEST_CASE("the downloader killed mid-transfer is restarted and refetches what it had in flight") {
  Photos& p = photos();
  Server server(p.dir.path(), /*delay_ms=*/200);
  const std::string list = p.list(server, 60);
  Run run(list);
  run.Start({"--workers", "2", "--downloads", "4"});
  int kills = 0;
  while (kills < 5 && run.process->Wait(0) == -1) {
    std::this_thread::sleep_for(300ms);
    auto downloaders = run.Downloaders();
    if (!downloaders.empty() && ::kill(downloaders[0], SIGKILL) == 0) ++kills;
  }
  INFO(run.process->err());
  CHECK(run.process->Wait(120) == 0);
  CHECK(kills == 5);
  const auto report = run.ReportByUrl(60);
  for (const auto& [url, e] : report) CHECK(e["status"] == "ok");
  CHECK(run.process->err().find("5 downloader") != std::string::npos);
  run.CheckClean();
}

TEST_CASE("the coordinator SIGKILLed: children go within a second; a rerun cleans up and resumes") {
  Photos& p = photos();
  Server server(p.dir.path(), /*delay_ms=*/30);
  const std::string list = p.list(server, 80);
  const auto clean = clean_outputs(list);

  Run run(list);
  run.Start({"--workers", "2", "--downloads", "4"});
  REQUIRE(eventually([&] { return count_done(run.report) >= 20; }));
  const pid_t dead = run.pid();
  ::kill(dead, SIGKILL);
  run.process->Wait(5);
  const auto killed_at = std::chrono::steady_clock::now();
  auto children_alive = [&] {
    int n = 0;
    for (const auto& what : run_leftovers(dead)) n += what.rfind("process", 0) == 0;
    return n;
  };
  CHECK(eventually([&] { return children_alive() == 0; }, 1000ms));
  MESSAGE("children gone " << std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count()
                           << " s after the coordinator was killed");
  CHECK(run_leftovers(dead).size() == 1);  // the dead run's segment is still there
  CHECK_FALSE(fs::is_empty(run.temp));     // and its temp directory

  const int done_before = count_done(run.report);
  const CommandResult again = run.RunToEnd({"--workers", "2", "--downloads", "4"});
  INFO(again.err);
  CHECK(again.exit_code == 0);
  const auto report = run.ReportByUrl(80);  // exactly one entry per source
  int skipped = 0;
  for (const auto& [url, e] : report) {
    CHECK(e["status"] == "ok");
    skipped += e.value("skipped", false);
  }
  CHECK(skipped >= done_before - 4);  // at most the in-flight ones were cut mid-write
  CHECK(skipped > 0);
  CHECK(again.err.find(std::to_string(skipped) + " skipped") != std::string::npos);
  check_same_outputs(run.out, clean);
  run.CheckClean();  // the stale segment and temp dir are gone too

  SUBCASE("--force redoes everything") {
    const CommandResult forced = run.RunToEnd({"--workers", "2", "--force"});
    CHECK(forced.exit_code == 0);
    CHECK(forced.err.find("80 ok, 0 failed, 0 skipped") != std::string::npos);
  }
}

TEST_CASE("SIGTERM stops gracefully: no new sources, report and summary written, exit 130") {
  Photos& p = photos();
  Server server(p.dir.path(), /*delay_ms=*/100);
  Run run(p.list(server, 200));
  run.Start({"--workers", "2", "--downloads", "4"});
  REQUIRE(eventually([&] { return count_done(run.report) >= 5; }));
  SUBCASE("once") {
    ::kill(run.pid(), SIGTERM);
    CHECK(run.process->Wait(30) == 130);
  }
  SUBCASE("twice: stops at once, still leaves nothing behind") {
    ::kill(run.pid(), SIGTERM);
    ::kill(run.pid(), SIGTERM);
    CHECK(run.process->Wait(10) == 130);
  }
  const std::string err = run.process->err();
  INFO(err);
  CHECK(err.find("process ") != std::string::npos);  // the summary table
  const auto entries = read_report(run.report);
  std::set<std::string> urls;
  int interrupted = 0;
  for (const auto& e : entries) {
    CHECK(urls.insert(e["url"]).second);  // each at most once
    if (e["status"] == "failed") {
      CHECK(e["error_code"] == "interrupted");
      ++interrupted;
    }
  }
  CHECK(entries.size() < 200);  // it stopped taking new sources
  CHECK(interrupted > 0);       // and recorded the ones it was in the middle of
  run.CheckClean();
}

TEST_CASE("a child that fails at start-up again and again ends the run with exit 3") {
  Photos& p = photos();
  Run run((p.dir / p.names[0]).string() + "\n");
  std::string hook, message;
  SUBCASE("workers") {
    hook = "THUMBMILL_TEST_WORKER_START_FAILS";
    message = "workers keep failing at start-up";
  }
  SUBCASE("the downloader") {
    hook = "THUMBMILL_TEST_DOWNLOADER_START_FAILS";
    message = "the downloader keeps failing at start-up";
  }
  const CommandResult r = run.RunToEnd({"--workers", "2"}, {{hook, "1"}}, 60);
  INFO(r.err);
  CHECK(r.exit_code == 3);
  CHECK(r.err.find(message) != std::string::npos);
  CHECK(r.seconds > 1);   // backed off between tries...
  CHECK(r.seconds < 20);  // ...then gave up: no busy loop
  run.CheckClean();
}

TEST_CASE("1000 worker restarts leave the coordinator with no extra descriptors and no zombies") {
  // Poison pills on local files: each kills two workers, so 500 of them make
  // 1000 restarts. The coordinator is watched from outside all along.
  const char* env = std::getenv("THUMBMILL_FAULT_RESTARTS");
  const int restarts = env ? std::atoi(env) : 1000;
  Photos& p = photos();
  ScratchDir dir("restarts");
  std::string list;
  for (int i = 0; i < restarts / 2; ++i) {
    const fs::path pill = dir / ("poison-" + std::to_string(i) + ".jpg");
    fs::create_hard_link(p.dir / p.names[0], pill);
    list += pill.string() + "\n";
  }
  Run run(list);
  run.Start({"--workers", "2"}, {{"THUMBMILL_TEST_CRASH_ON", "poison"}});
  auto fd_count = [&] {
    std::error_code ec;
    int n = 0;
    for (auto it = fs::directory_iterator("/proc/" + std::to_string(run.pid()) + "/fd", ec);
         !ec && it != fs::directory_iterator(); it.increment(ec))
      ++n;
    return n;
  };
  REQUIRE(eventually([&] { return run.Workers().size() == 2; }));
  const int fds_at_start = fd_count();
  int max_fds = fds_at_start;
  // A zombie is "lasting" when it is still there 2 s after it was first
  // seen: a reaper that works takes milliseconds (a loop that forgot to reap
  // leaves it until the run ends); 2 s leaves room for a loaded machine.
  std::map<pid_t, std::chrono::steady_clock::time_point> zombie_since;
  std::set<pid_t> lasting;
  while (run.process->Wait(0) == -1) {
    max_fds = std::max(max_fds, fd_count());
    for (pid_t child : children_of(run.pid())) {
      std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
      std::string line;
      std::getline(stat, line);
      const auto close = line.rfind(')');
      if (close == std::string::npos || line[close + 2] != 'Z') continue;
      const auto now = std::chrono::steady_clock::now();
      const auto first = zombie_since.emplace(child, now).first->second;
      if (now - first > 2s) lasting.insert(child);
    }
    std::this_thread::sleep_for(10ms);
  }
  INFO(run.process->err().substr(0, 2000));
  CHECK(run.process->Wait(0) == 1);
  // Each dead worker's pipe is closed: a leak would grow with every restart.
  // A spawn in progress briefly holds a few more (the new pipe, Boost's
  // exec-error pipe).
  CHECK(max_fds <= fds_at_start + 4);
  CHECK(lasting.empty());  // every child reaped within 2 s of its end
  const auto report = run.ReportByUrl(restarts / 2);
  for (const auto& [url, e] : report) CHECK(e["attempts"] == 2);
  CHECK(run.process->err().find(std::to_string(restarts) + " worker") != std::string::npos);
  run.CheckClean();
}

TEST_CASE("environment faults: a too-small /dev/shm and a full output directory") {
  // A private mount namespace with small tmpfs mounts, where the machine
  // allows it (root, or user namespaces).
  const CommandResult probe = run_command({"/usr/bin/unshare", "-m", "/bin/true"});
  if (probe.exit_code != 0) THUMBMILL_SKIP("cannot create a mount namespace here (unshare -m: " + probe.err + ")");
  Photos& p = photos();
  ScratchDir work("env");
  fs::create_directories(work / "tmp");
  const std::string list_path = (work / "list.txt").string();
  std::string list;
  for (int i = 0; i < 30; ++i) list += (p.dir / p.names[i]).string() + "\n";
  write_file(list_path, list);
  const std::string coordinator = exe("coordinator").string();

  SUBCASE("/dev/shm smaller than --queue-mb: a clear error at start, exit 3, never SIGBUS") {
    const CommandResult r = run_command(
        {"/usr/bin/unshare", "-m", "/bin/sh", "-c",
         "mount -t tmpfs -o size=16m tmpfs /dev/shm && exec \"$0\" --queue-mb 64 --out \"$1\" \"$2\"", coordinator,
         (work / "out").string(), list_path},
        {.stdin_text = "", .env = {{"TMPDIR", (work / "tmp").string()}}, .timeout_s = 60});
    INFO(r.err);
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("not enough room in /dev/shm") != std::string::npos);
  }
  SUBCASE("a full output directory: clear per-source failures, no partial file") {
    const fs::path out = work / "full";
    fs::create_directories(out);
    const CommandResult r = run_command(
        {"/usr/bin/unshare", "-m", "/bin/sh", "-c",
         "mount -t tmpfs -o size=64k tmpfs \"$1\" && \"$0\" --workers 2 --report \"$1.jsonl\" --out \"$1\" \"$2\"; "
         "rc=$?; ls -A \"$1\" > \"$1.ls\"; exit $rc",
         coordinator, out.string(), list_path},
        {.stdin_text = "", .env = {{"TMPDIR", (work / "tmp").string()}}, .timeout_s = 60});
    INFO(r.err);
    CHECK(r.exit_code == 1);
    int full = 0, ok = 0;
    for (const auto& e : read_report(out.string() + ".jsonl")) {
      if (e["status"] == "ok") ++ok;
      else if (e["error"].get<std::string>().find("No space left on device") != std::string::npos) ++full;
    }
    CHECK(full > 0);
    CHECK(ok + full == 30);
    const std::string listing = read_file(out.string() + ".ls");
    CHECK(listing.find(".tmp.") == std::string::npos);  // no temp file left
  }
  CHECK(fs::is_empty(work / "tmp"));
}
