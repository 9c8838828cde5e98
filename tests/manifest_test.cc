// Tests for the pieces resume rests on (issue 7 §3, §9): manifest records
// (shared/manifest.h), stem claims in an output directory
// (shared/stem_claims.h) and the allocator that consults them
// (shared/output_names.h), the OutputPlan, and slot views that are copies.
#include <algorithm>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "shared/job_queue.h"
#include "shared/manifest.h"
#include "shared/output_files.h"
#include "shared/output_names.h"
#include "shared/output_plan.h"
#include "shared/stem_claims.h"

namespace thumbmill {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "thumbmill-manifest-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() { fs::remove_all(path); }
};

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

ManifestRecord sample(const std::string& source = "http://example.test/a/cat.jpg") {
  ManifestRecord r;
  r.source = source;
  r.stem = "cat";
  r.options = "v1;sizes=32,64;format=jpeg;quality=85";
  r.outputs = {{"cat_32.jpg", 32, 21, 700}, {"cat_64.jpg", 64, 43, 950}};
  r.validator.etag = "\"abc-1\"";
  r.validator.last_modified = "Mon, 30 Nov 2026 10:00:26 GMT";
  return r;
}

StemClaimFn claims_for(StemClaims& claims, const std::string& source) {
  return [&claims, source](const std::string& stem) { return claims.Claim(stem, source); };
}

}  // namespace

TEST_CASE("a manifest record survives JSON both ways, and a malformed one is an error") {
  ManifestRecord r = sample();
  auto back = manifest_record_from_json(manifest_record_to_json(r));
  REQUIRE(back.ok());
  CHECK(*back == r);
  r.validator = {};
  r.validator.has_file_stat = true;
  r.validator.file_size = 12345;
  r.validator.mtime_ns = 1'700'000'000'123'456'789;
  back = manifest_record_from_json(manifest_record_to_json(r));
  REQUIRE(back.ok());
  CHECK(*back == r);
  CHECK_FALSE(manifest_record_from_json("{").ok());
  r = sample();
  r.validator.etag = "\"a\"\r\nX-Injected: 1";  // would be a header of its own
  CHECK_FALSE(manifest_record_from_json(manifest_record_to_json(r)).ok());
  CHECK_FALSE(manifest_record_from_json("{\"source\": 3}").ok());
}

TEST_CASE("records are stored one per source, found by source, and removed") {
  TempDir dir;
  Manifest manifest(dir.path);
  const ManifestRecord a = sample("http://example.test/a/cat.jpg");
  const ManifestRecord b = sample("http://example.test/b/cat.jpg");
  CHECK_FALSE(manifest.Load(a.source));
  REQUIRE(manifest.Store(a).ok());
  REQUIRE(manifest.Store(b).ok());
  CHECK(manifest.RecordPath(a.source) != manifest.RecordPath(b.source));
  CHECK(manifest.RecordPath(a.source).string().find("/.thumbmill/manifest/") != std::string::npos);
  REQUIRE(manifest.Load(a.source));
  CHECK(*manifest.Load(a.source) == a);
  CHECK(*manifest.Load(b.source) == b);
  // Another source's record where this one's would be (a hash collision) is not this one's.
  fs::copy_file(manifest.RecordPath(b.source), manifest.RecordPath(a.source), fs::copy_options::overwrite_existing);
  CHECK_FALSE(manifest.Load(a.source));
  // Damaged: as if there were none.
  write_text(manifest.RecordPath(b.source), "{\"source\": \"http://exa");
  CHECK_FALSE(manifest.Load(b.source));
  REQUIRE(manifest.Store(b).ok());
  CHECK(manifest.Remove(b.source).ok());
  CHECK_FALSE(manifest.Load(b.source));
  CHECK(manifest.Remove(b.source).ok());  // removing nothing is fine
  // No temp file is left behind by the writes.
  for (const auto& e : fs::recursive_directory_iterator(dir.path / ".thumbmill"))
    CHECK_FALSE(is_output_temp_name(e.path().filename().string()));
}

TEST_CASE("records written by many writers at once are all kept") {
  TempDir dir;
  constexpr int kWriters = 4, kEach = 50;
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w)
    writers.emplace_back([&, w] {
      Manifest manifest(dir.path);
      for (int i = 0; i < kEach; ++i)
        CHECK(manifest.Store(sample("http://example.test/" + std::to_string(w) + "/" + std::to_string(i))).ok());
    });
  for (auto& t : writers) t.join();
  Manifest manifest(dir.path);
  int found = 0;
  for (int w = 0; w < kWriters; ++w)
    for (int i = 0; i < kEach; ++i)
      found += manifest.Load("http://example.test/" + std::to_string(w) + "/" + std::to_string(i)).has_value();
  CHECK(found == kWriters * kEach);
}

TEST_CASE("outputs are intact only when every named file is there, as large as recorded") {
  TempDir dir;
  Manifest manifest(dir.path);
  ManifestRecord r = sample();
  CHECK_FALSE(manifest.OutputsIntact(r));
  write_text(dir.path / "cat_32.jpg", std::string(700, 'x'));
  write_text(dir.path / "cat_64.jpg", std::string(950, 'x'));
  CHECK(manifest.OutputsIntact(r));
  write_text(dir.path / "cat_64.jpg", std::string(951, 'x'));
  CHECK_FALSE(manifest.OutputsIntact(r));
  write_text(dir.path / "cat_64.jpg", std::string(950, 'x'));
  r.outputs[0].name = "../cat_32.jpg";  // a record is data: never a path out
  CHECK_FALSE(manifest.OutputsIntact(r));
  r.outputs.clear();
  CHECK_FALSE(manifest.OutputsIntact(r));
}

TEST_CASE("outputs in subdirectories (--name) are intact only through real directories") {
  TempDir dir, elsewhere;
  Manifest manifest(dir.path);
  ManifestRecord r = sample();
  r.outputs = {{"200/a/cat.jpg", 200, 150, 5}};
  fs::create_directories(dir.path / "200/a");
  write_text(dir.path / "200/a/cat.jpg", "12345");
  CHECK(manifest.OutputsIntact(r));
  for (const char* bad : {"200/../200/a/cat.jpg", "200//a/cat.jpg", "/200/a/cat.jpg", "200/.a/cat.jpg", "200/a/"}) {
    CAPTURE(bad);
    r.outputs[0].name = bad;
    CHECK_FALSE(manifest.OutputsIntact(r));
  }
  // The same name through a symlinked directory is not ours.
  fs::create_directories(elsewhere.path / "a");
  write_text(elsewhere.path / "a/cat.jpg", "12345");
  fs::create_directory_symlink(elsewhere.path, dir.path / "64");
  r.outputs[0].name = "64/a/cat.jpg";
  CHECK_FALSE(manifest.OutputsIntact(r));
}

TEST_CASE("the options fingerprint changes with sizes, format and quality only") {
  Options o;
  const std::string base = options_fingerprint(o);
  Options other = o;
  other.workers = 7;
  other.downloads = 3;
  other.force = true;
  CHECK(options_fingerprint(other) == base);
  other = o;
  other.sizes = {{32, 0}, {64, 0}};
  CHECK(options_fingerprint(other) != base);
  other = o;
  other.sizes = {{200, 0}, {64, 0}, {32, 0}};  // the order names the outputs
  CHECK(options_fingerprint(other) != base);
  other = o;
  other.formats = {Format::kWebp};
  CHECK(options_fingerprint(other) != base);
  other.formats = {Format::kJpeg, Format::kWebp};
  CHECK(options_fingerprint(other) != base);
  // One format reads as before issue 9: earlier manifests stay valid.
  CHECK(base.find(";format=jpeg;") != std::string::npos);
  other = o;
  other.quality = 84;
  CHECK(options_fingerprint(other) != base);
}

TEST_CASE("the options fingerprint changes with every image option, and not at their defaults") {
  const Options o;
  const std::string base = options_fingerprint(o);
  CHECK(base.find("fit") == std::string::npos);
  void (*const changes[])(Options&) = {
      [](Options& x) { x.fit = Fit::kCover; },         [](Options& x) { x.crop = Crop::kEntropy; },
      [](Options& x) { x.upscale = true; },            [](Options& x) { x.keep.icc = true; },
      [](Options& x) { x.no_rotate = true; },          [](Options& x) { x.profile = Profile::kP3; },
      [](Options& x) { x.progressive = true; },        [](Options& x) { x.optimize_coding = true; },
      [](Options& x) { x.effort = 0; },                [](Options& x) { x.lossless = true; },
  };
  std::vector<std::string> seen = {base};
  for (auto change : changes) {
    Options other = o;
    change(other);
    const std::string fingerprint = options_fingerprint(other);
    CAPTURE(fingerprint);
    CHECK(std::find(seen.begin(), seen.end(), fingerprint) == seen.end());
    seen.push_back(fingerprint);
  }
}

TEST_CASE("a local file's validator is its size and modification time") {
  TempDir dir;
  write_text(dir.path / "a.jpg", "1234");
  auto v = local_file_validator(dir.path / "a.jpg");
  REQUIRE(v.ok());
  CHECK(v->has_file_stat);
  CHECK(v->file_size == 4);
  CHECK_FALSE(local_file_validator(dir.path / "missing.jpg").ok());
}

TEST_CASE("a stem is claimed once, for good, without case") {
  TempDir dir;
  StemClaims claims(dir.path);
  CHECK(claims.Claim("cat", "/a/cat.jpg").value());
  CHECK_FALSE(claims.Claim("cat", "/b/cat.jpg").value());
  CHECK_FALSE(claims.Claim("CAT", "/b/Cat.jpg").value());
  CHECK(claims.Claim("Cat", "/a/cat.jpg").value());  // its own again
  StemClaims later(dir.path);                         // a later run
  CHECK(later.Claim("cat", "/a/cat.jpg").value());
  CHECK_FALSE(later.Claim("cat", "/b/cat.jpg").value());
  for (const auto& e : fs::directory_iterator(claims.dir())) CHECK(e.path().filename().string()[0] != '.');
}

TEST_CASE("claims made at the same time give each stem exactly one owner") {
  TempDir dir;
  constexpr int kClaimers = 4, kStems = 100;
  std::atomic<int> won[kStems] = {};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClaimers; ++c)
    threads.emplace_back([&, c] {
      StemClaims claims(dir.path);
      for (int s = 0; s < kStems; ++s) {
        auto ours = claims.Claim("stem" + std::to_string(s), "/source/" + std::to_string(c));
        REQUIRE(ours.ok());
        if (*ours) ++won[s];
      }
    });
  for (auto& t : threads) t.join();
  for (int s = 0; s < kStems; ++s) CHECK(won[s] == 1);
}

TEST_CASE("stems owned in an output directory are never handed to another source, in any later run") {
  TempDir dir;
  const std::string a = "http://one.test/a/cat.jpg", b = "http://one.test/b/cat.jpg", c = "/photos/cat.jpg";
  std::string stem_a, stem_b;
  {
    StemClaims claims(dir.path);
    StemAllocator run1;
    stem_a = run1.Allocate(a, claims_for(claims, a)).value();
    stem_b = run1.Allocate(b, claims_for(claims, b)).value();
  }
  CHECK(stem_a == "cat");
  CHECK(stem_b != "cat");
  {  // b alone: its own stem again, not the free-looking "cat".
    StemClaims claims(dir.path);
    StemAllocator run2;
    CHECK(run2.Allocate(b, claims_for(claims, b)).value() == stem_b);
  }
  {  // the other order: each keeps its own
    StemClaims claims(dir.path);
    StemAllocator run3;
    CHECK(run3.Allocate(b, claims_for(claims, b)).value() == stem_b);
    CHECK(run3.Allocate(a, claims_for(claims, a)).value() == stem_a);
  }
  {  // a newcomer gets neither
    StemClaims claims(dir.path);
    StemAllocator run4;
    const std::string stem_c = run4.Allocate(c, claims_for(claims, c)).value();
    CHECK(stem_c != stem_a);
    CHECK(stem_c != stem_b);
    // A preferred stem is used only when it is this source's.
    StemAllocator run5;
    CHECK(run5.Allocate(c, claims_for(claims, c), stem_a).value() == stem_c);
  }
  {  // a claim that cannot be made names the source's failure
    StemAllocator run6;
    auto failed = run6.Allocate(a, [](const std::string&) -> Result<bool> { return Status(Code::kIoError, "disk"); });
    CHECK_FALSE(failed.ok());
  }
}

TEST_CASE("the output plan names finals and temps by one rule") {
  const OutputPlan plan("/out", {{200, 0}, {90, 90}}, {Format::kWebp});
  CHECK(plan.count() == 2);
  CHECK(plan.file_name({"cat", "http://127.0.0.1/cat.png"}, 0) == "cat_200.webp");
  CHECK(plan.final_path({"cat", "http://127.0.0.1/cat.png"}, 1) == fs::path("/out/cat_90x90.webp"));
}

TEST_CASE("the output plan with several formats: sizes-major, a Content-Type each") {
  const OutputPlan plan("/out", {{200, 0}, {90, 90}}, {Format::kWebp, Format::kJpeg});
  const SourceNames cat{"cat", "http://127.0.0.1/cat.png"};
  CHECK(plan.count() == 4);
  CHECK(plan.file_name(cat, 0) == "cat_200.webp");
  CHECK(plan.file_name(cat, 1) == "cat_200.jpg");
  CHECK(plan.file_name(cat, 2) == "cat_90x90.webp");
  CHECK(plan.file_name(cat, 3) == "cat_90x90.jpg");
  CHECK(plan.content_type(0) == "image/webp");
  CHECK(plan.content_type(3) == "image/jpeg");
  CHECK(plan.size(2) == SizeSpec{90, 90});
  CHECK(plan.format(2) == Format::kWebp);
}

TEST_CASE("the output plan follows --name, and keys a template without {stem} by {hash}") {
  const SourceNames cat{"cat", "http://127.0.0.1/a/b/cat.png"};
  const OutputPlan sized("/out", {{200, 0}, {90, 90}}, {Format::kWebp, Format::kJpeg}, "{size}/{stem}.{ext}");
  CHECK(sized.file_name(cat, 1) == "200/cat.jpg");
  CHECK(sized.final_path(cat, 2) == fs::path("/out/90x90/cat.webp"));
  CHECK(sized.has_directories());
  CHECK_FALSE(sized.hash_added());
  CHECK(sized.stem_base(cat.source).empty());
  const OutputPlan dims("/out", {{200, 0}}, {Format::kJpeg}, "{dir}/{stem}-{width}x{height}.{ext}");
  CHECK(dims.names_need_dimensions());
  CHECK(dims.file_name(cat, 0, 200, 133) == "a/b/cat-200x133.jpg");
  const OutputPlan bare("/out", {{200, 0}}, {Format::kJpeg}, "{size}/thumb.{ext}");
  CHECK(bare.hash_added());
  CHECK(bare.name_template().text() == "{size}/thumb_{hash}.{ext}");
  CHECK(bare.stem_base(cat.source) == source_hash8(cat.source));
  // The key is what the coordinator claimed for the source.
  CHECK(bare.file_name({"0badf00d", cat.source}, 0) == "200/thumb_0badf00d.jpg");
}

TEST_CASE("the output plan removes exactly the temps a dead writer left for a stem") {
  TempDir dir;
  const OutputPlan plan(dir.path, {{200, 0}, {90, 90}}, {Format::kWebp});
  const long me = static_cast<long>(::gettid());
  // Temps this thread left for both outputs of "cat", as a killed writer would.
  for (std::size_t i = 0; i < plan.count(); ++i) {
    auto file = create_temp_for(plan.final_path({"cat", "/src/cat.png"}, i));
    REQUIRE(file.ok());
    REQUIRE(file->Close().ok());
  }
  // What is not that writer's, or not for that stem, or not ours at all.
  const std::vector<std::string> others = {
      output_temp_path(dir.path / "cat_200.webp", me + 1).filename().string(),  // another writer
      output_temp_path(dir.path / "dog_200.webp", me).filename().string(),      // another stem
      ".cat_200.webp.tmp.final",                                                // a user's file
      "cat_200.webp",
  };
  for (const auto& name : others) std::ofstream(dir.path / name) << "x";
  plan.RemoveTemps({"cat", "/src/cat.png"}, me);
  std::set<std::string> left;
  for (const auto& e : fs::directory_iterator(dir.path)) left.insert(e.path().filename().string());
  CHECK(left == std::set<std::string>(others.begin(), others.end()));
}

TEST_CASE("the output plan finds a dead writer's temps in the template's subdirectories") {
  TempDir dir;
  const SourceNames cat{"cat", "/src/cat.png"};
  const long me = static_cast<long>(::gettid());
  const OutputPlan sized(dir.path, {{200, 0}, {90, 90}}, {Format::kWebp, Format::kJpeg}, "{size}/{stem}.{ext}");
  std::vector<fs::path> temps;
  for (std::size_t i = 0; i < sized.count(); ++i) {
    fs::create_directories(sized.final_path(cat, i).parent_path());
    auto file = create_temp_for(sized.final_path(cat, i));
    REQUIRE(file.ok());
    REQUIRE(file->Close().ok());
    temps.push_back(file->path());
  }
  const fs::path other = output_temp_path(dir.path / "200" / "dog.webp", me);  // another source's
  std::ofstream(other) << "x";
  sized.RemoveTemps(cat, me);
  for (const auto& t : temps) CHECK_FALSE(fs::exists(t));
  CHECK(fs::exists(other));
  // With {width}/{height} the final names are not known: every temp of that
  // writer in the source's directories goes (a dead writer's are all orphans).
  const OutputPlan dims(dir.path, {{200, 0}}, {Format::kJpeg}, "{size}/{stem}-{width}x{height}.{ext}");
  auto file = create_temp_for(dir.path / "200" / "cat-200x150.jpg");
  REQUIRE(file.ok());
  REQUIRE(file->Close().ok());
  dims.RemoveTemps(cat, me);
  CHECK_FALSE(fs::exists(file->path()));
  CHECK_FALSE(fs::exists(other));
}

TEST_CASE("slot views are copies: what was freed is what is reported") {
  HeapQueueMemory memory(4, 1 << 20);
  JobQueue& q = memory.queue();
  JobInfo info{11, "stem11", "/tmp/spill-11.bin", true};
  auto slot = q.Reserve(info, 0, 1);
  REQUIRE(slot);
  FetchFacts facts;
  facts.tries = 2;
  facts.http_status = 200;
  (void)copy_whole(facts.etag, "\"e\"");
  q.Publish(*slot, 10, facts);
  const auto views = q.Snapshot();
  REQUIRE(views.size() == 1);
  CHECK(views[0].source_id == 11);
  // Another source's job in that slot by now: not freed.
  CHECK_FALSE(q.FreeIfReady(*slot, 12));
  const auto freed = q.FreeIfReady(*slot, 11);
  REQUIRE(freed);
  CHECK(freed->stem == "stem11");
  CHECK(freed->path == "/tmp/spill-11.bin");
  CHECK(freed->path_is_temp);
  CHECK(freed->fetch.tries == 2);
  CHECK(text_of(freed->fetch.etag) == "\"e\"");
  CHECK_FALSE(q.FreeIfReady(*slot, 11));  // already free
}

}  // namespace thumbmill
