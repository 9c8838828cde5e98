// Resize: one source image in, every requested thumbnail out, encoded.
//
// The source is decoded once: shrink-on-load opens it at the largest
// requested size (libvips, or for a plain JPEG in memory libjpeg directly:
// worker/jpeg_decode.h), that small image is held in memory, and the smaller
// sizes are derived from it. Headers are checked before any pixel is
// decoded (pixel cap, decode memory, untrusted loaders), and a truncated or
// damaged file is an error, never a grey-padded thumbnail.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "shared/options.h"
#include "shared/status.h"
#include "worker/geometry.h"

namespace thumbmill {

/// What the resizer needs from Options.
struct ResizeSettings {
  std::vector<SizeSpec> sizes;
  // Each size is encoded in each, from the same resized image.
  std::vector<Format> formats = {Format::kJpeg};
  int quality = 85;
  std::uint64_t max_pixels = 100'000'000;
  // Refuse a decode estimated (worker/decode_estimate.h) above this.
  std::uint64_t max_decode_bytes = std::uint64_t{512} << 20;
  bool allow_untrusted_formats = false;
  // --fit, --crop, --upscale (worker/geometry.h).
  Geometry geometry;
  bool no_rotate = false;
  Profile profile = Profile::kSrgb;
  MetadataKeep keep;
  // Encoder knobs (worker/encode.h).
  bool progressive = false;
  bool optimize_coding = false;
  int effort = kDefaultEffort;
  bool lossless = false;
  // A plain JPEG in memory is decoded by libjpeg directly (worker/jpeg_decode.h);
  // false sends it through libvips' loader, as before, byte for byte the same
  // thumbnails (tests/resize_test.cc compares the two).
  bool decode_jpeg_directly = true;
  // Likewise a JPEG thumbnail without metadata is encoded by libjpeg
  // directly (worker/jpeg_encode.h); false: libvips' jpegsave.
  bool encode_jpeg_directly = true;
  // A plain 8-bit image in memory is resized by vips_resize with thumbnail's
  // shrinks, not through thumbnail_image (worker/resize.cc, plain_resize);
  // false: always thumbnail_image. The same bytes either way.
  bool resize_directly = true;

  static ResizeSettings From(const Options& options);
};

/// One encoded thumbnail.
struct EncodedThumbnail {
  SizeSpec size;               // the size it was asked for
  Format format = Format::kJpeg;
  int width = 0;               // what it came out as
  int height = 0;
  std::vector<std::byte> bytes;  // the encoded file
};

/// The source: bytes in memory (not copied; they must outlive the call), or a
/// file path when `path` is not empty.
struct ImageSource {
  std::span<const std::byte> bytes;
  std::string path;
};

/// Starts libvips for this process: one libvips thread, no operation cache,
/// untrusted loaders blocked unless allowed. Call once per process, after it
/// started (never before a fork); later calls return the first one's result.
/// kInternal with libvips's message if libvips cannot start.
[[nodiscard]] Status init_vips(const char* argv0, bool allow_untrusted_formats);

/// Makes every size in `settings.sizes`, in that order, each fitted as
/// settings.geometry says (worker/geometry.h), and each in every format of
/// `settings.formats`, in that order (sizes-major, as OutputPlan numbers
/// outputs): a size is resized once and encoded once per format. Without
/// --upscale a source smaller than a size comes out at its own size. Output
/// is 8-bit, sRGB unless settings.profile says otherwise (JPEG: alpha
/// flattened onto white), upright unless settings.no_rotate, stripped of
/// metadata but what settings.keep names, and the same input always gives
/// the same bytes.
/// Failures: kNotAnImage (empty, HTML, random bytes), kUntrustedFormat,
/// kTooManyPixels, kTooMuchMemory (the header says decoding would need more
/// than `settings.max_decode_bytes`; or, "out of memory: ...", an allocation
/// failed: is_out_of_memory in worker/decode_estimate.h), kCorruptImage
/// (truncated or damaged), kEncodeFailed;
/// kTooManyPixels also when --upscale would make an image over max_pixels;
/// kIoError when `source.path` cannot be opened; kInvalidArgument for an
/// empty or invalid size list.
/// REQUIRES: init_vips has run. Safe to call from several threads.
Result<std::vector<EncodedThumbnail>> make_thumbnails(const ImageSource& source,
                                                      const ResizeSettings& settings);

}  // namespace thumbmill
