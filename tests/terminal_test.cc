// What the terminal says (issue 9), end to end: the real coordinator against
// scripts/serve on loopback, its standard error read as a user reads it.
// Failures are named as they happen without --report, -v names the sources
// that end well, -q says nothing, the summary tallies failures by error code
// and says where the thumbnails went, the progress line explains itself,
// every message has one prefix, and Ctrl-C counts interrupted sources apart
// from failed ones and the unread lines as not started.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <regex>
#include <sstream>

#include "tests/test_support.h"

using namespace thumbmill::testing;
namespace fs = std::filesystem;

namespace {

fs::path coordinator() { return coordinator_exe(); }

/// A few small photos, made once for the whole binary.
PhotoSet& photos() {
  static PhotoSet p("terminal-photos", 6, {"--megapixels", "0.5"});
  return p;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// The lines of `text` that start with `prefix`.
std::vector<std::string> lines_starting(const std::string& text, const std::string& prefix) {
  std::vector<std::string> found;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    // A line may carry progress frames before it ("\r...\x1b[K\r\x1b[K"):
    // what the terminal shows is what follows the last carriage return.
    const auto cr = line.rfind('\r');
    if (cr != std::string::npos) line = line.substr(cr + 1);
    if (line.rfind("\x1b[K", 0) == 0) line = line.substr(3);
    if (line.rfind(prefix, 0) == 0) found.push_back(line);
  }
  return found;
}

/// A list of the photos plus four failures: two 404s, random bytes and an
/// HTML page (both not-an-image).
struct MixedList {
  std::vector<std::string> good, bad;
  std::string text;
  explicit MixedList(const Server& server) {
    for (std::size_t i = 0; i < 3; ++i) good.push_back(server.url(photos().names[i]));
    bad = {server.url("fault/404"), server.url("fault/404?again"), server.url("fault/random"),
           server.url("fault/html")};
    for (const auto& u : good) text += u + "\n";
    for (const auto& u : bad) text += u + "\n";
  }
};

/// One run without --report, list in a file.
struct Run {
  ScratchDir work{"terminal"};
  fs::path out = work / "out";
  fs::path temp = work / "tmp";
  fs::path list = work / "urls.txt";
  CommandResult result;

  explicit Run(const std::string& list_text) {
    fs::create_directories(temp);
    write_file(list, list_text);
  }
  std::vector<std::string> Argv(const std::vector<std::string>& flags) const {
    std::vector<std::string> argv = {coordinator().string(), "--out", out.string(), "--sizes", "64,128"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(list.string());
    return argv;
  }
  const CommandResult& Go(const std::vector<std::string>& flags) {
    CommandOptions options;
    options.env["TMPDIR"] = temp.string();
    options.timeout_s = 120;
    result = run_command(Argv(flags), options);
    CHECK_FALSE(result.timed_out);
    return result;
  }
};

}  // namespace

TEST_CASE("failures are named as they happen without --report; the summary tallies them and says where") {
  Server server(photos().dir.path());
  const MixedList list(server);
  Run run(list.text);
  const CommandResult& r = run.Go({"--no-progress", "--workers", "2"});
  INFO(r.err);
  CHECK(r.exit_code == 1);
  const auto failed = lines_starting(r.err, "thumbmill: failed: ");
  CHECK(failed.size() == list.bad.size());
  for (const std::string& url : list.bad) {
    CAPTURE(url);
    const auto line = std::find_if(failed.begin(), failed.end(),
                                   [&](const std::string& l) { return contains(l, "failed: " + url + ": "); });
    REQUIRE(line != failed.end());
    // The reason, then the error code in brackets.
    const bool http = contains(url, "/fault/404");  // not "404": the port may hold it
    CHECK(contains(*line, http ? "404" : "not an image"));
    CHECK(contains(*line, http ? "[http-status]" : "[not-an-image]"));
  }
  CHECK(lines_starting(r.err, "thumbmill: ok: ").empty());  // only with -v
  CHECK(contains(r.err, "failed: 2 http-status, 2 not-an-image"));
  CHECK(contains(r.err, "thumbnails are in " + run.out.string() + "\n"));
  // The tally and the "where" line close the summary, after the table.
  CHECK(r.err.rfind("thumbnails are in ") > r.err.find("process "));
}

TEST_CASE("-v names every source that ends well, with its thumbnails") {
  Server server(photos().dir.path());
  const MixedList list(server);
  Run run(list.text);
  const CommandResult& r = run.Go({"--no-progress", "-v"});
  INFO(r.err);
  CHECK(r.exit_code == 1);
  const auto ok = lines_starting(r.err, "thumbmill: ok: ");
  CHECK(ok.size() == list.good.size());
  for (const std::string& url : list.good) {
    CAPTURE(url);
    const auto line =
        std::find_if(ok.begin(), ok.end(), [&](const std::string& l) { return contains(l, "ok: " + url + ": "); });
    REQUIRE(line != ok.end());
    CHECK(contains(*line, "2 thumbnails"));
    CHECK(contains(*line, run.out.string()));
  }
  CHECK(lines_starting(r.err, "thumbmill: failed: ").size() == list.bad.size());
}

TEST_CASE("-q prints nothing on a run with failures, and still exits 1") {
  Server server(photos().dir.path());
  Run run(MixedList(server).text);
  const CommandResult& r = run.Go({"-q", "--progress", "-v"});  // -q wins over both
  CHECK(r.err == "");
  CHECK(r.out == "");
  CHECK(r.exit_code == 1);
}

TEST_CASE("the progress line explains itself: done of total, ok and failed, rate, percentage and ETA") {
  // Slow enough (100 ms a download, one at a time) for frames mid-run.
  Server server(photos().dir.path(), /*delay_ms=*/100);
  std::string text;
  for (int i = 0; i < 12; ++i) text += server.url(photos().names[i % 6]) + "?" + std::to_string(i) + "\n";
  text += server.url("fault/404") + "\n";
  Run run(text);
  // Standard error is a file here: --progress forces the line on.
  const CommandResult& r = run.Go({"--progress", "--downloads", "1", "--workers", "1"});
  INFO(r.err);
  CHECK(r.exit_code == 1);
  CHECK(contains(r.err, "13 of 13 done (12 ok, 1 failed), "));
  CHECK(contains(r.err, " img/s, 100%"));
  const std::regex mid_run(R"(\d+ of 13 done \(\d+ ok, \d+ failed\), [0-9.]+ img/s, \d+%, ETA \d+:\d\d)");
  CHECK(std::regex_search(r.err, mid_run));
  CHECK_FALSE(std::regex_search(r.err, std::regex(R"(\d+/\d+\+?)")));  // no bare "165/340+"
  // The failure line is on a line of its own, not glued to a frame: the
  // frame before it is cleared ("\r\x1b[K") first.
  const auto failed = lines_starting(r.err, "thumbmill: failed: ");
  REQUIRE(failed.size() == 1);
  CHECK(contains(r.err, "\r\x1b[Kthumbmill: failed: "));
}

TEST_CASE("before the list has been read to its end, the progress line says so (no percentage, no ETA)") {
  Server server(photos().dir.path());
  ScratchDir work("terminal-fifo");
  const fs::path fifo = work / "list";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  fs::create_directories(work / "tmp");
  Background run({coordinator().string(), "--out", (work / "out").string(), "--progress", fifo.string()},
                 {{"TMPDIR", (work / "tmp").string()}});
  const int writer = ::open(fifo.c_str(), O_WRONLY);  // waits for the coordinator to open it
  REQUIRE(writer >= 0);
  std::string lines;
  for (int i = 0; i < 2; ++i) lines += server.url(photos().names[i]) + "\n";
  REQUIRE(::write(writer, lines.data(), lines.size()) == static_cast<ssize_t>(lines.size()));
  const bool shown = eventually([&] { return contains(run.err(), "2 done (2 ok, 0 failed), "); });
  const std::string mid = run.err();
  ::close(writer);
  CHECK(run.Wait(60) == 0);
  INFO(run.err());
  REQUIRE(shown);
  CHECK(contains(mid, "list still being read"));
  CHECK_FALSE(contains(mid, "ETA"));
  CHECK_FALSE(contains(mid, "%"));
  CHECK(contains(run.err(), "2 of 2 done (2 ok, 0 failed), "));
}

TEST_CASE("every message of the coordinator starts with thumbmill:") {
  Run run("");
  const CommandResult& r = run.Go({"--sizes", "0"});
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.err.rfind("thumbmill: ", 0) == 0);
  CHECK_FALSE(contains(r.err, "coordinator:"));
  Run empty("");
  const CommandResult& ok = empty.Go({});  // a list that is there, empty: exit 0
  CHECK(ok.exit_code == 0);
  CHECK_FALSE(contains(ok.err, "coordinator:"));
}

TEST_CASE("Ctrl-C: interrupted sources counted apart from failed, unread lines as not started, helpers stopped") {
  Server server(photos().dir.path(), /*delay_ms=*/100);
  constexpr int kLines = 1000;  // more than the run reads ahead (its window)
  std::string text;
  for (int i = 0; i < kLines; ++i) text += server.url(photos().names[i % 6]) + "?" + std::to_string(i) + "\n";
  Run run(text);
  const fs::path report = run.work / "report.jsonl";
  std::vector<std::string> argv = run.Argv({"--no-progress", "--workers", "2", "--downloads", "4", "--report",
                                            report.string()});
  Background bg(argv, {{"TMPDIR", run.temp.string()}});
  REQUIRE(eventually([&] { return fs::exists(report) && read_report(report, ReportCheck::kNone).size() >= 3; }));
  REQUIRE(::kill(bg.pid(), SIGINT) == 0);
  CHECK(bg.Wait(60) == 130);
  const std::string err = bg.err();
  INFO(err);
  const auto entries = read_report(report);
  int interrupted = 0, failed = 0;
  for (const auto& e : entries) {
    if (e["status"] != "failed") continue;
    e["error_code"] == "interrupted" ? ++interrupted : ++failed;
  }
  CHECK(failed == 0);
  REQUIRE(interrupted > 0);
  // The summary's count of each, and no failure line for an interrupted one.
  CHECK(contains(err, " ok, 0 failed, 0 skipped (already done), " + std::to_string(interrupted) + " interrupted"));
  CHECK(lines_starting(err, "thumbmill: failed: ").empty());
  // The lines never read: the list is a regular file, so they are counted.
  const std::size_t not_started = kLines - entries.size();
  REQUIRE(not_started > 0);
  CHECK(contains(err, "not started " + std::to_string(not_started) + " list lines never read"));
  CHECK(contains(err, "run the same command again to resume"));
  // The downloader, stopped by the run's own Ctrl-C handling, is "stopped".
  const auto rows = lines_starting(err, "downloader ");
  REQUIRE(rows.size() == 1);
  CHECK(contains(rows[0], "stopped (the run was interrupted)"));
  CHECK_FALSE(contains(err, "signal 9"));
}

TEST_CASE("a helper killed from outside keeps its signal in the table") {
  Server server(photos().dir.path(), /*delay_ms=*/200);
  std::string text;
  for (int i = 0; i < 6; ++i) text += server.url(photos().names[i]) + "\n";
  Run run(text);
  Background bg(run.Argv({"--no-progress", "--workers", "1", "--downloads", "1"}), {{"TMPDIR", run.temp.string()}});
  const fs::path downloader = fs::weakly_canonical(build_dir() / "downloader" / "downloader");
  std::vector<pid_t> found;
  REQUIRE(eventually([&] {
    found = children_running(bg.pid(), downloader);
    return !found.empty();
  }));
  REQUIRE(::kill(found[0], SIGKILL) == 0);
  CHECK(bg.Wait(60) == 0);  // restarted; every source still ends ok
  const std::string err = bg.err();
  INFO(err);
  CHECK(contains(err, "signal 9 (Killed)"));
}
