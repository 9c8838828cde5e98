// SourceFeed (coordinator/source_feed.h): the list read without blocking.
// A pipe the test holds stands for a list that arrives slowly.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/source_feed.h"
#include "tests/test_support.h"

using namespace thumbmill;

namespace {

/// A FIFO in a scratch directory, its write end held by the test.
struct ListPipe {
  testing::ScratchDir dir{"feed"};
  std::string path = (dir / "list").string();
  int writer = -1;
  ListPipe() {
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    writer = ::open(path.c_str(), O_RDWR | O_CLOEXEC);  // never blocks, keeps the pipe open
    REQUIRE(writer >= 0);
  }
  ~ListPipe() { Close(); }
  void Write(const std::string& text) const {
    REQUIRE(::write(writer, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  }
  void Close() {
    if (writer >= 0) ::close(writer);
    writer = -1;
  }
};

/// The process's peak resident memory so far (VmHWM), in bytes.
std::uint64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  std::uint64_t kib = 0;
  while (status >> key) {
    if (key == "VmHWM:") {
      status >> kib;
      return kib * 1024;
    }
  }
  return 0;
}

bool readable_now(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

}  // namespace

TEST_CASE("a line is handed out as soon as it is complete, and an idle list never blocks") {
  ListPipe list;
  auto feed = open_list_feed(list.path);
  REQUIRE(feed.ok());
  SourceFeed& f = **feed;
  CHECK_FALSE(f.TryNext());  // nothing yet: returns at once
  CHECK_FALSE(f.done());
  REQUIRE(f.wait_fd() >= 0);
  CHECK_FALSE(readable_now(f.wait_fd()));

  list.Write("# a comment\nhttp://127.0.0.1/a.jpg\nhttp://127.0.0.1/b");
  CHECK(readable_now(f.wait_fd()));
  auto a = f.TryNext();
  REQUIRE(a);
  CHECK(a->location == "http://127.0.0.1/a.jpg");
  CHECK(a->line_number == 2);
  CHECK_FALSE(f.TryNext());  // half a line waits for the rest
  CHECK_FALSE(f.done());

  list.Write(".jpg\n/local/c.png");  // the last line has no newline
  auto b = f.TryNext();
  REQUIRE(b);
  CHECK(b->location == "http://127.0.0.1/b.jpg");
  CHECK(b->line_number == 3);
  CHECK_FALSE(f.TryNext());

  list.Close();
  auto c = f.TryNext();
  REQUIRE(c);
  CHECK(c->kind == SourceKind::kFile);
  CHECK(c->location == "/local/c.png");
  CHECK_FALSE(f.TryNext());
  CHECK(f.done());
  CHECK(f.status().ok());
  CHECK(f.wait_fd() == -1);
}

TEST_CASE("a list file is read whole, in order, with the parser's line numbers") {
  testing::ScratchDir dir("feed-file");
  std::string text = "\xEF\xBB\xBFhttp://127.0.0.1/0.jpg\r\n";
  for (int i = 1; i < 20000; ++i) text += "http://127.0.0.1/" + std::to_string(i) + ".jpg\n";
  testing::write_file(dir / "list.txt", text);
  auto feed = open_list_feed((dir / "list.txt").string());
  REQUIRE(feed.ok());
  int n = 0;
  while (auto line = (*feed)->TryNext()) {
    INFO(line->text);
    REQUIRE(line->status.ok());
    CHECK(line->location == "http://127.0.0.1/" + std::to_string(n) + ".jpg");
    CHECK(line->line_number == static_cast<std::uint64_t>(n + 1));
    ++n;
  }
  CHECK(n == 20000);
  CHECK((*feed)->done());
}

TEST_CASE("a list that cannot be opened names the path and the reason") {
  testing::ScratchDir dir("feed-missing");
  auto missing = open_list_feed((dir / "nope.txt").string());
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().ToString().find("nope.txt") != std::string::npos);
  auto directory = open_list_feed(dir.path().string());
  REQUIRE_FALSE(directory.ok());
  CHECK(directory.status().ToString().find("directory") != std::string::npos);
}

TEST_CASE("standard input (\"-\") is read without blocking and gets its flags back") {
  int p[2];
  REQUIRE(::pipe(p) == 0);
  const int saved = ::dup(STDIN_FILENO);
  REQUIRE(saved >= 0);
  REQUIRE(::dup2(p[0], STDIN_FILENO) == STDIN_FILENO);
  ::close(p[0]);
  const int flags_before = ::fcntl(STDIN_FILENO, F_GETFL);
  {
    auto feed = open_list_feed("-");
    REQUIRE(feed.ok());
    CHECK_FALSE((*feed)->TryNext());  // an idle pipe: returns at once
    REQUIRE(::write(p[1], "a.png\n", 6) == 6);
    auto line = (*feed)->TryNext();
    REQUIRE(line);
    CHECK(line->location == "a.png");
    ::close(p[1]);
    CHECK_FALSE((*feed)->TryNext());
    CHECK((*feed)->done());
  }
  CHECK(::fcntl(STDIN_FILENO, F_GETFL) == flags_before);
  ::dup2(saved, STDIN_FILENO);
  ::close(saved);
}

TEST_CASE("a line with no newline for 300 MB costs the feed no more than kMaxLineBytes") {
  ListPipe list;
  auto feed = open_list_feed(list.path);
  REQUIRE(feed.ok());
  SourceFeed& f = **feed;
  const std::uint64_t peak_before = peak_rss_bytes();
  REQUIRE(peak_before > 0);
  std::thread writer([&list] {
    const std::string chunk(1 << 20, 'a');
    for (int i = 0; i < 300; ++i) list.Write(chunk);
    list.Write("\nhttp://127.0.0.1/z.jpg\n");
    list.Close();
  });
  std::vector<SourceLine> lines;
  while (!f.done()) {
    if (auto line = f.TryNext()) {
      lines.push_back(std::move(*line));
      continue;
    }
    if (f.wait_fd() < 0) break;
    pollfd p{f.wait_fd(), POLLIN, 0};
    ::poll(&p, 1, 1000);
  }
  writer.join();
  REQUIRE(lines.size() == 2);
  CHECK_FALSE(lines[0].status.ok());
  CHECK(lines[0].line_number == 1);
  CHECK(lines[1].location == "http://127.0.0.1/z.jpg");
  CHECK(lines[1].line_number == 2);
  CHECK(f.status().ok());
  // The line was 300 MB; the feed held at most kMaxLineBytes of it (and the
  // test's own 1 MB chunk): allow a generous 32 MB for everything else.
  CHECK(peak_rss_bytes() - peak_before < (std::uint64_t{32} << 20));
}
