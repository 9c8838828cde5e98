// End to end: the real coordinator, downloader and worker executables
// against scripts/serve on loopback, with generated photos and every kind of
// bad input. Each run is checked for its thumbnails, its report, its exit
// status, and for leaving nothing behind (no /dev/shm segment, no temp file,
// no process).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/test_support.h"

using namespace thumbmill::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

/// Photos shared by the tests of this binary, generated once: 50 of mixed
/// aspect ratios (about 2 MP each, so the suite stays quick), plus a PNG.
struct Photos {
  ScratchDir dir{"photos"};
  std::vector<std::string> names;
  std::map<std::string, std::pair<int, int>> sizes;

  Photos() {
    make_images(dir.path(), 50, {"--megapixels", "2", "--mixed"});
    make_images(dir.path(), 1, {"--width", "900", "--height", "700", "--format", "png", "--prefix", "drawing"});
    for (const auto& e : fs::directory_iterator(dir.path())) {
      const std::string name = e.path().filename().string();
      if (name[0] == '.') continue;
      names.push_back(name);
      sizes[name] = image_size(e.path());
    }
    std::sort(names.begin(), names.end());
  }
};

Photos& photos() {
  static Photos p;
  return p;
}

fs::path coordinator() { return build_dir() / "coordinator" / "coordinator"; }
fs::path coordinator_threaded() { return build_dir() / "coordinator" / "coordinator-threaded"; }

/// A port on loopback with nothing listening.
int closed_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(s);
  return ntohs(addr.sin_port);
}

std::map<std::string, json> by_url(const std::vector<json>& entries) {
  std::map<std::string, json> m;
  for (const auto& e : entries) m[e["url"].get<std::string>()] = e;
  return m;
}

/// One coordinator run in its own output and temp directories.
struct Run {
  ScratchDir work{"run"};
  fs::path out = work / "out";
  fs::path temp = work / "tmp";
  fs::path report = work / "report.jsonl";
  CommandResult result;

  Run() { fs::create_directories(temp); }

  CommandResult& Go(const std::string& list, std::vector<std::string> flags, CommandOptions options = {},
                    const fs::path& binary = coordinator()) {
    const fs::path list_path = work / "urls.txt";
    write_file(list_path, list);
    std::vector<std::string> argv = {binary.string(), "--out", out.string(), "--report", report.string()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(options.stdin_text.empty() ? list_path.string() : "-");
    options.env["TMPDIR"] = temp.string();
    result = run_command(argv, options);
    INFO("stderr: " << result.err);
    CHECK_FALSE(result.timed_out);
    return result;
  }

  /// Nothing of the run is left: segment, temp files, half-written outputs,
  /// child processes.
  void CheckClean() const {
    CHECK(run_leftovers(result.pid).empty());
    CHECK(fs::is_empty(temp));
    if (fs::exists(out))
      for (const auto& e : fs::directory_iterator(out))  // .thumbmill: the manifest and name claims
        if (e.path().filename() != ".thumbmill") CHECK(e.path().filename().string()[0] != '.');
  }
};

/// The thumbnail of width `w` of a WxH source, keeping the aspect ratio and
/// never upscaling.
std::pair<int, int> expected_size(std::pair<int, int> source, int w) {
  const auto [W, H] = source;
  if (w >= W) return source;
  return {w, static_cast<int>(std::lround(static_cast<double>(H) * w / W))};
}

void check_thumbnails(const json& entry, std::pair<int, int> source, const std::vector<int>& widths) {
  REQUIRE(entry["outputs"].size() == widths.size());
  for (std::size_t i = 0; i < widths.size(); ++i) {
    const json& o = entry["outputs"][i];
    const auto [w, h] = expected_size(source, widths[i]);
    INFO(entry["url"] << " width " << widths[i]);
    CHECK(o["width"] == w);
    CHECK(std::abs(o["height"].get<int>() - h) <= 1);
    const auto actual = image_size(o["path"].get<std::string>());
    CHECK(actual.first == o["width"].get<int>());
    CHECK(actual.second == o["height"].get<int>());
    CHECK(fs::file_size(o["path"].get<std::string>()) == o["bytes"].get<std::uint64_t>());
  }
}

int count_rows(const std::string& summary, const std::string& role) {
  std::istringstream in(summary);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += line.rfind(role + " ", 0) == 0;
  return n;
}

}  // namespace

TEST_CASE("a mixed list: good photos are thumbnailed, every bad input fails alone with its reason") {
  Photos& p = photos();
  Server server(p.dir.path());
  const std::string refused = "http://127.0.0.1:" + std::to_string(closed_port()) + "/x.jpg";
  // url -> expected error_code ("" = ok)
  std::vector<std::pair<std::string, std::string>> expect;
  for (const auto& name : p.names) expect.push_back({server.url(name), ""});
  const std::string local = (p.dir.path() / p.names[0]).string();
  const std::string file_url = "file://" + (p.dir.path() / p.names[1]).string();
  expect.push_back({local, ""});
  expect.push_back({file_url, ""});
  expect.push_back({server.url("fault/redirect/" + p.names[4]), ""});
  expect.push_back({server.url("fault/flaky/" + p.names[5]), ""});
  expect.push_back({server.url("fault/404"), "http-status"});
  expect.push_back({server.url("fault/500"), "http-status"});
  expect.push_back({refused, "network"});
  expect.push_back({server.url("fault/stall"), "timeout"});
  expect.push_back({server.url("fault/redirect-loop"), "*"});
  expect.push_back({server.url("fault/redirect-ftp"), "*"});
  expect.push_back({server.url("fault/redirect-file"), "*"});
  expect.push_back({server.url("fault/huge-no-length"), "too-large"});
  expect.push_back({server.url("fault/huge"), "too-large"});
  expect.push_back({server.url("fault/html"), "not-an-image"});
  expect.push_back({server.url("fault/truncated/" + p.names[2]), "corrupt-image"});
  expect.push_back({server.url("fault/short/" + p.names[3]), "*"});
  expect.push_back({server.url("fault/empty"), "not-an-image"});
  expect.push_back({server.url("fault/random"), "not-an-image"});
  expect.push_back({server.url("fault/bomb.png"), "too-many-pixels"});
  expect.push_back({server.url("fault/svg"), "untrusted-format"});
  expect.push_back({(p.dir.path() / "no-such-file.jpg").string(), "*"});

  std::string list = "# a list with everything in it\n\n";
  for (const auto& [url, code] : expect) list += url + "\n";
  list += "  " + server.url(p.names[0]) + "  \n";  // a duplicate, with blanks around it
  list += "ftp://127.0.0.1/x.jpg\n";               // malformed: reported with its line number

  Run run;
  run.Go(list, {"--workers", "2", "--stall-timeout", "2", "--connect-timeout", "2", "--timeout", "30",
                "--max-bytes", "20MB", "--fetch-attempts", "2"});
  INFO("stderr: " << run.result.err);
  CHECK(run.result.exit_code == 1);  // finished, with failures

  const auto entries = read_report(run.report);
  CHECK(entries.size() == expect.size() + 1);  // + the malformed line; the duplicate is not repeated
  const auto report = by_url(entries);
  for (const auto& [url, code] : expect) {
    INFO(url);
    REQUIRE(report.count(url) == 1);
    const json& e = report.at(url);
    if (code.empty()) {
      CHECK(e["status"] == "ok");
      CHECK(e["outputs"].size() == 3);
    } else {
      CHECK(e["status"] == "failed");
      CHECK_FALSE(e["error"].get<std::string>().empty());
      if (code != "*") CHECK(e["error_code"] == code);
      CHECK(e["outputs"].empty());
    }
  }
  const json& malformed = report.at("ftp://127.0.0.1/x.jpg");
  CHECK(malformed["status"] == "failed");
  CHECK(malformed["error"].get<std::string>().find("line " + std::to_string(expect.size() + 4)) == 0);

  // Thumbnails: widths 32, 64, 200 with the source's aspect ratio.
  for (const auto& name : p.names) check_thumbnails(report.at(server.url(name)), p.sizes[name], {32, 64, 200});
  check_thumbnails(report.at(local), p.sizes[p.names[0]], {32, 64, 200});
  // Two sources with the same file name get two sets of thumbnails.
  const auto redirected = report.at(server.url("fault/redirect/" + p.names[4]))["outputs"][0]["path"];
  const auto direct = report.at(server.url(p.names[4]))["outputs"][0]["path"];
  CHECK(redirected != direct);
  // Retries are counted: flaky answered 503 once.
  CHECK(report.at(server.url("fault/flaky/" + p.names[5]))["fetch_attempts"] == 2);
  CHECK(report.at(server.url("fault/404"))["fetch_attempts"] == 1);

  // The summary has one row per process.
  CHECK(count_rows(run.result.err, "coordinator") == 1);
  CHECK(count_rows(run.result.err, "downloader") == 1);
  CHECK(count_rows(run.result.err, "worker") == 2);
  run.CheckClean();
}

TEST_CASE("a clean list read from standard input exits 0 with every thumbnail") {
  Photos& p = photos();
  Server server(p.dir.path());
  std::string list;
  for (int i = 0; i < 20; ++i) list += server.url(p.names[i]) + "\n";
  Run run;
  CommandOptions options;
  options.stdin_text = list;
  run.Go("", {"--workers", "2"}, options);
  CHECK(run.result.exit_code == 0);
  const auto entries = read_report(run.report);
  CHECK(entries.size() == 20);
  int files = 0;
  for (const auto& e : fs::directory_iterator(run.out)) files += e.is_regular_file();
  CHECK(files == 60);
  CHECK(run.result.err.find("20 ok, 0 failed") != std::string::npos);
  run.CheckClean();
}

TEST_CASE("sizes, boxes and formats") {
  Photos& p = photos();
  Run run;
  // names[0] is the drawing itself ("drawing" sorts before "photo").
  const std::string list = (p.dir.path() / p.names[1]).string() + "\n" + (p.dir.path() / p.names[2]).string() + "\n" +
                           (p.dir.path() / "drawing0000.png").string() + "\n";
  SUBCASE("webp boxes") {
    run.Go(list, {"--sizes", "100x100,48", "--format", "webp"});
    CHECK(run.result.exit_code == 0);
    const auto entries = read_report(run.report);
    REQUIRE(entries.size() == 3);
    for (const auto& e : entries) {
      REQUIRE(e["outputs"].size() == 2);
      CHECK(e["outputs"][0]["path"].get<std::string>().ends_with("_100x100.webp"));
      CHECK(e["outputs"][0]["width"].get<int>() <= 100);
      CHECK(e["outputs"][0]["height"].get<int>() <= 100);
      CHECK(std::max(e["outputs"][0]["width"].get<int>(), e["outputs"][0]["height"].get<int>()) == 100);
      CHECK(e["outputs"][1]["width"] == 48);
    }
  }
  SUBCASE("png and avif, never upscaled") {
    run.Go(list, {"--sizes", "2000", "--format", "png"});
    CHECK(run.result.exit_code == 0);
    const auto entries = read_report(run.report);
    REQUIRE(entries.size() == 3);
    for (const auto& e : entries) {
      const std::string url = e["url"];
      const auto source = p.sizes[fs::path(url).filename().string()];
      CHECK(e["outputs"][0]["width"] == source.first);
      CHECK(e["outputs"][0]["height"] == source.second);
    }
    Run avif;
    avif.Go(list, {"--sizes", "64", "--format", "avif"});
    CHECK(avif.result.exit_code == 0);
    const auto avif_entries = read_report(avif.report);
    REQUIRE(avif_entries.size() == 3);
    for (const auto& e : avif_entries) CHECK(e["outputs"][0]["path"].get<std::string>().ends_with(".avif"));
  }
  run.CheckClean();
}

TEST_CASE("--format webp,jpeg with --name '{size}/{stem}.{ext}': each size in each format, in subdirectories") {
  Photos& p = photos();
  const std::string list = (p.dir.path() / p.names[1]).string() + "\n" + (p.dir.path() / p.names[2]).string() + "\n" +
                           (p.dir.path() / "drawing0000.png").string() + "\n";
  for (const fs::path& binary : {coordinator(), coordinator_threaded()}) {
    CAPTURE(binary);
    Run run;
    run.Go(list, {"--sizes", "100x100,48", "--format", "webp,jpeg", "--name", "{size}/{stem}.{ext}"}, {}, binary);
    CHECK(run.result.exit_code == 0);
    const auto entries = read_report(run.report);
    REQUIRE(entries.size() == 3);
    for (const auto& e : entries) {
      const std::string stem = fs::path(e["url"].get<std::string>()).stem().string();
      // Sizes-major: each size in every format, in the order given.
      const std::vector<std::string> want = {"100x100/" + stem + ".webp", "100x100/" + stem + ".jpg",
                                             "48/" + stem + ".webp", "48/" + stem + ".jpg"};
      REQUIRE(e["outputs"].size() == want.size());
      for (std::size_t i = 0; i < want.size(); ++i) {
        const json& o = e["outputs"][i];
        CHECK(o["path"] == (run.out / want[i]).string());
        CHECK(fs::file_size(run.out / want[i]) == o["bytes"].get<std::uint64_t>());
        const auto actual = image_size(run.out / want[i]);
        CHECK(actual.first == o["width"].get<int>());
        CHECK(actual.second == o["height"].get<int>());
      }
      // One resize per size: both formats have its dimensions.
      CHECK(e["outputs"][0]["width"] == e["outputs"][1]["width"]);
      CHECK(e["outputs"][2]["width"] == 48);
      const std::string jpeg = read_file(run.out / want[1]), webp = read_file(run.out / want[0]);
      CHECK(jpeg.starts_with("\xff\xd8"));
      CHECK(webp.starts_with("RIFF"));
    }
    run.CheckClean();
    // No temp file left in the subdirectories either.
    for (const auto& e : fs::recursive_directory_iterator(run.out))
      if (e.path().string().find("/.thumbmill") == std::string::npos) CHECK(e.path().filename().string()[0] != '.');
  }
}

TEST_CASE("--name and --format errors are usage errors, exit 2, naming the flag") {
  Run run;
  run.Go("x.jpg\n", {"--name", "{stem}_{sise}.{ext}"});
  CHECK(run.result.exit_code == 2);
  CHECK(run.result.err.find("--name: unknown placeholder {sise}") != std::string::npos);
  run.Go("x.jpg\n", {"--name", "../{stem}_{size}.{ext}"});
  CHECK(run.result.exit_code == 2);
  CHECK(run.result.err.find("--name:") != std::string::npos);
  run.Go("x.jpg\n", {"--sizes", "1,2,3,4,5,6", "--format", "jpeg,webp,png"});
  CHECK(run.result.exit_code == 2);
  CHECK(run.result.err.find("at most 16") != std::string::npos);
  CHECK_FALSE(fs::exists(run.out));
}

TEST_CASE("--fit, --upscale and the encoder flags: the name says the size asked, the report the size made") {
  Photos& p = photos();
  const fs::path drawing = p.dir.path() / "drawing0000.png";  // 900x700
  SUBCASE("cover, enlarged, progressive, metadata kept") {
    Run run;
    run.Go(drawing.string() + "\n", {"--sizes", "100x100,1800x200", "--fit", "cover", "--crop", "attention",
                                      "--upscale", "--progressive", "--optimize-coding", "--keep", "exif"});
    CHECK(run.result.exit_code == 0);
    const auto entries = read_report(run.report);
    REQUIRE(entries.size() == 1);
    const json& outputs = entries[0]["outputs"];
    REQUIRE(outputs.size() == 2);
    CHECK(outputs[0]["path"].get<std::string>().ends_with("_100x100.jpg"));
    CHECK(outputs[0]["width"] == 100);
    CHECK(outputs[0]["height"] == 100);
    CHECK(outputs[1]["path"].get<std::string>().ends_with("_1800x200.jpg"));
    CHECK(outputs[1]["width"] == 1800);
    CHECK(outputs[1]["height"] == 200);
    CHECK(image_size(outputs[1]["path"].get<std::string>()) == std::pair{1800, 200});
    const std::string jpeg = read_file(outputs[0]["path"].get<std::string>());
    CHECK(jpeg.find("\xFF\xC2") != std::string::npos);  // SOF2: progressive
  }
  SUBCASE("fill and a width-only size, not enlarged: the source's sides bound what is made") {
    Run run;
    run.Go(drawing.string() + "\n", {"--sizes", "1000x50,2000", "--fit", "fill", "--format", "webp",
                                      "--effort", "6", "--lossless"});
    CHECK(run.result.exit_code == 0);
    const auto entries = read_report(run.report);
    REQUIRE(entries.size() == 1);
    const json& outputs = entries[0]["outputs"];
    REQUIRE(outputs.size() == 2);
    CHECK(outputs[0]["path"].get<std::string>().ends_with("_1000x50.webp"));
    CHECK(outputs[0]["width"] == 900);
    CHECK(outputs[0]["height"] == 50);
    CHECK(outputs[1]["path"].get<std::string>().ends_with("_2000.webp"));
    CHECK(outputs[1]["width"] == 900);
    CHECK(outputs[1]["height"] == 700);
  }
  SUBCASE("an effort out of the format's range is a usage error") {
    Run run;
    run.Go(drawing.string() + "\n", {"--format", "webp", "--effort", "7"});
    CHECK(run.result.exit_code == 2);
    CHECK(run.result.err.find("--effort") != std::string::npos);
  }
}

TEST_CASE("untrusted formats are allowed only when asked") {
  Photos& p = photos();
  Server server(p.dir.path());
  Run run;
  run.Go(server.url("fault/svg") + "\n", {"--allow-untrusted-formats"});
  CHECK(run.result.exit_code == 0);
  run.CheckClean();
}

TEST_CASE("a body larger than the arena travels through a temp file") {
  ScratchDir big("big");
  // Grain-heavy PNG: larger than the smallest arena (8 MiB).
  make_images(big.path(), 1, {"--width", "2600", "--height", "2000", "--format", "png"});
  const std::string name = "photo0000.png";
  REQUIRE(fs::file_size(big / name) > (8u << 20));
  Server server(big.path());
  Run run;
  run.Go(server.url(name) + "\n", {"--queue-mb", "8"});
  CHECK(run.result.exit_code == 0);
  const auto entries = read_report(run.report);
  REQUIRE(entries.size() == 1);
  check_thumbnails(entries[0], image_size(big / name), {32, 64, 200});
  run.CheckClean();
}

TEST_CASE("usage errors exit 2 and name the bad flag or value") {
  auto run = [](std::vector<std::string> args) {
    args.insert(args.begin(), coordinator().string());
    return run_command(args);
  };
  ScratchDir dir;
  write_file(dir / "list.txt", "x.jpg\n");
  const std::string list = (dir / "list.txt").string();
  auto r = run({"--sizes", "0", list});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--sizes") != std::string::npos);
  r = run({"--format", "gif", list});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--format") != std::string::npos);
  r = run({"--workers", "-3", list});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--workers") != std::string::npos);
  r = run({});
  CHECK(r.exit_code == 2);
  r = run({(dir / "missing.txt").string()});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("missing.txt") != std::string::npos);
  r = run({"--help"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("--workers") != std::string::npos);
}

TEST_CASE("the full job: 12 MP photos from loopback, three widths each, one summary row per process") {
  // THUMBMILL_E2E_PHOTOS sets how many (the acceptance run is 200).
  const char* env = std::getenv("THUMBMILL_E2E_PHOTOS");
  const int count = env ? std::atoi(env) : 24;
  ScratchDir dir("full");
  make_images(dir.path(), count);
  Server server(dir.path());
  std::string list;
  for (int i = 0; i < count; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "photo%04d.jpg", i);
    list += server.url(name) + "\n";
  }
  Run run;
  run.Go(list, {"--workers", "2"});
  CHECK(run.result.exit_code == 0);
  int files = 0;
  for (const auto& e : fs::directory_iterator(run.out)) files += e.is_regular_file();
  CHECK(files == 3 * count);
  CHECK(count_rows(run.result.err, "worker") == 2);
  CHECK(count_rows(run.result.err, "downloader") == 1);
  MESSAGE("full job: " << count << " photos in " << run.result.seconds << " s\n" << run.result.err);
  run.CheckClean();
}

TEST_CASE("processes, threads and the sequential baseline write byte-identical thumbnails and reports") {
  Photos& p = photos();
  Server server(p.dir.path());
  std::string list;
  for (int i = 0; i < 12; ++i) list += server.url(p.names[i]) + "\n";
  list += (p.dir.path() / "drawing0000.png").string() + "\n";
  list += server.url("fault/404") + "\n" + server.url("fault/truncated/" + p.names[0]) + "\n";
  const std::vector<std::string> flags = {"--sizes", "200,64,32,90x90", "--format", "webp", "--fetch-attempts", "1"};

  Run processes, threads, sequential;
  processes.Go(list, [&] { auto f = flags; f.insert(f.end(), {"--workers", "2"}); return f; }());
  threads.Go(list, [&] { auto f = flags; f.insert(f.end(), {"--workers", "2"}); return f; }(), {}, coordinator_threaded());
  sequential.Go(list, [&] { auto f = flags; f.insert(f.end(), {"--workers", "0"}); return f; }(), {}, coordinator_threaded());
  CHECK(processes.result.exit_code == 1);
  CHECK(threads.result.exit_code == 1);
  CHECK(sequential.result.exit_code == 1);

  // The same files, byte for byte.
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(processes.out))
    if (e.is_regular_file()) names.insert(e.path().filename().string());
  CHECK(names.size() == 13 * 4);
  for (const Run* other : {&threads, &sequential}) {
    std::set<std::string> other_names;
    for (const auto& e : fs::directory_iterator(other->out))
      if (e.is_regular_file()) other_names.insert(e.path().filename().string());
    CHECK(other_names == names);
    for (const auto& name : names) {
      INFO(name);
      CHECK(read_file(processes.out / name) == read_file(other->out / name));
    }
  }
  // The same report, but for timings and where the files went.
  // libvips keeps one error buffer per process: threads resizing at once
  // may take each other's message, so for the threaded build the failure's
  // code is compared and its text is not (README: threaded build).
  auto normalised = [](const Run& run, bool error_text = true) {
    std::map<std::string, json> m;
    const auto entries = read_report(run.report);
    CHECK(entries.size() == 15);  // 12 photos, the drawing, the 404, the truncated one
    for (json e : entries) {
      e.erase("ms");
      e.erase("fetch_ms");
      e.erase("resize_ms");
      if (!error_text) e.erase("error");
      for (auto& o : e["outputs"]) o["path"] = fs::path(o["path"].get<std::string>()).filename().string();
      m[e["url"]] = e;
    }
    return m;
  };
  CHECK(normalised(threads, false) == normalised(processes, false));
  CHECK(normalised(sequential) == normalised(processes));
  processes.CheckClean();
  threads.CheckClean();
  sequential.CheckClean();
}

TEST_CASE("every report a test reads is checked against the report's schema, which refuses what a report must not say") {
  ScratchDir work("schema");
  const json good = {{"url", "http://127.0.0.1/a.jpg"}, {"line", 1}, {"status", "ok"},
                     {"outputs", json::array({{{"path", "t/a_32.jpg"}, {"width", 32}, {"height", 24}, {"bytes", 900}}})},
                     {"bytes_downloaded", 1000}, {"attempts", 1}, {"fetch_attempts", 1}, {"http_status", 200},
                     {"ms", 5}, {"fetch_ms", 2}, {"resize_ms", 3}};
  write_file(work / "good.jsonl", good.dump() + "\n");
  CHECK(read_report(work / "good.jsonl").size() == 1);
  std::vector<std::pair<std::string, json>> bad;
  bad.push_back({"failed without error_code", [&] { json e = good; e["status"] = "failed"; e["outputs"] = json::array(); e["error"] = "x"; return e; }()});
  bad.push_back({"an unknown error_code", [&] { json e = good; e["status"] = "failed"; e["outputs"] = json::array(); e["error"] = "x"; e["error_code"] = "oops"; return e; }()});
  bad.push_back({"ok with an error", [&] { json e = good; e["error"] = "x"; return e; }()});
  bad.push_back({"a field no version has", [&] { json e = good; e["extra"] = 1; return e; }()});
  bad.push_back({"a missing field", [&] { json e = good; e.erase("fetch_ms"); return e; }()});
  bad.push_back({"an output without its size", [&] { json e = good; e["outputs"][0].erase("width"); return e; }()});
  for (const auto& [what, entry] : bad) {
    CAPTURE(what);
    write_file(work / "bad.jsonl", good.dump() + "\n" + entry.dump() + "\n");
    CHECK_THROWS(read_report(work / "bad.jsonl"));
  }
}
