// The seed's whole workflow against a real S3 server on loopback (issue 8):
// object storage in, resize, an uploader process, object storage out.
//
// By default each case starts @20minutes/s3rver (tests/s3_test_server.h),
// which checks signatures. With $THUMBMILL_TEST_S3_ENV naming the env file
// scripts/ceph-rgw wrote (.ci/run does this), the same cases run against a
// single-node Ceph radosgw, which also refuses a wrong payload hash, a
// chunked upload and an unsigned write: there every PUT thumbmill makes is
// checked for those too. Each case works under a prefix of its own, so one
// radosgw serves them all.
#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "shared/s3_client.h"
#include "shared/s3_request.h"
#include "tests/s3_test_server.h"
#include "tests/skip.h"
#include "tests/test_support.h"

namespace thumbmill::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

fs::path exe(const std::string& name) { return build_dir() / name; }
fs::path coordinator() { return coordinator_exe(); }

/// The server a case talks to: s3rver started for it, or the radosgw named
/// by $THUMBMILL_TEST_S3_ENV (buckets "photos" and "thumbs" made by
/// scripts/ceph-rgw start --bucket photos --bucket thumbs).
class Store {
 public:
  Store() {
    if (const char* file = std::getenv("THUMBMILL_TEST_S3_ENV"); file && *file) {
      std::ifstream in(file);
      std::string line;
      while (std::getline(in, line)) {
        if (line.starts_with("export ")) line.erase(0, 7);
        const auto eq = line.find('=');
        if (eq == std::string::npos) continue;
        std::string value = line.substr(eq + 1);
        if (value.size() >= 2 && (value.front() == '\'' || value.front() == '"')) value = value.substr(1, value.size() - 2);
        env_[line.substr(0, eq)] = value;
      }
      env_["AWS_SHARED_CREDENTIALS_FILE"] = "/nonexistent/credentials";
      env_["AWS_CONFIG_FILE"] = "/nonexistent/config";
      settings_.endpoint = env_["AWS_ENDPOINT_URL"];
      settings_.region = env_.count("AWS_REGION") ? env_["AWS_REGION"] : "us-east-1";
      settings_.path_style = true;
      settings_.access_key_id = env_["AWS_ACCESS_KEY_ID"];
      settings_.secret_access_key = env_["AWS_SECRET_ACCESS_KEY"];
      available_ = !settings_.endpoint.empty();
      if (!available_) skip_reason_ = std::string("no AWS_ENDPOINT_URL in ") + file;
      return;
    }
    server_ = std::make_unique<S3TestServer>(std::vector<std::string>{"photos", "thumbs"});
    available_ = server_->available();
    skip_reason_ = server_->skip_reason();
    if (!available_) return;
    env_ = server_->env();
    settings_ = server_->settings();
  }

  bool available() const { return available_; }
  const std::string& skip_reason() const { return skip_reason_; }
  const S3Settings& settings() const { return settings_; }
  std::map<std::string, std::string> env() const { return env_; }
  int port() const { return std::stoi(settings_.endpoint.substr(settings_.endpoint.rfind(':') + 1)); }

 private:
  std::unique_ptr<S3TestServer> server_;
  std::map<std::string, std::string> env_;
  S3Settings settings_;
  bool available_ = false;
  std::string skip_reason_;
};

/// A prefix no other case (or earlier run on the same radosgw) uses.
std::string unique_prefix(const std::string& tag) {
  static std::mt19937_64 rng{std::random_device{}()};
  return tag + "-" + std::to_string(rng() % 1'000'000'000) + "/";
}

/// The photos every case uses: 50 generated ones and three whose names hold
/// a space, unicode and "+=&", as local files.
struct Photos : PhotoSet {
  Photos() : PhotoSet("s3photos", 50, {"--megapixels", "0.3"}) {
    const std::vector<std::string> odd = {"a photo with spaces.jpg", "ünïcödé 写真.jpg", "plus+equals=amp&.jpg"};
    for (std::size_t i = 0; i < odd.size(); ++i) {
      fs::copy_file(dir / names[i], dir / odd[i]);
      names.push_back(odd[i]);
    }
  }
};

Photos& photos() {
  static Photos p;
  return p;
}

/// One case's run: a scratch directory, the report, and the coordinator's
/// command line with the store's environment.
struct Run {
  explicit Run(const Store& store) : store(store) { fs::create_directories(temp); }
  const Store& store;
  ScratchDir work{"s3run"};
  fs::path report = work / "report.jsonl";
  fs::path temp = work / "tmp";
  std::vector<pid_t> coordinators;

  std::map<std::string, std::string> Env(std::map<std::string, std::string> extra = {}) const {
    auto env = store.env();
    env["TMPDIR"] = temp.string();
    for (auto& [k, v] : extra) env[k] = v;
    return env;
  }
  std::vector<std::string> Argv(const std::vector<std::string>& args, const fs::path& tool = coordinator()) const {
    std::vector<std::string> argv = {tool.string(), "--report", report.string(), "--no-progress"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  CommandResult Go(const std::vector<std::string>& args, std::map<std::string, std::string> env = {},
                   const std::string& stdin_text = "", const fs::path& tool = coordinator()) {
    CommandOptions o;
    o.env = Env(std::move(env));
    o.stdin_text = stdin_text;
    o.timeout_s = 300;
    CommandResult r = run_command(Argv(args, tool), o);
    coordinators.push_back(r.pid);
    CHECK_FALSE(r.timed_out);
    return r;
  }
  /// The report, one entry per url; fails the case on a url reported twice.
  std::map<std::string, json> ByUrl() const {
    std::map<std::string, json> by_url;
    for (const json& e : read_report(report)) {
      const std::string url = e["url"];
      CHECK_MESSAGE(by_url.count(url) == 0, "reported twice: " << url);
      by_url[url] = e;
    }
    return by_url;
  }
  void CheckClean() const {
    for (pid_t c : coordinators) CHECK(run_leftovers(c).empty());
  }
};

/// Every object under `prefix` in `bucket`, key -> size.
std::map<std::string, std::uint64_t> listing(S3Client& client, const std::string& bucket, const std::string& prefix) {
  std::map<std::string, std::uint64_t> objects;
  std::string token;
  do {
    auto page = client.ListPage(bucket, prefix, token);
    REQUIRE_MESSAGE(page.ok(), page.status().message());
    for (const S3Object& o : page->objects) objects[o.key] = o.size;
    token = page->truncated ? page->next_token : "";
  } while (!token.empty());
  return objects;
}

/// Stores every photo under s3://photos/<prefix>; returns the list of their
/// s3:// URLs, one per line.
std::string upload_photos(S3Client& client, const std::string& prefix) {
  std::string list;
  for (const std::string& name : photos().names) {
    const std::string bytes = read_file(photos().dir / name);
    S3PutFields fields;
    fields.content_type = "image/jpeg";
    REQUIRE(client.Put({"photos", prefix + name}, bytes, fields).ok());
    list += "s3://photos/" + prefix + name + "\n";
  }
  return list;
}

std::string local_list() {
  std::string list;
  for (const std::string& name : photos().names) list += (photos().dir / name).string() + "\n";
  return list;
}

/// Every source ok with three outputs, each stored at its reported size.
void check_all_stored(const std::map<std::string, json>& report, S3Client& client, const std::string& bucket,
                      const std::string& prefix) {
  const auto objects = listing(client, bucket, prefix);
  CHECK(report.size() == photos().names.size());
  for (const auto& [url, e] : report) {
    INFO(url << ": " << e.dump());
    REQUIRE(e["status"] == "ok");
    REQUIRE(e["outputs"].size() == 3);
    for (const json& o : e["outputs"]) {
      const std::string path = o["path"];
      const std::string want = "s3://" + bucket + "/" + prefix;
      REQUIRE(path.starts_with(want));
      const std::string key = path.substr(5 + bucket.size() + 1);
      REQUIRE(objects.count(key) == 1);
      CHECK(objects.at(key) == o["bytes"].get<std::uint64_t>());
    }
  }
}

#define NEED_STORE(store)                                    \
  Store store;                                               \
  if (!store.available()) THUMBMILL_SKIP(store.skip_reason())

TEST_CASE("files to a bucket, a bucket prefix to a bucket, a bucket prefix to a directory") {
  NEED_STORE(store);
  S3Client client(store.settings());
  const std::string in = unique_prefix("in");
  const std::string out = unique_prefix("out");
  const std::string list = upload_photos(client, in);

  // coordinator urls.txt --out s3://thumbs/t/
  Run files(store);
  write_file(files.work / "list.txt", local_list());
  CommandResult r = files.Go({"--out", "s3://thumbs/" + out + "files/", (files.work / "list.txt").string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto files_report = files.ByUrl();
  check_all_stored(files_report, client, "thumbs", out + "files/");
  for (const auto& [url, e] : files_report) {
    CHECK(e["upload_attempts"].get<int>() >= 4);  // 3 thumbnails and the record
    CHECK(e["upload_bytes"].get<std::uint64_t>() > 0);
  }
  CHECK(r.err.find("uploader") != std::string::npos);      // its row in the summary
  CHECK(r.err.find("ms CPU per thumbnail") != std::string::npos);

  // coordinator s3://photos/in/ --out s3://thumbs/t/
  Run s3_to_s3(store);
  r = s3_to_s3.Go({"s3://photos/" + in, "--out", "s3://thumbs/" + out + "s3/"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  check_all_stored(s3_to_s3.ByUrl(), client, "thumbs", out + "s3/");

  // coordinator s3://photos/in/ --out ./thumbnails
  Run to_dir(store);
  const fs::path dir = to_dir.work / "thumbnails";
  r = to_dir.Go({"s3://photos/" + in, "--out", dir.string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto dir_report = to_dir.ByUrl();
  CHECK(dir_report.size() == photos().names.size());
  // The same source makes the same bytes, wherever it comes from and goes.
  for (const auto& [url, e] : dir_report) {
    INFO(url);
    REQUIRE(e["status"] == "ok");
    for (const json& o : e["outputs"]) {
      const fs::path path = o["path"].get<std::string>();
      REQUIRE(fs::exists(path));
      const std::string key = out + "s3/" + path.filename().string();
      auto stored = client.Get({"thumbs", key}, 1 << 20);
      REQUIRE_MESSAGE(stored.ok(), stored.status().message());
      CHECK(*stored == read_file(path));
    }
  }
  for (const std::string& odd : {"a photo with spaces", "ünïcödé 写真", "plus+equals=amp&"})
    CHECK(dir_report.count("s3://photos/" + in + odd + ".jpg") == 1);
  files.CheckClean();
  s3_to_s3.CheckClean();
  to_dir.CheckClean();
}

TEST_CASE("a prefix listed over many pages gives every object exactly once, and a list may mix s3:// lines") {
  NEED_STORE(store);
  S3Client client(store.settings());
  const std::string in = unique_prefix("pages");
  upload_photos(client, in);
  S3PutFields text;
  text.content_type = "text/plain";
  REQUIRE(client.Put({"photos", in + "notes.txt"}, "not an image", text).ok());  // not taken: not an image key
  Run run(store);
  const std::string out = unique_prefix("pages-out");
  const CommandResult r =
      run.Go({"s3://photos/" + in, "--out", "s3://thumbs/" + out}, {{"THUMBMILL_TEST_S3_LIST_PAGE", "7"}});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto report = run.ByUrl();
  CHECK(report.size() == photos().names.size());  // 53 keys over 8 pages
  CHECK(report.count("s3://photos/" + in + "notes.txt") == 0);
  check_all_stored(report, client, "thumbs", out);

  // s3:// lines beside local paths in one list.
  Run mixed(store);
  std::string list = "s3://photos/" + in + photos().names[0] + "\n" + (photos().dir / photos().names[1]).string() + "\n";
  list += "s3://photos/" + in + "no-such-key.jpg\n";
  const CommandResult m = mixed.Go({"--out", (mixed.work / "t").string(), "-"}, {}, list);
  CHECK(m.exit_code == 1);
  const auto mixed_report = mixed.ByUrl();
  CHECK(mixed_report.at("s3://photos/" + in + photos().names[0])["status"] == "ok");
  CHECK(mixed_report.at((photos().dir / photos().names[1]).string())["status"] == "ok");
  const json& missing = mixed_report.at("s3://photos/" + in + "no-such-key.jpg");
  CHECK(missing["status"] == "failed");
  CHECK(missing["http_status"] == 404);
  run.CheckClean();
}

TEST_CASE("--ext chooses the keys a prefix gives, as it does for a directory") {
  NEED_STORE(store);
  S3Client client(store.settings());
  const std::string in = unique_prefix("ext");
  const std::string bytes = read_file(photos().dir / photos().names[0]);
  for (const std::string key : {"a.jpg", "b.JPEG", "c.jfif", "notes.txt"}) REQUIRE(client.Put({"photos", in + key}, bytes, {}).ok());
  Run run(store);
  const CommandResult r = run.Go({"--ext", "jpeg,JFIF", "s3://photos/" + in, "--out", (run.work / "t").string()});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  std::set<std::string> urls;
  for (const auto& [url, e] : run.ByUrl()) urls.insert(url);
  CHECK(urls == std::set<std::string>{"s3://photos/" + in + "b.JPEG", "s3://photos/" + in + "c.jfif"});
}

TEST_CASE("a wrong secret or a missing bucket: one clear message and exit 3 before anything is downloaded") {
  NEED_STORE(store);
  Run run(store);
  write_file(run.work / "list.txt", local_list());
  const std::string list = (run.work / "list.txt").string();
  const fs::path report = run.report;

  CommandResult r = run.Go({"--out", "s3://thumbs/x/", list}, {{"AWS_SECRET_ACCESS_KEY", "not-the-secret"}});
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("403") != std::string::npos);
  CHECK(r.err.find("AWS_SECRET_ACCESS_KEY") != std::string::npos);
  CHECK(r.err.find("not-the-secret") == std::string::npos);  // never the secret itself
  CHECK_FALSE(fs::exists(report));  // nothing started: no report, nothing fetched
  CHECK(r.err.find("images") == std::string::npos);  // no summary either

  r = run.Go({"--out", "s3://no-such-bucket/x/", list});
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("no-such-bucket") != std::string::npos);
  CHECK(r.err.find("does not exist") != std::string::npos);
  CHECK_FALSE(fs::exists(report));

  r = run.Go({"s3://no-such-bucket/in/", "--out", (run.work / "t").string()});
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("does not exist") != std::string::npos);
  CHECK_FALSE(fs::exists(run.work / "t"));

  // An endpoint where nothing listens.
  r = run.Go({"--out", "s3://thumbs/x/", list}, {{"AWS_ENDPOINT_URL", "http://127.0.0.1:9"}});
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("cannot reach") != std::string::npos);

  // One object as LIST is not a prefix: a usage error that says what to do.
  r = run.Go({"s3://photos/one.jpg", "--out", (run.work / "t").string()});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("prefix") != std::string::npos);
  CHECK_FALSE(fs::exists(report));
}

TEST_CASE("secrets and the session token never reach a child's argv, a message or the report") {
  NEED_STORE(store);
  S3Client client(store.settings());
  const std::string out = unique_prefix("secrets");
  Run run(store);
  write_file(run.work / "list.txt", local_list());
  const std::string token = "SessionTokenSecret42";
  auto env = run.Env({{"AWS_SESSION_TOKEN", token}, {"THUMBMILL_TEST_CRASH_ON", "never-matches"}});
  // Slow enough to look at every process while it runs.
  Background bg(run.Argv({"--workers", "1", "--out", "s3://thumbs/" + out, (run.work / "list.txt").string()}), env);
  run.coordinators.push_back(bg.pid());
  std::set<pid_t> seen;
  const std::string secret = store.settings().secret_access_key;
  auto cmdline = [](pid_t pid) {
    std::string text = read_file("/proc/" + std::to_string(pid) + "/cmdline");
    std::replace(text.begin(), text.end(), '\0', ' ');
    return text;
  };
  CHECK(eventually([&] {
    for (pid_t child : children_of(bg.pid())) seen.insert(child);
    return seen.size() >= 3;  // downloader, worker, uploader
  }));
  for (pid_t pid : seen) {
    const std::string text = cmdline(pid);
    INFO(pid << ": " << text);
    CHECK(text.find(secret) == std::string::npos);
    CHECK(text.find(token) == std::string::npos);
  }
  CHECK(cmdline(bg.pid()).find(secret) == std::string::npos);
  REQUIRE(bg.Wait(300) == 0);
  const std::string report = read_file(run.report);
  CHECK(report.find(secret) == std::string::npos);
  CHECK(report.find(token) == std::string::npos);
  CHECK(bg.err().find(secret) == std::string::npos);
  CHECK(bg.err().find(token) == std::string::npos);
  check_all_stored(run.ByUrl(), client, "thumbs", out);
}

/// scripts/s3-proxy in front of the store.
class Proxy {
 public:
  Proxy(const Store& store, const std::vector<std::string>& flags, const fs::path& log) {
    std::vector<std::string> argv = {(source_dir() / "scripts" / "s3-proxy").string(), "--upstream",
                                     store.settings().endpoint, "--log", log.string()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    out_ = std::make_unique<ScratchDir>("proxy");
    const fs::path ready = *out_ / "out";
    // Through sh only to send its standard output (the "listening on" line)
    // to a file this case can watch.
    std::string command = "exec";
    for (const auto& a : argv) command += " '" + a + "'";
    command += " > '" + ready.string() + "'";
    process_ = std::make_unique<Background>(std::vector<std::string>{"/bin/sh", "-c", command});
    REQUIRE(eventually([&] { return read_file(ready).find("listening on") != std::string::npos; }));
    const std::string line = read_file(ready);
    port_ = std::stoi(line.substr(line.rfind(':') + 1));
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  std::unique_ptr<ScratchDir> out_;
  std::unique_ptr<Background> process_;
  int port_ = 0;
};

/// Proxy log lines: how many answers the proxy injected.
int injected(const fs::path& log) {
  std::ifstream in(log);
  std::string line;
  int n = 0;
  while (std::getline(in, line))
    if (!line.empty() && json::parse(line).value("injected", false)) ++n;
  return n;
}

TEST_CASE("PUTs answered 503, 429 or reset a few times are retried until stored") {
  NEED_STORE(store);
  S3Client client(store.settings());
  const std::string out = unique_prefix("faults");
  Run run(store);
  write_file(run.work / "list.txt", local_list());
  Proxy proxy(store, {"--fail-puts", "2", "--fail-kinds", "503,reset"}, run.work / "proxy.jsonl");
  const CommandResult r = run.Go({"--out", "s3://thumbs/" + out, (run.work / "list.txt").string()},
                                 {{"AWS_ENDPOINT_URL", proxy.endpoint()}});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto report = run.ByUrl();
  check_all_stored(report, client, "thumbs", out);
  // Every object failed twice first, 4 objects per source: up to 3 tries
  // each (libcurl itself sends a request again, within one try, when a
  // reused connection was reset under it).
  for (const auto& [url, e] : report) {
    CHECK(e["upload_attempts"].get<int>() >= 8);
    CHECK(e["upload_attempts"].get<int>() <= 12);
  }
  CHECK(injected(run.work / "proxy.jsonl") == static_cast<int>(2 * 4 * photos().names.size()));

  // More failures than --upload-attempts: the source fails, with the reason.
  Run give_up(store);
  Proxy always(store, {"--fail-puts", "100", "--fail-kinds", "429"}, give_up.work / "proxy.jsonl");
  write_file(give_up.work / "list.txt", (photos().dir / photos().names[0]).string() + "\n");
  const CommandResult g =
      give_up.Go({"--upload-attempts", "2", "--out", "s3://thumbs/" + out + "never/", (give_up.work / "list.txt").string()},
                 {{"AWS_ENDPOINT_URL", always.endpoint()}});
  CHECK(g.exit_code == 1);
  const json e = give_up.ByUrl().begin()->second;
  CHECK(e["status"] == "failed");
  CHECK(e["error_code"] == "http-status");
  CHECK(e["error"].get<std::string>().find("429") != std::string::npos);
  CHECK(e["error"].get<std::string>().find("after 2 tries") != std::string::npos);
  run.CheckClean();
  give_up.CheckClean();
}

TEST_CASE("the uploader SIGKILLed 5 times: every thumbnail stored, the report exact, nothing left behind") {
  NEED_STORE(store);
  S3Client client(store.settings());
  const std::string out = unique_prefix("kills");
  Run run(store);
  write_file(run.work / "list.txt", local_list());
  // Slow PUTs, so the uploader always holds some when it is killed.
  Proxy slow(store, {"--delay-ms", "40"}, run.work / "proxy.jsonl");
  Background bg(run.Argv({"--uploads", "4", "--out", "s3://thumbs/" + out, (run.work / "list.txt").string()}),
                run.Env({{"AWS_ENDPOINT_URL", slow.endpoint()}}));
  run.coordinators.push_back(bg.pid());
  const fs::path uploader = exe("uploader/uploader");
  int kills = 0;
  pid_t last = 0;
  while (kills < 5 && bg.Wait(0) == -1) {
    // A new uploader each time (the replacement of the one killed before).
    pid_t target = 0;
    if (!eventually([&] {
          auto running = children_running(bg.pid(), uploader);
          if (running.empty() || running[0] == last) return false;
          target = running[0];
          return true;
        }, 10s))
      break;
    std::this_thread::sleep_for(150ms);  // let it take bundles and start PUTs
    if (::kill(target, SIGKILL) == 0) ++kills, last = target;
  }
  INFO(bg.err());
  REQUIRE(bg.Wait(300) == 0);
  CHECK(kills == 5);
  CHECK(bg.err().find("5 uploader") != std::string::npos);
  check_all_stored(run.ByUrl(), client, "thumbs", out);
  CHECK(run_leftovers(bg.pid()).empty());  // no segment in /dev/shm, no child
}

TEST_CASE("a stopped uploader holding thumbnails is killed and replaced: the run ends, everything stored") {
  NEED_STORE(store);
  S3Client client(store.settings());
  const std::string out = unique_prefix("stopped");
  Run run(store);
  write_file(run.work / "list.txt", local_list());
  Proxy slow(store, {"--delay-ms", "40"}, run.work / "proxy.jsonl");
  Background bg(run.Argv({"--out", "s3://thumbs/" + out, (run.work / "list.txt").string()}),
                run.Env({{"AWS_ENDPOINT_URL", slow.endpoint()}}));
  run.coordinators.push_back(bg.pid());
  pid_t uploader = 0;
  REQUIRE(eventually([&] {
    auto running = children_running(bg.pid(), exe("uploader/uploader"));
    if (running.empty()) return false;
    uploader = running[0];
    return true;
  }));
  // Once it holds work: an upload's record is in the report only after its PUTs.
  REQUIRE(eventually([&] { return fs::exists(run.report) && fs::file_size(run.report) > 0; }));
  REQUIRE(::kill(uploader, SIGSTOP) == 0);
  const int code = bg.Wait(90);
  INFO(bg.err());
  if (code == -1) ::kill(uploader, SIGCONT);  // old behaviour: waits for it for ever
  REQUIRE(code == 0);
  CHECK(bg.err().find("1 uploader") != std::string::npos);
  check_all_stored(run.ByUrl(), client, "thumbs", out);
}

TEST_CASE("resume against a bucket: a second run skips what is stored; a missing thumbnail is made again") {
  NEED_STORE(store);
  S3Client client(store.settings());
  const std::string out = unique_prefix("resume");
  Run first(store);
  write_file(first.work / "list.txt", local_list());
  const std::string list = (first.work / "list.txt").string();
  REQUIRE(first.Go({"--out", "s3://thumbs/" + out, list}).exit_code == 0);
  const auto made = first.ByUrl();

  Run second(store);
  const CommandResult r = second.Go({"--out", "s3://thumbs/" + out, list});
  REQUIRE(r.exit_code == 0);
  const auto skipped = second.ByUrl();
  for (const auto& [url, e] : skipped) {
    CHECK(e.value("skipped", false));
    CHECK(e["outputs"] == made.at(url)["outputs"]);
  }

  // One thumbnail gone: only its source is made again.
  const std::string victim = (photos().dir / photos().names[5]).string();
  const std::string gone = made.at(victim)["outputs"][1]["path"];
  REQUIRE(client.Delete({"thumbs", gone.substr(std::string("s3://thumbs/").size())}).ok());
  Run third(store);
  REQUIRE(third.Go({"--out", "s3://thumbs/" + out, list}).exit_code == 0);
  const auto again = third.ByUrl();
  for (const auto& [url, e] : again) CHECK(e.value("skipped", false) == (url != victim));
  check_all_stored(again, client, "thumbs", out);

  // A source changed since: an S3 source's ETag differs, so it is redone.
  const std::string in = unique_prefix("resume-in");
  upload_photos(client, in);
  Run s3a(store);
  REQUIRE(s3a.Go({"s3://photos/" + in, "--out", "s3://thumbs/" + out + "s3/"}).exit_code == 0);
  S3PutFields fields;
  fields.content_type = "image/jpeg";
  REQUIRE(client.Put({"photos", in + photos().names[0]}, read_file(photos().dir / photos().names[1]), fields).ok());
  Run s3b(store);
  REQUIRE(s3b.Go({"s3://photos/" + in, "--out", "s3://thumbs/" + out + "s3/"}).exit_code == 0);
  for (const auto& [url, e] : s3b.ByUrl())
    CHECK(e.value("skipped", false) == (url != "s3://photos/" + in + photos().names[0]));
}

TEST_CASE("--format webp,jpeg with --name '{size}/{stem}.{ext}' to a bucket: keys follow the template; a second run skips") {
  NEED_STORE(store);
  S3Client client(store.settings());
  const std::string out = unique_prefix("named");
  std::string list_text;
  std::vector<std::string> sources;
  for (std::size_t i = 0; i < 5; ++i) {
    sources.push_back((photos().dir / photos().names[i]).string());
    list_text += sources.back() + "\n";
  }
  const std::vector<std::string> flags = {"--out", "s3://thumbs/" + out, "--sizes", "64,32", "--format", "webp,jpeg",
                                          "--name", "{size}/{stem}.{ext}"};
  Run first(store);
  write_file(first.work / "list.txt", list_text);
  std::vector<std::string> args = flags;
  args.push_back((first.work / "list.txt").string());
  CommandResult r = first.Go(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto made = first.ByUrl();
  const auto objects = listing(client, "thumbs", out);
  for (const std::string& source : sources) {
    const json& e = made.at(source);
    REQUIRE(e["status"] == "ok");
    const std::string stem = fs::path(source).stem().string();
    const std::vector<std::string> keys = {out + "64/" + stem + ".webp", out + "64/" + stem + ".jpg",
                                           out + "32/" + stem + ".webp", out + "32/" + stem + ".jpg"};
    REQUIRE(e["outputs"].size() == keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      CHECK(e["outputs"][i]["path"] == "s3://thumbs/" + keys[i]);
      REQUIRE(objects.count(keys[i]) == 1);
      CHECK(objects.at(keys[i]) == e["outputs"][i]["bytes"].get<std::uint64_t>());
    }
    auto webp = client.Get({"thumbs", keys[0]}, 1 << 20);
    auto jpeg = client.Get({"thumbs", keys[1]}, 1 << 20);
    REQUIRE(webp.ok());
    REQUIRE(jpeg.ok());
    CHECK(webp->starts_with("RIFF"));
    CHECK(jpeg->starts_with("\xff\xd8"));
  }
  Run second(store);
  write_file(second.work / "list.txt", list_text);
  args = flags;
  args.push_back((second.work / "list.txt").string());
  REQUIRE(second.Go(args).exit_code == 0);
  for (const auto& [url, e] : second.ByUrl()) {
    CHECK(e.value("skipped", false));
    CHECK(e["outputs"] == made.at(url)["outputs"]);
  }
  first.CheckClean();
  second.CheckClean();
}

TEST_CASE("the threaded build and the sequential baseline store the same thumbnails") {
  NEED_STORE(store);
  S3Client client(store.settings());
  const std::string out = unique_prefix("threads");
  Run run(store);
  write_file(run.work / "list.txt", local_list());
  const std::string list = (run.work / "list.txt").string();
  for (const std::vector<std::string>& workers : {std::vector<std::string>{"--workers", "2"}, {"--workers", "0"}}) {
    INFO(workers[1]);
    std::vector<std::string> args = workers;
    const std::string prefix = out + workers[1] + "/";
    args.insert(args.end(), {"--out", "s3://thumbs/" + prefix, list});
    const CommandResult r = run.Go(args, {}, "", exe("coordinator/coordinator-threaded"));
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    check_all_stored(run.ByUrl(), client, "thumbs", prefix);
  }
  const auto a = listing(client, "thumbs", out + "2/");
  const auto b = listing(client, "thumbs", out + "0/");
  CHECK(a.size() == b.size());
}

}  // namespace
}  // namespace thumbmill::testing
