// The coordinator's command line: the CLI11 app (every flag, in groups, each
// checked by the value parsers of option_values.cc), the help text laid out
// for an 80-column terminal, and the "unknown option --worker; did you mean
// --workers?" hint. Never exits the process: parse_command_line says what
// happened and the caller decides.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <sstream>
#include <type_traits>

#include <CLI/CLI.hpp>

#include "shared/image_extensions.h"
#include "shared/option_limits.h"
#include "shared/options.h"
#include "shared/s3_location.h"

namespace thumbmill {

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

void add_input_options(CLI::App& app, Options& o) {
  app.add_option_function<std::vector<std::string>>(
         "--ext",
         [&o](const std::vector<std::string>& items) {
           o.extensions.clear();
           for (const std::string& item : items) {
             // CLI11 runs no transform on an empty value: checked here too.
             auto parsed = parse_extensions(item);
             if (!parsed.ok()) throw CLI::ValidationError("--ext: " + parsed.status().message());
             for (std::string& ext : *parsed)
               if (std::find(o.extensions.begin(), o.extensions.end(), ext) == o.extensions.end())
                 o.extensions.push_back(std::move(ext));
           }
         },
         "Extensions taken from a directory or an s3:// prefix, comma-separated, any case; may be "
         "repeated (default jpg jpeg jpe png webp gif tif tiff avif heic heif jxl)")
      ->type_name("LIST")
      ->delimiter(',')
      ->expected(1)
      ->allow_extra_args(false)  // "--ext jpg DIR" must leave DIR alone
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->transform(checked_by(parse_extensions))
      ->group("Input");
}

void add_output_options(CLI::App& app, Options& o) {
  const std::string group = "Output";
  app.add_option_function<std::string>(
         "--out",
         [&o](const std::string& out) {
           o.out_s3.clear();
           if (!is_s3_url(out)) {
             o.out_dir = out;
             return;
           }
           // s3://bucket/t and s3://bucket/t/ both mean the prefix "t/".
           o.out_s3 = out;
           if (o.out_s3.back() != '/' && o.out_s3.find('/', 5) != std::string::npos) o.out_s3 += '/';
         },
         "Directory for the thumbnails, created if missing, or s3://BUCKET/PREFIX/ to store them in a "
         "bucket (default ./thumbnails)")
      ->type_name("DIR|S3URL")
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
         "Thumbnail sizes, comma-separated: a width (keeps the aspect ratio, the height at most 4 "
         "times the width) or WIDTHxHEIGHT (fitted as --fit says); may be repeated (default 32,64,200)")
      ->type_name("LIST")
      ->delimiter(',')
      ->expected(1)
      ->allow_extra_args(false)  // "--sizes 32 LIST" must leave LIST alone
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->transform(checked_by(parse_size))
      ->group(group);
  app.add_option_function<std::string>(
         "--format", [&o](const std::string& names) { o.formats = *parse_formats(names); },
         "Output formats, comma-separated: jpeg (or jpg), webp, png, avif (default jpeg). Each size is "
         "written in each format, size by size. avif is the slow one: on a 12 MP photo about 2x jpeg's "
         "time at the default sizes, 5-7x at 1024 px")
      ->type_name("LIST")
      ->transform(checked_by(parse_formats))
      ->group(group);
  app.add_option("--name", o.name_template,
                 "Name of each thumbnail under --out, from {stem} {size} {width} {height} {ext} {hash} "
                 "{dir}, e.g. {size}/{stem}.{ext} (default {stem}_{size}.{ext}; one without {stem} or "
                 "{hash} gets _{hash} added)")
      ->type_name("TEMPLATE")
      ->group(group);
  add_int(app, o, kQuality, "Encoder quality for jpeg, webp and avif; png ignores it")->group(group);
  app.add_flag("--force", o.force, "Redo sources whose thumbnails already exist (default: skip them)")
      ->group(group);
  app.add_flag("--fsync", o.fsync, "fsync each thumbnail and its directory before renaming it into place")
      ->group(group);
}

/// --fit, --crop, --upscale, --keep, --no-rotate, --profile and the encoder
/// knobs (shared/image_options.h), in sharp's vocabulary.
void add_image_options(CLI::App& app, Options& o) {
  const std::string group = "Image";
  app.add_option_function<std::string>(
         "--fit", [&o](const std::string& v) { o.fit = *parse_fit(v); },
         "How a WIDTHxHEIGHT size is filled: inside (fit in the box, the default), cover (fill it, "
         "crop the overflow), fill (stretch to it), outside (cover it, no crop); width-only sizes "
         "ignore it")
      ->type_name("MODE")
      ->transform(checked_by(parse_fit))
      ->group(group);
  app.add_option_function<std::string>(
         "--crop", [&o](const std::string& v) { o.crop = *parse_crop(v); },
         "What --fit cover keeps: centre (the default), attention (the most interesting region) or "
         "entropy (the busiest)")
      ->type_name("MODE")
      ->transform(checked_by(parse_crop))
      ->group(group);
  app.add_flag("--upscale", o.upscale,
               "Enlarge sources smaller than the size (default: never; the file name says the size "
               "asked, the report the size made)")
      ->group(group);
  app.add_option_function<std::string>(
         "--keep", [&o](const std::string& v) { o.keep = *parse_keep(v); },
         "Metadata copied into thumbnails, comma-separated: exif, icc, xmp or all (default: none, "
         "thumbnails are stripped)")
      ->type_name("LIST")
      ->transform(checked_by(parse_keep))
      ->group(group);
  app.add_flag("--no-rotate", o.no_rotate,
               "Do not apply the EXIF orientation (default: thumbnails are turned upright)")
      ->group(group);
  app.add_option_function<std::string>(
         "--profile", [&o](const std::string& v) { o.profile = *parse_profile(v); },
         "Output colour: srgb (the default), keep (the source's colour space) or p3 (Display P3); "
         "keep and p3 embed the profile")
      ->type_name("SPACE")
      ->transform(checked_by(parse_profile))
      ->group(group);
  app.add_flag("--progressive", o.progressive, "JPEG: progressive (interlaced) scans")->group(group);
  app.add_flag("--optimize-coding", o.optimize_coding, "JPEG: optimised Huffman tables (smaller, slower)")
      ->group(group);
  app.add_option("--effort", o.effort,
                 "CPU spent for a smaller file: webp 0-6 (default 4), avif 0-9 (default 2); jpeg "
                 "and png ignore it")
      ->type_name("N")
      ->transform(checked_by([](std::string_view t) { return parse_int_in(t, kEffort); }))
      ->group(group);
  app.add_flag("--lossless", o.lossless, "WebP: lossless; AVIF: lossless 4:4:4 YCbCr, within one level (jpeg ignores it; png always is)")
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

void add_s3_options(CLI::App& app, Options& o) {
  const std::string group = "Object storage (S3)";
  app.add_option("--s3-endpoint", o.s3_flags.endpoint,
                 "S3 endpoint URL, e.g. http://127.0.0.1:9000 (default: $AWS_ENDPOINT_URL_S3, "
                 "$AWS_ENDPOINT_URL, endpoint_url in ~/.aws/config, else AWS)")
      ->type_name("URL")
      ->group(group);
  app.add_option("--s3-region", o.s3_flags.region,
                 "Region requests are signed for (default: $AWS_REGION, $AWS_DEFAULT_REGION, "
                 "~/.aws/config, else us-east-1)")
      ->type_name("REGION")
      ->group(group);
  app.add_flag("--s3-path-style", o.s3_flags.path_style,
               "Path-style URLs (ENDPOINT/BUCKET/KEY); the default for an IP address or localhost endpoint")
      ->group(group);
  add_int(app, o, kUploads, "Concurrent uploads to an --out bucket")->group(group);
  add_int(app, o, kUploadQueueMb, "MiB of shared memory holding thumbnails until they are uploaded")
      ->type_name("MB")
      ->group(group);
  add_int(app, o, kUploadAttempts, "Tries per upload when a failure may pass: connection errors, timeouts, 5xx, 429")
      ->group(group);
  app.add_option("--cache-control", o.cache_control, "Cache-Control stored with each thumbnail in a bucket")
      ->type_name("VALUE")
      ->group(group);
}

void add_queue_options(CLI::App& app, Options& o) {
  const std::string group = "Many machines (a batch in Redis)";
  app.add_option("--queue", o.queue_url,
                 "Share the batch named BATCH in Redis with coordinators on other machines: with "
                 "--enqueue add the inputs to it, with --status show its progress, with --report and "
                 "no --out write its report, and otherwise work on it until it is drained")
      ->type_name("redis://[:PASSWORD@]HOST[:PORT]/BATCH")
      ->group(group);
  app.add_flag("--enqueue", o.enqueue, "Add the inputs to the --queue batch (each source once) and exit")->group(group);
  app.add_flag("--status", o.batch_status, "Print the --queue batch's progress: counts, nodes, rate")->group(group);
  app.add_flag("--follow", o.follow, "Keep waiting for sources once the --queue batch is drained")->group(group);
  add_int(app, o, kClaimIdle, "Seconds a source may sit with a silent node before another node takes it over")
      ->type_name("S")
      ->group(group);
  add_int(app, o, kMaxDeliveries, "Nodes that may die holding one source before it fails as poison")->group(group);
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
  app.add_flag("-q,--quiet", o.quiet, "Print nothing but fatal errors: no progress, no failure lines, no summary")
      ->group(group);
  app.add_flag("-v,--verbose", o.verbose, "Also print a line for each source that ends well, with its thumbnails")
      ->group(group);
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

/// CLI11's layout, tightened for an 80-column terminal: the inputs shown as
/// required, one blank line between groups, descriptions wrapped.
class HelpFormatter : public CLI::Formatter {
 public:
  static constexpr std::size_t kNameColumns = 30, kTotalColumns = 80;

  HelpFormatter() { column_width(kNameColumns); }

  std::string make_help(const CLI::App* app, std::string, CLI::AppFormatMode) const override {
    std::string out = word_wrap(app->get_description(), kTotalColumns) + "\n\n";
    out += "Usage: " + app->get_name() + " [OPTIONS] LIST|DIR|IMAGE...\n";
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
    "Makes thumbnails of every image listed in LIST, found in DIR or named as IMAGE, downloading URLs, "
    "reading local files and S3 objects.";

constexpr const char* kFooter = R"(Arguments are read in order. A directory is walked recursively for files with
an --ext extension; symbolic links to directories are not followed, and links
to files only when they stay inside the tree. A file with an image extension is
a source itself; any other file is a LIST.

LIST has one source per line: an http:// or https:// URL, an s3://BUCKET/KEY
object, a file:// URL or a local path. Blank lines and lines starting with #
are skipped. Give - to read the list from standard input, or
s3://BUCKET/PREFIX/ to take every image under a prefix.

Each source becomes OUT/<name>_<size>.<ext>, e.g. thumbnails/cat_200.jpg, or
the object PREFIX<name>_<size>.<ext> with --out s3://BUCKET/PREFIX/. A source
that fails is reported and the run goes on with the others. S3 settings come
from the flags, then AWS_* variables, then ~/.aws/credentials and config.

Examples:
  coordinator urls.txt
  coordinator photos/ extra/*.jpg
  coordinator --ext jpg,png --out thumbs photos/
  coordinator --sizes 64,200x150 --format webp --out thumbs urls.txt
  find photos -name '*.jpg' | coordinator --workers 4 --report run.jsonl -
  coordinator s3://photos/2026/ --out s3://thumbs/t/

Many machines on one batch (Redis):
  coordinator --queue redis://HOST:6379/june urls.txt --enqueue
  coordinator --queue redis://HOST:6379/june --out s3://thumbs/t/  # each node
  coordinator --queue redis://HOST:6379/june --status
  coordinator --queue redis://HOST:6379/june --report june.jsonl)";

void build_app(CLI::App& app, Options& o) {
  app.formatter(std::make_shared<HelpFormatter>());
  app.footer(kFooter);
  // A repeated flag overrides the earlier one, as in most tools.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.set_version_flag("--version", "thumbmill 0.1.0", "Print the version and exit");
  app.add_option("LIST", o.inputs,
                 "Files of sources, one per line, - for standard input, directories or image files")
      ->type_name("")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  add_input_options(app, o);
  add_output_options(app, o);
  add_image_options(app, o);
  add_limit_options(app, o);
  add_download_options(app, o);
  add_processing_options(app, o);
  add_s3_options(app, o);
  add_queue_options(app, o);
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
    parsed.out_given = app.count("--out") > 0;
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
  if (!parsed.exit_now && parsed.error.empty() && parsed.options.inputs.empty() && parsed.options.queue_url.empty()) {
    parsed.error = "missing LIST: a file of sources, - for standard input, a directory or image files (see --help)";
  }
  return parsed;
}

}  // namespace thumbmill
