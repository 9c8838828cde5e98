// End to end, inputs given as arguments (issue 9): the real coordinator (both
// builds) on `DIR FILE.jpg` makes the thumbnails of every image of the tree
// and of the file, reports each, never walks into --out or out of the tree
// through a link, takes only --ext extensions; an image or a URL given as
// LIST is refused with exit 2 and a hint before anything is written.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "tests/test_support.h"

using namespace thumbmill::testing;
namespace fs = std::filesystem;

namespace {

fs::path coordinator() { return coordinator_exe(); }
fs::path coordinator_threaded() { return coordinator_threaded_exe(); }

/// photos/a/..., photos/b/c/... (a JPEG and a PNG), extra/..., a text file
/// and a link out of the tree.
struct Tree {
  ScratchDir work{"inputs-e2e"};
  fs::path photos = work / "photos";
  fs::path extra = work / "extra";
  fs::path outside = work / "outside";
  fs::path out = work / "out";
  fs::path temp = work / "tmp";
  fs::path report = work / "report.jsonl";

  Tree() {
    fs::create_directories(photos / "a");
    fs::create_directories(photos / "b" / "c");
    fs::create_directories(temp);
    make_images(photos / "a", 2, {"--megapixels", "0.2", "--prefix", "cat"});
    make_images(photos / "b" / "c", 1, {"--megapixels", "0.2", "--format", "png", "--prefix", "dog"});
    make_images(extra, 1, {"--megapixels", "0.2", "--prefix", "extra"});
    make_images(outside, 1, {"--megapixels", "0.2", "--prefix", "secret"});
    write_file(photos / "notes.txt", "not an image\n");
    fs::create_symlink(outside / "secret0000.jpg", photos / "leak.jpg");
    fs::create_directory_symlink(outside, photos / "outside");
  }

  CommandResult Go(std::vector<std::string> args, const fs::path& binary = coordinator()) const {
    std::vector<std::string> argv = {binary.string(), "--out", out.string(), "--no-progress", "--sizes", "32,64"};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandOptions options;
    options.env["TMPDIR"] = temp.string();
    options.timeout_s = 120;
    CommandResult r = run_command(argv, options);
    INFO("stderr: " << r.err);
    CHECK_FALSE(r.timed_out);
    return r;
  }

  std::set<std::string> reported() const {
    std::set<std::string> urls;
    for (const auto& entry : read_report(report)) {
      CHECK(entry["status"] == "ok");
      CHECK(entry["outputs"].size() == 2);
      urls.insert(entry["url"].get<std::string>());
    }
    return urls;
  }

  std::set<std::string> thumbnails() const {
    std::set<std::string> names;
    if (!fs::exists(out)) return names;
    for (const auto& e : fs::directory_iterator(out))
      if (e.path().filename() != ".thumbmill") names.insert(e.path().filename().string());
    return names;
  }
};

}  // namespace

TEST_CASE("DIR FILE.jpg: every image of the tree and the file, in both builds") {
  for (const fs::path& binary : {coordinator(), coordinator_threaded()}) {
    CAPTURE(binary);
    Tree tree;
    const CommandResult r =
        tree.Go({"--report", tree.report.string(), tree.photos.string() + "/", (tree.extra / "extra0000.jpg").string()},
                binary);
    CHECK(r.exit_code == 0);
    CHECK(tree.reported() == std::set<std::string>{(tree.photos / "a/cat0000.jpg").string(),
                                                   (tree.photos / "a/cat0001.jpg").string(),
                                                   (tree.photos / "b/c/dog0000.png").string(),
                                                   (tree.extra / "extra0000.jpg").string()});
    CHECK(tree.thumbnails() == std::set<std::string>{"cat0000_32.jpg", "cat0000_64.jpg", "cat0001_32.jpg",
                                                     "cat0001_64.jpg", "dog0000_32.jpg", "dog0000_64.jpg",
                                                     "extra0000_32.jpg", "extra0000_64.jpg"});
    CHECK(r.err.find("1 symbolic link under " + tree.photos.string() + "/ skipped") != std::string::npos);
    // The image file given last is the fourth source: the walk came first.
    for (const auto& entry : read_report(tree.report))
      if (entry["url"] == (tree.extra / "extra0000.jpg").string()) CHECK(entry["line"] == 4);
  }
}

TEST_CASE("--ext takes only those extensions from a directory; a LIST and a directory mix in one run") {
  Tree tree;
  write_file(tree.work / "list.txt", (tree.extra / "extra0000.jpg").string() + "\n");
  const CommandResult r =
      tree.Go({"--ext", "PNG", "--report", tree.report.string(), tree.photos.string(), (tree.work / "list.txt").string()});
  CHECK(r.exit_code == 0);
  CHECK(tree.reported() == std::set<std::string>{(tree.photos / "b/c/dog0000.png").string(),
                                                 (tree.extra / "extra0000.jpg").string()});
}

TEST_CASE("--out inside a walked directory is never walked: a second run makes no thumbnails of thumbnails") {
  Tree tree;
  const fs::path inside = tree.photos / "thumbs";
  CHECK(tree.Go({"--out", inside.string(), tree.photos.string()}).exit_code == 0);
  const CommandResult again = tree.Go({"--out", inside.string(), "--report", tree.report.string(), tree.photos.string()});
  CHECK(again.exit_code == 0);
  CHECK(read_report(tree.report).size() == 3);
  std::vector<std::string> made;
  for (const auto& e : fs::directory_iterator(inside))
    if (e.path().filename() != ".thumbmill") made.push_back(e.path().filename().string());
  CHECK(made.size() == 6);
}

TEST_CASE("an image or a URL where a LIST was expected: exit 2 with a hint, nothing written") {
  Tree tree;
  const fs::path image = tree.work / "IMG_0001";  // a JPEG without its extension
  fs::copy_file(tree.extra / "extra0000.jpg", image);
  struct Case {
    std::string arg;
    std::string hint;
  };
  const std::vector<Case> cases = {
      {image.string(), "thumbmill: LIST " + image.string() + " is a JPEG image, not a list file; an image is "
                       "taken by its extension (.jpg, .png, ...): rename it, or give it in a list: echo '" +
                       image.string() + "' | coordinator -"},
      {"http://127.0.0.1/a.jpg",
       "thumbmill: LIST http://127.0.0.1/a.jpg is a URL, not a list file; give URLs in a list: echo 'http://127.0.0.1/a.jpg' | "
       "coordinator -"}};
  for (const Case& c : cases) {
    CAPTURE(c.arg);
    const CommandResult r = tree.Go({"--report", tree.report.string(), tree.photos.string(), c.arg});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(c.hint) != std::string::npos);
    CHECK_FALSE(fs::exists(tree.out));
    CHECK_FALSE(fs::exists(tree.report));
  }
}
