// The common decode, a JPEG in memory shrunk on load, done by libjpeg-turbo
// directly instead of through libvips' JPEG loader.
//
// Why: libvips 8.14 feeds libjpeg from a 4 KiB buffer it refills, and
// libjpeg-turbo's fast Huffman decoder runs only while a whole MCU's worth of
// input (512 bytes a block) is buffered, so most MCUs took the slow decoder;
// and each decode ran on a libvips pool thread, strip by strip, with a
// futex hand-off per strip. Given the whole body at once, libjpeg decodes
// every MCU on the fast path, in the calling thread.
//
// What stays libvips': which loader, the header and its metadata (EXIF,
// resolution, orientation), every check made on it, the resize, the colour
// handling and the encoders. The pixels are libjpeg's with the settings
// libvips uses (its defaults, the same DCT scaling, rows cropped to
// floor(size / shrink) as libvips crops them), so thumbnails are
// byte-identical to those of the loader path; tests/resize_test.cc checks it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include <vips/vips8>

#include "shared/status.h"
#include "worker/geometry.h"

namespace thumbmill {

/// The shrink-on-load factor (1, 2, 4 or 8) vips_thumbnail 8.14 picks for a
/// JPEG stored as `stored` and asked for `box`; `swap` when the image will
/// be turned a quarter (EXIF orientation 5-8, auto-rotation on). A copy of
/// vips_thumbnail_find_jpegshrink and vips_thumbnail_calculate_shrink
/// (non-linear mode), so both paths decode at the same scale.
int thumbnail_jpeg_shrink(Dims stored, bool swap, const ThumbnailBox& box);

/// `jpeg` decoded at 1/`shrink` into memory, with `header`'s fields and
/// metadata: `header` is libvips' jpegload of the same bytes with the same
/// shrink, opened but not decoded. libjpeg's errors fail it, and so do 100
/// warnings or input that ends early, as libvips' loader does with
/// fail_on=error: kCorruptImage "corrupt image: <libjpeg's message>".
/// The caller has checked that the header's output is 8-bit, one or three
/// bands (not CMYK).
Result<vips::VImage> decode_jpeg_scaled(std::span<const std::byte> jpeg, int shrink, const vips::VImage& header);

/// How many decode_jpeg_scaled calls in this process have succeeded: lets a
/// test see which path a thumbnail took.
std::uint64_t jpeg_direct_decodes();

}  // namespace thumbmill
