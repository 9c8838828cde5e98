// Lists from untrusted hands (issue 7, section 8), end to end: the real
// coordinator against scripts/serve on loopback. What the report and the
// messages may say about a source (no body quoted as text, no credentials),
// and the address and local-source policies as the user sees them.
// Only 127.0.0.1 is ever connected to: the link-local address below is
// refused before connect.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/test_support.h"

using namespace thumbmill::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path coordinator() { return build_dir() / "coordinator" / "coordinator"; }

/// One coordinator run in its own directories; the report is read back.
struct Run {
  ScratchDir work{"net"};
  fs::path out = work / "out";
  fs::path temp = work / "tmp";
  fs::path report = work / "report.jsonl";
  CommandResult result;
  std::vector<json> entries;

  Run() { fs::create_directories(temp); }

  void Go(const std::string& list, std::vector<std::string> flags = {}) {
    const fs::path list_path = work / "urls.txt";
    write_file(list_path, list);
    std::vector<std::string> argv = {coordinator().string(), "--out", out.string(), "--report", report.string(),
                                     "--fetch-attempts", "1", "--workers", "1"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(list_path.string());
    CommandOptions options;
    options.env["TMPDIR"] = temp.string();
    options.timeout_s = 120;
    result = run_command(argv, options);
    INFO("stderr: " << result.err);
    REQUIRE_FALSE(result.timed_out);
    entries = read_report(report);
  }

  /// The report entry on list line `line` (1-based).
  json Entry(int line) const {
    for (const json& e : entries)
      if (e.value("line", 0) == line) return e;
    FAIL("no report entry for line " << line);
    return {};
  }
};

}  // namespace

TEST_CASE("a non-image body is named by kind, never quoted: local file and redirect to a JSON page") {
  ScratchDir files{"net-files"};
  const std::string secret = "root:x:0:0:internal-token-1234:/root:/bin/bash\n";
  write_file(files / "passwd", secret + "daemon:x:1:1::/:/usr/sbin/nologin\n");
  write_file(files / "page.html", "<!DOCTYPE html><title>internal-token-1234</title>\n");
  Server server(files.path());
  Run run;
  run.Go((files / "passwd").string() + "\n" + server.url("fault/redirect-to?url=/fault/json") + "\n" +
         server.url("page.html") + "\n");
  REQUIRE(run.entries.size() == 3);
  const std::string kinds[] = {"text", "JSON", "HTML"};
  for (int line = 1; line <= 3; ++line) {
    const json e = run.Entry(line);
    CAPTURE(e.dump());
    CHECK(e["error_code"] == "not-an-image");
    const std::string error = e["error"].get<std::string>();
    CHECK(error.starts_with("not an image: looks like " + kinds[line - 1] + " (first bytes "));
    CHECK(error.find("root") == std::string::npos);
    CHECK(error.find("secret") == std::string::npos);
    CHECK(error.find("internal-token") == std::string::npos);
  }
  CHECK(run.result.err.find("internal-token") == std::string::npos);
}

TEST_CASE("credentials in a URL appear neither in the report nor on standard error") {
  ScratchDir files{"net-files"};
  Server server(files.path());
  const std::string base = "http://alice:s3cret-pw@127.0.0.1:" + std::to_string(server.port());
  Run run;
  run.Go(base + "/fault/404\n" + base + "/fault/html\n" + "http://bob:hunter2@\n" +
         "file://carol:pw9@otherhost/x.jpg\n");
  REQUIRE(run.entries.size() == 4);
  for (const json& e : run.entries) {
    CAPTURE(e.dump());
    CHECK(e["status"] == "failed");
    const std::string text = e.dump();
    for (const char* word : {"s3cret", "alice", "hunter2", "bob", "pw9", "carol"})
      CHECK(text.find(word) == std::string::npos);
  }
  CHECK(run.Entry(1)["url"] == "http://127.0.0.1:" + std::to_string(server.port()) + "/fault/404");
  for (const char* word : {"s3cret", "hunter2", "pw9"}) CHECK(run.result.err.find(word) == std::string::npos);
}

TEST_CASE("--no-local refuses paths and file URLs; without it they are read") {
  ScratchDir files{"net-files"};
  make_images(files.path(), 1, {"--megapixels", "0.1"});
  std::string name;
  for (const auto& e : fs::directory_iterator(files.path())) name = e.path().filename().string();
  const fs::path image = files / name;
  const std::string list = image.string() + "\nfile://" + image.string() + "\n";
  {
    Run run;
    run.Go(list, {"--no-local"});
    REQUIRE(run.entries.size() == 2);
    for (int line = 1; line <= 2; ++line) {
      const json e = run.Entry(line);
      CAPTURE(e.dump());
      CHECK(e["status"] == "failed");
      CHECK(e["error_code"] == "invalid-argument");
      CHECK(e["error"].get<std::string>().find("--no-local") != std::string::npos);
    }
    CHECK((!fs::exists(run.out) || fs::is_empty(run.out)));
  }
  {
    Run run;
    run.Go(list);
    REQUIRE(run.entries.size() == 1);  // the same file twice: one source
    CHECK(run.entries[0]["status"] == "ok");
  }
}

TEST_CASE("address policy in the report: metadata refused by default, loopback under --deny-private") {
  ScratchDir files{"net-files"};
  make_images(files.path(), 1, {"--megapixels", "0.1"});
  std::string name;
  for (const auto& e : fs::directory_iterator(files.path())) name = e.path().filename().string();
  Server server(files.path());
  const std::string list = "http://169.254.169.254/latest/meta-data/\n" + server.url(name) + "\n";
  {
    Run run;
    run.Go(list, {"--connect-timeout", "2"});
    REQUIRE(run.entries.size() == 2);
    CHECK(run.Entry(1)["error_code"] == "blocked-address");
    CHECK(run.Entry(2)["status"] == "ok");  // loopback is allowed by default
  }
  {
    Run run;
    run.Go(list, {"--connect-timeout", "2", "--deny-private"});
    REQUIRE(run.entries.size() == 2);
    CHECK(run.Entry(1)["error_code"] == "blocked-address");
    CHECK(run.Entry(2)["error_code"] == "blocked-address");
  }
}
