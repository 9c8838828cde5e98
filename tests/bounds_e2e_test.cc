// Issue 7 §1 and §10 end to end: the real coordinators refuse a 9th size
// before anything starts, and the children of a run hold only the
// descriptors documented in shared/wire.h (0-2, the request pipe on 3 for
// the downloader, the result pipe on 4) plus what they open themselves.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_support.h"

using namespace thumbmill::testing;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

fs::path exe(const char* dir, const char* name) { return build_dir() / dir / name; }

std::string nine_sizes() { return "10,20,30,40,50,60,70,80,90"; }

std::string link_of(const fs::path& path) {
  std::error_code ec;
  const fs::path target = fs::read_symlink(path, ec);
  return ec ? "" : target.string();
}

/// fd number -> what it refers to, for a live process.
std::map<int, std::string> fds_of(pid_t pid) {
  std::map<int, std::string> fds;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    const std::string target = link_of(e.path());
    if (!target.empty()) fds[std::stoi(e.path().filename().string())] = target;
  }
  return fds;
}

bool has_prefix(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

/// Descriptors a child may open for itself: its mapping of the queue, what
/// libcurl or glib make (sockets, eventfds), and libvips reading its module
/// directory as it starts. Never a file of the run or a pipe it was not handed.
bool opened_by_child(const std::string& target) {
  return has_prefix(target, "/dev/shm/thumbmill-") || has_prefix(target, "socket:") ||
         has_prefix(target, "anon_inode:") || has_prefix(target, "/usr/lib/");
}

}  // namespace

TEST_CASE("both coordinators refuse a 9th size with exit 2, naming the limit, before any output") {
  for (const fs::path& coordinator : {exe("coordinator", "coordinator"), exe("coordinator", "coordinator-threaded")}) {
    CAPTURE(coordinator);
    for (const std::string& sizes : {nine_sizes(), nine_sizes() + ",100,110,120,130,140,150,160,170,180,190,200"}) {
      ScratchDir work("sizes");
      write_file(work / "a.png", "not even an image");
      write_file(work / "list.txt", (work / "a.png").string() + "\n");
      const CommandResult r = run_command({coordinator.string(), "--sizes", sizes, "--out", (work / "out").string(),
                                           (work / "list.txt").string()},
                                          {.env = {{"TMPDIR", work.path().string()}}, .timeout_s = 60});
      INFO(r.err);
      CHECK(r.exit_code == 2);
      CHECK(r.err.find("--sizes") != std::string::npos);
      CHECK(r.err.find("at most 8") != std::string::npos);
      CHECK_FALSE(fs::exists(work / "out"));
    }
  }
}

TEST_CASE("children hold only fds 0-4 and what they open themselves, never a file the coordinator had") {
  ScratchDir work("fds");
  const fs::path source = work / "hangme.jpg";
  write_file(source, "the worker hangs on this job's stem before reading it");
  write_file(work / "list.txt", source.string() + "\n");
  write_file(work / "marker", "an fd the coordinator inherits without close-on-exec");
  fs::create_directories(work / "tmp");
  // Inherited by the coordinator (fork + exec keep it): its children must not get it.
  const int marker = ::open((work / "marker").c_str(), O_RDONLY);
  REQUIRE(marker >= 0);
  Background run({exe("coordinator", "coordinator").string(), "--workers", "1", "--quiet", "--job-timeout", "600",
                  "--out", (work / "out").string(), (work / "list.txt").string()},
                 {{"THUMBMILL_TEST_HANG_ON", "hangme"}, {"TMPDIR", (work / "tmp").string()}});
  ::close(marker);

  const std::string worker_exe = fs::canonical(exe("worker", "worker")).string();
  const std::string downloader_exe = fs::canonical(exe("downloader", "downloader")).string();
  pid_t worker = 0, downloader = 0;
  // Both children exec'd and attached to the queue: their inherited fds
  // are all there from exec on, and the mapping shows attach is done.
  const bool up = eventually([&] {
    worker = downloader = 0;
    for (pid_t child : children_of(run.pid())) {
      const std::string image = link_of("/proc/" + std::to_string(child) + "/exe");
      bool attached = false;
      for (const auto& [fd, target] : fds_of(child)) attached |= has_prefix(target, "/dev/shm/thumbmill-");
      if (!attached) continue;
      if (image == worker_exe) worker = child;
      if (image == downloader_exe) downloader = child;
    }
    return worker && downloader;
  });
  INFO(run.err());
  REQUIRE(up);

  for (const auto& [pid, role] : {std::pair{worker, std::string("worker")}, std::pair{downloader, std::string("downloader")}}) {
    CAPTURE(role);
    const auto fds = fds_of(pid);
    for (const auto& [fd, target] : fds) {
      CAPTURE(fd);
      CAPTURE(target);
      CHECK(target != (work / "marker").string());
      CHECK(target != (work / "list.txt").string());
      if (fd <= 2) continue;
      if (fd == 4 || (fd == 3 && role == "downloader")) {
        CHECK(has_prefix(target, "pipe:"));
        continue;
      }
      CHECK(opened_by_child(target));
    }
    CHECK(fds.count(4) == 1);
  }

  // Stop: the first SIGTERM drains (the downloader goes), the second kills the stuck worker.
  REQUIRE(::kill(run.pid(), SIGTERM) == 0);
  REQUIRE(eventually([&] { return ::kill(downloader, 0) != 0; }));
  REQUIRE(::kill(run.pid(), SIGTERM) == 0);
  CHECK(run.Wait(60) == 130);
}

TEST_CASE("children are named in ps and top ('thumbmill: worker 2', comm thumbmill-w2), with no options in argv") {
  ScratchDir work("names");
  std::string list;
  for (int i = 0; i < 2; ++i) {
    const fs::path source = work / ("hangme" + std::to_string(i) + ".jpg");
    write_file(source, "each worker hangs on one of these");
    list += source.string() + "\n";
  }
  write_file(work / "list.txt", list);
  fs::create_directories(work / "tmp");
  Background run({exe("coordinator", "coordinator").string(), "--workers", "2", "--quiet", "--job-timeout", "600",
                  "--quality", "77", "--out", (work / "out").string(), (work / "list.txt").string()},
                 {{"THUMBMILL_TEST_HANG_ON", "hangme"}, {"TMPDIR", (work / "tmp").string()}});
  auto read = [](pid_t pid, const std::string& what) { return read_file("/proc/" + std::to_string(pid) + "/" + what); };
  std::map<std::string, std::string> titles;  // comm -> command line, of attached children
  std::map<std::string, pid_t> pids;           // comm -> pid
  const bool up = eventually([&] {
    titles.clear();
    for (pid_t child : children_of(run.pid())) {
      bool attached = false;
      for (const auto& [fd, target] : fds_of(child)) attached |= has_prefix(target, "/dev/shm/thumbmill-");
      if (!attached) continue;
      std::string comm = read(child, "comm");
      if (!comm.empty() && comm.back() == '\n') comm.pop_back();
      titles[comm] = read(child, "cmdline");
      pids[comm] = child;
    }
    return titles.size() == 3;
  });
  INFO(run.err());
  REQUIRE(up);
  std::string coordinator_comm = read(run.pid(), "comm");
  CHECK(coordinator_comm == "thumbmill\n");
  const std::map<std::string, std::string> expected = {
      {"thumbmill-dl", "thumbmill: downloader"}, {"thumbmill-w1", "thumbmill: worker 1"}, {"thumbmill-w2", "thumbmill: worker 2"}};
  for (const auto& [comm, title] : expected) {
    CAPTURE(comm);
    REQUIRE(titles.count(comm) == 1);
    const std::string& cmdline = titles[comm];
    CAPTURE(cmdline);
    CHECK(has_prefix(cmdline, title));
    // The options travel on a descriptor: no JSON, no option value in argv.
    CHECK(cmdline.find('{') == std::string::npos);
    CHECK(cmdline.find("quality") == std::string::npos);
  }
  // Stop: the first SIGTERM drains (the downloader goes), the second kills
  // the stuck workers. (Two signals sent at once would be read as one.)
  REQUIRE(::kill(run.pid(), SIGTERM) == 0);
  REQUIRE(eventually([&] { return ::kill(pids["thumbmill-dl"], 0) != 0; }));
  REQUIRE(::kill(run.pid(), SIGTERM) == 0);
  CHECK(run.Wait(60) == 130);
}
