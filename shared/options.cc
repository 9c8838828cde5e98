// Options: the value parsers, the coordinator's command line (CLI11) and the
// JSON form handed to child processes (nlohmann::json).
//
// Every range lives in one table (kIntLimits) read by both the command-line
// validators and finalize_options, so a value from JSON or built by hand is
// held to the same rules as one typed by a user.
#include "shared/options.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <iostream>
#include <optional>
#include <sstream>
#include <span>
#include <stdexcept>
#include <thread>
#include <type_traits>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace thumbmill {
namespace {

Status invalid(std::string message) { return Status(Code::kInvalidArgument, std::move(message)); }

Status too_many_sizes(std::size_t count) {
  return invalid("--sizes: " + std::to_string(count) + " different sizes given, at most " +
                 std::to_string(kMaxSizes) + " are allowed");
}

std::string quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view trim_blanks(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

/// All of `text` as a base-10 number; nullopt otherwise. (CLI11's own
/// conversion reads "010" as octal and "0x10" as hex, so every number is
/// checked here and handed on in canonical form.)
template <class T>
std::optional<T> parse_decimal(std::string_view text) {
  T value{};
  const char* end = text.data() + text.size();
  auto [stop, error] = std::from_chars(text.data(), end, value);
  if (error != std::errc() || stop != end || text.empty()) return std::nullopt;
  return value;
}

// ---------------------------------------------------------------------------
// Ranges of the integer options.

struct IntLimit {
  std::string_view flag;
  int Options::*field;
  int min;
  int max;
};

constexpr IntLimit kQuality{"--quality", &Options::quality, 1, 100};
constexpr IntLimit kWorkers{"--workers", &Options::workers, 0, 4096};
constexpr IntLimit kDownloads{"--downloads", &Options::downloads, 1, 1024};
constexpr IntLimit kQueueMb{"--queue-mb", &Options::queue_mb, 8, 65536};
constexpr IntLimit kConnectTimeout{"--connect-timeout", &Options::connect_timeout_s, 1, 3600};
constexpr IntLimit kTransferTimeout{"--timeout", &Options::transfer_timeout_s, 1, 86400};
constexpr IntLimit kStallTimeout{"--stall-timeout", &Options::stall_timeout_s, 1, 3600};
constexpr IntLimit kMaxRedirects{"--max-redirects", &Options::max_redirects, 0, 100};
constexpr IntLimit kFetchAttempts{"--fetch-attempts", &Options::fetch_attempts, 1, 100};
constexpr IntLimit kJobTimeout{"--job-timeout", &Options::job_timeout_s, 1, 86400};
constexpr IntLimit kMaxDecodeMb{"--max-decode-mb", &Options::max_decode_mb, 16, 1 << 20};

constexpr IntLimit kIntLimits[] = {
    kQuality,      kWorkers,       kDownloads,     kQueueMb,       kConnectTimeout,
    kTransferTimeout, kStallTimeout, kMaxRedirects, kFetchAttempts, kJobTimeout,
    kMaxDecodeMb,
};

std::string range_text(const IntLimit& limit) {
  return std::to_string(limit.min) + "-" + std::to_string(limit.max);
}

Result<int> parse_int_in(std::string_view text, const IntLimit& limit) {
  std::optional<int> value = parse_decimal<int>(text);
  if (!value || *value < limit.min || *value > limit.max) {
    return invalid(quoted(text) + " is not an integer in " + range_text(limit));
  }
  return *value;
}

// ---------------------------------------------------------------------------
// Counts with unit suffixes ("100MB", "50MP").

struct Unit {
  std::string_view name;  // lowercase
  std::uint64_t factor;
};

constexpr std::uint64_t kKilo = 1000, kKibi = 1024;

constexpr Unit kByteUnits[] = {
    {"", 1},
    {"b", 1},
    {"k", kKilo},
    {"kb", kKilo},
    {"ki", kKibi},
    {"kib", kKibi},
    {"m", kKilo * kKilo},
    {"mb", kKilo * kKilo},
    {"mi", kKibi * kKibi},
    {"mib", kKibi * kKibi},
    {"g", kKilo * kKilo * kKilo},
    {"gb", kKilo * kKilo * kKilo},
    {"gi", kKibi * kKibi * kKibi},
    {"gib", kKibi * kKibi * kKibi},
    {"t", kKilo * kKilo * kKilo * kKilo},
    {"tb", kKilo * kKilo * kKilo * kKilo},
    {"ti", kKibi * kKibi * kKibi * kKibi},
    {"tib", kKibi * kKibi * kKibi * kKibi},
};

constexpr Unit kPixelUnits[] = {
    {"", 1},
    {"p", 1},
    {"k", kKilo},
    {"kp", kKilo},
    {"m", kKilo * kKilo},
    {"mp", kKilo * kKilo},
    {"g", kKilo * kKilo * kKilo},
    {"gp", kKilo * kKilo * kKilo},
};

/// "<digits>[blanks]<unit>" times the unit's factor; nullopt when malformed,
/// the unit is unknown, or the product overflows.
std::optional<std::uint64_t> parse_count(std::string_view text, std::span<const Unit> units) {
  text = trim_blanks(text);
  std::size_t digits = std::min(text.find_first_not_of("0123456789"), text.size());
  std::optional<std::uint64_t> number = parse_decimal<std::uint64_t>(text.substr(0, digits));
  if (!number) return std::nullopt;
  const std::string unit = lowercase(trim_blanks(text.substr(digits)));
  for (const Unit& candidate : units) {
    std::uint64_t product;
    if (candidate.name != unit) continue;
    if (__builtin_mul_overflow(*number, candidate.factor, &product)) return std::nullopt;
    return product;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Formats.

struct FormatInfo {
  Format format;
  std::string_view name;
  std::string_view extension;
};

constexpr FormatInfo kFormats[] = {
    {Format::kJpeg, "jpeg", "jpg"},
    {Format::kWebp, "webp", "webp"},
    {Format::kPng, "png", "png"},
    {Format::kAvif, "avif", "avif"},
};

const FormatInfo& info_of(Format format) {
  for (const FormatInfo& info : kFormats) {
    if (info.format == format) return info;
  }
  return kFormats[0];  // unreachable for a valid enum value
}

}  // namespace

// ---------------------------------------------------------------------------
// Value parsers.

std::string SizeSpec::label() const {
  std::string text = std::to_string(width);
  if (height != 0) text += "x" + std::to_string(height);
  return text;
}

Result<SizeSpec> parse_size(std::string_view text) {
  auto in_range = [](std::optional<int> n) { return n && *n >= 1 && *n <= kMaxSizeDimension; };
  const std::string_view trimmed = trim_blanks(text);
  const std::size_t x = trimmed.find_first_of("xX");
  const std::optional<int> width = parse_decimal<int>(trimmed.substr(0, x));
  std::optional<int> height;
  if (x != std::string_view::npos) height = parse_decimal<int>(trimmed.substr(x + 1));
  if (!in_range(width) || (x != std::string_view::npos && !in_range(height))) {
    return invalid(quoted(text) + " is not a width or WIDTHxHEIGHT (1-" +
                   std::to_string(kMaxSizeDimension) + ")");
  }
  return SizeSpec{*width, height.value_or(0)};
}

Result<std::uint64_t> parse_byte_size(std::string_view text) {
  std::optional<std::uint64_t> bytes = parse_count(text, kByteUnits);
  if (!bytes || *bytes == 0) {
    return invalid(quoted(text) + " is not a byte count of at least 1 (e.g. 1000000, 100MB, 64KiB)");
  }
  return *bytes;
}

Result<std::uint64_t> parse_pixel_count(std::string_view text) {
  std::optional<std::uint64_t> pixels = parse_count(text, kPixelUnits);
  if (!pixels || *pixels == 0) {
    return invalid(quoted(text) + " is not a pixel count of at least 1 (e.g. 100000000, 100M, 50MP)");
  }
  return *pixels;
}

Result<Format> parse_format(std::string_view text) {
  const std::string name = lowercase(text);
  for (const FormatInfo& info : kFormats) {
    // The extension doubles as an alias: "jpg".
    if (name == info.name || name == info.extension) return info.format;
  }
  return invalid(quoted(text) + " is not one of jpeg, webp, png, avif");
}

std::string_view format_name(Format format) { return info_of(format).name; }

std::string_view format_extension(Format format) { return info_of(format).extension; }

int default_worker_count() {
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  if (online < 1) online = static_cast<long>(std::thread::hardware_concurrency());
  // Clamped so that the default always passes finalize_options.
  return static_cast<int>(std::clamp<long>(online, 1, kWorkers.max));
}

// ---------------------------------------------------------------------------
// The command line.

namespace {

/// A CLI11 transform that runs `parse` (string_view -> Result<T>) on each
/// value, so that an error reads "--flag: <parse's message>". Numbers are
/// rewritten in canonical decimal for CLI11 to convert.
template <class Parse>
CLI::Validator checked_by(Parse parse) {
  return CLI::Validator(
      [parse](std::string& text) -> std::string {
        auto result = parse(text);
        if (!result.ok()) return result.status().message();
        using T = std::remove_cvref_t<decltype(result.value())>;
        if constexpr (std::is_integral_v<T>) text = std::to_string(result.value());
        return {};
      },
      /*validator_desc=*/"");
}

CLI::Option* add_int(CLI::App& app, Options& options, const IntLimit& limit, std::string help) {
  help += " (" + range_text(limit) + ", default " + std::to_string(options.*limit.field) + ")";
  return app.add_option(std::string(limit.flag), options.*limit.field, std::move(help))
      ->type_name("N")
      ->transform(checked_by([&limit](std::string_view t) { return parse_int_in(t, limit); }));
}

void add_output_options(CLI::App& app, Options& o) {
  const std::string group = "Output";
  app.add_option("--out", o.out_dir, "Directory for the thumbnails, created if missing (default ./thumbnails)")
      ->type_name("DIR")
      ->group(group);
  app.add_option_function<std::vector<std::string>>(
         "--sizes",
         [&o](const std::vector<std::string>& labels) {
           o.sizes.clear();
           for (const std::string& label : labels) {
             const SizeSpec size = *parse_size(label);
             if (std::find(o.sizes.begin(), o.sizes.end(), size) == o.sizes.end()) o.sizes.push_back(size);
           }
           // Refused where it is typed; finalize_options checks again.
           if (o.sizes.size() > kMaxSizes) throw CLI::ValidationError(too_many_sizes(o.sizes.size()).message());
         },
         "Thumbnail sizes, comma-separated: a width (keeps the aspect ratio) or WIDTHxHEIGHT "
         "(fits inside the box); may be repeated (default 32,64,200)")
      ->type_name("LIST")
      ->delimiter(',')
      ->expected(1)
      ->allow_extra_args(false)  // "--sizes 32 LIST" must leave LIST alone
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->transform(checked_by(parse_size))
      ->group(group);
  app.add_option_function<std::string>(
         "--format", [&o](const std::string& name) { o.format = *parse_format(name); },
         "Output format: jpeg (or jpg), webp, png or avif (default jpeg)")
      ->type_name("FORMAT")
      ->transform(checked_by(parse_format))
      ->group(group);
  add_int(app, o, kQuality, "Encoder quality for jpeg, webp and avif; png ignores it")->group(group);
  app.add_flag("--force", o.force, "Redo sources whose thumbnails already exist (default: skip them)")
      ->group(group);
  app.add_flag("--fsync", o.fsync, "fsync each thumbnail and its directory before renaming it into place")
      ->group(group);
}

void add_limit_options(CLI::App& app, Options& o) {
  const std::string group = "Limits";
  app.add_option("--max-bytes", o.max_bytes,
                 "Largest download or file accepted; K/M/G are powers of 1000, Ki/Mi/Gi of 1024 "
                 "(default 100MB)")
      ->type_name("SIZE")
      ->transform(checked_by(parse_byte_size))
      ->group(group);
  app.add_option("--max-pixels", o.max_pixels,
                 "Reject images whose header declares more pixels, before decoding them; e.g. 50MP "
                 "(default 100MP)")
      ->type_name("N")
      ->transform(checked_by(parse_pixel_count))
      ->group(group);
  add_int(app, o, kMaxDecodeMb,
          "Reject images whose decode would need more MiB than this (progressive JPEGs and "
          "interlaced PNGs decode whole); each worker process is held to 1.5 times it plus 128")
      ->type_name("MB")
      ->group(group);
  app.add_flag("--allow-untrusted-formats", o.allow_untrusted_formats,
               "Also load formats libvips does not trust with hostile input (svg, pdf, ...)")
      ->group(group);
  app.add_flag("--deny-private", o.deny_private,
               "Also refuse connections to loopback and private addresses (link-local and cloud "
               "metadata addresses are always refused)")
      ->group(group);
  app.add_flag("--no-local", o.no_local, "Refuse local sources in the list (file:// URLs and paths)")
      ->group(group);
}

void add_download_options(CLI::App& app, Options& o) {
  const std::string group = "Downloads";
  add_int(app, o, kDownloads, "Concurrent transfers")->group(group);
  add_int(app, o, kConnectTimeout, "Seconds to establish a connection")->type_name("S")->group(group);
  add_int(app, o, kTransferTimeout, "Seconds a whole transfer may take")->type_name("S")->group(group);
  add_int(app, o, kStallTimeout, "Abandon a transfer slower than 1 KiB/s for this many seconds")
      ->type_name("S")
      ->group(group);
  add_int(app, o, kMaxRedirects, "Redirects followed at most")->group(group);
  add_int(app, o, kFetchAttempts,
          "Tries per download when a failure may pass: connection errors, timeouts, 5xx, 429")
      ->group(group);
}

void add_processing_options(CLI::App& app, Options& o) {
  const std::string group = "Processing";
  add_int(app, o, kWorkers,
          "Resize workers, one per online CPU by default; 0 resizes sequentially in the "
          "threaded build")
      ->group(group);
  add_int(app, o, kQueueMb, "MiB of shared memory holding downloaded images until they are resized")
      ->group(group);
  add_int(app, o, kJobTimeout, "Seconds one resize may run; then it is killed, which counts as an attempt")
      ->type_name("S")
      ->group(group);
}

void add_reporting_options(CLI::App& app, Options& o) {
  const std::string group = "Reporting";
  app.add_option("--report", o.report_path, "Write one JSON object per source to FILE (JSON Lines)")
      ->type_name("FILE")
      ->group(group);
  // Two flags rather than CLI11's "--progress,!--no-progress", whose help
  // line reads badly; apply_progress_flags() lets the last one win.
  app.add_flag("--progress")
      ->description("Show a live progress line on standard error (default: when it is a terminal)")
      ->group(group);
  app.add_flag("--no-progress")->description("Do not show the progress line")->group(group);
  app.add_flag("-q,--quiet", o.quiet, "Print no progress and no summary")->group(group);
}

/// `text` broken at spaces into lines of at most `width` columns (a longer
/// word gets a line of its own).
std::string word_wrap(std::string_view text, std::size_t width) {
  std::string out;
  std::size_t line = 0;
  std::istringstream words{std::string(text)};
  for (std::string word; words >> word;) {
    if (line > 0 && line + 1 + word.size() > width) {
      out += '\n';
      line = 0;
    } else if (line > 0) {
      out += ' ';
      ++line;
    }
    out += word;
    line += word.size();
  }
  return out;
}

/// CLI11's layout, tightened for an 80-column terminal: LIST shown as
/// required, one blank line between groups, descriptions wrapped.
class HelpFormatter : public CLI::Formatter {
 public:
  static constexpr std::size_t kNameColumns = 30, kTotalColumns = 80;

  HelpFormatter() { column_width(kNameColumns); }

  std::string make_help(const CLI::App* app, std::string, CLI::AppFormatMode) const override {
    std::string out = word_wrap(app->get_description(), kTotalColumns) + "\n\n";
    out += "Usage: " + app->get_name() + " [OPTIONS] LIST\n";
    out += make_positionals(app);
    for (const std::string& group : app->get_groups()) {
      auto in_group = [&group](const CLI::Option* option) {
        return option->get_group() == group && option->nonpositional();
      };
      std::vector<const CLI::Option*> options = app->get_options(in_group);
      if (!options.empty()) out += make_group(group, false, options);
    }
    return out + "\n" + app->get_footer() + "\n";
  }

  std::string make_option_desc(const CLI::Option* option) const override {
    return word_wrap(option->get_description(), kTotalColumns - kNameColumns);
  }
};

constexpr const char* kDescription =
    "Makes thumbnails of every image listed in LIST, downloading URLs and reading local files.";

constexpr const char* kFooter = R"(LIST has one source per line: an http:// or https:// URL, a file:// URL or a
local path. Blank lines and lines starting with # are skipped. Give - to read
the list from standard input.

Each source becomes OUT/<name>_<size>.<ext>, e.g. thumbnails/cat_200.jpg. A
source that fails is reported and the run goes on with the others.

Examples:
  coordinator urls.txt
  coordinator --sizes 64,200x150 --format webp --out thumbs urls.txt
  find photos -name '*.jpg' | coordinator --workers 4 --report run.jsonl -)";

void build_app(CLI::App& app, Options& o) {
  app.formatter(std::make_shared<HelpFormatter>());
  app.footer(kFooter);
  // A repeated flag overrides the earlier one, as in most tools.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.set_version_flag("--version", "thumbmill 0.1.0", "Print the version and exit");
  app.add_option("LIST", o.list_path, "File of sources, one per line, or - for standard input")
      ->type_name("");
  add_output_options(app, o);
  add_limit_options(app, o);
  add_download_options(app, o);
  add_processing_options(app, o);
  add_reporting_options(app, o);
}

/// The last of --progress and --no-progress on the command line wins; with
/// neither, `progress` keeps its default.
void apply_progress_flags(const CLI::App& app, bool& progress) {
  for (const CLI::Option* option : app.parse_order()) {
    if (option->check_lname("progress")) progress = true;
    if (option->check_lname("no-progress")) progress = false;
  }
}

/// Levenshtein distance between two option names, for "did you mean".
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

/// When parsing failed: the first word of the command line that looks like an
/// option and names none, as "unknown option --worker; did you mean
/// --workers?" (the nearest name within a third of its length, at least 2
/// edits), so a typo is blamed on itself rather than on LIST. Words after an
/// option that takes a value, and everything after "--", are values. Empty
/// when every option word is known.
std::string unknown_option_message(const CLI::App& app, int argc, const char* const* argv) {
  struct Known {
    std::string name;
    bool takes_value;
  };
  std::vector<Known> known;
  for (const CLI::Option* option : app.get_options()) {
    const bool takes_value = option->get_items_expected_min() > 0 && !option->get_positional();
    for (const std::string& name : option->get_lnames()) known.push_back({"--" + name, takes_value});
    for (const std::string& name : option->get_snames()) known.push_back({"-" + name, takes_value});
  }
  for (int i = 1; i < argc; ++i) {
    const std::string_view word = argv[i];
    if (word == "--") break;
    if (word.size() < 2 || word[0] != '-' || std::isdigit(static_cast<unsigned char>(word[1]))) continue;
    const std::string name(word.substr(0, word.find('=')));
    auto it = std::find_if(known.begin(), known.end(), [&](const Known& k) { return k.name == name; });
    if (it != known.end()) {
      if (it->takes_value && name.size() == word.size()) ++i;  // its value is the next word
      continue;
    }
    const Known* nearest = nullptr;
    std::size_t best = std::max<std::size_t>(2, name.size() / 3) + 1;
    for (const Known& k : known) {
      if (k.name.size() < 3) continue;  // no "did you mean -h?"
      const std::size_t d = edit_distance(name, k.name);
      if (d < best) best = d, nearest = &k;
    }
    if (nearest) return "unknown option " + name + "; did you mean " + nearest->name + "?";
    return "unknown option " + name;
  }
  return {};
}

}  // namespace

ParsedCommandLine parse_command_line(int argc, const char* const* argv) {
  ParsedCommandLine parsed;
  parsed.options.progress = isatty(STDERR_FILENO) == 1;
  CLI::App app(kDescription, "coordinator");
  build_app(app, parsed.options);
  try {
    app.parse(argc, argv);
    apply_progress_flags(app, parsed.options.progress);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    parsed.exit_now = true;
  } catch (const CLI::CallForVersion& version) {
    std::cout << version.what() << '\n';
    parsed.exit_now = true;
  } catch (const CLI::ParseError& e) {
    parsed.error = unknown_option_message(app, argc, argv);
    if (parsed.error.empty()) parsed.error = e.what();
  }
  if (!parsed.exit_now && parsed.error.empty() && parsed.options.list_path.empty()) {
    parsed.error = "missing LIST: a file of sources, or - for standard input (see --help)";
  }
  return parsed;
}

// ---------------------------------------------------------------------------
// Checks after parsing.

namespace {

Status check_sizes(std::vector<SizeSpec>& sizes) {
  if (sizes.empty()) return invalid("--sizes: no sizes given");
  std::vector<SizeSpec> unique;
  for (const SizeSpec& size : sizes) {
    // A hand-built SizeSpec is held to what parse_size accepts from its label.
    Result<SizeSpec> reparsed = parse_size(size.label());
    if (!reparsed.ok()) return invalid("--sizes: " + reparsed.status().message());
    if (std::find(unique.begin(), unique.end(), size) == unique.end()) unique.push_back(size);
  }
  // Each size is one fixed OutputRecord in a worker's ResizeOutcome.
  if (unique.size() > kMaxSizes) return too_many_sizes(unique.size());
  sizes = std::move(unique);
  return Status::Ok();
}

Status check_fields(const Options& options) {
  for (const IntLimit& limit : kIntLimits) {
    const int value = options.*limit.field;
    if (value < limit.min || value > limit.max) {
      return invalid(std::string(limit.flag) + ": " + parse_int_in(std::to_string(value), limit).status().message());
    }
  }
  if (options.max_bytes == 0) return invalid("--max-bytes: " + parse_byte_size("0").status().message());
  if (options.max_pixels == 0) return invalid("--max-pixels: " + parse_pixel_count("0").status().message());
  if (options.out_dir.empty()) return invalid("--out: the output directory is empty");
  for (const FormatInfo& info : kFormats) {
    if (info.format == options.format) return Status::Ok();
  }
  return invalid("--format: not a known format");
}

}  // namespace

Status finalize_options(Options& options) {
  if (Status fields = check_fields(options); !fields.ok()) return fields;
  return check_sizes(options.sizes);
}

// ---------------------------------------------------------------------------
// JSON. Sizes travel as labels and the format as its name, so the JSON reads
// like the command line.

void to_json(nlohmann::json& j, const SizeSpec& size) { j = size.label(); }

void from_json(const nlohmann::json& j, SizeSpec& size) {
  Result<SizeSpec> parsed = parse_size(j.get<std::string>());
  if (!parsed.ok()) throw std::invalid_argument("sizes: " + parsed.status().message());
  size = *parsed;
}

void to_json(nlohmann::json& j, const Format& format) { j = format_name(format); }

void from_json(const nlohmann::json& j, Format& format) {
  Result<Format> parsed = parse_format(j.get<std::string>());
  if (!parsed.ok()) throw std::invalid_argument("format: " + parsed.status().message());
  format = *parsed;
}

// Strict: a field missing from the JSON is an error, so a coordinator and a
// child built from different sources cannot silently disagree.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Options, list_path, out_dir, sizes, format, quality, workers,
                                   downloads, queue_mb, max_bytes, max_pixels,
                                   max_decode_mb, allow_untrusted_formats, report_path, connect_timeout_s,
                                   transfer_timeout_s, stall_timeout_s, max_redirects,
                                   fetch_attempts, job_timeout_s, force, fsync, progress, quiet,
                                   deny_private, no_local)

std::string options_to_json(const Options& options) { return nlohmann::json(options).dump(); }

Result<Options> options_from_json(std::string_view json) {
  Options options;
  try {
    nlohmann::json::parse(json).get_to(options);
  } catch (const std::exception& e) {  // nlohmann::json::exception or std::invalid_argument
    return invalid(std::string("options JSON: ") + e.what());
  }
  if (Status status = finalize_options(options); !status.ok()) {
    return invalid("options JSON: " + status.message());
  }
  return options;
}

}  // namespace thumbmill
