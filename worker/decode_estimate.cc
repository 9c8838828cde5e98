// The decode-memory estimate. See decode_estimate.h for the model and where
// its figures come from.
#include "worker/decode_estimate.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace thumbmill {
namespace {

constexpr std::uint64_t kMiB = 1 << 20;
// Fitted (see the header): what the shrink pipeline holds besides its rows,
// and how many rows of the loaded width it holds at most.
constexpr std::uint64_t kPipelineBase = 24 * kMiB;
constexpr std::uint64_t kPipelineRows = 1024;

constexpr std::string_view kOutOfMemoryPrefix = "out of memory: ";

std::uint64_t u64(int value) { return value > 0 ? static_cast<std::uint64_t>(value) : 0; }

/// The JPEG shrink-on-load factor libvips 8.14 thumbnail picks for `scale`:
/// a block shrink to above the target, leaving a factor of two for the
/// final resize; none in linear mode (it would shrink in gamma space).
int load_shrink_for(double scale, bool linear) {
  const double factor = scale > 0 ? 1.0 / scale : 1.0;
  if (linear) return 1;
  if (factor >= 16) return 8;
  if (factor >= 8) return 4;
  if (factor >= 4) return 2;
  return 1;
}

}  // namespace

std::uint64_t estimate_decode_bytes(const DecodeShape& shape) {
  const std::uint64_t pixels = u64(shape.width) * u64(shape.height);
  const std::uint64_t pixel_bytes = u64(shape.bands) * u64(shape.sample_bytes);
  std::uint64_t whole = 0;
  if (shape.whole_image) {
    whole = pixels * (shape.whole_bytes_per_pixel > 0 ? u64(shape.whole_bytes_per_pixel) : pixel_bytes);
  }
  const std::uint64_t shrink = u64(std::max(shape.load_shrink, 1));
  const std::uint64_t loaded_width = (u64(shape.width) + shrink - 1) / shrink;
  const std::uint64_t loaded_height = (u64(shape.height) + shrink - 1) / shrink;
  // With alpha, libvips premultiplies and shrinks in float (4 bytes a band).
  const std::uint64_t row_bytes =
      loaded_width * u64(shape.bands) * (shape.has_alpha ? 4 : u64(shape.sample_bytes));
  const std::uint64_t rows = kPipelineBase + row_bytes * std::min(loaded_height, kPipelineRows);
  // The thumbnail, and its copy while it is encoded.
  const std::uint64_t out = 2 * u64(shape.out_width) * u64(shape.out_height) * pixel_bytes;
  return whole + rows + out;
}

DecodePlan plan_decode(VipsImage* header) {
  const char* loader = nullptr;
  if (vips_image_get_typeof(header, VIPS_META_LOADER) != 0) {
    vips_image_get_string(header, VIPS_META_LOADER, &loader);
  }
  // "jpegload_source" -> "jpeg"
  const std::string_view nickname = loader ? loader : "";
  const std::string_view format = nickname.substr(0, nickname.find("load"));
  int interlaced = 0;
  if (vips_image_get_typeof(header, "interlaced") != 0) vips_image_get_int(header, "interlaced", &interlaced);

  DecodePlan plan;
  DecodeShape& shape = plan.shape;
  shape.width = vips_image_get_width(header);
  shape.height = vips_image_get_height(header);
  shape.bands = vips_image_get_bands(header);
  shape.sample_bytes = static_cast<int>(vips_format_sizeof(vips_image_get_format(header)));
  shape.has_alpha = vips_image_hasalpha(header) != 0;
  plan.shrinks_on_load = format == "jpeg" || format == "webp";
  plan.layout = "decoded in rows";
  if (format == "jpeg" && interlaced) {
    // libjpeg keeps every DCT coefficient (a 16-bit JCOEF) of every
    // component until the last scan, whatever the output scale.
    shape.whole_image = true;
    shape.whole_bytes_per_pixel = 2 * shape.bands;
    plan.layout = "progressive JPEG, decoded whole";
  } else if (interlaced) {
    shape.whole_image = true;
    plan.layout = "interlaced, decoded whole";
  } else if (format == "gif") {
    shape.whole_image = true;
    shape.whole_bytes_per_pixel = 4;  // the decoder's RGBA canvas
    plan.layout = "GIF, decoded whole";
  } else if (format == "heif") {
    shape.whole_image = true;
    plan.layout = "HEIF, decoded whole";
  }
  return plan;
}

Status check_decode_plan(const DecodePlan& plan, double scale, bool linear, int out_width,
                         int out_height, std::uint64_t max_bytes) {
  DecodeShape shape = plan.shape;
  shape.load_shrink = plan.shrinks_on_load ? load_shrink_for(scale, linear) : 1;
  shape.out_width = out_width;
  shape.out_height = out_height;
  const std::uint64_t needed = estimate_decode_bytes(shape);
  if (needed <= max_bytes) return Status::Ok();
  char message[200];
  std::snprintf(message, sizeof message,
                "decoding needs about %llu MiB (%dx%d, %d bands of %d bits, %.*s), over "
                "--max-decode-mb %llu",
                static_cast<unsigned long long>((needed + kMiB - 1) / kMiB), shape.width, shape.height,
                shape.bands, 8 * shape.sample_bytes, static_cast<int>(plan.layout.size()),
                plan.layout.data(), static_cast<unsigned long long>(max_bytes / kMiB));
  return Status(Code::kTooMuchMemory, message);
}

Status out_of_memory(std::string_view detail) {
  return Status(Code::kTooMuchMemory, std::string(kOutOfMemoryPrefix) + std::string(detail));
}

bool is_out_of_memory(const Status& status) {
  return status.code() == Code::kTooMuchMemory && status.message().starts_with(kOutOfMemoryPrefix);
}

bool says_out_of_memory(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (std::string_view marker : {"out of memory", "insufficient memory", "memory allocation",
                                  "failed to allocate", "cannot allocate"}) {
    if (lower.find(marker) != std::string::npos) return true;
  }
  return false;
}

}  // namespace thumbmill
