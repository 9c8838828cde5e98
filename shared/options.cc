// finalize_options: the checks every Options passes, however it was made
// (the command line, JSON from the coordinator, or by hand): each integer in
// its range (kIntLimits, option_limits.h), the other fields sane, the sizes
// list not empty, valid and at most kMaxSizes different sizes.
#include "shared/options.h"

#include <algorithm>

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
  for (char c : options.cache_control)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return invalid_option("--cache-control: a control character");
  if (known_format(options.format)) return Status::Ok();
  return invalid_option("--format: not a known format");
}

/// --effort is -1 (the format's default) or within the range of the format
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
  return check_effort(options.effort, options.format);
}

}  // namespace

Status finalize_options(Options& options) {
  if (Status fields = check_fields(options); !fields.ok()) return fields;
  if (Status image = check_image_options(options); !image.ok()) return image;
  return check_sizes(options.sizes);
}

}  // namespace thumbmill
