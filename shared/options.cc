// finalize_options: the checks every Options passes, however it was made
// (the command line, JSON from the coordinator, or by hand): each integer in
// its range (kIntLimits, option_limits.h), the other fields sane, the sizes
// list not empty, valid and at most kMaxSizes different sizes.
#include "shared/options.h"

#include <algorithm>
#include <utility>

#include "shared/name_template.h"
#include "shared/option_limits.h"
#include "shared/s3_location.h"

namespace thumbmill {

namespace {

Status check_sizes(std::vector<SizeSpec>& sizes) {
  if (sizes.empty()) return invalid_option("--sizes: no sizes given");
  std::vector<SizeSpec> unique;
  for (const SizeSpec& size : sizes) {
    // A hand-built SizeSpec is held to what parse_size accepts from its label.
    Result<SizeSpec> reparsed = parse_size(size.label());
    if (!reparsed.ok()) return invalid_option("--sizes: " + reparsed.status().message());
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
      return invalid_option(std::string(limit.flag) + ": " + parse_int_in(std::to_string(value), limit).status().message());
    }
  }
  if (options.max_bytes == 0) return invalid_option("--max-bytes: " + parse_byte_size("0").status().message());
  if (options.max_pixels == 0) return invalid_option("--max-pixels: " + parse_pixel_count("0").status().message());
  if (options.out_dir.empty() && !options.out_is_s3()) return invalid_option("--out: the output directory is empty");
  if (options.out_is_s3()) {
    auto out = parse_s3_url(options.out_s3);
    if (!out.ok()) return invalid_option("--out: " + out.status().message());
    if (!out->key.empty() && out->key.back() != '/') return invalid_option("--out: an S3 prefix must end in '/'");
  }
  if (options.extensions.empty()) return invalid_option("--ext: no extensions given");
  for (const std::string& ext : options.extensions) {
    auto parsed = parse_extensions(ext);
    if (!parsed.ok()) return invalid_option("--ext: " + parsed.status().message());
    if (parsed->size() != 1 || parsed->front() != ext) return invalid_option("--ext: '" + ext + "' is not lowercase without a dot");
  }
  for (char c : options.cache_control)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return invalid_option("--cache-control: a control character");
  if (options.queue_url.empty()) {
    for (auto [set, flag] : {std::pair{options.enqueue, "--enqueue"}, {options.batch_status, "--status"},
                             {options.follow, "--follow"}})
      if (set) return invalid_option(std::string(flag) + " needs --queue redis://HOST:PORT/BATCH");
  } else {
    if (options.enqueue && options.batch_status) return invalid_option("--enqueue and --status: one at a time");
    if (options.enqueue && options.inputs.empty())
      return invalid_option("--enqueue: name what to add (LIST, DIR, IMAGE or s3://BUCKET/PREFIX/)");
    if (!options.enqueue && !options.inputs.empty())
      return invalid_option("with --queue, sources are added with --enqueue; a node takes them from the batch "
                            "(drop '" + options.inputs.front() + "', or add --enqueue)");
  }
  if (options.formats.empty()) return invalid_option("--format: no format given");
  for (Format format : options.formats)
    if (!known_format(format)) return invalid_option("--format: not a known format");
  return Status::Ok();
}

/// Repeated formats dropped (first kept); sizes x formats bounded; the name
/// template valid for them.
Status check_outputs(Options& options) {
  std::vector<Format> unique;
  for (Format format : options.formats)
    if (std::find(unique.begin(), unique.end(), format) == unique.end()) unique.push_back(format);
  options.formats = std::move(unique);
  if (options.sizes.size() * options.formats.size() > kMaxOutputsPerSource)
    return too_many_outputs(options.sizes.size(), options.formats.size());
  auto name = NameTemplate::Parse(options.name_template);
  if (name.ok()) name = name->ForOutputs(options.sizes.size(), options.formats.size());
  return name.ok() ? Status::Ok() : name.status();
}

/// --effort is -1 (the format's default) or within the range of a format
/// that reads it: webp 0-6, avif 0-9 (jpeg and png ignore it).
Status check_effort(int effort, Format format) {
  const int max = format == Format::kWebp ? kMaxWebpEffort : kMaxAvifEffort;
  if (effort == kDefaultEffort || (effort >= 0 && effort <= max)) return Status::Ok();
  return invalid_option("--effort: " + std::to_string(effort) + " is out of range for " +
                        std::string(format_name(format)) + " (0-" + std::to_string(max) + ")");
}

Status check_image_options(const Options& options) {
  // A hand-built or cast enum may be none of the values.
  if (fit_name(options.fit) == "unknown") return invalid_option("--fit: not a known fit");
  if (crop_name(options.crop) == "unknown") return invalid_option("--crop: not a known crop");
  if (profile_name(options.profile) == "unknown") return invalid_option("--profile: not a known profile");
  // Within the widest range whatever the formats (jpeg and png ignore it),
  // and each format that reads it holds it to its own.
  if (Status st = check_effort(options.effort, Format::kAvif); !st.ok()) return st;
  for (Format format : options.formats) {
    if (format != Format::kWebp && format != Format::kAvif) continue;
    if (Status st = check_effort(options.effort, format); !st.ok()) return st;
  }
  return Status::Ok();
}

}  // namespace

Status finalize_options(Options& options) {
  if (Status fields = check_fields(options); !fields.ok()) return fields;
  if (Status sizes = check_sizes(options.sizes); !sizes.ok()) return sizes;
  if (Status image = check_image_options(options); !image.ok()) return image;
  return check_outputs(options);
}

}  // namespace thumbmill
