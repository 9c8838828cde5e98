// Encode: one thumbnail, already at its size, into the bytes of a file:
// 8-bit, the metadata --keep names (or none), the encoder knobs of
// ResizeSettings. The same pixels and settings always give the same bytes.
#pragma once

#include <cstddef>
#include <vector>

#include <vips/vips8>

#include "worker/resize.h"

namespace thumbmill {

/// Whether the thumbnail carries any metadata: what --keep names, and the
/// colour profile whenever the pixels are not sRGB (--profile keep or p3;
/// without it they would be read as sRGB, wrongly).
bool keeps_metadata(const ResizeSettings& settings);

/// `image` encoded in `format` (one of settings.formats). Throws vips::VError.
/// libvips 8.14 savers know only strip=true/false (no `keep=`): to keep a
/// subset, the fields not kept are removed from a copy before saving (always:
/// the 8.14.1 WebP saver writes EXIF even with strip=true). When
/// anything is kept, the JPEG saver also writes a minimal EXIF block
/// (orientation, resolution) even without --keep exif; the WebP saver writes
/// one always, so its EXIF chunk is cut out of the file unless --keep exif.
std::vector<std::byte> encode_image(const vips::VImage& image, Format format, const ResizeSettings& settings);

}  // namespace thumbmill
