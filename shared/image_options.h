// The image options of issue 9, in sharp's and vipsthumbnail's vocabulary:
// how a WIDTHxHEIGHT size is filled (--fit, --crop, --upscale), what
// metadata survives (--keep, --no-rotate), the output colour (--profile) and
// the encoder knobs (--progressive, --optimize-coding, --effort, --lossless).
// The types and their value parsers; the fields live in Options
// (shared/options.h), the resizer reads them in worker/resize.cc.
#pragma once

#include <string>
#include <string_view>

#include "shared/status.h"

namespace thumbmill {

/// How a WIDTHxHEIGHT size is filled, as sharp's `fit`. A width-only size
/// ignores it (see kWidthOnlyHeightFactor).
enum class Fit {
  kInside,   // fit inside the box, keep the aspect ratio (the default)
  kCover,    // fill the box, keep the aspect ratio, crop what overflows (--crop)
  kFill,     // exactly the box: stretched, the aspect ratio is not kept
  kOutside,  // cover the box, keep the aspect ratio, nothing cropped
};

/// Which part of the image --fit cover keeps (libvips `smartcrop` names).
enum class Crop {
  kCentre,     // the middle
  kAttention,  // the most interesting region: skin tones, saturation, edges
  kEntropy,    // the busiest region
};

/// The colour space of the output.
enum class Profile {
  kSrgb,  // convert to sRGB (the default)
  kKeep,  // leave the source's colour space; its profile is embedded
  kP3,    // convert to Display P3 (libvips's built-in "p3"); the profile is embedded
};

/// Metadata copied from the source into each thumbnail (--keep). None by
/// default: thumbnails are stripped.
struct MetadataKeep {
  bool exif = false;
  bool icc = false;
  bool xmp = false;
  bool any() const { return exif || icc || xmp; }
  bool operator==(const MetadataKeep&) const = default;
};

/// A width-only size W bounds the height at this multiple of W (a box
/// W x 4W, as `vipsthumbnail -s W` bounds it with its box), so a 1x65000
/// strip makes at most W x 4W. Four admits every photo and phone screenshot
/// (at most about 1:2.4) and long infographics down to 1:4 whole; anything
/// taller is shrunk to fit rather than made into a needle of a thumbnail.
inline constexpr int kWidthOnlyHeightFactor = 4;

/// --effort: -1 means the format's default (webp 4, avif 2).
inline constexpr int kDefaultEffort = -1;
inline constexpr int kMaxWebpEffort = 6;
inline constexpr int kMaxAvifEffort = 9;

Result<Fit> parse_fit(std::string_view text);
Result<Crop> parse_crop(std::string_view text);
Result<Profile> parse_profile(std::string_view text);
/// "exif,icc", "xmp", "all" (every kind), "none".
Result<MetadataKeep> parse_keep(std::string_view text);

std::string_view fit_name(Fit fit);
std::string_view crop_name(Crop crop);
std::string_view profile_name(Profile profile);
/// "exif,icc", "all" when every kind, "none" when none.
std::string keep_name(const MetadataKeep& keep);

}  // namespace thumbmill
