// End to end, what a run writes and where: the real coordinator never writes
// through a name planted in the output directory, its start-up clean-up
// leaves files that are not its own, the report never clobbers the list, a
// failing start leaves an old report alone, and a report that cannot be
// written ends the run with exit 3.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/skip.h"
#include "tests/test_support.h"

using namespace thumbmill::testing;
namespace fs = std::filesystem;

namespace {

fs::path coordinator() { return build_dir() / "coordinator" / "coordinator"; }
fs::path coordinator_threaded() { return build_dir() / "coordinator" / "coordinator-threaded"; }

/// A few small local photos, generated once.
struct Photos {
  ScratchDir dir{"files-photos"};
  std::vector<fs::path> paths;
  Photos() {
    make_images(dir.path(), 3, {"--megapixels", "0.3"});
    for (const auto& e : fs::directory_iterator(dir.path()))
      if (e.path().filename().string()[0] != '.') paths.push_back(e.path());
    std::sort(paths.begin(), paths.end());
  }
  std::string list() const {
    std::string text;
    for (const auto& p : paths) text += p.string() + "\n";
    return text;
  }
};

Photos& photos() {
  static Photos p;
  return p;
}

struct Run {
  ScratchDir work{"files"};
  fs::path out = work / "out";
  fs::path temp = work / "tmp";
  fs::path list = work / "urls.txt";
  fs::path report = work / "report.jsonl";

  Run() {
    fs::create_directories(temp);
    write_file(list, photos().list());
  }

  CommandResult Go(const std::vector<std::string>& flags, const fs::path& binary = coordinator()) {
    std::vector<std::string> argv = {binary.string(), "--out", out.string(), "--no-progress"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    CommandOptions options;
    options.env["TMPDIR"] = temp.string();
    options.timeout_s = 120;
    CommandResult r = run_command(argv, options);
    INFO("stderr: " << r.err);
    CHECK_FALSE(r.timed_out);
    return r;
  }
};

/// The thread ids of process `pid` (itself included).
std::vector<pid_t> threads_of(pid_t pid) {
  std::vector<pid_t> ids;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec))
    ids.push_back(static_cast<pid_t>(std::stol(e.path().filename().string())));
  return ids;
}

}  // namespace

TEST_CASE("a run never writes through symlinks planted at the writers' temp names in --out") {
  // The old temp name was ".<name>.tmp.<writer thread id>", and the start-up
  // clean-up removed such names of dead writers only: plant them for every
  // thread of the run once its workers are up, then hand it the list.
  for (const fs::path& binary : {coordinator(), coordinator_threaded()}) {
    CAPTURE(binary);
    Run run;
    fs::create_directories(run.out);
    const fs::path victim = run.work / "victim";
    write_file(victim, "precious");
    const fs::path fifo = run.work / "list.fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    Background bg({binary.string(), "--out", run.out.string(), "--no-progress", "--sizes", "64", "--workers", "2",
                   fifo.string()},
                  {{"TMPDIR", run.temp.string()}});
    // Opens once the coordinator has opened its end (ENXIO until then);
    // never blocks, so a coordinator that failed early cannot hang the test.
    int list_fd = -1;
    REQUIRE(eventually([&] {
      list_fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      return list_fd >= 0 || bg.Wait(0) != -1;
    }));
    INFO(bg.err());
    REQUIRE(list_fd >= 0);
    REQUIRE(::fcntl(list_fd, F_SETFL, 0) == 0);  // blocking writes from here
    auto threads = [&] {
      std::vector<pid_t> ids = threads_of(bg.pid());
      for (pid_t child : children_of(bg.pid()))
        for (pid_t id : threads_of(child)) ids.push_back(id);
      return ids;
    };
    // The downloader and two workers: as processes, or as threads.
    const bool threaded = binary == coordinator_threaded();
    REQUIRE(eventually([&] {
      return threaded ? threads_of(bg.pid()).size() >= 4 : children_of(bg.pid()).size() >= 3;
    }));
    std::vector<std::string> names;
    for (const auto& p : photos().paths) names.push_back(p.stem().string() + "_64.jpg");
    for (pid_t id : threads())
      for (const auto& name : names)
        fs::create_symlink(victim, run.out / ("." + name + ".tmp." + std::to_string(id)));
    const std::string list = photos().list();
    REQUIRE(::write(list_fd, list.data(), list.size()) == static_cast<ssize_t>(list.size()));
    ::close(list_fd);
    INFO(bg.err());
    CHECK(bg.Wait(120) == 0);
    CHECK(read_file(victim) == "precious");
    for (const auto& name : names) CHECK(fs::is_regular_file(run.out / name));
  }
}

TEST_CASE("start-up clean-up removes only our own orphans: near-miss names in --out survive") {
  Run run;
  fs::create_directories(run.out);
  const std::vector<std::string> user_files = {".thesis.tmp.final", ".thesis.tmp.4194999", ".x.tmp.", ".plan.tmp.1.abc",
                                               ".draft.tmp.99999999.0123456789ABCDEF"};
  for (const auto& name : user_files) write_file(run.out / name, "user data");
  const CommandResult r = run.Go({"--sizes", "64", run.list.string()});
  CHECK(r.exit_code == 0);
  for (const auto& name : user_files) {
    INFO(name);
    CHECK(fs::exists(run.out / name));
  }
}

TEST_CASE("--report naming the list is refused with exit 2 and the list is left intact") {
  Run run;
  const std::string list_text = read_file(run.list);
  std::vector<std::pair<std::string, std::vector<std::string>>> cases;
  fs::create_symlink(run.list, run.work / "link.jsonl");
  fs::create_hard_link(run.list, run.work / "hard.jsonl");
  const std::string dotted = (run.work / "." / "urls.txt").string();
  cases.push_back({"same path", {"--report", run.list.string(), run.list.string()}});
  cases.push_back({"same file, another spelling", {"--report", dotted, run.list.string()}});
  cases.push_back({"via a symlink", {"--report", (run.work / "link.jsonl").string(), run.list.string()}});
  cases.push_back({"via a hard link", {"--report", (run.work / "hard.jsonl").string(), run.list.string()}});
  cases.push_back({"the list names the report", {"--report", run.list.string(), (run.work / "link.jsonl").string()}});
  for (const auto& [what, flags] : cases) {
    INFO(what);
    const CommandResult r = run.Go(flags);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--report") != std::string::npos);
    CHECK(read_file(run.list) == list_text);
  }
}

TEST_CASE("--report that is the list given on standard input is refused with exit 2") {
  Run run;
  const std::string list_text = read_file(run.list);
  CommandOptions options;
  options.env["TMPDIR"] = run.temp.string();
  options.timeout_s = 120;
  const std::string script = "exec \"$0\" --out \"$1\" --no-progress --report \"$2\" - < \"$2\"";
  const CommandResult r =
      run_command({"/bin/sh", "-c", script, coordinator().string(), run.out.string(), run.list.string()}, options);
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK(read_file(run.list) == list_text);
}

TEST_CASE("--report /dev/full: exit 3 with a message, in both builds") {
  if (!fs::exists("/dev/full")) THUMBMILL_SKIP("no /dev/full on this machine");
  for (const fs::path& binary : {coordinator(), coordinator_threaded()}) {
    CAPTURE(binary);
    Run run;
    const CommandResult r = run.Go({"--sizes", "64", "--report", "/dev/full", run.list.string()}, binary);
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("/dev/full") != std::string::npos);
    CHECK(r.err.find("No space left on device") != std::string::npos);
  }
}

TEST_CASE("a run that fails a start-up check leaves an existing report untouched") {
  Run run;
  write_file(run.report, "the last run's report\n");
  SUBCASE("--out is not a directory") {
    write_file(run.out, "a file");
    const CommandResult r = run.Go({"--report", run.report.string(), run.list.string()});
    CHECK(r.exit_code == 3);
  }
  SUBCASE("the list does not exist") {
    const CommandResult r = run.Go({"--report", run.report.string(), (run.work / "missing.txt").string()});
    CHECK(r.exit_code == 2);
  }
  SUBCASE("the report would clobber the list") {
    const CommandResult r = run.Go({"--report", run.report.string(), run.report.string()});
    CHECK(r.exit_code == 2);
  }
  CHECK(read_file(run.report) == "the last run's report\n");
}
