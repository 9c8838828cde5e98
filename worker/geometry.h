// Geometry: what libvips thumbnail is asked for each size, under --fit,
// --crop and --upscale, and at what scale the one shared decode runs.
// Pure arithmetic on the upright source size; resize.cc turns a
// ThumbnailBox into thumbnail options.
//
// The fits (sharp's meaning), for a box WxH and a source of any shape:
//   inside   fits inside the box, aspect kept (one side may be short)
//   cover    fills the box, aspect kept, the overflow cropped (--crop)
//   fill     exactly WxH, stretched
//   outside  covers the box, aspect kept, nothing cropped (one side long)
// A width-only size W is inside a box W x kWidthOnlyHeightFactor*W whatever
// the fit. Without --upscale no side grows past the source's: a source the
// size cannot reach comes out smaller than asked (the file name says the
// size asked; the report and EncodedThumbnail the size made).
#pragma once

#include "shared/image_options.h"
#include "shared/options.h"

namespace thumbmill {

struct Dims {
  int width = 0;
  int height = 0;
  bool operator==(const Dims&) const = default;
};

struct Geometry {
  Fit fit = Fit::kInside;
  Crop crop = Crop::kCentre;
  bool upscale = false;
};

/// A side libvips thumbnail leaves free (VIPS_MAX_COORD in 8.14).
inline constexpr int kUnboundedSide = 10'000'000;

/// One call of libvips thumbnail: fit inside width x height (a side may be
/// kUnboundedSide), optionally cropped to the box, or forced to it.
struct ThumbnailBox {
  enum class Mode { kDown, kBoth, kForce };  // VIPS_SIZE_DOWN, _BOTH, _FORCE
  int width = 0;
  int height = 0;
  Mode mode = Mode::kDown;
  bool crop = false;  // crop to width x height with Geometry::crop
  bool operator==(const ThumbnailBox&) const = default;
};

/// The call that makes `spec` from the upright source (or from any
/// uncropped image of the same aspect ratio at least as large).
ThumbnailBox final_box(Dims upright, SizeSpec spec, const Geometry& geometry);

/// The factor the decode for `spec` scales the upright source by: at least
/// what its final_box needs on each side, so the final image can be derived
/// from it; at most 1 without --upscale.
double decode_scale(Dims upright, SizeSpec spec, const Geometry& geometry);

/// The call that decodes at decode_scale: aspect kept, never cropped.
ThumbnailBox decode_box(Dims upright, SizeSpec spec, const Geometry& geometry);

/// upright scaled by `scale`, each side at least 1.
Dims scaled(Dims upright, double scale);

}  // namespace thumbmill
