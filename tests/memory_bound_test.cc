// Worker memory is bounded (issue 7 §4), end to end with the real
// executables: hostile images that decode whole (an interlaced 16-bit RGBA
// PNG, a progressive CMYK JPEG; small on disk, many pixels, under
// --max-pixels) fail as too-much-memory from their headers, without the
// worker's peak RSS passing its bound; and when the estimate is defeated,
// the hard limit ends the job as "out of memory", requeued once, and the run
// goes on.
#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <vips/vips8>

#include "shared/memory_bound.h"
#include "tests/skip.h"
#include "tests/test_support.h"

using namespace thumbmill::testing;
using nlohmann::json;
using vips::VImage;
namespace fs = std::filesystem;

namespace {

fs::path coordinator() { return build_dir() / "coordinator" / "coordinator"; }

/// The hostile files and a few ordinary photos, made once for the binary.
/// 6000x4000 = 24 MP: 192 MB decoded at 8 bytes a pixel, more than the
/// per-worker bound of the --max-decode-mb values used here.
struct Images {
  ScratchDir dir{"memory-images"};
  fs::path png = dir / "interlaced-rgba16.png";
  fs::path jpeg = dir / "progressive-cmyk.jpg";
  std::vector<fs::path> photos;

  Images() {
    if (VIPS_INIT("memory_bound_test") != 0) throw std::runtime_error("cannot start libvips");
    VImage rgba16 = VImage::black(6000, 4000, VImage::option()->set("bands", 4))
                        .cast(VIPS_FORMAT_USHORT)
                        .copy(VImage::option()->set("interpretation", static_cast<int>(VIPS_INTERPRETATION_RGB16)));
    rgba16.pngsave(png.c_str(), VImage::option()->set("interlace", true)->set("compression", 9));
    VImage cmyk = (VImage::black(6000, 4000, VImage::option()->set("bands", 4)) + 30)
                      .cast(VIPS_FORMAT_UCHAR)
                      .copy(VImage::option()->set("interpretation", static_cast<int>(VIPS_INTERPRETATION_CMYK)));
    cmyk.jpegsave(jpeg.c_str(), VImage::option()->set("interlace", true));
    make_images(dir.path(), 3, {"--megapixels", "12", "--prefix", "photo"});
    for (const auto& e : fs::directory_iterator(dir.path()))
      if (e.path().filename().string().starts_with("photo")) photos.push_back(e.path());
    std::sort(photos.begin(), photos.end());
  }
};

Images& images() {
  static Images i;
  return i;
}

/// One coordinator run over local paths, in its own directories.
struct Run {
  ScratchDir work{"memory"};
  fs::path out = work / "out";
  fs::path temp = work / "tmp";
  fs::path report = work / "report.jsonl";
  fs::path list = work / "list.txt";
  CommandResult result;

  void Go(const std::vector<fs::path>& sources, const std::vector<std::string>& flags,
          std::map<std::string, std::string> env = {}, const fs::path& program = coordinator()) {
    fs::create_directories(temp);
    std::string text;
    for (const auto& s : sources) text += s.string() + "\n";
    write_file(list, text);
    std::vector<std::string> argv = {program.string(), "--out", out.string(), "--report", report.string(),
                                     "--no-progress"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back(list.string());
    env["TMPDIR"] = temp.string();
    CommandOptions options;
    options.env = env;
    options.timeout_s = 240;
    result = run_command(argv, options);
    REQUIRE_FALSE(result.timed_out);
  }

  std::map<std::string, json> ByPath(std::size_t expected) const {
    std::map<std::string, json> m;
    const auto entries = read_report(report);
    REQUIRE(entries.size() == expected);
    for (const auto& e : entries) m[e["url"].get<std::string>()] = e;
    REQUIRE(m.size() == expected);
    return m;
  }
};

/// Peak RSS in MB of every worker row of the closing summary
/// ("worker  <pid>  <user s>  <sys s>  <rss> MB  <jobs>  <ended>").
std::vector<double> worker_peak_rss_mb(const std::string& summary) {
  std::vector<double> out;
  std::istringstream in(summary);
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("worker ")) continue;
    std::istringstream row(line);
    std::string role, pid;
    double user = 0, sys = 0, rss = -1;
    row >> role >> pid >> user >> sys >> rss;
    out.push_back(rss);
  }
  return out;
}

}  // namespace

TEST_CASE("hostile images fail as too-much-memory from their headers; the worker stays under its bound") {
  Images& im = images();
  CHECK(fs::file_size(im.png) < 2'000'000);
  CHECK(fs::file_size(im.jpeg) < 2'000'000);
  constexpr int kMaxDecodeMb = 32;
  Run run;
  std::vector<fs::path> sources = {im.png, im.jpeg};
  sources.insert(sources.end(), im.photos.begin(), im.photos.end());
  run.Go(sources, {"--workers", "1", "--max-decode-mb", std::to_string(kMaxDecodeMb)});
  INFO(run.result.err);
  CHECK(run.result.exit_code == 1);
  const auto report = run.ByPath(sources.size());
  for (const fs::path& hostile : {im.png, im.jpeg}) {
    const json& e = report.at(hostile.string());
    INFO(e.dump());
    CHECK(e["status"] == "failed");
    CHECK(e["error_code"] == "too-much-memory");
    CHECK(e["attempts"] == 1);
  }
  // 12 MP baseline JPEGs shrink on load: well under even 32 MB.
  for (const fs::path& photo : im.photos) CHECK(report.at(photo.string())["status"] == "ok");
  if (!thumbmill::kWorkerDataLimitAvailable) THUMBMILL_SKIP("peak RSS: an AddressSanitizer worker's is its shadow memory's");
  const std::vector<double> rss = worker_peak_rss_mb(run.result.err);
  REQUIRE(rss.size() == 1);
  const double bound_mb = static_cast<double>(thumbmill::worker_memory_limit_mib(kMaxDecodeMb)) * 1.048576;
  CHECK(rss[0] > 0);
  CHECK(rss[0] < bound_mb);
  CHECK(rss[0] < 192);  // what decoding either image whole would take
  MESSAGE("worker peak RSS " << rss[0] << " MB with --max-decode-mb " << kMaxDecodeMb << " (bound " << bound_mb
                             << " MB)");
}

TEST_CASE("a normal 12 MP baseline JPEG still succeeds with default options") {
  Images& im = images();
  Run run;
  run.Go({im.photos[0]}, {"--workers", "1"});
  INFO(run.result.err);
  CHECK(run.result.exit_code == 0);
  CHECK(run.ByPath(1).at(im.photos[0].string())["status"] == "ok");
}

TEST_CASE("the hard limit holds when the estimate is defeated: out of memory, requeued once, the run goes on") {
  if (!thumbmill::kWorkerDataLimitAvailable) THUMBMILL_SKIP("no RLIMIT_DATA under AddressSanitizer (shared/memory_bound.h)");
  Images& im = images();
  Run run;
  std::vector<fs::path> sources = {im.png, im.jpeg};
  sources.insert(sources.end(), im.photos.begin(), im.photos.end());
  constexpr int kMaxDecodeMb = 16;
  run.Go(sources, {"--workers", "1", "--max-decode-mb", std::to_string(kMaxDecodeMb)},
         {{"THUMBMILL_TEST_SKIP_DECODE_ESTIMATE", "1"}});
  INFO(run.result.err);
  CHECK(run.result.exit_code == 1);
  const auto report = run.ByPath(sources.size());
  for (const fs::path& hostile : {im.png, im.jpeg}) {
    const json& e = report.at(hostile.string());
    INFO(e.dump());
    CHECK(e["status"] == "failed");
    CHECK(e["attempts"] == 2);
    CHECK(e["error_code"] == "too-much-memory");
    CHECK(e["error"].get<std::string>().starts_with("worker out of memory (over its limit of 152 MiB) on 2 attempts"));
  }
  for (const fs::path& photo : im.photos) CHECK(report.at(photo.string())["status"] == "ok");
  CHECK(run.result.err.find("4 worker") != std::string::npos);  // two restarts for each
  const double bound_mb = static_cast<double>(thumbmill::worker_memory_limit_mib(kMaxDecodeMb)) * 1.048576;
  for (double rss : worker_peak_rss_mb(run.result.err)) CHECK(rss < bound_mb);
}

TEST_CASE("the threaded build applies the estimate too (it has no per-worker limit)") {
  Images& im = images();
  Run run;
  const std::vector<fs::path> sources = {im.png, im.jpeg, im.photos[0]};
  run.Go(sources, {"--workers", "1", "--max-decode-mb", "32"}, {},
         build_dir() / "coordinator" / "coordinator-threaded");
  INFO(run.result.err);
  CHECK(run.result.exit_code == 1);
  const auto report = run.ByPath(sources.size());
  for (const fs::path& hostile : {im.png, im.jpeg}) CHECK(report.at(hostile.string())["error_code"] == "too-much-memory");
  CHECK(report.at(im.photos[0].string())["status"] == "ok");
}
