// Tests for the image options of issue 9 in worker/resize: --fit, --crop,
// --upscale, the width-only height cap, --keep, --no-rotate, --profile and
// the encoder knobs. Every input is made here with libvips itself. (Apart
// from tests/resize_test.cc, which holds the resizer's own contract.)
#include "worker/geometry.h"
#include "tests/vips_images.h"
#include "worker/resize.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>
#include <vips/vips8>

#include "tests/skip.h"

namespace thumbmill {
namespace {

using namespace test_images;

void start_vips() { REQUIRE(init_vips("resize_options_test", /*allow_untrusted_formats=*/false).ok()); }

/// The one thumbnail made for `settings` (which names one size).
EncodedThumbnail make_one(const Bytes& bytes, const ResizeSettings& settings) {
  auto result = make_thumbnails(ImageSource{std::span<const std::byte>(bytes), ""}, settings);
  REQUIRE_MESSAGE(result.ok(), result.status().message());
  REQUIRE(result->size() == 1);
  return result->at(0);
}

/// Checks the reported size and the decoded one.
void check_dims(const EncodedThumbnail& thumb, int width, int height) {
  CAPTURE(thumb.size.label());
  CHECK(thumb.width == width);
  CHECK(thumb.height == height);
  const VImage decoded = decode(thumb.bytes);
  CHECK(decoded.width() == width);
  CHECK(decoded.height() == height);
}

bool contains(const Bytes& bytes, std::string_view needle) {
  const auto* begin = reinterpret_cast<const char*>(bytes.data());
  return std::string_view(begin, bytes.size()).find(needle) != std::string_view::npos;
}

// ---------------------------------------------------------------------------
// --fit, --upscale and the width-only cap

TEST_CASE("--fit: inside, cover, fill and outside of a 200x200 box from 800x600") {
  start_vips();
  const Bytes source = encode_as(noisy_photo(800, 600), ".jpg");
  struct Case {
    Fit fit;
    int width, height;
  };
  for (const Case& c : {Case{Fit::kInside, 200, 150}, Case{Fit::kCover, 200, 200}, Case{Fit::kFill, 200, 200},
                        Case{Fit::kOutside, 267, 200}}) {
    CAPTURE(fit_name(c.fit));
    ResizeSettings settings = settings_with({{200, 200}});
    settings.geometry.fit = c.fit;
    check_dims(make_one(source, settings), c.width, c.height);
  }
}

TEST_CASE("--fit cover and fill in one run with other sizes: each from the one decode") {
  start_vips();
  const Bytes source = encode_as(noisy_photo(800, 600), ".jpg");
  ResizeSettings settings = settings_with({{100, 0}, {300, 100}, {50, 50}});
  settings.geometry.fit = Fit::kCover;
  auto result = make_thumbnails(ImageSource{std::span<const std::byte>(source), ""}, settings);
  REQUIRE_MESSAGE(result.ok(), result.status().message());
  check_dims(result->at(0), 100, 75);  // width-only: fit does not apply
  check_dims(result->at(1), 300, 100);
  check_dims(result->at(2), 50, 50);
}

TEST_CASE("fill stretches: a left/right split stays at the same place on each side") {
  start_vips();
  // Red left half, blue right half, 400x100 forced into 100x100.
  const VImage split = as_srgb((VImage::xyz(400, 100)[0] < 200).ifthenelse(std::vector<double>{255, 0, 0},
                                                                           std::vector<double>{0, 0, 255}));
  ResizeSettings settings = settings_with({{100, 100}}, Format::kPng);
  settings.geometry.fit = Fit::kFill;
  const EncodedThumbnail thumb = make_one(encode_as(split, ".png"), settings);
  check_dims(thumb, 100, 100);
  const VImage out = decode(thumb.bytes);
  CHECK(out.getpoint(20, 50)[0] > 200);
  CHECK(out.getpoint(80, 50)[2] > 200);
}

TEST_CASE("--upscale: off keeps a small source's size, on reaches the size asked") {
  start_vips();
  const Bytes small = encode_as(noisy_photo(50, 40), ".jpg");
  for (Fit fit : {Fit::kInside, Fit::kCover, Fit::kFill, Fit::kOutside}) {
    CAPTURE(fit_name(fit));
    ResizeSettings settings = settings_with({{200, 0}});
    settings.geometry.fit = fit;
    check_dims(make_one(small, settings), 50, 40);
    settings.geometry.upscale = true;
    check_dims(make_one(small, settings), 200, 160);
  }
  ResizeSettings box = settings_with({{200, 100}});
  box.geometry.fit = Fit::kFill;
  check_dims(make_one(small, box), 50, 40);
  box.geometry.fit = Fit::kCover;
  check_dims(make_one(small, box), 50, 40);
  box.geometry.upscale = true;
  check_dims(make_one(small, box), 200, 100);
  box.geometry.fit = Fit::kFill;
  check_dims(make_one(small, box), 200, 100);
  box.geometry.fit = Fit::kOutside;
  check_dims(make_one(small, box), 200, 160);
}

TEST_CASE("--upscale past --max-pixels is refused before decoding") {
  start_vips();
  ResizeSettings settings = settings_with({{5000, 0}});
  settings.geometry.upscale = true;
  settings.max_pixels = 1'000'000;
  const Bytes small = encode_as(noisy_photo(50, 40), ".jpg");
  auto result = make_thumbnails(ImageSource{std::span<const std::byte>(small), ""}, settings);
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == Code::kTooManyPixels);
}

TEST_CASE("a width-only size caps the height at 4x the width: a 1x65000 strip is not a needle") {
  start_vips();
  const Bytes strip = encode_as(as_srgb(VImage::black(1, 65000, VImage::option()->set("bands", 3)) + 128), ".png");
  check_dims(make_one(strip, settings_with({{200, 0}})), 1, 200 * kWidthOnlyHeightFactor);
  // A 1:10 source at width 50 is shrunk to fit 50x200; a 1:2 one is untouched by the cap.
  const Bytes tall = encode_as(noisy_photo(100, 1000), ".png");
  check_dims(make_one(tall, settings_with({{50, 0}})), 20, 200);
  const Bytes portrait = encode_as(noisy_photo(300, 600), ".jpg");
  check_dims(make_one(portrait, settings_with({{100, 0}})), 100, 200);
}

TEST_CASE("geometry: the decode covers every fit's final box") {
  const Dims source{800, 600};
  Geometry geometry;
  geometry.fit = Fit::kOutside;
  CHECK(final_box(source, {200, 200}, geometry) == ThumbnailBox{kUnboundedSide, 200, ThumbnailBox::Mode::kDown, false});
  CHECK(decode_scale(source, {200, 200}, geometry) == doctest::Approx(200.0 / 600));
  geometry.fit = Fit::kCover;
  CHECK(final_box(source, {200, 200}, geometry).crop);
  CHECK(decode_box(source, {200, 200}, geometry) == ThumbnailBox{kUnboundedSide, 200, ThumbnailBox::Mode::kDown, false});
  geometry.fit = Fit::kFill;
  CHECK(final_box(source, {1000, 100}, geometry) == ThumbnailBox{800, 100, ThumbnailBox::Mode::kForce, false});
  CHECK(decode_scale(source, {1000, 100}, geometry) == doctest::Approx(1.0));
  geometry.fit = Fit::kInside;
  CHECK(final_box(source, {200, 0}, geometry) == ThumbnailBox{200, 800, ThumbnailBox::Mode::kDown, false});
}

// ---------------------------------------------------------------------------
// --crop

/// 800x400: dark flat grey, with a bright busy square on the right.
VImage object_on_the_right() {
  const VImage background = as_srgb(VImage::black(800, 400, VImage::option()->set("bands", 3)) + 40);
  const VImage object = noisy_photo(150, 150) + std::vector<double>{80, 40, 0};
  return background.insert(as_srgb(object), 620, 125);
}

TEST_CASE("--crop attention and entropy keep the bright object; centre cuts it off") {
  start_vips();
  const Bytes source = encode_as(object_on_the_right(), ".png");
  auto brightness = [&](Crop crop) {
    ResizeSettings settings = settings_with({{200, 200}}, Format::kPng);
    settings.geometry.fit = Fit::kCover;
    settings.geometry.crop = crop;
    const EncodedThumbnail thumb = make_one(source, settings);
    check_dims(thumb, 200, 200);
    return decode(thumb.bytes).avg();
  };
  const double centre = brightness(Crop::kCentre);
  CHECK(centre < 41);  // only the grey background
  // The object fills about a seventh of the 200x200 crop at the right edge.
  CHECK(brightness(Crop::kAttention) > centre + 10);
  CHECK(brightness(Crop::kEntropy) > centre + 10);
}

// ---------------------------------------------------------------------------
// Metadata: --keep, --no-rotate, --profile

/// A JPEG with EXIF (libvips writes a block when not stripping) and an
/// orientation `orientation`.
Bytes jpeg_with_exif(int width, int height, int orientation) {
  VImage image = noisy_photo(width, height).copy();
  image.set("orientation", orientation);
  image.set("exif-ifd0-ImageDescription", "thumbmill test");
  return encode_as(image, ".jpg", VImage::option()->set("strip", false));
}

TEST_CASE("metadata is stripped by default; --keep exif keeps EXIF (and only it)") {
  start_vips();
  const Bytes source = jpeg_with_exif(400, 300, 1);
  REQUIRE(decode(source).get_typeof(VIPS_META_EXIF_NAME) != 0);
  for (Format format : {Format::kJpeg, Format::kWebp}) {
    CAPTURE(format_name(format));
    ResizeSettings settings = settings_with({{100, 0}}, format);
    const VImage stripped = decode(make_one(source, settings).bytes);
    CHECK(stripped.get_typeof(VIPS_META_EXIF_NAME) == 0);
    CHECK(stripped.get_typeof(VIPS_META_ICC_NAME) == 0);
    settings.keep.exif = true;
    const VImage kept = decode(make_one(source, settings).bytes);
    REQUIRE(kept.get_typeof(VIPS_META_EXIF_NAME) != 0);
    CHECK(std::string_view(kept.get_string("exif-ifd0-ImageDescription")).starts_with("thumbmill test"));
    CHECK(kept.get_typeof(VIPS_META_ICC_NAME) == 0);
  }
}

TEST_CASE("--no-rotate leaves an EXIF-oriented image as stored (and its tag kept with --keep exif)") {
  start_vips();
  const Bytes sideways = jpeg_with_exif(400, 200, 6);
  ResizeSettings settings = settings_with({{200, 0}});
  settings.keep.exif = true;
  const EncodedThumbnail upright = make_one(sideways, settings);
  check_dims(upright, 200, 400);
  CHECK(decode(upright.bytes).get_int("orientation") == 1);  // turned, so no longer to be turned

  settings.no_rotate = true;
  const EncodedThumbnail as_stored = make_one(sideways, settings);
  check_dims(as_stored, 200, 100);
  CHECK(decode(as_stored.bytes).get_int("orientation") == 6);
}

TEST_CASE("--profile p3 converts to Display P3 and embeds it; keep leaves a P3 source as it is") {
  start_vips();
  const VImage red = as_srgb(VImage::black(300, 200, VImage::option()->set("bands", 3)) +
                             std::vector<double>{220, 30, 30});
  ResizeSettings settings = settings_with({{100, 0}}, Format::kPng);
  settings.profile = Profile::kP3;
  const VImage p3 = decode(make_one(encode_as(red, ".png"), settings).bytes);
  REQUIRE(p3.get_typeof(VIPS_META_ICC_NAME) != 0);
  // sRGB red is less saturated in the wider P3 space.
  CHECK(p3.getpoint(50, 30)[0] < 215);
  CHECK(p3.getpoint(50, 30)[1] > 35);

  // A P3-tagged source: keep leaves its pixels and profile; srgb converts and strips.
  const VImage tagged = red.icc_transform("p3", VImage::option()->set("input_profile", "srgb"));
  const Bytes tagged_png = encode_as(tagged, ".png");
  const std::vector<double> stored = tagged.getpoint(50, 30);
  settings.profile = Profile::kKeep;
  const VImage kept = decode(make_one(tagged_png, settings).bytes);
  REQUIRE(kept.get_typeof(VIPS_META_ICC_NAME) != 0);
  for (int band = 0; band < 3; ++band) CHECK(std::abs(kept.getpoint(50, 30)[band] - stored[band]) <= 1);
  settings.profile = Profile::kSrgb;
  const VImage srgb = decode(make_one(tagged_png, settings).bytes);
  CHECK(srgb.get_typeof(VIPS_META_ICC_NAME) == 0);
  CHECK(std::abs(srgb.getpoint(50, 30)[0] - 220) <= 3);
}

// ---------------------------------------------------------------------------
// Encoders

/// Whether a JPEG has a start-of-frame marker `marker` (0xC0 baseline, 0xC2
/// progressive) among its markers before the first scan.
bool has_frame_marker(const Bytes& jpeg, unsigned char marker) {
  std::size_t at = 2;  // after SOI
  while (at + 4 <= jpeg.size() && static_cast<unsigned char>(jpeg[at]) == 0xFF) {
    const auto type = static_cast<unsigned char>(jpeg[at + 1]);
    if (type == marker) return true;
    if (type == 0xDA) return false;  // start of scan
    at += 2 + ((static_cast<std::size_t>(jpeg[at + 2]) << 8) | static_cast<std::size_t>(jpeg[at + 3]));
  }
  return false;
}

TEST_CASE("--progressive writes an SOF2 JPEG; --optimize-coding a smaller one") {
  start_vips();
  const Bytes source = encode_as(noisy_photo(800, 600), ".jpg");
  ResizeSettings settings = settings_with({{200, 0}});
  const Bytes baseline = make_one(source, settings).bytes;
  CHECK(has_frame_marker(baseline, 0xC0));
  CHECK_FALSE(has_frame_marker(baseline, 0xC2));
  settings.progressive = true;
  const Bytes progressive = make_one(source, settings).bytes;
  CHECK(has_frame_marker(progressive, 0xC2));
  settings.progressive = false;
  settings.optimize_coding = true;
  CHECK(make_one(source, settings).bytes.size() < baseline.size());
}

TEST_CASE("--lossless webp gives back the exact pixels") {
  start_vips();
  const VImage image = noisy_photo(120, 90);
  ResizeSettings settings = settings_with({{120, 0}}, Format::kWebp);
  settings.lossless = true;
  const VImage out = decode(make_one(encode_as(image, ".png"), settings).bytes);
  REQUIRE(out.width() == 120);
  CHECK((out - image).abs().max() == 0);
  settings.lossless = false;
  const VImage lossy = decode(make_one(encode_as(image, ".png"), settings).bytes);
  CHECK((lossy - image).abs().max() > 0);
}

TEST_CASE("--lossless avif is lossless coding of 4:4:4 YCbCr: within a level of the pixels") {
  start_vips();
  const VImage image = noisy_photo(120, 90);
  ResizeSettings settings = settings_with({{120, 0}}, Format::kAvif);
  settings.lossless = true;
  const VImage out = decode(make_one(encode_as(image, ".png"), settings).bytes);
  REQUIRE(out.width() == 120);
  const double lossless_error = (out - image).abs().max();
  MESSAGE("avif lossless max error " << lossless_error);
  settings.lossless = false;
  const VImage lossy = decode(make_one(encode_as(image, ".png"), settings).bytes);
  CHECK(lossless_error < (lossy - image).abs().max());
  CHECK(lossless_error <= 1);
}

TEST_CASE("--effort changes the webp and avif encodings") {
  start_vips();
  const Bytes source = encode_as(noisy_photo(400, 300), ".jpg");
  for (auto [format, low, high] : {std::tuple{Format::kWebp, 0, 6}, std::tuple{Format::kAvif, 0, 9}}) {
    CAPTURE(format_name(format));
    ResizeSettings settings = settings_with({{100, 0}}, format);
    settings.effort = low;
    const Bytes fast = make_one(source, settings).bytes;
    settings.effort = high;
    CHECK(make_one(source, settings).bytes != fast);
  }
}

TEST_CASE("ResizeSettings::From copies the image options") {
  Options options;
  options.fit = Fit::kCover;
  options.crop = Crop::kEntropy;
  options.upscale = true;
  options.keep = {true, false, true};
  options.no_rotate = true;
  options.profile = Profile::kP3;
  options.progressive = true;
  options.optimize_coding = true;
  options.effort = 5;
  options.lossless = true;
  const ResizeSettings settings = ResizeSettings::From(options);
  CHECK(settings.geometry.fit == Fit::kCover);
  CHECK(settings.geometry.crop == Crop::kEntropy);
  CHECK(settings.geometry.upscale);
  CHECK(settings.keep == MetadataKeep{true, false, true});
  CHECK(settings.no_rotate);
  CHECK(settings.profile == Profile::kP3);
  CHECK(settings.progressive);
  CHECK(settings.optimize_coding);
  CHECK(settings.effort == 5);
  CHECK(settings.lossless);
}

}  // namespace
}  // namespace thumbmill
