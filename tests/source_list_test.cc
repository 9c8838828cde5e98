// Tests for shared/source_list.h: classifying lines, reading a list as a
// stream, and opening list files.
#include "shared/source_list.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <streambuf>
#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace thumbmill {
namespace {

SourceLine accepted(std::string_view text, std::uint64_t line = 1) {
  SourceLine parsed = parse_source_line(text, line);
  REQUIRE_MESSAGE(parsed.status.ok(), parsed.status.message());
  return parsed;
}

std::string rejected(std::string_view text, std::uint64_t line = 1) {
  SourceLine parsed = parse_source_line(text, line);
  REQUIRE_FALSE(parsed.status.ok());
  CHECK(parsed.status.code() == Code::kInvalidArgument);
  CHECK(parsed.line_number == line);
  CHECK(parsed.status.message().starts_with("line " + std::to_string(line) + ": "));
  return parsed.status.message();
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

/// Every entry of `text` read as a list.
std::vector<SourceLine> read_all(const std::string& text) {
  std::istringstream in(text);
  SourceList list(in);
  std::vector<SourceLine> lines;
  while (std::optional<SourceLine> line = list.Next()) lines.push_back(std::move(*line));
  CHECK(list.read_status().ok());
  return lines;
}

/// A stream of `count` lines "https://example.com/images/<n>.jpg", made one
/// line at a time as the reader asks, so a huge list costs no memory and the
/// test can tell how far the reader went.
class GeneratedLines : public std::streambuf {
 public:
  explicit GeneratedLines(std::uint64_t count) : count_(count) {}
  std::uint64_t lines_made() const { return next_ - 1; }

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    if (next_ > count_) return traits_type::eof();
    line_ = "https://example.com/images/" + std::to_string(next_++) + ".jpg\n";
    setg(line_.data(), line_.data(), line_.data() + line_.size());
    return traits_type::to_int_type(line_[0]);
  }

 private:
  std::uint64_t count_;
  std::uint64_t next_ = 1;
  std::string line_;
};

/// A streambuf that fails (throws from underflow, which istream turns into
/// badbit) after handing out `good` bytes.
class FailingAfter : public std::streambuf {
 public:
  explicit FailingAfter(std::string good) : good_(std::move(good)) {
    setg(good_.data(), good_.data(), good_.data() + good_.size());
  }

 protected:
  int_type underflow() override { throw std::ios_base::failure("disk on fire"); }

 private:
  std::string good_;
};

/// A file under the system's temporary directory, removed at scope exit.
struct TempFile {
  explicit TempFile(const std::string& contents) {
    path = std::filesystem::temp_directory_path() /
           ("source_list_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    std::ofstream(path, std::ios::binary) << contents;
  }
  ~TempFile() { std::filesystem::remove(path); }
  std::filesystem::path path;
  static inline int counter = 0;
};

}  // namespace

// ---------------------------------------------------------------------------
// parse_source_line: accepted forms.

TEST_CASE("http and https URLs are normalised by libcurl, the parser that fetches them") {
  // Was "kept as written": now the location is libcurl's normalised URL, so
  // what is checked is what is fetched, and the text shown has no password.
  struct Case {
    std::string url, location, text;  // text: what is displayed
  };
  const Case cases[] = {
      {"http://example.com/cat.jpg", "http://example.com/cat.jpg", "http://example.com/cat.jpg"},
      {"https://example.com/cat.jpg", "https://example.com/cat.jpg", "https://example.com/cat.jpg"},
      {"HTTPS://Example.COM/a.png", "https://Example.COM/a.png", "https://Example.COM/a.png"},
      {"Http://example.com", "http://example.com/", "http://example.com/"},
      {"https://example.com:8443/a/b.jpg?size=large&x=1#frag", "https://example.com:8443/a/b.jpg?size=large&x=1#frag",
       "https://example.com:8443/a/b.jpg?size=large&x=1#frag"},
      {"https://user:secret@example.com/a.jpg", "https://user:secret@example.com/a.jpg", "https://example.com/a.jpg"},
      {"http://127.0.0.1:8080/a.jpg", "http://127.0.0.1:8080/a.jpg", "http://127.0.0.1:8080/a.jpg"},
      {"http://[::1]:8080/a.jpg", "http://[::1]:8080/a.jpg", "http://[::1]:8080/a.jpg"},
      {"http://[2001:db8::1]/x", "http://[2001:db8::1]/x", "http://[2001:db8::1]/x"},
      {"https://example.com/caf%C3%A9.jpg", "https://example.com/caf%C3%A9.jpg", "https://example.com/caf%C3%A9.jpg"},
      {"https://example.com/café.jpg", "https://example.com/café.jpg", "https://example.com/café.jpg"},
      {"https://example.com:/a.jpg", "https://example.com/a.jpg", "https://example.com/a.jpg"},
      {"https://h?q=1", "https://h/?q=1", "https://h/?q=1"},
      {"https://h#f", "https://h/#f", "https://h/#f"},
      // Numeric hosts as libcurl connects to them (the address policy sees
      // the same address in the downloader).
      {"http://2852039166/", "http://169.254.169.254/", "http://169.254.169.254/"},
      {"http://0xa9fea9fe/x", "http://169.254.169.254/x", "http://169.254.169.254/x"},
      {"http://h/a/../../etc/passwd", "http://h/etc/passwd", "http://h/etc/passwd"},
      // Was rejected as "no host"; libcurl (like browsers) reads a host here.
      {"http:///path/a.jpg", "http://path/a.jpg", "http://path/a.jpg"},
      {"https:/example.com/a.jpg", "https://example.com/a.jpg", "https://example.com/a.jpg"},
      // The userinfo libcurl sees is "a.com\": the host is b.com.
      {"http://a.com\\@b.com/x", "http://a.com\\@b.com/x", "http://b.com/x"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.url);
    SourceLine line = accepted(c.url, 3);
    CHECK(line.kind == SourceKind::kHttp);
    CHECK(line.location == c.location);
    CHECK(line.text == c.url);
    CHECK(line.display == c.text);
    CHECK(line.line_number == 3);
  }
}

TEST_CASE("file URLs become decoded local paths") {
  struct Case {
    std::string url;
    std::string path;
  };
  const Case cases[] = {
      {"file:///tmp/cat.jpg", "/tmp/cat.jpg"},
      {"file://localhost/tmp/cat.jpg", "/tmp/cat.jpg"},
      {"FILE://LocalHost/tmp/cat.jpg", "/tmp/cat.jpg"},
      {"file:/tmp/cat.jpg", "/tmp/cat.jpg"},
      {"file:///tmp/a%20b%2Bc.jpg", "/tmp/a b+c.jpg"},
      {"file:///tmp/caf%C3%A9.jpg", "/tmp/caf\xC3\xA9.jpg"},
      {"file:///tmp/x.jpg?query#fragment", "/tmp/x.jpg"},
      {"file:///tmp/100%25.jpg", "/tmp/100%.jpg"},
      {"file:///", "/"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.url);
    SourceLine line = accepted(c.url);
    CHECK(line.kind == SourceKind::kFile);
    CHECK(line.location == c.path);
    CHECK(line.text == c.url);
    CHECK(line.display.starts_with("file://"));  // libcurl's normalised form
  }
  CHECK(accepted("FILE://LocalHost/tmp/cat.jpg").display == "file:///tmp/cat.jpg");
  // Was rejected as a malformed %-escape: libcurl keeps it as written.
  CHECK(accepted("file:///tmp/a%zz.jpg").location == "/tmp/a%zz.jpg");
}

TEST_CASE("local paths are taken literally, spaces and all") {
  for (const std::string path : {"cat.jpg", "photos/2021/cat.jpg", "/abs/path/cat.jpg", "./a:b.jpg", "/x/y z.jpg",
                           "dir with spaces/a b.png", "C:\\photos\\cat.jpg", "c:/photos/cat.jpg", "a%20b.jpg",
                           "../up/cat.jpg", "~/cat.jpg", "photos/a:b.jpg", "-dash.jpg", "caf\xC3\xA9.jpg"}) {
    CAPTURE(path);
    SourceLine line = accepted(path);
    CHECK(line.kind == SourceKind::kFile);
    CHECK(line.location == path);
  }
}

TEST_CASE("parse_source_line trims surrounding whitespace") {
  SourceLine line = accepted("  \thttps://example.com/a.jpg \r");
  CHECK(line.text == "https://example.com/a.jpg");
  CHECK(line.location == "https://example.com/a.jpg");
  CHECK(accepted(" /x/y z.jpg\t").location == "/x/y z.jpg");
}

// ---------------------------------------------------------------------------
// parse_source_line: malformed lines.

TEST_CASE("other schemes are unsupported, with the documented message") {
  CHECK(rejected("ftp://example.com/cat.jpg", 7) ==
        "line 7: unsupported scheme 'ftp' (only http, https, s3, file and local paths)");
  for (const std::string text : {"gopher://example.com/1", "data:image/png;base64,iVBORw0KGgo=", "javascript:alert(1)",
                           "mailto:someone@example.com", "ssh://host/x", "httpx://host/a.jpg",
                           "jar:file:///x!/y"}) {
    CAPTURE(text);
    const std::string message = rejected(text, 12);
    const std::string scheme(std::string_view(text).substr(0, std::string_view(text).find(':')));
    CHECK(message == "line 12: unsupported scheme '" + scheme + "' (only http, https, s3, file and local paths)");
  }
}

TEST_CASE("s3:// lines name one object, key verbatim") {
  const SourceLine line = parse_source_line("  s3://photos/2026/a b+c=&d é.jpg  ", 3);
  REQUIRE(line.status.ok());
  CHECK(line.kind == SourceKind::kS3);
  CHECK(line.location == "s3://photos/2026/a b+c=&d é.jpg");
  CHECK(line.display == line.location);
  CHECK(rejected("s3://photos/2026/", 4).find("prefix") != std::string::npos);
  CHECK(rejected("s3://photos", 4).find("prefix") != std::string::npos);
  CHECK_FALSE(parse_source_line("s3://UPPER/x.jpg", 5).status.ok());
}

TEST_CASE("URLs without a host, or with a bad port") {
  // http:///path and https:/host are hosts to libcurl now (see above).
  for (const std::string text : {"http://", "https://", "http://user@/a.jpg", "http://:80/a.jpg", "https://?q"}) {
    CAPTURE(text);
    CHECK(contains(rejected(text, 2), "no host"));
  }
  // Messages are libcurl's now (were "malformed host or port").
  CHECK(rejected("http://host:abc/a.jpg", 2) ==
        "line 2: malformed URL: Port number was not a decimal number between 0 and 65535");
  for (const std::string text : {"http://host:80x/", "http://[::1]x/", "http://[::1/x", "https:example.com/a.jpg",
                                 "http://host:99999/"}) {
    CAPTURE(text);
    CHECK(contains(rejected(text, 2), "malformed URL: "));
  }
}

TEST_CASE("spaces inside URLs are errors, unlike in paths") {
  CHECK(contains(rejected("https://example.com/a b.jpg", 4), "space"));
  CHECK(contains(rejected("https://exa mple.com/a.jpg", 4), "space"));
  CHECK(contains(rejected("file:///tmp/a b.jpg", 4), "space"));
}

TEST_CASE("control characters are errors in URLs and paths alike") {
  CHECK(rejected(std::string("https://example.com/a\x01.jpg"), 5) ==
        "line 5: control character 0x01 at column 22");
  CHECK(contains(rejected("photos/a\tb.jpg", 5), "control character 0x09"));
  CHECK(contains(rejected(std::string("photos/a\0b.jpg", 14), 5), "control character 0x00"));
  CHECK(contains(rejected("photos/a\x7f.jpg", 5), "control character 0x7f"));
  CHECK(contains(rejected("https://example.com/a\nb", 5), "control character 0x0a"));
}

TEST_CASE("file URLs naming another host, without a path, or badly escaped") {
  // libcurl's reasons now; it does not name the host (was "'example.com'").
  for (const std::string text : {"file://example.com/tmp/a.jpg", "file://server/share/a.jpg", "file://",
                                 "file://localhost", "file:"}) {
    CAPTURE(text);
    CHECK(contains(rejected(text, 9), "malformed file URL (only file:///path and file://localhost/path are local)"));
  }
  CHECK(contains(rejected("file:relative/a.jpg", 9), "no absolute path"));
  CHECK(contains(rejected("file:///tmp/a%00b.jpg", 9), "control character"));
  CHECK(contains(rejected("file:///tmp/a%0Ab.jpg", 9), "control character"));
}

TEST_CASE("a rejected line is shown without its credentials") {
  for (const std::string text : {"http://bob:hunter2@/x", "ftp://bob:hunter2@host/x", "http://bob:hunter2@host:abc/",
                                 "file://bob:hunter2@server/x.jpg", "https://bob:hunter2@exa mple.com/"}) {
    CAPTURE(text);
    const SourceLine line = parse_source_line(text, 1);
    REQUIRE_FALSE(line.status.ok());
    CHECK(line.display.find("hunter2") == std::string::npos);
    CHECK(line.display.find("bob") == std::string::npos);
    CHECK(line.status.message().find("hunter2") == std::string::npos);
  }
}

TEST_CASE("a source longer than kMaxSourceLength is an error; exactly that long is fine") {
  const std::string prefix = "https://example.com/";
  const std::string longest = prefix + std::string(kMaxSourceLength - prefix.size(), 'a');
  CHECK(accepted(longest).location == longest);
  const std::string message = rejected(longest + "a", 8);
  CHECK(contains(message, std::to_string(kMaxSourceLength + 1)));
  CHECK(contains(message, std::to_string(kMaxSourceLength)));
  // Local paths too, and the limit applies after trimming.
  rejected(std::string(kMaxSourceLength + 1, 'p'), 8);
  CHECK(accepted("   " + longest + "   ").location == longest);
}

// ---------------------------------------------------------------------------
// SourceList: reading a stream.

TEST_CASE("blank lines and comments are skipped; line numbers count every line") {
  const std::vector<SourceLine> lines = read_all(
      "# a comment\n"
      "\n"
      "https://example.com/1.jpg\n"
      "   # an indented comment\n"
      "   \t  \n"
      "  /abs/2.jpg  \n"
      "ftp://example.com/3.jpg\n"
      "#https://example.com/commented-out.jpg\n"
      "file:///tmp/4.jpg\n"
      "relative/5.jpg");  // no final newline
  REQUIRE(lines.size() == 5);
  CHECK(lines[0].line_number == 3);
  CHECK(lines[0].location == "https://example.com/1.jpg");
  CHECK(lines[1].line_number == 6);
  CHECK(lines[1].text == "/abs/2.jpg");
  CHECK(lines[1].kind == SourceKind::kFile);
  CHECK(lines[2].line_number == 7);
  CHECK(lines[2].status.message().starts_with("line 7: unsupported scheme 'ftp'"));
  CHECK(lines[3].line_number == 9);
  CHECK(lines[3].location == "/tmp/4.jpg");
  CHECK(lines[4].line_number == 10);
  CHECK(lines[4].location == "relative/5.jpg");
}

TEST_CASE("a '#' inside a line is not a comment") {
  const std::vector<SourceLine> lines = read_all("https://example.com/a.jpg#frag\nphotos/#1.jpg\n");
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].location == "https://example.com/a.jpg#frag");
  CHECK(lines[1].location == "photos/#1.jpg");
}

TEST_CASE("CR LF line endings") {
  const std::vector<SourceLine> lines = read_all("https://example.com/a.jpg\r\n\r\n#c\r\n/x/b.jpg\r\n");
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].location == "https://example.com/a.jpg");
  CHECK(lines[0].status.ok());
  CHECK(lines[1].location == "/x/b.jpg");
  CHECK(lines[1].line_number == 4);
}

TEST_CASE("a UTF-8 byte order mark on line 1 is ignored") {
  std::vector<SourceLine> lines = read_all("\xEF\xBB\xBFhttps://example.com/a.jpg\n/x/b.jpg\n");
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].text == "https://example.com/a.jpg");
  CHECK(lines[0].kind == SourceKind::kHttp);
  CHECK(lines[0].status.ok());

  // Before a comment, too.
  lines = read_all("\xEF\xBB\xBF# comment\n/x/b.jpg\n");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].line_number == 2);

  // Only on line 1: later, the bytes are part of the line.
  lines = read_all("a.jpg\n\xEF\xBB\xBF" "b.jpg\n");
  REQUIRE(lines.size() == 2);
  CHECK(lines[1].location == "\xEF\xBB\xBF" "b.jpg");
}

TEST_CASE("an empty list, and a list of only comments") {
  CHECK(read_all("").empty());
  CHECK(read_all("\n\n# nothing\n   \n").empty());
}

TEST_CASE("Next() keeps returning nullopt at the end") {
  std::istringstream in("a.jpg\n");
  SourceList list(in);
  CHECK(list.Next().has_value());
  CHECK_FALSE(list.Next().has_value());
  CHECK_FALSE(list.Next().has_value());
  CHECK(list.read_status().ok());
}

TEST_CASE("a failure reading the stream is a read_status, not a malformed line") {
  FailingAfter buffer("a.jpg\nb.jpg\n");
  std::istream in(&buffer);
  SourceList list(in);
  CHECK(list.Next()->location == "a.jpg");
  CHECK(list.Next()->location == "b.jpg");
  CHECK_FALSE(list.Next().has_value());
  CHECK(list.read_status().code() == Code::kIoError);
  CHECK(contains(list.read_status().message(), "after line 2"));
}

TEST_CASE("streaming: a million-line list yields its first entry at once") {
  constexpr std::uint64_t kLines = 1'000'000;
  GeneratedLines generator(kLines);
  std::istream in(&generator);
  SourceList list(in);

  std::optional<SourceLine> first = list.Next();
  REQUIRE(first.has_value());
  CHECK(first->location == "https://example.com/images/1.jpg");
  // Only what the first line needed was read from the stream.
  CHECK(generator.lines_made() <= 2);

  std::uint64_t count = 1;
  std::uint64_t last_line = first->line_number;
  while (std::optional<SourceLine> line = list.Next()) {
    ++count;
    if (!line->status.ok()) FAIL(line->status.message());
    last_line = line->line_number;
  }
  CHECK(count == kLines);
  CHECK(last_line == kLines);
  CHECK(generator.lines_made() == kLines);
  CHECK(list.read_status().ok());
}

/// `bytes` of 'a' with no newline, then `rest`, made as the reader asks:
/// a line of any length costs the test no memory.
class EndlessLine : public std::streambuf {
 public:
  EndlessLine(std::uint64_t bytes, std::string rest) : left_(bytes), rest_(std::move(rest)), chunk_(1 << 16, 'a') {}
  std::uint64_t handed_out() const { return handed_; }

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    if (left_ > 0) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left_, chunk_.size()));
      left_ -= n;
      handed_ += n;
      setg(chunk_.data(), chunk_.data(), chunk_.data() + n);
    } else if (!rest_done_) {
      rest_done_ = true;
      setg(rest_.data(), rest_.data(), rest_.data() + rest_.size());
      if (rest_.empty()) return traits_type::eof();
    } else {
      return traits_type::eof();
    }
    return traits_type::to_int_type(*gptr());
  }

 private:
  std::uint64_t left_;
  std::uint64_t handed_ = 0;
  std::string rest_;
  bool rest_done_ = false;
  std::string chunk_;
};

TEST_CASE("a line longer than kMaxLineBytes is one malformed entry, held no longer than that") {
  // 200 MB in one line: std::getline held all of it (and the report its text).
  EndlessLine buffer(200'000'000, "\nhttp://127.0.0.1/after.jpg\n");
  std::istream in(&buffer);
  SourceList list(in);
  std::optional<SourceLine> huge = list.Next();
  REQUIRE(huge.has_value());
  CHECK(huge->line_number == 1);
  CHECK_FALSE(huge->status.ok());
  CHECK(contains(huge->status.message(), "longer than " + std::to_string(kMaxLineBytes) + " bytes"));
  CHECK(huge->text.size() <= kMaxSourceLength);
  std::optional<SourceLine> after = list.Next();
  REQUIRE(after.has_value());
  CHECK(after->line_number == 2);
  CHECK(after->location == "http://127.0.0.1/after.jpg");
  CHECK_FALSE(list.Next().has_value());
  CHECK(list.read_status().ok());
  CHECK(buffer.handed_out() == 200'000'000);
}

TEST_CASE("a line of exactly kMaxLineBytes is parsed as usual; one byte more is too long") {
  const std::string spaces(kMaxLineBytes - std::string("a.jpg").size(), ' ');
  auto lines = read_all(spaces + "a.jpg\n" + spaces + "ab.jpg\nb.jpg");
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].location == "a.jpg");
  CHECK_FALSE(lines[1].status.ok());
  CHECK(lines[1].line_number == 2);
  CHECK(lines[2].location == "b.jpg");
  CHECK(lines[2].line_number == 3);
  // A last line without a newline, too long.
  auto last = read_all("a.jpg\n" + std::string(kMaxLineBytes + 5, 'x'));
  REQUIRE(last.size() == 2);
  CHECK_FALSE(last[1].status.ok());
}

// ---------------------------------------------------------------------------
// SourceList::Open.

TEST_CASE("Open reads a file") {
  TempFile file("# list\nhttps://example.com/a.jpg\r\nfile:///tmp/b.jpg\n");
  Result<std::unique_ptr<SourceList>> list = SourceList::Open(file.path.string());
  REQUIRE(list.ok());
  std::optional<SourceLine> a = (*list)->Next();
  REQUIRE(a.has_value());
  CHECK(a->location == "https://example.com/a.jpg");
  CHECK(a->line_number == 2);
  std::optional<SourceLine> b = (*list)->Next();
  REQUIRE(b.has_value());
  CHECK(b->location == "/tmp/b.jpg");
  CHECK_FALSE((*list)->Next().has_value());
  CHECK((*list)->read_status().ok());
}

TEST_CASE("Open(\"-\") reads standard input") {
  Result<std::unique_ptr<SourceList>> list = SourceList::Open("-");
  REQUIRE(list.ok());
  CHECK(*list != nullptr);
}

TEST_CASE("Open fails with kIoError naming the path and the reason") {
  const std::string missing = "/nonexistent-dir-for-thumbmill-tests/list.txt";
  Result<std::unique_ptr<SourceList>> list = SourceList::Open(missing);
  REQUIRE_FALSE(list.ok());
  CHECK(list.status().code() == Code::kIoError);
  CHECK(contains(list.status().message(), missing));
  CHECK(contains(list.status().message(), std::strerror(ENOENT)));

  const std::string directory = std::filesystem::temp_directory_path().string();
  list = SourceList::Open(directory);
  REQUIRE_FALSE(list.ok());
  CHECK(list.status().code() == Code::kIoError);
  CHECK(contains(list.status().message(), directory));
  CHECK(contains(list.status().message(), std::strerror(EISDIR)));
}

}  // namespace thumbmill
