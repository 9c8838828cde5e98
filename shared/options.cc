// finalize_options: the checks every Options passes, however it was made
// (the command line, JSON from the coordinator, or by hand): each integer in
// its range (kIntLimits, option_limits.h), the other fields sane, the sizes
// list not empty, valid and at most kMaxSizes different sizes.
#include "shared/options.h"

#include <algorithm>

#include "shared/option_limits.h"

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
  if (options.out_dir.empty()) return invalid_option("--out: the output directory is empty");
  if (known_format(options.format)) return Status::Ok();
  return invalid_option("--format: not a known format");
}

}  // namespace

Status finalize_options(Options& options) {
  if (Status fields = check_fields(options); !fields.ok()) return fields;
  return check_sizes(options.sizes);
}

}  // namespace thumbmill
