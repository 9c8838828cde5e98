// How the worker pulls pixels through a libvips pipeline in its own thread
// (resize.cc's in_memory, jpeg_encode.cc's encoder), instead of through a
// libvips sink: strip by strip, as a sink does, so what the pipeline holds
// meanwhile is a strip's worth whatever the image's size. libvips' operations
// give the same pixels however the image is cut.
#pragma once

#include <algorithm>

#include <vips/vips.h>

namespace thumbmill {

/// Rows a strip: a thumbnail (150 rows at 200 px) is one, so the default
/// sizes pay no overlap between strips.
inline constexpr int kStripRows = 256;

/// Calls `each(strip)` (a VipsRect, full width) for the strips of `image`
/// from the top, until it returns false. False when one did.
template <class Each>
bool for_each_strip(const VipsImage* image, Each&& each) {
  for (int top = 0; top < image->Ysize; top += kStripRows) {
    VipsRect strip{0, top, image->Xsize, std::min(kStripRows, image->Ysize - top)};
    if (!each(strip)) return false;
  }
  return true;
}

}  // namespace thumbmill
