// Resume and the manifest, end to end (issue 7, §3 and §9): the real
// coordinator runs several times into one --out, and a source is skipped
// only when the manifest says that very source made those files with those
// options from an unchanged body; names owned by one source are never
// handed to another, also across runs and by runs at the same time; report
// entries carry what the fetch did.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "shared/output_names.h"
#include "tests/test_support.h"

using namespace thumbmill::testing;
using nlohmann::json;
using thumbmill::sanitize_name_part;
using thumbmill::stable_hash;
namespace fs = std::filesystem;

namespace {

fs::path coordinator() { return build_dir() / "coordinator" / "coordinator"; }

/// One output directory that several runs write into; each run has its own
/// report and temp directory.
struct Out {
  ScratchDir work{"resume"};
  fs::path out = work / "out";
  int runs = 0;

  /// Runs the coordinator over `list` with `flags`; returns its report by
  /// URL (as written in the list).
  std::map<std::string, json> Run(const std::vector<std::string>& list, std::vector<std::string> flags = {},
                                  int expected_exit = 0, const fs::path& binary = coordinator()) {
    const std::string tag = std::to_string(++runs);
    const fs::path list_path = work / ("list" + tag + ".txt");
    const fs::path report = work / ("report" + tag + ".jsonl");
    const fs::path temp = work / ("tmp" + tag);
    fs::create_directories(temp);
    std::string text;
    for (const auto& s : list) text += s + "\n";
    write_file(list_path, text);
    std::vector<std::string> argv = {binary.string(), "--out", out.string(), "--report", report.string()};
    if (std::find(flags.begin(), flags.end(), "--workers") == flags.end()) flags.insert(flags.end(), {"--workers", "2"});
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(list_path.string());
    CommandOptions options;
    options.env["TMPDIR"] = temp.string();
    const CommandResult r = run_command(argv, options);
    INFO("stderr: " << r.err);
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code == expected_exit);
    const auto entries = read_report(report);
    CHECK(entries.size() == list.size());
    std::map<std::string, json> by_url;
    for (const auto& e : entries) by_url[e["url"].get<std::string>()] = e;
    return by_url;
  }
};

bool skipped(const json& e) { return e.value("skipped", false); }

/// The size of the image in `path` now. Read from a copy under a new name:
/// libvips caches what it opened by file name, and these tests replace
/// files in place.
std::pair<int, int> image_size_now(const fs::path& path) {
  static int copies = 0;
  ScratchDir dir("read");
  const fs::path copy = dir / (std::to_string(++copies) + path.extension().string());
  fs::copy_file(path, copy);
  return image_size(copy);
}

/// Every output of `e` exists and is as large as its source allows for the
/// widths asked (never upscaled), read back from the file itself.
void check_outputs_match(const json& e, std::pair<int, int> source, const std::vector<int>& widths) {
  INFO(e.dump());
  REQUIRE(e["status"] == "ok");
  REQUIRE(e["outputs"].size() == widths.size());
  for (std::size_t i = 0; i < widths.size(); ++i) {
    const auto actual = image_size_now(e["outputs"][i]["path"].get<std::string>());
    CHECK(actual.first == std::min(widths[i], source.first));
    CHECK(fs::file_size(e["outputs"][i]["path"].get<std::string>()) == e["outputs"][i]["bytes"].get<std::uint64_t>());
  }
}

std::set<std::string> output_paths(const json& e) {
  std::set<std::string> paths;
  for (const auto& o : e["outputs"]) paths.insert(o["path"].get<std::string>());
  return paths;
}

/// GET `path` from the server on loopback `port`, the body parsed as JSON.
json get_json(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  const std::string request = "GET " + path + " HTTP/1.0\r\n\r\n";
  REQUIRE(::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
  std::string response;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) response.append(buffer, static_cast<std::size_t>(n));
  ::close(fd);
  return json::parse(response.substr(response.find("\r\n\r\n") + 4));
}

/// Makes one image `name` of width x height in `dir` (a JPEG unless the
/// name says otherwise), replacing what was there.
void make_image(const fs::path& dir, const std::string& name, int width, int height, int seed = 1) {
  ScratchDir gen("gen");
  make_images(gen.path(), 1, {"--width", std::to_string(width), "--height", std::to_string(height), "--prefix", "img",
                              "--seed", std::to_string(seed)});
  fs::create_directories(dir);
  fs::copy_file(gen / "img0000.jpg", dir / name, fs::copy_options::overwrite_existing);
}

int manifest_records(const fs::path& out) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(out / ".thumbmill" / "manifest", ec))
    n += e.is_regular_file() && e.path().extension() == ".json";
  return n;
}

}  // namespace

TEST_CASE("a file name two sources share: a later run of the second alone is not handed the first's thumbnails") {
  bool http = false;
  SUBCASE("local paths") {}
  SUBCASE("URLs (the issue's reproduction)") { http = true; }
  ScratchDir src("src");
  make_image(src / "a", "cat.jpg", 300, 200, 1);
  make_image(src / "b", "cat.jpg", 120, 240, 2);
  make_image(src / "c", "cat.jpg", 90, 60, 3);
  std::optional<Server> server;
  if (http) server.emplace(src.path());
  auto source = [&](const std::string& rel) { return http ? server->url(rel) : (src / rel).string(); };
  const std::string a = source("a/cat.jpg");
  const std::string b = source("b/cat.jpg");
  Out out;
  auto first = out.Run({a, b});
  REQUIRE(first.size() == 2);
  check_outputs_match(first[a], {300, 200}, {32, 64, 200});
  check_outputs_match(first[b], {120, 240}, {32, 64, 200});

  // b alone: a's stem is taken, so b is either skipped with its own files
  // or redone into them, never reported done with a's.
  auto second = out.Run({b});
  REQUIRE(second.count(b) == 1);
  check_outputs_match(second[b], {120, 240}, {32, 64, 200});
  CHECK(output_paths(second[b]) == output_paths(first[b]));
  CHECK(skipped(second[b]));  // the manifest says these files are b's

  // Reversed order in a later run: each keeps the names it owns.
  auto third = out.Run({b, a});
  CHECK(output_paths(third[a]) == output_paths(first[a]));
  CHECK(output_paths(third[b]) == output_paths(first[b]));
  CHECK(skipped(third[a]));
  CHECK(skipped(third[b]));

  // A new source with the same file name gets a name nobody owns.
  const std::string c = source("c/cat.jpg");
  auto fourth = out.Run({c});
  check_outputs_match(fourth[c], {90, 60}, {32, 64, 200});
  for (const auto& p : output_paths(fourth[c])) {
    CHECK(output_paths(first[a]).count(p) == 0);
    CHECK(output_paths(first[b]).count(p) == 0);
  }
  // a and b still have their own thumbnails.
  auto fifth = out.Run({a, b});
  check_outputs_match(fifth[a], {300, 200}, {32, 64, 200});
  check_outputs_match(fifth[b], {120, 240}, {32, 64, 200});
  CHECK(skipped(fifth[a]));
  CHECK(skipped(fifth[b]));
}

TEST_CASE("a changed --sizes, --format or --quality is not skipped; the same options are") {
  ScratchDir src("src");
  make_image(src.path(), "dog.jpg", 400, 300);
  const std::string dog = (src / "dog.jpg").string();
  Out out;
  auto run = out.Run({dog}, {"--sizes", "100"});
  CHECK_FALSE(skipped(run[dog]));
  run = out.Run({dog}, {"--sizes", "100"});
  CHECK(skipped(run[dog]));

  run = out.Run({dog}, {"--sizes", "100", "--quality", "40"});
  CHECK_FALSE(skipped(run[dog]));
  check_outputs_match(run[dog], {400, 300}, {100});
  run = out.Run({dog}, {"--sizes", "100", "--quality", "40"});
  CHECK(skipped(run[dog]));

  run = out.Run({dog}, {"--sizes", "100", "--quality", "40", "--format", "webp"});
  CHECK_FALSE(skipped(run[dog]));
  CHECK(run[dog]["outputs"][0]["path"].get<std::string>().ends_with(".webp"));

  run = out.Run({dog}, {"--sizes", "100,50", "--quality", "40", "--format", "webp"});
  CHECK_FALSE(skipped(run[dog]));
  check_outputs_match(run[dog], {400, 300}, {100, 50});
  run = out.Run({dog}, {"--sizes", "100,50", "--quality", "40", "--format", "webp"});
  CHECK(skipped(run[dog]));

  // An output removed or replaced behind our back is not trusted either.
  fs::remove(run[dog]["outputs"][1]["path"].get<std::string>());
  run = out.Run({dog}, {"--sizes", "100,50", "--quality", "40", "--format", "webp"});
  CHECK_FALSE(skipped(run[dog]));
  check_outputs_match(run[dog], {400, 300}, {100, 50});
}

TEST_CASE("a local source changed since (size or modification time) is redone") {
  ScratchDir src("src");
  make_image(src.path(), "owl.jpg", 400, 300, 1);
  const std::string owl = (src / "owl.jpg").string();
  Out out;
  auto run = out.Run({owl}, {"--sizes", "500"});
  check_outputs_match(run[owl], {400, 300}, {500});
  run = out.Run({owl}, {"--sizes", "500"});
  CHECK(skipped(run[owl]));

  // A new image in its place.
  make_image(src.path(), "owl.jpg", 350, 200, 2);
  run = out.Run({owl}, {"--sizes", "500"});
  CHECK_FALSE(skipped(run[owl]));
  check_outputs_match(run[owl], {350, 200}, {500});

  // Only the modification time changes: redone too.
  run = out.Run({owl}, {"--sizes", "500"});
  CHECK(skipped(run[owl]));
  struct timespec times[2] = {{0, UTIME_OMIT}, {1'000'000'000, 0}};
  REQUIRE(::utimensat(AT_FDCWD, owl.c_str(), times, 0) == 0);
  run = out.Run({owl}, {"--sizes", "500"});
  CHECK_FALSE(skipped(run[owl]));
}

TEST_CASE("an HTTP source with a validator is asked again conditionally: a 304 is a skip without a body") {
  // The three builds share the coordinator; the sequential one has its own loop.
  fs::path binary = coordinator();
  std::vector<std::string> workers = {"--workers", "2"};
  SUBCASE("processes") {}
  SUBCASE("threads") { binary = build_dir() / "coordinator" / "coordinator-threaded"; }
  SUBCASE("sequential") {
    binary = build_dir() / "coordinator" / "coordinator-threaded";
    workers = {"--workers", "0"};
  }
  auto flags = [&](std::vector<std::string> more) {
    more.insert(more.end(), workers.begin(), workers.end());
    return more;
  };
  ScratchDir src("src");
  make_image(src.path(), "fox.jpg", 400, 300, 1);
  make_image(src.path(), "hen.jpg", 300, 300, 2);
  Server server(src.path());
  const std::string fox = server.url("fox.jpg");
  const std::string hen = server.url("fault/no-validators/hen.jpg");
  Out out;
  auto run = out.Run({fox, hen}, flags({}), 0, binary);
  check_outputs_match(run[fox], {400, 300}, {32, 64, 200});
  CHECK(get_json(server.port(), "/fault/bodies").value("/fox.jpg", 0) == 1);

  run = out.Run({fox, hen}, flags({}), 0, binary);
  CHECK(skipped(run[fox]));
  CHECK(run[fox]["http_status"] == 304);
  CHECK(get_json(server.port(), "/fault/stats").value("/fox.jpg", 0) == 2);   // asked again...
  CHECK(get_json(server.port(), "/fault/bodies").value("/fox.jpg", 0) == 1);  // ...without a body
  check_outputs_match(run[fox], {400, 300}, {32, 64, 200});
  // No validator: the manifest's word is all there is.
  CHECK(skipped(run[hen]));
  CHECK(get_json(server.port(), "/fault/stats").value("/fault/no-validators/hen.jpg", 0) == 1);

  // Changed on the server: fetched and made again.
  make_image(src.path(), "fox.jpg", 150, 100, 3);
  run = out.Run({fox}, flags({}), 0, binary);
  CHECK_FALSE(skipped(run[fox]));
  check_outputs_match(run[fox], {150, 100}, {32, 64, 200});
  CHECK(get_json(server.port(), "/fault/bodies").value("/fox.jpg", 0) == 2);

  // --force: fetched whole, no conditional request.
  run = out.Run({fox}, flags({"--force"}), 0, binary);
  CHECK_FALSE(skipped(run[fox]));
  CHECK(get_json(server.port(), "/fault/bodies").value("/fox.jpg", 0) == 3);
}

TEST_CASE("two coordinators writing into one --out at once keep both sets of records and names") {
  ScratchDir src("src");
  constexpr int kPerList = 12;
  ScratchDir gen_a("gen"), gen_b("gen");
  make_images(gen_a.path(), kPerList, {"--width", "160", "--height", "120", "--prefix", "pic", "--seed", "1"});
  make_images(gen_b.path(), kPerList, {"--width", "90", "--height", "150", "--prefix", "pic", "--seed", "2"});
  // The same file names in both lists: both runs want the same stems.
  std::vector<std::string> list_a, list_b;
  for (const auto& e : fs::directory_iterator(gen_a.path())) list_a.push_back(e.path().string());
  for (const auto& e : fs::directory_iterator(gen_b.path())) list_b.push_back(e.path().string());
  REQUIRE(list_a.size() == kPerList);
  REQUIRE(list_b.size() == kPerList);

  Out out;
  auto start = [&](const std::vector<std::string>& list, const std::string& tag) {
    std::string text;
    for (const auto& s : list) text += s + "\n";
    write_file(out.work / ("list-" + tag), text);
    fs::create_directories(out.work / ("tmp-" + tag));
    return std::make_unique<Background>(
        std::vector<std::string>{coordinator().string(), "--out", out.out.string(), "--workers", "1", "--sizes", "64",
                                 "--quiet", (out.work / ("list-" + tag)).string()},
        std::map<std::string, std::string>{{"TMPDIR", (out.work / ("tmp-" + tag)).string()}});
  };
  auto run_a = start(list_a, "a");
  auto run_b = start(list_b, "b");
  CHECK(run_a->Wait(300) == 0);
  CHECK(run_b->Wait(300) == 0);
  CHECK(manifest_records(out.out) == 2 * kPerList);

  std::vector<std::string> both = list_a;
  both.insert(both.end(), list_b.begin(), list_b.end());
  auto again = out.Run(both, {"--sizes", "64"});
  std::set<std::string> paths;
  for (const auto& s : list_a) {
    CHECK(skipped(again[s]));
    check_outputs_match(again[s], {160, 120}, {64});
    paths.merge(output_paths(again[s]));
  }
  for (const auto& s : list_b) {
    CHECK(skipped(again[s]));
    check_outputs_match(again[s], {90, 150}, {64});
    paths.merge(output_paths(again[s]));
  }
  CHECK(paths.size() == 2 * kPerList);  // nobody shares a file
}

TEST_CASE("under load every report entry says what its fetch did: tries, status, fetch_ms and resize_ms") {
  constexpr int kCount = 300;
  ScratchDir src("src");
  make_images(src.path(), kCount, {"--width", "64", "--height", "48", "--prefix", "tiny"});
  Server server(src.path());
  std::vector<std::string> list;
  for (const auto& e : fs::directory_iterator(src.path())) list.push_back(server.url(e.path().filename().string()));
  REQUIRE(list.size() == kCount);
  Out out;
  auto run = out.Run(list, {"--workers", "4", "--downloads", "32", "--sizes", "16"});
  REQUIRE(run.size() == kCount);
  int lost = 0;  // a downloaded body whose entry says no fetch happened
  int untimed = 0;
  for (const auto& [url, e] : run) {
    INFO(e.dump());
    REQUIRE(e["status"] == "ok");
    const bool fetched = e.value("fetch_attempts", 0) >= 1 && e.value("http_status", 0) == 200 &&
                         e.value("bytes_downloaded", 0) > 0;
    const bool timed = e.contains("fetch_ms") && e.contains("resize_ms");
    if (!fetched && ++lost <= 3) CHECK(fetched);
    if (!timed && ++untimed <= 3) CHECK(timed);
  }
  MESSAGE(lost << " of " << kCount << " entries without their fetch facts, " << untimed << " without timings");
  CHECK(lost == 0);
  CHECK(untimed == 0);
}

TEST_CASE("a manifest that cannot be written ends the run with exit 3 and a message") {
  ScratchDir src("src");
  make_image(src.path(), "elk.jpg", 200, 100);
  Out out;
  // Where the records go is taken by a plain file: no record can be stored.
  fs::create_directories(out.out / ".thumbmill");
  write_file(out.out / ".thumbmill" / "manifest", "not a directory");
  const fs::path list = out.work / "list.txt";
  write_file(list, (src / "elk.jpg").string() + "\n");
  fs::create_directories(out.work / "tmp");
  CommandOptions options;
  options.env["TMPDIR"] = (out.work / "tmp").string();
  const CommandResult r = run_command({coordinator().string(), "--out", out.out.string(), list.string()}, options);
  INFO("stderr: " << r.err);
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("manifest") != std::string::npos);
}

// ----- issue 9: --name and several formats ------------------------------------

TEST_CASE("--name and --format webp,jpeg: the second run skips, and the names hold") {
  ScratchDir src("src");
  make_image(src / "a", "dog.jpg", 400, 300);
  make_image(src / "b", "dog.jpg", 300, 400, 2);  // the same stem, another directory
  const std::string dog_a = (src / "a/dog.jpg").string(), dog_b = (src / "b/dog.jpg").string();
  Out out;
  const std::vector<std::string> flags = {"--sizes", "100,50", "--format", "webp,jpeg", "--name",
                                          "{size}/{stem}.{ext}"};
  auto run = out.Run({dog_a, dog_b}, flags);
  REQUIRE(run[dog_a]["outputs"].size() == 4);
  CHECK_FALSE(skipped(run[dog_a]));
  const std::string b_stem = "dog-" + [&] {
    char text[9];
    std::snprintf(text, sizeof text, "%08x", static_cast<unsigned>(stable_hash(dog_b)));
    return std::string(text);
  }();
  const std::vector<std::string> want_a = {"100/dog.webp", "100/dog.jpg", "50/dog.webp", "50/dog.jpg"};
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(run[dog_a]["outputs"][i]["path"] == (out.out / want_a[i]).string());
    CHECK(fs::exists(out.out / want_a[i]));
  }
  CHECK(run[dog_b]["outputs"][3]["path"] == (out.out / ("50/" + b_stem + ".jpg")).string());
  const auto first_paths = output_paths(run[dog_b]);

  run = out.Run({dog_a, dog_b}, flags);
  CHECK(skipped(run[dog_a]));
  CHECK(skipped(run[dog_b]));
  CHECK(output_paths(run[dog_b]) == first_paths);  // deterministic across runs

  // Another template is other names: made again, under them.
  run = out.Run({dog_a}, {"--sizes", "100,50", "--format", "webp,jpeg", "--name", "{stem}-{size}.{ext}"});
  CHECK_FALSE(skipped(run[dog_a]));
  CHECK(run[dog_a]["outputs"][0]["path"] == (out.out / "dog-100.webp").string());
}

TEST_CASE("--name with {width}x{height} and {dir}: named from what was made, skipped next time") {
  ScratchDir src("src");
  make_image(src / "shots", "cat.jpg", 400, 300);
  const std::string cat = (src / "shots/cat.jpg").string();
  Out out;
  const std::vector<std::string> flags = {"--sizes", "100", "--name", "{dir}/{stem}-{width}x{height}.{ext}"};
  auto run = out.Run({cat}, flags);
  REQUIRE(run[cat]["status"] == "ok");
  // {dir}: the source path's directories, each reduced like a stem.
  std::string dirs;
  for (const auto& part : fs::path(cat).parent_path()) {
    std::string p = sanitize_name_part(part.string());
    if (p.empty()) continue;
    if (!dirs.empty()) dirs += '/';
    dirs += p;
  }
  const fs::path want = out.out / dirs / "cat-100x75.jpg";
  CHECK(run[cat]["outputs"][0]["path"] == want.string());
  CHECK(image_size_now(want) == std::pair{100, 75});
  run = out.Run({cat}, flags);
  CHECK(skipped(run[cat]));
  CHECK(run[cat]["outputs"][0]["path"] == want.string());
}

TEST_CASE("--name without {stem} or {hash}: {hash} is added, said once, and the names never collide") {
  ScratchDir src("src");
  std::vector<std::string> list;
  for (int i = 0; i < 5; ++i) {
    make_image(src / std::to_string(i), "photo.jpg", 200, 100, i + 1);
    list.push_back((src / std::to_string(i) / "photo.jpg").string());
  }
  Out out;
  const fs::path report = out.work / "report1.jsonl";
  CommandOptions options;
  ScratchDir temp("tmp");
  options.env["TMPDIR"] = temp.path().string();
  std::string text;
  for (const auto& s : list) text += s + "\n";
  write_file(out.work / "list.txt", text);
  const CommandResult r = run_command({coordinator().string(), "--out", out.out.string(), "--report", report.string(),
                                       "--sizes", "64", "--name", "{size}/thumb.{ext}", (out.work / "list.txt").string()},
                                      options);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  const std::string said = "--name '{size}/thumb.{ext}' could give two sources one name: using '{size}/thumb_{hash}.{ext}'";
  const std::size_t at = r.err.find(said);
  CHECK(at != std::string::npos);
  CHECK(r.err.find(said, at + 1) == std::string::npos);  // once, not per source
  std::set<std::string> paths;
  for (const auto& e : read_report(report)) {
    REQUIRE(e["status"] == "ok");
    paths.insert(e["outputs"][0]["path"].get<std::string>());
    const std::string url = e["url"];
    char hash[9];
    std::snprintf(hash, sizeof hash, "%08x", static_cast<unsigned>(stable_hash(url)));
    CHECK(e["outputs"][0]["path"] == (out.out / "64" / ("thumb_" + std::string(hash) + ".jpg")).string());
  }
  CHECK(paths.size() == list.size());
  // The same names again, from the records: skipped.
  auto again = out.Run(list, {"--sizes", "64", "--name", "{size}/thumb.{ext}"});
  for (const auto& s : list) CHECK(skipped(again[s]));
}
