// How much memory decoding one image takes, from what its header says, and
// the check against --max-decode-mb.
//
// libvips streams most decodes: a baseline JPEG is read in rows and shrunk
// on load (DCT scaling by 2, 4 or 8), a non-interlaced PNG or a TIFF in rows,
// so the cost is a band of rows, whatever the height. Some decodes hold the
// whole image: a progressive JPEG keeps every DCT coefficient (2 bytes a
// sample, at full size even when shrunk on load), an interlaced PNG its
// whole pixel buffer, GIF a full RGBA canvas, HEIF the whole decoded image.
// Bands and bit depth multiply it: a 0.8 MB, 98.9 MP 16-bit RGBA interlaced
// PNG cost one worker 884 MB.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <vips/vips.h>

#include "shared/status.h"

namespace thumbmill {

/// What the header says about one decode.
struct DecodeShape {
  int width = 0;   // as stored
  int height = 0;
  int bands = 3;
  int sample_bytes = 1;     // bytes of one band of one decoded pixel (1, 2, 4)
  bool has_alpha = false;   // libvips premultiplies in float before shrinking
  // The decoder holds the whole image before the first row comes out:
  // progressive, interlaced, GIF, HEIF.
  bool whole_image = false;
  // Bytes a pixel while whole, when not bands x sample_bytes (progressive
  // JPEG: 2 a component; GIF: a 4-byte RGBA canvas). 0: bands x sample_bytes.
  int whole_bytes_per_pixel = 0;
  int load_shrink = 1;   // shrink-on-load factor (JPEG DCT scaling), 1 if none
  // The largest thumbnail, as it is held in memory.
  int out_width = 0;
  int out_height = 0;
};

/// Bytes the decode is expected to need at its peak, above what the process
/// held before: the whole image when the decoder holds it, plus the band of
/// rows the shrink pipeline holds, plus the thumbnail. The row term is fitted
/// to peak RSS measured with libvips 8.14.1 (PNG, TIFF, WebP and JPEG, 2000
/// to 50000 pixels wide: at most 1024 rows of the loaded width plus 24 MiB);
/// it over-estimates wide 16-bit images by up to 3x and under-estimated none
/// of those, nor a 100 MP GIF, nor the 98.9 MP PNG and JPEG (HEIF was
/// not measured).
std::uint64_t estimate_decode_bytes(const DecodeShape& shape);

/// A DecodeShape read from a header, before the size is known.
struct DecodePlan {
  DecodeShape shape;
  bool shrinks_on_load = false;  // JPEG, WebP: load_shrink follows the size
  std::string_view layout;       // how it decodes, for the refusal message
};

/// What `header` (an image opened by a loader, no pixels decoded) says.
DecodePlan plan_decode(VipsImage* header);

/// Fails with kTooMuchMemory ("decoding needs about N MiB (...), over
/// --max-decode-mb M") when `plan`, scaled by `scale` to an out_width x
/// out_height thumbnail, is estimated to need more than `max_bytes`.
/// `linear`: libvips thumbnails in linear light, without shrink-on-load.
Status check_decode_plan(const DecodePlan& plan, double scale, bool linear, int out_width,
                         int out_height, std::uint64_t max_bytes);

/// kTooMuchMemory "out of memory: <detail>": an allocation failed while
/// decoding, as opposed to the estimate refusing the image up front.
Status out_of_memory(std::string_view detail);
bool is_out_of_memory(const Status& status);

/// Whether a libvips or decoder message says an allocation failed: libvips
/// ("out of memory --- size == 183MB"), libjpeg ("Insufficient memory (case
/// 4)"), libspng/libpng ("out of memory"), libheif ("Memory allocation
/// error"), GLib ("failed to allocate").
bool says_out_of_memory(std::string_view text);

}  // namespace thumbmill
