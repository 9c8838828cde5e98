// Inputs given as arguments (issue 9): the directory walk
// (coordinator/directory_walk_feed.h), the chain that reads every argument
// in order (input_chain.h) and the start-up checks (inputs.h).
#include <doctest/doctest.h>

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "coordinator/directory_walk_feed.h"
#include "coordinator/input_chain.h"
#include "coordinator/inputs.h"
#include "tests/skip.h"
#include "tests/test_support.h"

using namespace thumbmill;
using thumbmill::testing::ScratchDir;
using thumbmill::testing::write_file;
namespace fs = std::filesystem;

namespace {

constexpr const char* kJpegHead = "\xFF\xD8\xFF\xE0\0\x10JFIF";

void touch(const fs::path& path, const std::string& text = "x") {
  fs::create_directories(path.parent_path());
  write_file(path, text);
}

bool readable_now(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

/// Everything `feed` hands out until it is done, asking again whenever it
/// has nothing now (its wait_fd must then be readable: nothing waits).
std::vector<SourceLine> drain(SourceFeed& feed) {
  std::vector<SourceLine> lines;
  for (int calls = 0; !feed.done() && calls < 100000; ++calls) {
    if (auto line = feed.TryNext()) {
      lines.push_back(std::move(*line));
    } else if (!feed.done()) {
      REQUIRE(feed.wait_fd() >= 0);
      REQUIRE(readable_now(feed.wait_fd()));
    }
  }
  CHECK(feed.done());
  CHECK(feed.wait_fd() == -1);
  return lines;
}

std::set<std::string> locations(const std::vector<SourceLine>& lines) {
  std::set<std::string> out;
  for (const SourceLine& l : lines) out.insert(l.location);
  return out;
}

std::vector<SourceLine> walk(const fs::path& root, std::vector<std::string> extensions = default_image_extensions(),
                             fs::path skip = {}) {
  auto feed = open_walk_feed(root, {std::move(extensions), std::move(skip)});
  REQUIRE_MESSAGE(feed.ok(), feed.status().message());
  return drain(**feed);
}

}  // namespace

TEST_CASE("a walk takes every image of the tree, recursively, as local sources numbered in walk order") {
  ScratchDir dir("walk");
  const fs::path root = dir / "photos";
  touch(root / "a.jpg");
  touch(root / "B.PNG");
  touch(root / "notes.txt");
  touch(root / "2026" / "01" / "c.webp");
  touch(root / "2026" / "01" / "d.jpeg");
  touch(root / "2026" / "raw.cr2");
  touch(root / ".hidden" / "e.gif");
  fs::create_directories(root / "empty");
  const auto lines = walk(root);
  CHECK(locations(lines) == std::set<std::string>{(root / "a.jpg").string(), (root / "B.PNG").string(),
                                                  (root / "2026/01/c.webp").string(),
                                                  (root / "2026/01/d.jpeg").string(),
                                                  (root / ".hidden/e.gif").string()});
  for (std::size_t i = 0; i < lines.size(); ++i) {
    CAPTURE(lines[i].location);
    CHECK(lines[i].status.ok());
    CHECK(lines[i].kind == SourceKind::kFile);
    CHECK(lines[i].display == lines[i].location);
    CHECK(lines[i].line_number == i + 1);
  }
}

TEST_CASE("--ext: a walk takes only the extensions asked for, in any case") {
  ScratchDir dir("walk");
  touch(dir / "a.jpg");
  touch(dir / "b.PNG");
  touch(dir / "sub" / "c.png");
  touch(dir / "sub" / "d.bmp");
  CHECK(locations(walk(dir.path(), {"png"})) ==
        std::set<std::string>{(dir / "b.PNG").string(), (dir / "sub/c.png").string()});
  CHECK(locations(walk(dir.path(), {"bmp", "jpg"})) ==
        std::set<std::string>{(dir / "a.jpg").string(), (dir / "sub/d.bmp").string()});
}

TEST_CASE("symbolic links: directories are not followed; files only when they stay inside the tree") {
  ScratchDir dir("walk");
  const fs::path root = dir / "tree";
  const fs::path outside = dir / "outside";
  touch(root / "real" / "a.jpg");
  touch(outside / "secret.jpg");
  touch(outside / "deep" / "b.jpg");
  fs::create_directory_symlink(root / "real", root / "again");          // inside: would walk a.jpg twice
  fs::create_directory_symlink(outside, root / "out");                  // outside
  fs::create_directory_symlink("..", root / "real" / "up");             // a loop
  fs::create_symlink(outside / "secret.jpg", root / "leak.jpg");        // a file outside
  fs::create_symlink("../../outside/secret.jpg", root / "real" / "rel.jpg");  // relative, outside
  fs::create_symlink("real/a.jpg", root / "alias.jpg");                 // a file inside: taken
  fs::create_symlink(root / "nowhere.jpg", root / "dangling.jpg");      // leads nowhere
  CHECK(locations(walk(root)) ==
        std::set<std::string>{(root / "real/a.jpg").string(), (root / "alias.jpg").string()});
}

TEST_CASE("a walk given through a symbolic link to its root walks the tree it names") {
  ScratchDir dir("walk");
  touch(dir / "tree" / "a.jpg");
  fs::create_symlink(dir / "tree" / "a.jpg", dir / "tree" / "alias.jpg");
  fs::create_directory_symlink(dir / "tree", dir / "link");
  CHECK(locations(walk(dir / "link")) ==
        std::set<std::string>{(dir / "link/a.jpg").string(), (dir / "link/alias.jpg").string()});
}

TEST_CASE("a walk never goes into the skip directory (--out inside the tree)") {
  ScratchDir dir("walk");
  touch(dir / "a.jpg");
  touch(dir / "thumbnails" / "a_200.jpg");
  touch(dir / "thumbnails" / "deeper" / "x.jpg");
  CHECK(locations(walk(dir.path(), default_image_extensions(), dir / "thumbnails")) ==
        std::set<std::string>{(dir / "a.jpg").string()});
  // Another spelling of the same directory is the same directory.
  CHECK(locations(walk(dir.path(), default_image_extensions(), dir / "." / "thumbnails" / "")) ==
        std::set<std::string>{(dir / "a.jpg").string()});
}

TEST_CASE("a walk is lazy: a subdirectory is read only when the walk reaches it") {
  ScratchDir dir("walk");
  touch(dir / "x" / "a.jpg");
  touch(dir / "y" / "b.jpg");
  auto feed = open_walk_feed(dir.path(), {default_image_extensions(), {}});
  REQUIRE(feed.ok());
  std::optional<SourceLine> first;
  for (int i = 0; i < 100 && !first; ++i) first = (*feed)->TryNext();
  REQUIRE(first);
  // The other directory goes away before the walk gets there: an eager walk
  // would still hand out its image.
  const fs::path other = first->location == (dir / "x" / "a.jpg").string() ? dir / "y" : dir / "x";
  fs::remove_all(other);
  CHECK(drain(**feed).empty());
  CHECK((*feed)->status().ok());
}

TEST_CASE("a walk bounds the work of one TryNext and never leaves the loop waiting") {
  ScratchDir dir("walk");
  for (int i = 0; i < 3 * kWalkStepsPerTry; ++i) touch(dir / ("n" + std::to_string(i) + ".txt"));
  touch(dir / "z" / "last.jpg");
  auto feed = open_walk_feed(dir.path(), {default_image_extensions(), {}});
  REQUIRE(feed.ok());
  SourceFeed& f = **feed;
  int empty_calls = 0;
  std::vector<SourceLine> got;
  while (!f.done()) {
    if (auto line = f.TryNext()) {
      got.push_back(std::move(*line));
      continue;
    }
    if (f.done()) break;
    ++empty_calls;
    REQUIRE(readable_now(f.wait_fd()));  // the loop's poll returns at once
  }
  CHECK(got.size() == 1);
  CHECK(empty_calls >= 2);  // 768 entries before or after the image: at least two bounded calls
}

TEST_CASE("an unreadable subdirectory is one failed source, and the walk goes on beside it") {
  if (::geteuid() == 0) THUMBMILL_SKIP("root reads every directory");
  ScratchDir dir("walk");
  touch(dir / "ok" / "a.jpg");
  touch(dir / "locked" / "b.jpg");
  fs::permissions(dir / "locked", fs::perms::none);
  const auto lines = walk(dir.path());
  fs::permissions(dir / "locked", fs::perms::owner_all);
  REQUIRE(lines.size() == 2);
  int failed = 0;
  for (const SourceLine& l : lines) {
    if (l.status.ok()) {
      CHECK(l.location == (dir / "ok" / "a.jpg").string());
      continue;
    }
    ++failed;
    CHECK(l.status.code() == Code::kIoError);
    CHECK(l.status.message().find((dir / "locked").string()) != std::string::npos);
    CHECK(l.status.message().find("Permission denied") != std::string::npos);
  }
  CHECK(failed == 1);
}

TEST_CASE("a walk of something that is not a directory fails to open, naming it") {
  ScratchDir dir("walk");
  auto missing = open_walk_feed(dir / "missing", {default_image_extensions(), {}});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kIoError);
  CHECK(missing.status().message().find((dir / "missing").string()) != std::string::npos);
}

// ---------------------------------------------------------------------------
// The chain of arguments.

TEST_CASE("the arguments are read in order; lists keep their line numbers, other sources are counted") {
  ScratchDir dir("chain");
  touch(dir / "d1" / "a.jpg");
  touch(dir / "d1" / "sub" / "b.jpg");
  touch(dir / "one.png");
  touch(dir / "list.txt", "# comment\nhttp://127.0.0.1/x.jpg\n\nhttp://127.0.0.1/y.jpg\n");
  touch(dir / "d2" / "c.jpg");
  std::vector<Input> inputs = {{InputKind::kDirectory, (dir / "d1").string()},
                               {InputKind::kImage, (dir / "one.png").string()},
                               {InputKind::kList, (dir / "list.txt").string()},
                               {InputKind::kDirectory, (dir / "d2").string()}};
  std::vector<std::string> opened;
  auto chain = chain_inputs(inputs, [&](const Input& in) -> Result<std::unique_ptr<SourceFeed>> {
    opened.push_back(in.arg);
    if (in.kind == InputKind::kDirectory) return open_walk_feed(in.arg, {default_image_extensions(), {}});
    return open_list_feed(in.arg);
  });
  CHECK(opened.empty());  // nothing opened before it is needed
  const auto lines = drain(*chain);
  REQUIRE(lines.size() == 6);
  CHECK(std::set<std::string>{lines[0].location, lines[1].location} ==
        std::set<std::string>{(dir / "d1/a.jpg").string(), (dir / "d1/sub/b.jpg").string()});
  CHECK(lines[2].location == (dir / "one.png").string());
  CHECK(lines[2].kind == SourceKind::kFile);
  CHECK(lines[3].location == "http://127.0.0.1/x.jpg");
  CHECK(lines[4].location == "http://127.0.0.1/y.jpg");
  CHECK(lines[5].location == (dir / "d2/c.jpg").string());
  CHECK(lines[0].line_number == 1);
  CHECK(lines[1].line_number == 2);
  CHECK(lines[2].line_number == 3);
  CHECK(lines[3].line_number == 2);  // its line in list.txt
  CHECK(lines[4].line_number == 4);
  CHECK(lines[5].line_number == 4);
  CHECK(opened == std::vector<std::string>{(dir / "d1").string(), (dir / "list.txt").string(),
                                           (dir / "d2").string()});
  CHECK(chain->status().ok());
}

TEST_CASE("an input that cannot be opened when reached is one failed source; the chain goes on") {
  ScratchDir dir("chain");
  touch(dir / "b.txt", "http://127.0.0.1/b.jpg\n");
  auto chain = chain_inputs({{InputKind::kList, (dir / "gone.txt").string()}, {InputKind::kList, (dir / "b.txt").string()}},
                            [](const Input& in) { return open_list_feed(in.arg); });
  const auto lines = drain(*chain);
  REQUIRE(lines.size() == 2);
  CHECK_FALSE(lines[0].status.ok());
  CHECK(lines[0].status.message().find("gone.txt") != std::string::npos);
  CHECK(lines[1].location == "http://127.0.0.1/b.jpg");
  CHECK(chain->status().ok());
}

// ---------------------------------------------------------------------------
// The start-up checks.

namespace {

Options with_inputs(std::vector<std::string> inputs) {
  Options o;
  o.inputs = std::move(inputs);
  return o;
}

}  // namespace

TEST_CASE("classify_inputs: directories, image files, lists, standard input and S3 prefixes") {
  ScratchDir dir("classify");
  touch(dir / "photos" / "a.jpg");
  touch(dir / "IMG_1.JPG", kJpegHead);
  touch(dir / "urls.txt", "http://127.0.0.1/a.jpg\n");
  touch(dir / "urls", "http://127.0.0.1/a.jpg\n");
  touch(dir / "empty.txt", "");
  REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
  auto inputs = classify_inputs(with_inputs({(dir / "photos").string(), (dir / "IMG_1.JPG").string(),
                                             (dir / "urls.txt").string(), (dir / "urls").string(), "-",
                                             (dir / "empty.txt").string(), (dir / "fifo").string(),
                                             "s3://bucket/prefix/"}));
  REQUIRE_MESSAGE(inputs.ok(), inputs.status().message());
  std::vector<InputKind> kinds;
  for (const Input& in : *inputs) kinds.push_back(in.kind);
  CHECK(kinds == std::vector<InputKind>{InputKind::kDirectory, InputKind::kImage, InputKind::kList, InputKind::kList,
                                        InputKind::kStdin, InputKind::kList, InputKind::kList, InputKind::kS3Prefix});
  // --ext adds to what an argument may be: a .bmp named is an image then.
  touch(dir / "scan.bmp", "BM");
  Options bmp = with_inputs({(dir / "scan.bmp").string()});
  CHECK(classify_inputs(bmp)->front().kind == InputKind::kList);
  bmp.extensions = {"bmp"};
  CHECK(classify_inputs(bmp)->front().kind == InputKind::kImage);
}

TEST_CASE("a URL where a LIST was expected is a usage error with a hint") {
  for (const std::string url : {"https://x/a.jpg", "http://127.0.0.1/list.txt", "HTTPS://X/a.jpg"}) {
    CAPTURE(url);
    auto inputs = classify_inputs(with_inputs({"-", url}));
    REQUIRE_FALSE(inputs.ok());
    CHECK(inputs.status().code() == Code::kInvalidArgument);
    CHECK(inputs.status().message() == "LIST " + url + " is a URL, not a list file; give URLs in a list: echo '" +
                                           url + "' | coordinator -");
  }
}

TEST_CASE("a LIST that is an image by its first bytes is a usage error with a hint") {
  ScratchDir dir("classify");
  const std::vector<std::pair<std::string, std::string>> images = {
      {"JPEG", kJpegHead},
      {"PNG", std::string("\x89PNG\r\n\x1A\n\0\0\0\rIHDR", 16)},
      {"GIF", "GIF89a\x01\0\x01\0"},
      {"WebP", std::string("RIFF\x24\0\0\0WEBPVP8 ", 16)}};
  for (const auto& [format, head] : images) {
    CAPTURE(format);
    const fs::path path = dir / ("photo-" + format);  // no extension to say so
    touch(path, head);
    CHECK(image_signature(head) == format);
    auto inputs = classify_inputs(with_inputs({path.string()}));
    REQUIRE_FALSE(inputs.ok());
    CHECK(inputs.status().code() == Code::kInvalidArgument);
    const std::string message = inputs.status().message();
    CAPTURE(message);
    CHECK(message.starts_with("LIST " + path.string() + " is a " + format + " image, not a list file"));
    CHECK(message.find("echo '" + path.string() + "' | coordinator -") != std::string::npos);
  }
  CHECK(image_signature("http://127.0.0.1/a.jpg\n").empty());
  CHECK(image_signature("RIFF\x24\0\0\0WAVE").empty());
  CHECK(image_signature("").empty());
}

TEST_CASE("classify_inputs: what does not exist, one S3 object, and --no-local") {
  ScratchDir dir("classify");
  auto missing = classify_inputs(with_inputs({(dir / "missing.txt").string()}));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kIoError);
  CHECK(missing.status().message().find("missing.txt: No such file or directory") != std::string::npos);

  auto object = classify_inputs(with_inputs({"s3://bucket/a.jpg"}));
  REQUIRE_FALSE(object.ok());
  CHECK(object.status().code() == Code::kInvalidArgument);
  CHECK(object.status().message().find("names one object, not a prefix") != std::string::npos);

  touch(dir / "photos" / "a.jpg");
  Options no_local = with_inputs({(dir / "photos").string()});
  no_local.no_local = true;
  auto refused = classify_inputs(no_local);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == Code::kInvalidArgument);
  CHECK(refused.status().message().find("--no-local") != std::string::npos);
  no_local.inputs = {(dir / "photos" / "a.jpg").string()};
  CHECK(classify_inputs(no_local).status().code() == Code::kInvalidArgument);
  no_local.inputs = {"-"};
  CHECK(classify_inputs(no_local).ok());
}
