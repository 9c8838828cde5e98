// The JSON form of Options handed to child processes, and back
// (nlohmann::json). Sizes travel as labels and the format as its name, so
// the JSON reads like the command line.
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "shared/option_limits.h"
#include "shared/options.h"

namespace thumbmill {

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

// The image options travel by name, as typed on the command line.
#define THUMBMILL_NAMED_JSON(Type, parse, name)                                          \
  void to_json(nlohmann::json& j, const Type& value) { j = name(value); }              \
  void from_json(const nlohmann::json& j, Type& value) {                               \
    Result<Type> parsed = parse(j.get<std::string>());                                 \
    if (!parsed.ok()) throw std::invalid_argument(#Type ": " + parsed.status().message()); \
    value = *parsed;                                                                   \
  }
THUMBMILL_NAMED_JSON(Fit, parse_fit, fit_name)
THUMBMILL_NAMED_JSON(Crop, parse_crop, crop_name)
THUMBMILL_NAMED_JSON(Profile, parse_profile, profile_name)
THUMBMILL_NAMED_JSON(MetadataKeep, parse_keep, keep_name)
#undef THUMBMILL_NAMED_JSON

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(S3Flags, endpoint, region, path_style)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(S3Settings, endpoint, region, path_style, access_key_id, secret_access_key,
                                   session_token)

// Strict: a field missing from the JSON is an error, so a coordinator and a
// child built from different sources cannot silently disagree.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Options, inputs, extensions, out_dir, sizes, formats, name_template, quality, workers,
                                   downloads, queue_mb, max_bytes, max_pixels,
                                   max_decode_mb, allow_untrusted_formats, report_path, connect_timeout_s,
                                   transfer_timeout_s, stall_timeout_s, max_redirects,
                                   fetch_attempts, job_timeout_s, force, fsync, progress, quiet, verbose,
                                   deny_private, no_local, out_s3, uploads, upload_queue_mb,
                                   upload_attempts, cache_control, s3_flags, s3, fit, crop, upscale,
                                   keep, no_rotate, profile, progressive, optimize_coding, effort,
                                   lossless, queue_url, enqueue, batch_status, follow,
                                   claim_idle_s, max_deliveries)

std::string options_to_json(const Options& options) { return nlohmann::json(options).dump(); }

Result<Options> options_from_json(std::string_view json) {
  Options options;
  try {
    nlohmann::json::parse(json).get_to(options);
  } catch (const std::exception& e) {  // nlohmann::json::exception or std::invalid_argument
    return invalid_option(std::string("options JSON: ") + e.what());
  }
  if (Status status = finalize_options(options); !status.ok()) {
    return invalid_option("options JSON: " + status.message());
  }
  return options;
}

}  // namespace thumbmill
