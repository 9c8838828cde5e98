// Options: every knob of a run and its default, in one struct (after
// LevelDB's options.h). The coordinator parses them from the command line;
// it hands them to its children as one JSON argument, so the downloader and
// the workers read exactly the values the coordinator validated.
//
// Defined in: option_values.cc (the value parsers), command_line.cc (CLI11
// and the help text), options.cc (finalize_options), options_json.cc (the
// JSON form); the ranges of the integer options are in option_limits.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "shared/aws_config.h"
#include "shared/image_extensions.h"
#include "shared/image_options.h"
#include "shared/status.h"

namespace thumbmill {

/// One requested thumbnail size: a width ("200", height 0: keep the aspect
/// ratio) or a box ("200x150": fit inside, keep the aspect ratio).
struct SizeSpec {
  int width = 0;
  int height = 0;  // 0: width only

  /// "200" or "200x150": the spelling used in option values and file names.
  std::string label() const;
  bool operator==(const SizeSpec&) const = default;
};

/// Most sizes one run may ask for.
inline constexpr std::size_t kMaxSizes = 8;

/// Most outputs per source, sizes x formats (each becomes one fixed
/// OutputRecord in the worker's ResizeOutcome, shared/wire.h).
inline constexpr std::size_t kMaxOutputsPerSource = 16;

/// Largest accepted width or height.
inline constexpr int kMaxSizeDimension = 100000;

/// Parses "200" or "200x150". Both numbers in [1, kMaxSizeDimension].
Result<SizeSpec> parse_size(std::string_view text);

/// Parses a byte count for --max-bytes: "1000000", "100MB", "100M", "64KiB".
/// K, M, G, T (with or without a trailing B) are powers of 1000; Ki, Mi, Gi,
/// Ti (with or without B) powers of 1024; units are case-insensitive. At
/// least 1; an overflowing value is an error.
Result<std::uint64_t> parse_byte_size(std::string_view text);

/// Parses a pixel count for --max-pixels: "100000000", "100M", "50MP",
/// "500K", "1G" (K, M, G: powers of 1000, optional trailing P). At least 1.
Result<std::uint64_t> parse_pixel_count(std::string_view text);

enum class Format { kJpeg, kWebp, kPng, kAvif };

/// "jpeg" -> kJpeg, ...; also accepts "jpg".
Result<Format> parse_format(std::string_view text);
/// "webp,jpeg" -> {kWebp, kJpeg}: one or more formats, comma-separated,
/// repeats dropped (the first kept).
Result<std::vector<Format>> parse_formats(std::string_view text);
std::string_view format_name(Format format);
/// File name extension without the dot: "jpg", "webp", "png", "avif".
std::string_view format_extension(Format format);

/// The number of online CPUs, at least 1: the default for Options::workers.
int default_worker_count();


struct Options {
  /// Whether thumbnails go to a bucket (--out s3://...).
  bool out_is_s3() const { return !out_s3.empty(); }

  // What to make thumbnails of, in order, as given on the command line: a
  // LIST file, "-" (standard input), s3://bucket/prefix/, a directory
  // (walked) or an image file (coordinator/inputs.h). At least one.
  std::vector<std::string> inputs;
  // The extensions a walk and an S3 prefix take, lowercase, without dots
  // (--ext). Default: default_image_extensions() (shared/image_extensions.h)
  std::vector<std::string> extensions = default_image_extensions();

  // Where thumbnails go, created if missing.
  // Default: ./thumbnails
  std::filesystem::path out_dir = "thumbnails";
  // Where thumbnails go instead when --out names a bucket: "s3://bucket/prefix/"
  // (a prefix always ends in '/', or is empty). Set: workers encode into the
  // upload queue and the uploader stores them; out_dir is not used.
  // Default: "" (a local directory)
  std::string out_s3;

  // Sizes to make from every source, in the order given.
  // Default: widths 32, 64 and 200, keeping the aspect ratio.
  std::vector<SizeSpec> sizes = {{32, 0}, {64, 0}, {200, 0}};

  // Formats to write each size in, in the order given (--format webp,jpeg).
  // A source's outputs are sizes x formats, sizes-major: size 1 in every
  // format, then size 2, ... (OutputPlan). At most kMaxOutputsPerSource.
  // Default: jpeg
  std::vector<Format> formats = {Format::kJpeg};

  // --name: the name of each output under --out (shared/name_template.h).
  // Default: "{stem}_{size}.{ext}"
  std::string name_template = "{stem}_{size}.{ext}";

  // Encoder quality, 1-100 (jpeg, webp, avif); ignored for png.
  // Default: 85
  int quality = 85;

  // Image options (shared/image_options.h). All of them change the bytes
  // made, so each is in options_fingerprint (shared/manifest.cc).
  // How a WIDTHxHEIGHT size is filled; width-only sizes ignore it.
  // Default: inside
  Fit fit = Fit::kInside;
  // The part --fit cover keeps. Default: centre
  Crop crop = Crop::kCentre;
  // Enlarge a source smaller than the size asked. Default: false
  bool upscale = false;
  // Metadata copied into thumbnails. Default: none (stripped)
  MetadataKeep keep;
  // Leave the EXIF orientation unapplied. Default: false (applied)
  bool no_rotate = false;
  // Output colour space. Default: srgb
  Profile profile = Profile::kSrgb;
  // JPEG: progressive scans; optimised Huffman tables. Default: false, false
  bool progressive = false;
  bool optimize_coding = false;
  // WebP 0-6, AVIF 0-9 (CPU spent for a smaller file); ignored for jpeg and
  // png. Default: kDefaultEffort (webp 4, avif 2)
  int effort = kDefaultEffort;
  // WebP: lossless; AVIF: lossless coding of 4:4:4 YCbCr (pixels within one
  // level); ignored for jpeg and png. Default: false
  bool lossless = false;

  // Resize worker processes (threads in the threaded build). 0 is kept as
  // given: the threaded build reads it as "resize sequentially".
  // Default: the number of online CPUs (default_worker_count()).
  int workers = default_worker_count();

  // Concurrent transfers in the downloader.
  // Default: 16
  int downloads = 16;

  // Size of the shared byte arena that holds downloaded bodies, in MiB.
  // Default: 64. Room for every transfer in flight (16 photos of 4 MB) and
  // a backlog; a larger arena only runs further ahead of the workers, and
  // each page it touches is allocated, zeroed and freed once per run
  // (README, "Where the time went": 256 cost 0.09 s more CPU over 200
  // photos, for nothing).
  int queue_mb = 64;

  // A body larger than this fails with "too large", with or without a
  // Content-Length. Default: 100 MB
  std::uint64_t max_bytes = 100'000'000;

  // An image whose header declares more pixels than this is rejected before
  // it is decoded. Default: 100 megapixels
  std::uint64_t max_pixels = 100'000'000;

  // An image whose decode the header says would need more memory than this,
  // in MiB, is rejected before it is decoded (progressive JPEGs and
  // interlaced PNGs decode whole). Each worker process is also held to a hard
  // limit derived from it (shared/memory_bound.h). Default: 512
  int max_decode_mb = 512;

  // Allow loaders libvips does not trust with hostile input (svg, pdf,
  // magick, ...). Default: false
  bool allow_untrusted_formats = false;

  // Also refuse connections to loopback and private addresses (link-local
  // and cloud metadata addresses are refused always). Default: false
  bool deny_private = false;
  // Refuse local sources (file:// URLs and paths) in the list. Default: false
  bool no_local = false;

  // One JSON object per source is written here when set. Default: none
  std::string report_path;

  // Seconds to establish a connection. Default: 10
  int connect_timeout_s = 10;
  // Seconds a whole transfer may take. Default: 120
  int transfer_timeout_s = 120;
  // A transfer slower than 1 KiB/s for this many seconds is abandoned.
  // Default: 15
  int stall_timeout_s = 15;
  // Redirects followed at most. Default: 5
  int max_redirects = 5;
  // Tries per download for failures that can succeed later (connection
  // errors, timeouts, 5xx, 429). Default: 3
  int fetch_attempts = 3;

  // A resize job running longer than this is killed (it counts as an
  // attempt). Default: 60
  int job_timeout_s = 60;

  // Concurrent PUTs in the uploader (an --out bucket only).
  // Default: 16
  int uploads = 16;
  // Size of the shared byte arena holding encoded thumbnails until they are
  // stored, in MiB (an --out bucket only; workers wait when it is full).
  // Default: 64
  int upload_queue_mb = 64;
  // Tries per PUT for failures that can succeed later (connection errors,
  // timeouts, 5xx, 429). Default: 5
  int upload_attempts = 5;
  // Cache-Control stored with each thumbnail in a bucket. Default: none
  std::string cache_control;
  // --s3-endpoint, --s3-region, --s3-path-style as given.
  S3Flags s3_flags;
  // Where S3 requests go and who signs them: resolved by the coordinator
  // (resolve_s3_settings: flags, environment, profile files) and handed to
  // the children with the rest of the options (never in argv).
  // Default: AWS, us-east-1, anonymous
  S3Settings s3;

  // The distributed mode (coordinator/redis_batch.h): a batch in Redis that
  // coordinators on many machines share.
  // --queue redis://[:PASSWORD@]HOST[:PORT]/BATCH. Default: "" (no batch:
  // the inputs are this run's sources)
  std::string queue_url;
  // --enqueue: add the inputs to the batch and exit. Default: false
  bool enqueue = false;
  // --status: print the batch's progress and exit. Default: false
  bool batch_status = false;
  // --follow: a node keeps waiting for sources once the batch is drained.
  // Default: false
  bool follow = false;
  // --claim-idle: seconds a source may sit with a silent node before
  // another node takes it over. Default: 60
  int claim_idle_s = 60;
  // --max-deliveries: nodes that may die holding one source before it
  // fails as poison. Default: 3
  int max_deliveries = 3;

  // Redo sources whose thumbnails already exist. Default: false (skip them)
  bool force = false;

  // fsync each thumbnail and its directory before renaming it into place.
  // Default: false (rename alone already hides half-written files)
  bool fsync = false;

  // Live progress line on standard error.
  // Default: on when standard error is a terminal (parse_command_line checks;
  // a default-constructed Options has false).
  bool progress = false;
  // Nothing on standard error but fatal errors: no progress, no line per
  // failed source, no summary (the exit code still tells). Wins over
  // verbose. Default: false
  bool quiet = false;
  // A line on standard error for every source that ends well too (its
  // thumbnails), not only for failures. Default: false
  bool verbose = false;
};

/// The result of reading the command line.
struct ParsedCommandLine {
  Options options;
  bool exit_now = false;  // --help or --version was answered
  bool out_given = false;  // --out was on the command line
  int exit_code = 0;
  /// Set when parsing failed: names the bad flag or value.
  std::string error;
};

/// Parses the coordinator's command line with CLI11. Never exits the process:
/// --help prints the help to standard output and --version prints
/// "thumbmill 0.1.0", both with exit_now set and exit_code 0; any other
/// failure sets `error` to one line naming the flag and the bad value
/// (--sizes with more than kMaxSizes different sizes included). The result is not finalized yet: call finalize_options next.
ParsedCommandLine parse_command_line(int argc, const char* const* argv);

/// Checks what CLI11's validators cannot, and everything again for Options
/// built by hand or read from JSON: every field in its range, the sizes list
/// not empty and at most kMaxSizes different sizes, at most
/// kMaxOutputsPerSource sizes x formats, --name valid for them. Drops repeated sizes and formats, keeping the first of each in the user's
/// order. Keeps workers == 0. Idempotent. Returns kInvalidArgument naming the
/// flag otherwise.
Status finalize_options(Options& options);

/// The JSON handed to child processes, and back: one object with every field
/// (sizes as labels, format as its name). options_from_json requires every
/// field, then runs finalize_options; kInvalidArgument on malformed JSON, a
/// missing or mistyped field, or a value out of range.
std::string options_to_json(const Options& options);
Result<Options> options_from_json(std::string_view json);

}  // namespace thumbmill
