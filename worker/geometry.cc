// Geometry: see geometry.h.
#include "worker/geometry.h"

#include <algorithm>
#include <cmath>

namespace thumbmill {
namespace {

ThumbnailBox::Mode grow_mode(const Geometry& geometry) {
  return geometry.upscale ? ThumbnailBox::Mode::kBoth : ThumbnailBox::Mode::kDown;
}

/// fill without --upscale: each side of the box held to the source's.
Dims fill_target(Dims upright, SizeSpec spec, const Geometry& geometry) {
  if (geometry.upscale) return {spec.width, spec.height};
  return {std::min(spec.width, upright.width), std::min(spec.height, upright.height)};
}

/// The box aspect-keeping fits use: a width-only size gets its height bound.
Dims box_of(SizeSpec spec) {
  return {spec.width, spec.height > 0 ? spec.height : spec.width * kWidthOnlyHeightFactor};
}

bool keeps_inside(SizeSpec spec, const Geometry& geometry) {
  return spec.height == 0 || geometry.fit == Fit::kInside;
}

/// An "outside" box for `target`: the side that needs the larger scale is
/// bound, the other left free, so thumbnail fits exactly that side.
ThumbnailBox outside_box(Dims upright, Dims target, ThumbnailBox::Mode mode) {
  const double by_width = static_cast<double>(target.width) / upright.width;
  const double by_height = static_cast<double>(target.height) / upright.height;
  if (by_width >= by_height) return {target.width, kUnboundedSide, mode, false};
  return {kUnboundedSide, target.height, mode, false};
}

}  // namespace

ThumbnailBox final_box(Dims upright, SizeSpec spec, const Geometry& geometry) {
  const auto mode = grow_mode(geometry);
  if (keeps_inside(spec, geometry)) {
    const Dims box = box_of(spec);
    return {box.width, box.height, mode, false};
  }
  switch (geometry.fit) {
    case Fit::kCover:
      return {spec.width, spec.height, mode, true};
    case Fit::kFill: {
      const Dims target = fill_target(upright, spec, geometry);
      return {target.width, target.height, ThumbnailBox::Mode::kForce, false};
    }
    case Fit::kOutside:
    case Fit::kInside:
      break;
  }
  return outside_box(upright, {spec.width, spec.height}, mode);
}

double decode_scale(Dims upright, SizeSpec spec, const Geometry& geometry) {
  const double sw = upright.width, sh = upright.height;
  double scale;
  if (keeps_inside(spec, geometry)) {
    const Dims box = box_of(spec);
    scale = std::min(box.width / sw, box.height / sh);
  } else {
    const Dims target = geometry.fit == Fit::kFill ? fill_target(upright, spec, geometry)
                                                   : Dims{spec.width, spec.height};
    scale = std::max(target.width / sw, target.height / sh);
  }
  return geometry.upscale ? scale : std::min(scale, 1.0);
}

ThumbnailBox decode_box(Dims upright, SizeSpec spec, const Geometry& geometry) {
  if (keeps_inside(spec, geometry)) return final_box(upright, spec, geometry);
  const Dims target = geometry.fit == Fit::kFill ? fill_target(upright, spec, geometry)
                                                 : Dims{spec.width, spec.height};
  return outside_box(upright, target, grow_mode(geometry));
}

Dims scaled(Dims upright, double scale) {
  return {std::max(1, static_cast<int>(std::lround(upright.width * scale))),
          std::max(1, static_cast<int>(std::lround(upright.height * scale)))};
}

}  // namespace thumbmill
