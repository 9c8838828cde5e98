// Tests for shared/output_names.h: safe stems, unique stems, file names and
// the stable hash behind them.
#include "shared/output_names.h"
#include "shared/name_template.h"

#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace thumbmill {
namespace {

/// The hashed suffix the allocator uses for `input`: 8 lowercase hex digits
/// of the low 32 bits of stable_hash.
std::string hash_suffix(std::string_view input) {
  char text[9];
  std::snprintf(text, sizeof text, "%08x", static_cast<unsigned>(stable_hash(input) & 0xffffffffu));
  return text;
}

/// What every stem must be, whatever the source: usable as a file name
/// inside the output directory and nowhere else.
void check_safe(const std::string& stem) {
  CAPTURE(stem);
  CHECK_FALSE(stem.empty());
  CHECK(stem.size() <= 80);
  CHECK(stem != ".");
  CHECK(stem != "..");
  CHECK(stem.front() != '.');
  CHECK(stem.front() != '-');
  CHECK(stem.back() != '.');
  CHECK(stem.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
        std::string::npos);
  CHECK(stem.find("__") == std::string::npos);
}

}  // namespace

// ---------------------------------------------------------------------------
// stable_hash.

TEST_CASE("stable_hash is 64-bit FNV-1a (published test vectors)") {
  CHECK(stable_hash("") == 0xcbf29ce484222325ULL);
  CHECK(stable_hash("a") == 0xaf63dc4c8601ec8cULL);
  CHECK(stable_hash("foobar") == 0x85944171f73967e8ULL);
  // Bytes above 0x7f are hashed as unsigned, whatever the signedness of char.
  CHECK(stable_hash("\xff") == ((0xcbf29ce484222325ULL ^ 0xffULL) * 0x100000001b3ULL));
  CHECK(stable_hash(std::string_view("a\0b", 3)) != stable_hash("ab"));
}

// ---------------------------------------------------------------------------
// sanitize_stem.

TEST_CASE("sanitize_stem: ordinary sources") {
  struct Case {
    std::string source;
    std::string stem;
  };
  const Case cases[] = {
      {"https://example.com/photos/cat.jpg", "cat"},
      {"http://example.com/cat.jpeg", "cat"},
      {"https://example.com/cat.jpg?size=large&v=2#top", "cat"},
      {"https://example.com/a/b/?x=1", "b"},
      {"https://example.com/a/b//", "b"},
      {"https://example.com/My%20Photo.JPG", "My_Photo"},
      {"https://example.com/caf%C3%A9.png", "caf"},
      {"https://user:pw@example.com:8080/dir/dog.webp", "dog"},
      {"https://example.com/archive.tar.gz", "archive.tar"},
      {"https://example.com/v1.2-beta", "v1.2-beta"},
      {"https://example.com/scan.tiff", "scan"},
      {"https://example.com/noext", "noext"},
      {"https://example.com/a%2Fb.jpg", "a_b"},
      {"file:///home/user/pics/sunset%20beach.jpg", "sunset_beach"},
      {"file://localhost/tmp/x.png", "x"},
      {"/home/user/pics/dog.png", "dog"},
      {"relative/dir/cat.jpg", "cat"},
      {"relative/dir/", "dir"},
      {"cat.jpg", "cat"},
      {"a%20b.jpg", "a_20b"},  // a local name is literal: no percent-decoding
      {"/x/with space.jpg", "with_space"},
      {"photo (1).jpg", "photo_1"},
      {"C:\\photos\\cat.jpg", "C_photos_cat"},
      {"-rf.jpg", "rf"},
      {"--help", "help"},
      {"_x_.jpg", "x"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.source);
    CHECK(sanitize_stem(c.source) == c.stem);
    check_safe(sanitize_stem(c.source));
  }
}

TEST_CASE("sanitize_stem reads a URL as libcurl fetches it") {
  // GET /photos/cat.jpg/ is what libcurl asks for here (dot segments are
  // removed before the request), so the name is "cat"; the hand-written
  // parser took "." and ".." for the last segment and gave "image".
  CHECK(sanitize_stem("http://example.com/photos/cat.jpg/.") == "cat");
  CHECK(sanitize_stem("http://example.com/photos/cat.jpg/x/..") == "cat");
  CHECK(sanitize_stem("HTTP://example.com/photos/dog.png") == "dog");
  // The host libcurl connects to is b.com; the path is /cat.jpg.
  CHECK(sanitize_stem("http://a.com\\@b.com/cat.jpg") == "cat");
}

TEST_CASE("sanitize_stem: nothing usable left gives \"image\"") {
  for (const std::string source :
       {"https://example.com/", "https://example.com", "https://example.com/?q=1", "https://example.com/#x",
        "https://example.com//", "", "/", ".", "..", "...", "___", "._-_.",
        "https://example.com/%2e%2e%2f", "\xe6\x97\xa5\xe6\x9c\xac.jpg", "https://example.com/%E6%97%A5.jpg"}) {
    CAPTURE(source);
    CHECK(sanitize_stem(source) == "image");
  }
}

TEST_CASE("sanitize_stem: traversal and hostile names stay inside the output directory") {
  const std::string hostile[] = {
      "..",
      "../../etc/passwd",
      "https://example.com/../../etc/passwd",
      "https://example.com/..%2f..%2fetc%2fpasswd",
      "https://example.com/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
      "https://example.com/%2E%2E",
      "%2e%2e%2f",
      "https://example.com/..",
      "https://example.com/.hidden",
      "https://example.com/.%2e",
      "https://example.com/a%00b.jpg",
      std::string("a\0b.jpg", 7),
      std::string("\0", 1),
      "https://example.com/%5c..%5c..%5cwindows",
      "..\\..\\windows\\system32",
      "https://example.com/name%0A%0Dwith%09controls.jpg",
      "https://example.com/\xff\xfe\xfd.jpg",
      "https://example.com/%ff%fe.jpg",
      "https://example.com/%",
      "https://example.com/%zz%4",
      "https://example.com/" + std::string(500, 'a') + ".jpg",
      std::string(500, 'b'),
      std::string(79, 'c') + "......" + std::string(20, 'd'),
      std::string(79, 'e') + "_" + std::string(20, 'f'),
      "https://example.com/" + std::string(200, '.') + "x",
      "https://example.com/-",
      "https://example.com/--x--",
      "https://example.com/caf%C3%A9%20%F0%9F%98%80.jpg",
  };
  for (const std::string& source : hostile) {
    CAPTURE(source);
    check_safe(sanitize_stem(source));
  }
  CHECK(sanitize_stem("../../etc/passwd") == "passwd");
  CHECK(sanitize_stem("https://example.com/..%2f..%2fetc%2fpasswd") == "etc_passwd");
  CHECK(sanitize_stem("%2e%2e%2f") == "2e_2e_2f");
  CHECK(sanitize_stem(std::string("a\0b.jpg", 7)) == "a_b");
  CHECK(sanitize_stem("https://example.com/.hidden") == "hidden");
  // A leading dot starts no extension: ".jpg" is a name, as ".profile" is.
  CHECK(sanitize_stem("https://example.com/.jpg") == "jpg");
  CHECK(sanitize_stem("https://example.com/" + std::string(500, 'a') + ".jpg") == std::string(80, 'a'));
  // Cut at 80, then a trailing '.' or '_' exposed by the cut is removed.
  CHECK(sanitize_stem(std::string(79, 'c') + "......" + std::string(20, 'd')) == std::string(79, 'c'));
  CHECK(sanitize_stem(std::string(79, 'e') + "_" + std::string(20, 'f')) == std::string(79, 'e'));
}

TEST_CASE("sanitize_stem is deterministic") {
  CHECK(sanitize_stem("https://example.com/x/Some%20Name.png") == sanitize_stem("https://example.com/x/Some%20Name.png"));
}

// ---------------------------------------------------------------------------
// StemAllocator.

TEST_CASE("StemAllocator: the first keeps the stem, later ones get the hash of their source") {
  StemAllocator names;
  const std::string a = "https://a.example/cat.jpg", b = "https://b.example/cat.jpg", c = "/local/cat.png";
  CHECK(names.Allocate(a) == "cat");
  CHECK(names.Allocate(b) == "cat-" + hash_suffix(b));
  CHECK(names.Allocate(c) == "cat-" + hash_suffix(c));
  CHECK(names.Allocate("https://a.example/dog.jpg") == "dog");
}

TEST_CASE("StemAllocator: the same sequence gives the same names") {
  std::vector<std::string> sources;
  for (int i = 0; i < 50; ++i) {
    sources.push_back("https://host" + std::to_string(i % 7) + ".example/" + std::to_string(i % 5) + "/photo.jpg");
  }
  StemAllocator first, second;
  for (const std::string& source : sources) CHECK(first.Allocate(source) == second.Allocate(source));
}

TEST_CASE("StemAllocator: stems differing only in case are kept apart") {
  StemAllocator names;
  const std::string upper = "https://example.com/Cat.jpg";
  CHECK(names.Allocate("https://example.com/cat.jpg") == "cat");
  CHECK(names.Allocate(upper) == "Cat-" + hash_suffix(upper));
}

TEST_CASE("StemAllocator: a hashed name already taken is rehashed with a counter") {
  const std::string second = "https://b.example/cat.jpg";
  const std::string hashed = "cat-" + hash_suffix(second);
  // A source whose plain stem is exactly the name `second` would get.
  const std::string squatter = "https://c.example/" + hashed + ".jpg";
  REQUIRE(sanitize_stem(squatter) == hashed);

  StemAllocator names;
  CHECK(names.Allocate(squatter) == hashed);
  CHECK(names.Allocate("https://a.example/cat.jpg") == "cat");
  const std::string got = names.Allocate(second);
  CHECK(got == "cat-" + hash_suffix(second + "#1"));
  CHECK(got != hashed);

  StemAllocator again;  // deterministic, rehash included
  again.Allocate(squatter);
  again.Allocate("https://a.example/cat.jpg");
  CHECK(again.Allocate(second) == got);
}

TEST_CASE("StemAllocator: many sources with one stem all get distinct, safe names") {
  StemAllocator names;
  std::set<std::string> seen;
  constexpr int kSources = 20000;
  for (int i = 0; i < kSources; ++i) {
    const std::string stem = names.Allocate("https://host" + std::to_string(i) + ".example/image.jpg");
    check_safe(stem);
    CHECK(seen.insert(stem).second);
  }
  CHECK(seen.size() == kSources);
  CHECK(seen.count("image") == 1);
}

TEST_CASE("StemAllocator: hostile sources that sanitize alike still get distinct names") {
  StemAllocator names;
  std::set<std::string> seen;
  for (const std::string source : {"..", "../..", "https://example.com/", "https://example.com/%2e%2e%2f", "/",
                                   "https://example.com/%E6%97%A5.jpg", "https://other.example/"}) {
    const std::string stem = names.Allocate(source);
    check_safe(stem);
    CHECK(stem.starts_with("image"));
    CHECK(seen.insert(stem).second);
  }
}

// ---------------------------------------------------------------------------
// thumbnail_file_name.

TEST_CASE("thumbnail_file_name: <stem>_<label>.<ext>") {
  CHECK(thumbnail_file_name("cat", {200, 0}, Format::kJpeg) == "cat_200.jpg");
  CHECK(thumbnail_file_name("cat", {200, 150}, Format::kWebp) == "cat_200x150.webp");
  CHECK(thumbnail_file_name("cat-0badf00d", {32, 0}, Format::kPng) == "cat-0badf00d_32.png");
  CHECK(thumbnail_file_name("image", {1, 100000}, Format::kAvif) == "image_1x100000.avif");
}


// ----- --name templates (shared/name_template.h) ------------------------------

std::string expand(std::string_view text, NameValues values) {
  auto t = NameTemplate::Parse(text);
  REQUIRE_MESSAGE(t.ok(), t.status().message());
  return t->Expand(values);
}

TEST_CASE("--name: each placeholder") {
  const NameValues v{"cat", "http://127.0.0.1/a/b%20c/cat.png?x=1", {200, 150}, Format::kWebp, 200, 133};
  CHECK(expand("{stem}", v) == "cat");
  CHECK(expand("{size}", v) == "200x150");
  CHECK(expand("w{width}", v) == "w200");
  CHECK(expand("h{height}", v) == "h133");
  CHECK(expand("x.{ext}", v) == "x.webp");
  CHECK(expand("{stem}_{hash}", v) == "cat_" + hash_suffix(v.source));
  CHECK(expand("{dir}/x", v) == "a/b_c/x");
  CHECK(expand("{size}/{stem}.{ext}", v) == "200x150/cat.webp");
  CHECK(expand("{dir}/{stem}_{size}.{ext}", v) == "a/b_c/cat_200x150.webp");
  // The default names exactly as before --name existed.
  for (Format f : {Format::kJpeg, Format::kWebp, Format::kPng, Format::kAvif})
    CHECK(expand(NameTemplate::kDefault, {"cat-0badf00d", "u", {32, 0}, f}) ==
          thumbnail_file_name("cat-0badf00d", {32, 0}, f));
}

TEST_CASE("--name: {dir} of URLs and paths, reduced like stems; an empty one leaves no empty directory") {
  CHECK(source_dirs("http://127.0.0.1/cat.jpg").empty());
  CHECK(source_dirs("http://127.0.0.1/a/b/cat.jpg") == "a/b");
  CHECK(source_dirs("http://127.0.0.1/a%2F..%2Fb/cat.jpg") == "a_.._b");  // one segment, decoded after the cut
  CHECK(source_dirs("http://127.0.0.1/../../etc/cat.jpg") == "etc");       // '..' is nothing once reduced
  CHECK(source_dirs("http://127.0.0.1/.hidden/-x/cat.jpg") == "hidden/x");
  CHECK(source_dirs("/srv/../photos/x.png") == "srv/photos");
  CHECK(source_dirs("photos/2024/x.png") == "photos/2024");
  CHECK(source_dirs("x.png").empty());
  CHECK(source_dirs("http://127.0.0.1/1/2/3/4/5/6/7/8/9/10/x.png") == "1/2/3/4/5/6/7/8");  // at most 8
  const NameValues top{"cat", "http://127.0.0.1/cat.jpg", {64, 0}, Format::kJpeg};
  CHECK(expand("{dir}/{stem}_{size}.{ext}", top) == "cat_64.jpg");
  CHECK(expand("out/{dir}/{stem}.{ext}", top) == "out/cat.jpg");
}

TEST_CASE("--name: '..', '/' and other bytes in values never leave --out") {
  // Stems and directories come from hostile URLs: whatever they hold, every
  // component of the name is a safe, non-hidden name.
  const char* sources[] = {"http://127.0.0.1/../../../etc/passwd", "http://127.0.0.1/%2e%2e/%2e%2e/x", "http://127.0.0.1/a/..%2f..%2fb/.c",
                           "/../../x", "http://127.0.0.1//////y.jpg", "http://127.0.0.1/%00/%0a/z.png"};
  for (const char* source : sources) {
    CAPTURE(source);
    const std::string name =
        expand("{dir}/{size}/{stem}_{hash}.{ext}", {sanitize_stem(source), source, {64, 0}, Format::kJpeg});
    CHECK_FALSE(name.starts_with('/'));
    std::size_t at = 0;
    for (;;) {
      const std::size_t slash = name.find('/', at);
      const std::string part = name.substr(at, slash == std::string::npos ? std::string::npos : slash - at);
      CAPTURE(part);
      CHECK_FALSE(part.empty());
      CHECK_FALSE(part.starts_with('.'));
      CHECK(part.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
            std::string::npos);
      if (slash == std::string::npos) break;
      at = slash + 1;
    }
  }
}

TEST_CASE("--name: what a template may not be") {
  auto error_of = [](std::string_view text) {
    auto t = NameTemplate::Parse(text);
    REQUIRE_FALSE(t.ok());
    CHECK(t.status().code() == Code::kInvalidArgument);
    return t.status().message();
  };
  CHECK(error_of("{stem}_{sise}.{ext}") ==
        "--name: unknown placeholder {sise}; known: {stem} {size} {width} {height} {ext} {hash} {dir}");
  CHECK(error_of("{stem").starts_with("--name: a '{' without '}'"));
  CHECK(error_of("stem}").starts_with("--name: a '}' without '{'"));
  CHECK(error_of("/{stem}_{size}.{ext}").find("absolute") != std::string::npos);
  CHECK(error_of("../{stem}_{size}.{ext}").find("may not start with '.'") != std::string::npos);
  CHECK(error_of("a/../{stem}_{size}.{ext}").find("may not start with '.'") != std::string::npos);
  CHECK(error_of(".{stem}_{size}.{ext}").find("may not start with '.'") != std::string::npos);
  CHECK(error_of("a//{stem}_{size}.{ext}").find("empty directory") != std::string::npos);
  CHECK(error_of("{stem}_{size}.{ext}/").find("empty directory") != std::string::npos);
  CHECK(error_of("{stem} {size}.{ext}").find("literal text may hold") != std::string::npos);
  CHECK(error_of("{stem}\\{size}.{ext}").find("literal text may hold") != std::string::npos);
  CHECK(error_of("{stem}{size}.{ext}").find("put text between two placeholders") != std::string::npos);
  // "ax1" x "2" and "a" x "1x2" would be one name.
  CHECK(error_of("{stem}x{size}.{ext}").find("could also be part of their values") != std::string::npos);
  CHECK(error_of("{stem}a{hash}.{ext}").find("could also be part of their values") != std::string::npos);
  CHECK(NameTemplate::Parse("{size}-{hash}.{ext}").ok());
  CHECK(NameTemplate::Parse("{stem}-at-{size}.{ext}").ok());
  CHECK(NameTemplate::Parse("{stem}-{width}x{height}.{ext}").ok());
  CHECK(NameTemplate::Parse("{stem}-{hash}.{ext}").ok());  // a fixed 8 digits beside {stem}
  CHECK(NameTemplate::Parse("{dir}/{stem}.{ext}").ok());
  CHECK(error_of("x{dir}/{stem}_{size}.{ext}").find("{dir} must be a whole directory") != std::string::npos);
  CHECK(error_of("{stem}_{size}/{dir}").find("put the file name after it") != std::string::npos);
  CHECK(error_of("{width}/{stem}_{size}.{ext}").find("known only after resizing") != std::string::npos);
  CHECK(error_of(std::string(200, 'a') + "{stem}").find("longer than 255") != std::string::npos);
  CHECK(error_of("").find("empty") != std::string::npos);
}

TEST_CASE("--name: the collision rule") {
  auto for_outputs = [](std::string_view text, std::size_t sizes, std::size_t formats) {
    auto t = NameTemplate::Parse(text);
    REQUIRE(t.ok());
    return t->ForOutputs(sizes, formats);
  };
  // With {stem} or {hash}, as written.
  CHECK(for_outputs("{size}/{stem}.{ext}", 3, 2)->text() == "{size}/{stem}.{ext}");
  CHECK(for_outputs("{size}/{hash}.{ext}", 3, 2)->text() == "{size}/{hash}.{ext}");
  // Without either: {hash} added, before a final .{ext}, else at the end.
  CHECK(for_outputs("{size}/thumb.{ext}", 3, 1)->text() == "{size}/thumb_{hash}.{ext}");
  CHECK(for_outputs("{dir}/{size}.{ext}", 3, 1)->text() == "{dir}/{size}_{hash}.{ext}");
  CHECK(for_outputs("t-{size}", 3, 1)->text() == "t-{size}_{hash}");
  CHECK_FALSE(for_outputs("t-{size}", 3, 1)->keyed_by_stem());
  CHECK(for_outputs("{stem}.{ext}", 1, 1)->keyed_by_stem());
  // One source's outputs must differ from each other.
  CHECK(for_outputs("{stem}.{ext}", 3, 1).status().message() ==
        "--name: '{stem}.{ext}' has no {size}, but 3 sizes are made from each source");
  CHECK(for_outputs("{stem}-{width}.{ext}", 2, 1).status().message().find("has no {size}") != std::string::npos);
  CHECK(for_outputs("{stem}_{size}.jpg", 1, 2).status().message() ==
        "--name: '{stem}_{size}.jpg' has no {ext}, but 2 formats are made from each source");
  CHECK(for_outputs("{stem}.jpg", 1, 1).ok());
}

TEST_CASE("--name: a template without {stem} is keyed by {hash}, unique like stems") {
  // The coordinator claims the key as it claims a stem: the hash first,
  // a suffixed one when another source has it.
  StemAllocator keys;
  auto never_owned = [](const std::string&) -> Result<bool> { return true; };
  const std::string a = "http://127.0.0.1/a.jpg";
  auto key = keys.Allocate(a, never_owned, "", source_hash8(a));
  REQUIRE(key.ok());
  CHECK(*key == source_hash8(a));
  // Another source whose hash is taken (simulated by a claim that refuses it).
  StemAllocator keys2;
  const std::string b = "http://127.0.0.1/b.jpg";
  auto taken = [&](const std::string& k) -> Result<bool> { return k != source_hash8(b); };
  auto other = keys2.Allocate(b, taken, "", source_hash8(b));
  REQUIRE(other.ok());
  CHECK(*other == source_hash8(b) + "-" + hash_suffix(b));
  // And it is what {hash} says in the name.
  auto t = NameTemplate::Parse("{size}/{hash}.{ext}");
  REQUIRE(t.ok());
  CHECK(t->Expand({*other, b, {64, 0}, Format::kJpeg}) == "64/" + *other + ".jpg");
}

TEST_CASE("StemAllocator: a source named again keeps its stem; another source never gets it") {
  // A batch job handed back (its stem could not be claimed in time) is
  // named again when it comes back, and must land on the same files.
  StemAllocator plain;
  const std::string first = plain.Allocate("http://127.0.0.1/a/cat.jpg");
  const std::string other = plain.Allocate("http://127.0.0.1/b/cat.jpg");
  CHECK(first != other);
  CHECK(plain.Allocate("http://127.0.0.1/a/cat.jpg") == first);
  CHECK(plain.Allocate("http://127.0.0.1/b/cat.jpg") == other);

  StemAllocator claimed;
  const auto always = [](const std::string&) -> Result<bool> { return true; };
  auto a = claimed.Allocate("http://127.0.0.1/a/cat.jpg", always);
  auto b = claimed.Allocate("http://127.0.0.1/b/cat.jpg", always);
  auto again = claimed.Allocate("http://127.0.0.1/a/cat.jpg", always);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(again.ok());
  CHECK(*a != *b);
  CHECK(*again == *a);
}

}  // namespace thumbmill
