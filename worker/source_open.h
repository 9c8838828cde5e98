// Opening a source for libvips and reading what its header says, before any
// pixel is decoded: the loader it would take (checked against the trust
// policy), the size (checked against --max-pixels) and how it decodes.
//
// Both kinds of source (bytes in memory, a file path) are wrapped in a
// VipsSource, so one code path sniffs, checks the header and decodes them;
// vips_source_new_from_memory does not copy the bytes.
//
// libvips 8.14.1 facts this leans on (checked on this machine):
// - vips_thumbnail_buffer/_source accept `fail_on` but never pass it to the
//   loader (libvips issue #5195); only the file form does. We pass it in the
//   loader's option string, which the source form does forward. Without it a
//   truncated JPEG comes out as a grey-padded "success".
// - vips_foreign_find_load_* still returns a loader that
//   vips_block_untrusted_set has blocked; the load then fails with
//   "<loader>: operation is blocked". The poppler loader even parses the PDF
//   before it checks the block. So untrusted loaders are refused here, by
//   their class flags, before any of them sees a byte.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include <vips/vips8>

#include "shared/status.h"
#include "worker/decode_estimate.h"
#include "worker/geometry.h"
#include "worker/resize.h"

namespace thumbmill {

// Passed to every loader through the option string (see the file comment).
// ERROR, not WARNING: it fails truncated and undecodable files, while
// warnings that many camera and editor JPEGs carry ("extraneous bytes before
// marker") and PNGs carry ("known incorrect sRGB profile") still pass.
// Entropy-coded JPEG damage that libjpeg recovers from is a warning too, so
// it passes as a visibly damaged thumbnail.
constexpr VipsFailOn kFailOn = VIPS_FAIL_ON_ERROR;
constexpr const char* kLoaderOptions = "fail_on=error";

/// What the header says, as far as decoding needs it.
struct SourceInfo {
  Dims stored;   // the size as stored
  Dims upright;  // the size once EXIF orientation is applied
  bool swap = false;  // upright turns stored a quarter
  // 8.14.1 thumbnail converts CMYK with its built-in profile and ignores an
  // embedded one (fixed in 8.14.2); only its linear path imports with the
  // embedded profile. Measured: default path off by 11 levels in green for
  // a SWOP-like profile, linear path within 3.
  bool cmyk_with_profile = false;
  // Whether colour management is needed at all: an embedded profile to
  // honour, or CMYK to convert. Building an lcms transform costs ~15% of a
  // 12 MP thumbnail, so untagged sRGB images (most photos) skip it.
  bool needs_colour_transform = false;
  // How it decodes, for the memory estimate once the largest size is known.
  DecodePlan plan;
  // A JPEG libjpeg can decode straight to 8-bit RGB or grey, with nothing
  // for colour management to do: worker/jpeg_decode.h's case.
  bool plain_jpeg = false;
};

/// A source opened for libvips, and its bytes when they are in memory.
struct OpenedSource {
  vips::VSource vips;
  std::span<const std::byte> bytes;  // empty when libvips reads the file
  std::vector<std::byte> held;       // a local file read whole: `bytes`
};

// A local JPEG up to this size is read whole, so that it decodes from
// memory (jpeg_decode.h), and libvips' loaders are not asked about a file
// name (some, openslide's among them, open the file again and again to
// answer). Larger files, and other formats, are read by libvips as before.
constexpr off_t kReadWholeJpegBytes = off_t{64} << 20;

/// `source` opened for libvips. A local JPEG of at most kReadWholeJpegBytes
/// is read whole; a missing or unreadable file fails with its errno.
Result<OpenedSource> open_source(const ImageSource& source);

/// The loader libvips would pick for `source`, checked against the trust
/// policy. A loader flagged untrusted is refused unless `allow_untrusted`,
/// and a blocked one always (the process blocked it in init_vips). No loader
/// at all: kNotAnImage naming what the bytes look like, or kCorruptImage
/// when they start like an image format.
Status check_loader(const vips::VSource& source, std::string_view origin, bool allow_untrusted);

/// Opens the header only (sequential access decodes no pixels). Fails with
/// kTooManyPixels when the declared size is over `max_pixels`.
Result<SourceInfo> check_header(const vips::VSource& source, std::uint64_t max_pixels, bool no_rotate);

}  // namespace thumbmill
