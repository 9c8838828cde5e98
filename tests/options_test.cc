// Tests for shared/options.h: the value parsers, the command line, the
// checks after parsing and the JSON handed to child processes.
#include "shared/options.h"

#include <unistd.h>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include "shared/wire.h"

namespace thumbmill {
namespace {

/// Runs parse_command_line on "coordinator <args...>", capturing stdout.
struct Run {
  ParsedCommandLine parsed;
  std::string out;
};

Run run(std::vector<std::string> args) {
  args.insert(args.begin(), "coordinator");
  std::vector<const char*> argv;
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  std::ostringstream captured;
  std::streambuf* saved = std::cout.rdbuf(captured.rdbuf());
  Run result{parse_command_line(static_cast<int>(argv.size()), argv.data()), ""};
  std::cout.rdbuf(saved);
  result.out = captured.str();
  return result;
}

/// The options of a command line that must parse and finalize cleanly.
Options parse_ok(std::vector<std::string> args) {
  Run result = run(std::move(args));
  REQUIRE_MESSAGE(result.parsed.error.empty(), result.parsed.error);
  REQUIRE_FALSE(result.parsed.exit_now);
  Status status = finalize_options(result.parsed.options);
  REQUIRE_MESSAGE(status.ok(), status.message());
  return result.parsed.options;
}

/// The error of a command line that must fail to parse.
std::string parse_error(std::vector<std::string> args) {
  Run result = run(std::move(args));
  REQUIRE_FALSE(result.parsed.error.empty());
  CHECK_FALSE(result.parsed.exit_now);
  CHECK(result.parsed.error.find('\n') == std::string::npos);
  return result.parsed.error;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// 'text', as error messages quote values. (Built with += because GCC 12
/// warns falsely about "'" + std::string(...).)
std::string single_quoted(std::string_view text) {
  std::string out = "'";
  out += text;
  out += '\'';
  return out;
}

/// Options with every field away from its default.
Options unusual_options() {
  Options o;
  o.inputs = {"urls.txt"};
  o.extensions = {"png", "jxl"};
  o.out_dir = "/tmp/thumbs out";
  o.sizes = {{48, 0}, {300, 200}, {1, 100000}};
  o.formats = {Format::kAvif, Format::kWebp};
  o.name_template = "{dir}/{size}/{stem}-{width}x{height}.{ext}";
  o.quality = 42;
  o.workers = 0;
  o.downloads = 99;
  o.queue_mb = 1024;
  o.max_bytes = 123'456'789'012ULL;
  o.max_pixels = 7'777'777;
  o.max_decode_mb = 96;
  o.allow_untrusted_formats = true;
  o.deny_private = true;
  o.no_local = true;
  o.report_path = "run.jsonl";
  o.connect_timeout_s = 3;
  o.transfer_timeout_s = 600;
  o.stall_timeout_s = 7;
  o.max_redirects = 0;
  o.fetch_attempts = 9;
  o.job_timeout_s = 5;
  o.force = true;
  o.fsync = true;
  o.progress = true;
  o.quiet = true;
  o.verbose = true;
  o.out_s3 = "s3://thumbs/t/";
  o.uploads = 3;
  o.upload_queue_mb = 9;
  o.upload_attempts = 2;
  o.cache_control = "max-age=60";
  o.queue_url = "redis://:pw@127.0.0.1:6390/june";
  o.enqueue = true;
  o.follow = true;
  o.claim_idle_s = 7;
  o.max_deliveries = 5;
  o.s3_flags = {"http://127.0.0.1:1", "eu-west-3", true};
  o.s3.endpoint = "http://127.0.0.1:2";
  o.s3.region = "eu-west-1";
  o.s3.path_style = true;
  o.s3.access_key_id = "AKID";
  o.s3.secret_access_key = "SECRET";
  o.s3.session_token = "TOKEN";
  o.fit = Fit::kCover;
  o.crop = Crop::kAttention;
  o.upscale = true;
  o.keep = {true, false, true};
  o.no_rotate = true;
  o.profile = Profile::kP3;
  o.progressive = true;
  o.optimize_coding = true;
  o.effort = 5;  // within both formats: webp 0-6, avif 0-9
  o.lossless = true;
  return o;
}

void check_same_fields(const Options& a, const Options& b) {
  CHECK(a.inputs == b.inputs);
  CHECK(a.extensions == b.extensions);
  CHECK(a.out_s3 == b.out_s3);
  CHECK(a.uploads == b.uploads);
  CHECK(a.upload_queue_mb == b.upload_queue_mb);
  CHECK(a.upload_attempts == b.upload_attempts);
  CHECK(a.cache_control == b.cache_control);
  CHECK(a.queue_url == b.queue_url);
  CHECK(a.enqueue == b.enqueue);
  CHECK(a.batch_status == b.batch_status);
  CHECK(a.follow == b.follow);
  CHECK(a.claim_idle_s == b.claim_idle_s);
  CHECK(a.max_deliveries == b.max_deliveries);
  CHECK(a.s3_flags.endpoint == b.s3_flags.endpoint);
  CHECK(a.s3_flags.region == b.s3_flags.region);
  CHECK(a.s3_flags.path_style == b.s3_flags.path_style);
  CHECK(a.s3 == b.s3);
  CHECK(a.out_dir == b.out_dir);
  CHECK(a.sizes == b.sizes);
  CHECK(a.formats == b.formats);
  CHECK(a.name_template == b.name_template);
  CHECK(a.quality == b.quality);
  CHECK(a.workers == b.workers);
  CHECK(a.downloads == b.downloads);
  CHECK(a.queue_mb == b.queue_mb);
  CHECK(a.max_bytes == b.max_bytes);
  CHECK(a.max_pixels == b.max_pixels);
  CHECK(a.max_decode_mb == b.max_decode_mb);
  CHECK(a.allow_untrusted_formats == b.allow_untrusted_formats);
  CHECK(a.deny_private == b.deny_private);
  CHECK(a.no_local == b.no_local);
  CHECK(a.report_path == b.report_path);
  CHECK(a.connect_timeout_s == b.connect_timeout_s);
  CHECK(a.transfer_timeout_s == b.transfer_timeout_s);
  CHECK(a.stall_timeout_s == b.stall_timeout_s);
  CHECK(a.max_redirects == b.max_redirects);
  CHECK(a.fetch_attempts == b.fetch_attempts);
  CHECK(a.job_timeout_s == b.job_timeout_s);
  CHECK(a.force == b.force);
  CHECK(a.fsync == b.fsync);
  CHECK(a.progress == b.progress);
  CHECK(a.quiet == b.quiet);
  CHECK(a.verbose == b.verbose);
  CHECK(a.fit == b.fit);
  CHECK(a.crop == b.crop);
  CHECK(a.upscale == b.upscale);
  CHECK(a.keep == b.keep);
  CHECK(a.no_rotate == b.no_rotate);
  CHECK(a.profile == b.profile);
  CHECK(a.progressive == b.progressive);
  CHECK(a.optimize_coding == b.optimize_coding);
  CHECK(a.effort == b.effort);
  CHECK(a.lossless == b.lossless);
}

// Options has this many fields; check_same_fields and the JSON must cover
// them all. Update all three together.
constexpr std::size_t kOptionFields = 51;

}  // namespace

// ---------------------------------------------------------------------------
// Value parsers.

TEST_CASE("parse_size accepts widths and boxes and labels them back") {
  struct Case {
    std::string text;
    SizeSpec size;
    std::string label;
  };
  const Case cases[] = {
      {"200", {200, 0}, "200"},         {"1", {1, 0}, "1"},
      {"100000", {100000, 0}, "100000"}, {"200x150", {200, 150}, "200x150"},
      {"200X150", {200, 150}, "200x150"}, {"032", {32, 0}, "32"},
      {" 64 ", {64, 0}, "64"},           {"1x100000", {1, 100000}, "1x100000"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    Result<SizeSpec> size = parse_size(c.text);
    REQUIRE(size.ok());
    CHECK(*size == c.size);
    CHECK(size->label() == c.label);
  }
}

TEST_CASE("parse_size rejects everything else with the same message") {
  for (const std::string text : {"", "0", "0x10", "10x0", "100001", "10x100001", "-5", "+5", "abc", "32x", "x32",
                           "32x32x32", "1.5", "0x1f", "99999999999", "32 x 32", "32,64"}) {
    CAPTURE(text);
    Result<SizeSpec> size = parse_size(text);
    REQUIRE_FALSE(size.ok());
    CHECK(size.status().code() == Code::kInvalidArgument);
    CHECK(size.status().message() == single_quoted(text) + " is not a width or WIDTHxHEIGHT (1-100000)");
  }
}

TEST_CASE("formats: names, aliases and extensions") {
  CHECK(*parse_format("jpeg") == Format::kJpeg);
  CHECK(*parse_format("jpg") == Format::kJpeg);
  CHECK(*parse_format("JPG") == Format::kJpeg);
  CHECK(*parse_format("webp") == Format::kWebp);
  CHECK(*parse_format("png") == Format::kPng);
  CHECK(*parse_format("avif") == Format::kAvif);
  for (Format f : {Format::kJpeg, Format::kWebp, Format::kPng, Format::kAvif}) {
    CHECK(*parse_format(format_name(f)) == f);
    CHECK(*parse_format(format_extension(f)) == f);
  }
  CHECK(format_name(Format::kJpeg) == "jpeg");
  CHECK(format_extension(Format::kJpeg) == "jpg");
  CHECK(format_extension(Format::kWebp) == "webp");
  CHECK(format_extension(Format::kPng) == "png");
  CHECK(format_extension(Format::kAvif) == "avif");
  for (const std::string bad : {"gif", "", "jpe", "tiff", "jpeg "}) {
    CAPTURE(bad);
    Result<Format> f = parse_format(bad);
    REQUIRE_FALSE(f.ok());
    CHECK(f.status().message() == single_quoted(bad) + " is not one of jpeg, webp, png, avif");
  }
}

TEST_CASE("parse_byte_size: plain numbers and decimal and binary suffixes") {
  struct Case {
    std::string text;
    std::uint64_t bytes;
  };
  const Case cases[] = {
      {"1", 1},
      {"1000000", 1000000},
      {"100MB", 100'000'000},
      {"100M", 100'000'000},
      {"100mb", 100'000'000},
      {"100 MB", 100'000'000},
      {"64KiB", 65536},
      {"64kib", 65536},
      {"64Ki", 65536},
      {"64K", 64000},
      {"64KB", 64000},
      {"2MiB", 2 * 1024 * 1024},
      {"3G", 3'000'000'000ULL},
      {"3GiB", 3ULL << 30},
      {"1T", 1'000'000'000'000ULL},
      {"5b", 5},
      {"010", 10},  // decimal, not octal
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    Result<std::uint64_t> bytes = parse_byte_size(c.text);
    REQUIRE_MESSAGE(bytes.ok(), bytes.status().message());
    CHECK(*bytes == c.bytes);
  }
  for (const std::string bad : {"", "0", "0MB", "-1", "MB", "1.5MB", "1XB", "12 34", "0x10", "99999999999999999999",
                          "20000000TB", "100MP"}) {
    CAPTURE(bad);
    Result<std::uint64_t> bytes = parse_byte_size(bad);
    REQUIRE_FALSE(bytes.ok());
    CHECK(contains(bytes.status().message(), single_quoted(bad)));
  }
}

TEST_CASE("parse_pixel_count: plain numbers, K/M/G and MP") {
  CHECK(*parse_pixel_count("12") == 12);
  CHECK(*parse_pixel_count("100M") == 100'000'000);
  CHECK(*parse_pixel_count("50MP") == 50'000'000);
  CHECK(*parse_pixel_count("50mp") == 50'000'000);
  CHECK(*parse_pixel_count("500K") == 500'000);
  CHECK(*parse_pixel_count("1G") == 1'000'000'000);
  CHECK(*parse_pixel_count("2GP") == 2'000'000'000);
  for (const std::string bad : {"", "0", "1MB", "1Mi", "px", "-3", "1.5M"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_pixel_count(bad).ok());
  }
}

// ---------------------------------------------------------------------------
// The command line.

TEST_CASE("defaults: only LIST given") {
  Options o = parse_ok({"list.txt"});
  CHECK(o.inputs == std::vector<std::string>{"list.txt"});
  CHECK(o.out_dir == "thumbnails");
  CHECK(o.sizes == std::vector<SizeSpec>{{32, 0}, {64, 0}, {200, 0}});
  CHECK(o.formats == std::vector<Format>{Format::kJpeg});
  CHECK(o.name_template == "{stem}_{size}.{ext}");
  CHECK(o.quality == 85);
  CHECK(o.workers == default_worker_count());
  CHECK(o.workers >= 1);
  CHECK(o.workers == std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  CHECK(o.downloads == 16);
  CHECK(o.queue_mb == 64);
  CHECK(o.max_bytes == 100'000'000);
  CHECK(o.max_pixels == 100'000'000);
  CHECK(o.max_decode_mb == 512);
  CHECK_FALSE(o.allow_untrusted_formats);
  CHECK(o.report_path.empty());
  CHECK(o.connect_timeout_s == 10);
  CHECK(o.transfer_timeout_s == 120);
  CHECK(o.stall_timeout_s == 15);
  CHECK(o.max_redirects == 5);
  CHECK(o.fetch_attempts == 3);
  CHECK(o.job_timeout_s == 60);
  CHECK_FALSE(o.force);
  CHECK_FALSE(o.fsync);
  CHECK(o.progress == (isatty(STDERR_FILENO) == 1));
  CHECK_FALSE(o.quiet);
  CHECK_FALSE(o.verbose);
}

TEST_CASE("a default-constructed Options matches the command-line defaults") {
  Options built;
  built.inputs = {"list.txt"};
  built.progress = isatty(STDERR_FILENO) == 1;
  check_same_fields(built, parse_ok({"list.txt"}));
}

TEST_CASE("every flag reaches its field") {
  Options o = parse_ok({"--out", "/tmp/thumbs out", "--sizes", "48,300x200", "--sizes", "1x100000",
                        "--format", "avif,webp", "--name", "{dir}/{size}/{stem}-{width}x{height}.{ext}", "--quality", "42", "--workers", "0", "--downloads", "99",
                        "--queue-mb", "1024", "--max-bytes", "123456789012", "--max-pixels", "7777777",
                        "--max-decode-mb", "96",
                        "--allow-untrusted-formats", "--report", "run.jsonl", "--connect-timeout", "3",
                        "--timeout", "600", "--stall-timeout", "7", "--max-redirects", "0",
                        "--fetch-attempts", "9", "--job-timeout", "5", "--force", "--fsync", "--progress",
                        "--quiet", "--verbose", "--deny-private", "--no-local", "--uploads", "3",
                        "--upload-queue-mb", "9",
                        "--upload-attempts", "2", "--cache-control", "max-age=60", "--s3-endpoint",
                        "http://127.0.0.1:1", "--s3-region", "eu-west-3", "--s3-path-style", "--fit", "cover",
                        "--crop", "attention", "--upscale", "--keep", "exif,xmp", "--no-rotate", "--profile",
                        "p3", "--progressive", "--optimize-coding", "--effort", "5", "--lossless", "--ext", "png,.JXL",
                        "--queue", "redis://:pw@127.0.0.1:6390/june", "--enqueue", "--follow", "--claim-idle", "7",
                        "--max-deliveries", "5", "urls.txt"});
  // --out names a directory or a bucket (tested below), and `s3` is what
  // the coordinator resolves from flags, environment and profiles.
  const Options want = unusual_options();
  o.out_s3 = want.out_s3;
  o.s3 = want.s3;
  check_same_fields(o, want);
}

TEST_CASE("--queue: which commands need it, and what each takes") {
  // Parsed fine; refused by finalize_options, as a coordinator does next.
  const auto finalize_error = [](std::vector<std::string> args) {
    Run result = run(std::move(args));
    REQUIRE(result.parsed.error.empty());
    return finalize_options(result.parsed.options).message();
  };
  CHECK(finalize_error({"--enqueue", "urls.txt"}) == "--enqueue needs --queue redis://HOST:PORT/BATCH");
  CHECK(finalize_error({"--status", "urls.txt"}) == "--status needs --queue redis://HOST:PORT/BATCH");
  CHECK(finalize_error({"--queue", "redis://127.0.0.1/b", "--enqueue"}).find("--enqueue: name what to add") == 0);
  CHECK(finalize_error({"--queue", "redis://127.0.0.1/b", "urls.txt"}).find("with --queue, sources are added with --enqueue") == 0);
  CHECK(finalize_error({"--queue", "redis://127.0.0.1/b", "--status", "--enqueue", "u.txt"}) ==
        "--enqueue and --status: one at a time");
  CHECK(parse_error({"--queue", "redis://127.0.0.1/b", "--claim-idle", "0"}).find("--claim-idle") != std::string::npos);
  // A node names no inputs; its --status and --report need none either.
  CHECK(parse_ok({"--queue", "redis://127.0.0.1/b"}).inputs.empty());
  CHECK(parse_ok({"--queue", "redis://127.0.0.1/b", "--status"}).batch_status);
}

TEST_CASE("flags take --flag=value, and LIST may come first") {
  Options o = parse_ok({"urls.txt", "--quality=7", "--format=png", "--sizes=10x20"});
  CHECK(o.inputs == std::vector<std::string>{"urls.txt"});
  CHECK(o.quality == 7);
  CHECK(o.formats == std::vector<Format>{Format::kPng});
  CHECK(o.sizes == std::vector<SizeSpec>{{10, 20}});
}

TEST_CASE("LIST may be - for standard input, or a name after --") {
  CHECK(parse_ok({"-"}).inputs == std::vector<std::string>{"-"});
  CHECK(parse_ok({"--", "-odd-name"}).inputs == std::vector<std::string>{"-odd-name"});
}

TEST_CASE("--sizes: lists, repeats, boxes; LIST is never swallowed") {
  CHECK(parse_ok({"--sizes", "32,64", "l"}).sizes == std::vector<SizeSpec>{{32, 0}, {64, 0}});
  CHECK(parse_ok({"--sizes", "200x150", "l"}).sizes == std::vector<SizeSpec>{{200, 150}});
  CHECK(parse_ok({"--sizes", "10", "--sizes", "20x30,40", "l"}).sizes ==
        std::vector<SizeSpec>{{10, 0}, {20, 30}, {40, 0}});
  Options o = parse_ok({"--sizes", "64", "list.txt"});
  CHECK(o.inputs == std::vector<std::string>{"list.txt"});
  CHECK(o.sizes == std::vector<SizeSpec>{{64, 0}});
}

TEST_CASE("--sizes: duplicates are dropped, keeping the first of each in order") {
  CHECK(parse_ok({"--sizes", "64,32,64,200x150,32,200x150,200", "l"}).sizes ==
        std::vector<SizeSpec>{{64, 0}, {32, 0}, {200, 150}, {200, 0}});
}

TEST_CASE("--workers 0 is kept; negative workers are an error") {
  CHECK(parse_ok({"--workers", "0", "l"}).workers == 0);
  CHECK(parse_ok({"--workers", "3", "l"}).workers == 3);
  CHECK(parse_error({"--workers", "-1", "l"}) == "--workers: '-1' is not an integer in 0-4096");
}

TEST_CASE("numbers are decimal, never octal or hex") {
  CHECK(parse_ok({"--quality", "010", "l"}).quality == 10);
  CHECK(parse_ok({"--downloads", "08", "l"}).downloads == 8);
  CHECK(contains(parse_error({"--quality", "0x10", "l"}), "'0x10'"));
}

TEST_CASE("a repeated flag overrides the earlier one") {
  CHECK(parse_ok({"--quality", "1", "--quality", "2", "l"}).quality == 2);
  CHECK(parse_ok({"--format", "png", "--format", "jpg", "l"}).formats == std::vector<Format>{Format::kJpeg});
}

TEST_CASE("--progress and --no-progress: the last one wins") {
  CHECK(parse_ok({"--progress", "l"}).progress);
  CHECK_FALSE(parse_ok({"--no-progress", "l"}).progress);
  CHECK_FALSE(parse_ok({"--progress", "--no-progress", "l"}).progress);
  CHECK(parse_ok({"--no-progress", "--progress", "l"}).progress);
  CHECK(parse_ok({"-q", "l"}).quiet);
  CHECK(parse_ok({"--quiet", "l"}).quiet);
  CHECK(parse_ok({"-v", "l"}).verbose);
  CHECK(parse_ok({"--verbose", "l"}).verbose);
}

TEST_CASE("byte and pixel suffixes on the command line") {
  Options o = parse_ok({"--max-bytes", "64KiB", "--max-pixels", "50MP", "l"});
  CHECK(o.max_bytes == 65536);
  CHECK(o.max_pixels == 50'000'000);
  o = parse_ok({"--max-bytes", "100M", "--max-pixels", "100M", "l"});
  CHECK(o.max_bytes == 100'000'000);
  CHECK(o.max_pixels == 100'000'000);
}

TEST_CASE("the documented error messages, exactly") {
  CHECK(parse_error({"--sizes", "0x10", "l"}) == "--sizes: '0x10' is not a width or WIDTHxHEIGHT (1-100000)");
  CHECK(parse_error({"--format", "gif", "l"}) == "--format: 'gif' is not one of jpeg, webp, png, avif");
  CHECK(parse_error({"--quality", "101", "l"}) == "--quality: '101' is not an integer in 1-100");
}

TEST_CASE("bad values: the error names the flag and the value") {
  struct Case {
    std::string flag;
    std::string value;
  };
  const Case cases[] = {
      {"--sizes", "0"},           {"--sizes", "10x0"},          {"--sizes", "abc"},
      {"--sizes", "100001"},      {"--sizes", "32,x"},          {"--format", "gif"},
      {"--format", "jpe"},        {"--quality", "0"},           {"--quality", "101"},
      {"--quality", "abc"},       {"--quality", "1.5"},         {"--quality", "99999999999"},
      {"--workers", "-1"},        {"--workers", "many"},        {"--workers", "4097"},
      {"--downloads", "0"},       {"--downloads", "1025"},      {"--queue-mb", "7"},
      {"--queue-mb", "65537"},    {"--max-bytes", "0"},         {"--max-bytes", "1XB"},
      {"--max-bytes", "-5"},      {"--max-pixels", "0"},        {"--max-pixels", "12Q"},
      {"--connect-timeout", "0"}, {"--timeout", "0"},           {"--timeout", "86401"},
      {"--stall-timeout", "-2"},  {"--max-redirects", "-1"},    {"--max-redirects", "101"},
      {"--fetch-attempts", "0"},  {"--job-timeout", "0"},       {"--job-timeout", "soon"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.flag);
    CAPTURE(c.value);
    const std::string error = parse_error({c.flag, c.value, "list.txt"});
    CHECK(error.starts_with(std::string(c.flag) + ": "));
    const std::string bad_piece = std::string(c.value) == "32,x" ? "'x'" : single_quoted(c.value);
    CHECK(contains(error, bad_piece));
  }
}

TEST_CASE("command-line mistakes that are not bad values") {
  CHECK(contains(parse_error({}), "LIST"));
  CHECK(contains(parse_error({"--quality", "5"}), "LIST"));
  CHECK(contains(parse_error({"--bogus", "l"}), "--bogus"));
  CHECK(contains(parse_error({"l", "--quality"}), "--quality"));
  CHECK(contains(parse_error({"--force=maybe", "l"}), "--force"));
}

TEST_CASE("--help prints the help to stdout and asks for exit 0") {
  for (const std::string flag : {"--help", "-h"}) {
    Run result = run({flag});
    CHECK(result.parsed.exit_now);
    CHECK(result.parsed.exit_code == 0);
    CHECK(result.parsed.error.empty());
    CHECK(contains(result.out, "Usage: coordinator [OPTIONS] LIST"));
    for (const std::string option : {"--out", "--sizes", "--format", "--quality", "--workers", "--downloads",
                               "--queue-mb", "--max-bytes", "--max-pixels", "--allow-untrusted-formats",
                               "--report", "--connect-timeout", "--timeout", "--stall-timeout",
                               "--max-redirects", "--fetch-attempts", "--job-timeout", "--force", "--fsync",
                               "--progress", "--no-progress", "--quiet", "--verbose", "--version"}) {
      CAPTURE(option);
      CHECK(contains(result.out, std::string(option) + " "));
    }
    std::istringstream lines(result.out);
    for (std::string line; std::getline(lines, line);) {
      CAPTURE(line);
      CHECK(line.size() <= 80);
    }
  }
  // Help needs no LIST.
  Run with_list = run({"--help", "list.txt"});
  CHECK(with_list.parsed.exit_now);
  CHECK(with_list.parsed.error.empty());
}

TEST_CASE("--version prints the version and asks for exit 0") {
  Run result = run({"--version"});
  CHECK(result.parsed.exit_now);
  CHECK(result.parsed.exit_code == 0);
  CHECK(result.parsed.error.empty());
  CHECK(result.out == "thumbmill 0.1.0\n");
}

TEST_CASE("the image options: values, sharp's spellings, and bad values named") {
  Options o = parse_ok({"--fit", "OUTSIDE", "--crop", "center", "--keep", "all", "--profile", "keep", "l"});
  CHECK(o.fit == Fit::kOutside);
  CHECK(o.crop == Crop::kCentre);
  CHECK(o.keep == MetadataKeep{true, true, true});
  CHECK(o.profile == Profile::kKeep);
  CHECK(parse_ok({"--keep", "icc", "l"}).keep == MetadataKeep{false, true, false});
  CHECK(parse_error({"--fit", "contain", "l"}) == "--fit: 'contain' is not one of inside, cover, fill, outside");
  CHECK(parse_error({"--crop", "left", "l"}) == "--crop: 'left' is not one of centre, attention, entropy");
  CHECK(parse_error({"--keep", "exif,gps", "l"}) == "--keep: 'gps' is not one of exif, icc, xmp, all, none");
  CHECK(parse_error({"--profile", "adobe", "l"}) == "--profile: 'adobe' is not one of srgb, keep, p3");
  CHECK(parse_error({"--effort", "10", "l"}) == "--effort: '10' is not an integer in 0-9");
}

TEST_CASE("--effort is checked against the format: webp 0-6, avif 0-9, ignored by jpeg") {
  CHECK(parse_ok({"--format", "avif", "--effort", "9", "l"}).effort == 9);
  CHECK(parse_ok({"--format", "webp", "--effort", "6", "l"}).effort == 6);
  CHECK(parse_ok({"--effort", "0", "l"}).effort == 0);
  Run webp = run({"--format", "webp", "--effort", "7", "l"});
  REQUIRE(webp.parsed.error.empty());
  Status status = finalize_options(webp.parsed.options);
  CHECK(status.message() == "--effort: 7 is out of range for webp (0-6)");
  CHECK(Options().effort == kDefaultEffort);
}

// ---------------------------------------------------------------------------
// finalize_options.

TEST_CASE("finalize_options rejects an empty sizes list") {
  Options o = unusual_options();
  o.sizes.clear();
  Status status = finalize_options(o);
  CHECK(status.code() == Code::kInvalidArgument);
  CHECK(status.message().starts_with("--sizes: "));
}

TEST_CASE("finalize_options checks hand-built values against the command-line ranges") {
  struct Case {
    void (*spoil)(Options&);
    std::string flag;
  };
  const Case cases[] = {
      {[](Options& o) { o.quality = 0; }, "--quality"},
      {[](Options& o) { o.workers = -1; }, "--workers"},
      {[](Options& o) { o.downloads = 2000; }, "--downloads"},
      {[](Options& o) { o.queue_mb = 4; }, "--queue-mb"},
      {[](Options& o) { o.connect_timeout_s = 0; }, "--connect-timeout"},
      {[](Options& o) { o.transfer_timeout_s = -5; }, "--timeout"},
      {[](Options& o) { o.stall_timeout_s = 0; }, "--stall-timeout"},
      {[](Options& o) { o.max_redirects = -1; }, "--max-redirects"},
      {[](Options& o) { o.fetch_attempts = 0; }, "--fetch-attempts"},
      {[](Options& o) { o.job_timeout_s = 0; }, "--job-timeout"},
      {[](Options& o) { o.max_bytes = 0; }, "--max-bytes"},
      {[](Options& o) { o.max_pixels = 0; }, "--max-pixels"},
      {[](Options& o) { o.out_dir.clear(); }, "--out"},
      {[](Options& o) { o.sizes = {{0, 10}}; }, "--sizes"},
      {[](Options& o) { o.sizes = {{10, 100001}}; }, "--sizes"},
      {[](Options& o) { o.formats = {static_cast<Format>(99)}; }, "--format"},
      {[](Options& o) { o.formats = {}; }, "--format"},
      {[](Options& o) { o.name_template = "{stem}.{ext}"; }, "--name"},
      {[](Options& o) { o.fit = static_cast<Fit>(99); }, "--fit"},
      {[](Options& o) { o.crop = static_cast<Crop>(99); }, "--crop"},
      {[](Options& o) { o.profile = static_cast<Profile>(99); }, "--profile"},
      {[](Options& o) { o.effort = -2; }, "--effort"},
      {[](Options& o) { o.effort = 10; }, "--effort"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.flag);
    Options o;
    o.inputs = {"l"};
    c.spoil(o);
    Status status = finalize_options(o);
    CHECK(status.code() == Code::kInvalidArgument);
    CHECK(status.message().starts_with(std::string(c.flag) + ": "));
  }
}

TEST_CASE("finalize_options keeps workers 0, dedupes sizes, and is idempotent") {
  Options o = unusual_options();
  o.sizes = {{5, 0}, {5, 5}, {5, 0}, {7, 0}, {5, 5}};
  REQUIRE(finalize_options(o).ok());
  CHECK(o.workers == 0);
  CHECK(o.sizes == std::vector<SizeSpec>{{5, 0}, {5, 5}, {7, 0}});
  Options again = o;
  REQUIRE(finalize_options(again).ok());
  check_same_fields(again, o);
}

// ---------------------------------------------------------------------------
// JSON.

TEST_CASE("JSON round trip keeps every field") {
  const Options original = unusual_options();
  const std::string json = options_to_json(original);
  CHECK(nlohmann::json::parse(json).size() == kOptionFields);
  Result<Options> back = options_from_json(json);
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  check_same_fields(*back, original);
  CHECK(options_to_json(*back) == json);
}

TEST_CASE("JSON round trip of the defaults and of each format") {
  for (Format f : {Format::kJpeg, Format::kWebp, Format::kPng, Format::kAvif}) {
    Options original;
    original.inputs = {"-"};
    original.formats = {f};
    Result<Options> back = options_from_json(options_to_json(original));
    REQUIRE(back.ok());
    check_same_fields(*back, original);
  }
}

TEST_CASE("JSON reads like the command line: sizes as labels, format by name") {
  nlohmann::json j = nlohmann::json::parse(options_to_json(unusual_options()));
  CHECK(j["sizes"] == nlohmann::json::array({"48", "300x200", "1x100000"}));
  CHECK(j["formats"] == nlohmann::json::array({"avif", "webp"}));
  CHECK(j["name_template"] == "{dir}/{size}/{stem}-{width}x{height}.{ext}");
  CHECK(j["out_dir"] == "/tmp/thumbs out");
  CHECK(j["max_bytes"] == 123'456'789'012ULL);
}

TEST_CASE("options_from_json rejects malformed, incomplete, mistyped and out-of-range input") {
  const nlohmann::json good = nlohmann::json::parse(options_to_json(unusual_options()));
  auto with = [&good](const char* key, nlohmann::json value) {
    nlohmann::json j = good;
    j[key] = std::move(value);
    return j.dump();
  };
  nlohmann::json missing = good;
  missing.erase("quality");
  const std::string bad_inputs[] = {
      "",
      "not json",
      "{",
      "[]",
      "{}",
      "null",
      missing.dump(),
      with("quality", "85"),
      with("force", 1),
      with("sizes", "32"),
      with("sizes", nlohmann::json::array({"32", "0x5"})),
      with("sizes", nlohmann::json::array()),
      with("formats", nlohmann::json::array({"gif"})),
      with("formats", "jpeg"),
      with("formats", nlohmann::json::array()),
      with("name_template", "{nope}"),
      with("quality", 0),
      with("workers", -3),
      with("queue_mb", 1),
  };
  for (const std::string& input : bad_inputs) {
    CAPTURE(input);
    Result<Options> parsed = options_from_json(input);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == Code::kInvalidArgument);
    CHECK(parsed.status().message().starts_with("options JSON: "));
  }
}

TEST_CASE("a misspelled option is named, with the nearest valid spelling") {
  // Whatever its position, and whether or not a value follows, the unknown
  // option is what the message is about, never the list file.
  CHECK(parse_error({"--worker", "3", "urls.txt"}) == "unknown option --worker; did you mean --workers?");
  CHECK(parse_error({"urls.txt", "--wrkers=3"}) == "unknown option --wrkers; did you mean --workers?");
  CHECK(parse_error({"--sise", "64", "urls.txt"}) == "unknown option --sise; did you mean --sizes?");
  CHECK(parse_error({"--report", "r.jsonl", "--qualty", "80", "urls.txt"}) ==
        "unknown option --qualty; did you mean --quality?");
  CHECK(parse_error({"--frobnicate", "urls.txt"}) == "unknown option --frobnicate");
  CHECK(parse_error({"-x", "urls.txt"}) == "unknown option -x");
  // A value that looks like an option is the value of the option before it.
  CHECK(parse_ok({"--report", "--weird-name.jsonl", "urls.txt"}).report_path == "--weird-name.jsonl");
  // After "--" everything is LIST.
  CHECK(parse_ok({"--", "--worker"}).inputs == std::vector<std::string>{"--worker"});
}

// ---------------------------------------------------------------------------
// --max-decode-mb (issue 7 §4): the decode-memory estimate's limit, which also
// sizes each worker's hard memory limit.

TEST_CASE("--max-decode-mb: default 512, range 16-1048576, checked by hand and from JSON") {
  CHECK(Options{}.max_decode_mb == 512);
  CHECK(parse_ok({"--max-decode-mb", "16", "l"}).max_decode_mb == 16);
  CHECK(parse_ok({"--max-decode-mb=1048576", "l"}).max_decode_mb == 1048576);
  for (const char* bad : {"0", "15", "-1", "1048577", "lots", "0x40", "1.5"}) {
    CAPTURE(bad);
    const std::string error = parse_error({"--max-decode-mb", bad, "l"});
    CHECK(error.starts_with("--max-decode-mb: "));
    CHECK(contains(error, single_quoted(bad)));
  }
  Options o;
  o.inputs = {"l"};
  o.max_decode_mb = 8;
  CHECK(finalize_options(o).message().starts_with("--max-decode-mb: "));

  nlohmann::json j = nlohmann::json::parse(options_to_json(unusual_options()));
  CHECK(j["max_decode_mb"] == 96);
  j["max_decode_mb"] = 4;
  CHECK_FALSE(options_from_json(j.dump()).ok());
  j.erase("max_decode_mb");
  CHECK_FALSE(options_from_json(j.dump()).ok());
}

TEST_CASE("--max-decode-mb is listed in --help with its default") {
  const Run help = run({"--help"});
  CHECK(contains(help.out, "--max-decode-mb"));
  CHECK(contains(help.out, "default 512"));
}

TEST_CASE("--deny-private and --no-local: off by default, set by their flags") {
  const Options defaults = parse_ok({"list.txt"});
  CHECK_FALSE(defaults.deny_private);
  CHECK_FALSE(defaults.no_local);
  const Options set = parse_ok({"--deny-private", "--no-local", "list.txt"});
  CHECK(set.deny_private);
  CHECK(set.no_local);
}

TEST_CASE("--out s3://: a bucket prefix instead of a directory, always ending in /") {
  const Options local = parse_ok({"list.txt", "--out", "thumbs"});
  CHECK_FALSE(local.out_is_s3());
  CHECK(local.out_dir == "thumbs");
  CHECK(parse_ok({"list.txt", "--out", "s3://thumbs/t/"}).out_s3 == "s3://thumbs/t/");
  CHECK(parse_ok({"list.txt", "--out", "s3://thumbs/t"}).out_s3 == "s3://thumbs/t/");
  CHECK(parse_ok({"list.txt", "--out", "s3://thumbs"}).out_s3 == "s3://thumbs");
  Options o = parse_ok({"list.txt", "--out", "S3://thumbs/2026/x/"});
  CHECK(o.out_is_s3());
  CHECK(finalize_options(o).ok());
  Options bad = run({"list.txt", "--out", "s3://No_Such/t/"}).parsed.options;
  CHECK(bad.out_is_s3());
  CHECK_FALSE(finalize_options(bad).ok());
  const Options s3 = parse_ok({"list.txt", "--uploads", "4", "--upload-queue-mb", "16", "--upload-attempts", "2",
                               "--cache-control", "max-age=3600", "--s3-endpoint", "http://127.0.0.1:9",
                               "--s3-region", "eu-west-3", "--s3-path-style"});
  CHECK(s3.uploads == 4);
  CHECK(s3.upload_queue_mb == 16);
  CHECK(s3.upload_attempts == 2);
  CHECK(s3.cache_control == "max-age=3600");
  CHECK(s3.s3_flags.endpoint == "http://127.0.0.1:9");
  CHECK(s3.s3_flags.region == "eu-west-3");
  CHECK(s3.s3_flags.path_style);
}


/// The options of a command line that parses, not finalized yet.
Options parsed(std::vector<std::string> args) {
  Run result = run(std::move(args));
  REQUIRE_MESSAGE(result.parsed.error.empty(), result.parsed.error);
  return result.parsed.options;
}

TEST_CASE("--format takes several formats; sizes x formats is bounded") {
  CHECK(parse_ok({"--format", "webp,jpeg", "l"}).formats == std::vector<Format>{Format::kWebp, Format::kJpeg});
  CHECK(parse_ok({"--format", "webp,WEBP,jpg", "l"}).formats == std::vector<Format>{Format::kWebp, Format::kJpeg});
  CHECK(parse_error({"--format", "webp,gif", "l"}) == "--format: 'gif' is not one of jpeg, webp, png, avif");
  CHECK(parse_error({"--format", "webp,", "l"}).starts_with("--format: '' is not one of"));
  Options o = parsed({"--sizes", "1,2,3,4,5,6", "--format", "jpeg,webp,png", "l"});
  Status too_many = finalize_options(o);
  CHECK(too_many.code() == Code::kInvalidArgument);
  CHECK(too_many.message() == "--format: 6 sizes x 3 formats make 18 thumbnails per source, at most 16 are allowed");
  o = parsed({"--sizes", "1,2,3,4,5,6,7,8", "--format", "jpeg,webp", "l"});
  CHECK(finalize_options(o).ok());
  // The wire records hold every output of a source.
  CHECK(kMaxOutputs == kMaxOutputsPerSource);
}

TEST_CASE("--name is checked against the outputs it has to tell apart") {
  Options o = parsed({"--name", "{size}/{stem}.{ext}", "l"});
  CHECK(o.name_template == "{size}/{stem}.{ext}");
  CHECK(finalize_options(o).ok());
  o = parsed({"--name", "{stem}.{ext}", "l"});  // 3 sizes by default
  CHECK(finalize_options(o).message() == "--name: '{stem}.{ext}' has no {size}, but 3 sizes are made from each source");
  o = parsed({"--name", "{stem}_{size}.jpg", "--format", "jpeg,webp", "l"});
  CHECK(finalize_options(o).message() ==
        "--name: '{stem}_{size}.jpg' has no {ext}, but 2 formats are made from each source");
  o = parsed({"--name", "{stem}_{sise}.{ext}", "l"});
  CHECK(finalize_options(o).message().starts_with("--name: unknown placeholder {sise}"));
}

// ---------------------------------------------------------------------------
// Inputs (issue 9): several arguments, and --ext.

TEST_CASE("every argument is an input, kept in order, wherever the options are") {
  CHECK(parse_ok({"a.txt", "b.txt"}).inputs == std::vector<std::string>{"a.txt", "b.txt"});
  const Options o = parse_ok({"photos/", "--sizes", "64", "extra/a.jpg", "--out", "t", "-", "extra/b.png"});
  CHECK(o.inputs == std::vector<std::string>{"photos/", "extra/a.jpg", "-", "extra/b.png"});
  CHECK(o.sizes == std::vector<SizeSpec>{{64, 0}});
  CHECK(contains(parse_error({}), "a directory or image files"));
}

TEST_CASE("--ext: comma-separated, any case, a dot allowed, repeatable; never swallows an input") {
  CHECK(Options{}.extensions == default_image_extensions());
  CHECK(default_image_extensions() == std::vector<std::string>{"jpg", "jpeg", "jpe", "png", "webp", "gif", "tif",
                                                               "tiff", "avif", "heic", "heif", "jxl"});
  CHECK(parse_ok({"--ext", "JPG,.png", "photos"}).extensions == std::vector<std::string>{"jpg", "png"});
  const Options o = parse_ok({"--ext", "jpg", "photos", "--ext=webp,jpg"});
  CHECK(o.extensions == std::vector<std::string>{"jpg", "webp"});
  CHECK(o.inputs == std::vector<std::string>{"photos"});
  for (const std::string bad : {"", "tar.gz", "a/b", "j pg", "jpg,.", "jpg,x y"}) {
    CAPTURE(bad);
    CHECK(parse_error({"--ext", bad, "photos"}).starts_with("--ext: "));
  }
  Options by_hand;
  by_hand.inputs = {"l"};
  by_hand.extensions = {};
  CHECK(finalize_options(by_hand).message().starts_with("--ext: "));
  by_hand.extensions = {"JPG"};
  CHECK(finalize_options(by_hand).message().starts_with("--ext: "));
}

TEST_CASE("has_extension and names_an_image: the one rule for walks, arguments and S3 keys") {
  const std::vector<std::string> jpg_png = {"jpg", "png"};
  CHECK(has_extension("a/IMG_1.JPG", jpg_png));
  CHECK(has_extension("s3-key/with.dots.png", jpg_png));
  CHECK_FALSE(has_extension("a/b.jpeg", jpg_png));
  CHECK_FALSE(has_extension("a/.jpg", jpg_png));
  CHECK_FALSE(has_extension("jpg", jpg_png));
  CHECK_FALSE(has_extension("a.jpg/b", jpg_png));
  CHECK_FALSE(has_extension("a.xjpg", jpg_png));
  // A file named on the command line is an image by the default list or --ext.
  CHECK(names_an_image("photo.HEIC", {"png"}));
  CHECK(names_an_image("scan.bmp", {"bmp"}));
  CHECK_FALSE(names_an_image("urls.txt", {"png"}));
}

}  // namespace thumbmill
