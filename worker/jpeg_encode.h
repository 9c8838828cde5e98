// The common encode, a JPEG thumbnail with no metadata, done by libjpeg-turbo
// directly instead of through libvips' jpegsave.
//
// Why: jpegsave writes through a libvips sink, a pool thread fed strip by
// strip with semaphores (about 50 futex calls a file, three files a photo),
// and in the threaded build those hand-offs kept the workers from filling
// the cores. A thumbnail is small; libjpeg takes its rows in the calling
// thread.
//
// The settings are libvips 8.14.1's (libvips/foreign/vips2jpeg.c, write_vips,
// with strip=true): jpeg_set_defaults, optimize_coding, jpeg_set_quality(Q,
// force_baseline), jpeg_simple_progression when interlaced, no chroma
// subsampling from Q 90, no JFIF header and no other marker. So the bytes
// are jpegsave's; tests/jpeg_decode_test.cc compares them.
#pragma once

#include <cstddef>
#include <vector>

#include <vips/vips8>

#include "shared/status.h"

namespace thumbmill {

struct JpegEncoding {
  int quality = 85;
  bool progressive = false;
  bool optimize_coding = false;
};

/// Whether encode_jpeg can take `image`: 8-bit, uncoded, 3 bands (sRGB) or 1.
bool encodes_directly(const vips::VImage& image);

/// `image` (encodes_directly) as a JPEG file, as jpegsave_buffer with
/// strip=true writes it. Its pixels are computed in the calling thread.
/// kEncodeFailed with libjpeg's or libvips' message (the caller says what
/// failed: resize.cc's encode() makes it "encode jpeg failed: ...").
Result<std::vector<std::byte>> encode_jpeg(const vips::VImage& image, const JpegEncoding& encoding);

}  // namespace thumbmill
