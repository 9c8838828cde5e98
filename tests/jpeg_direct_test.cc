// The direct JPEG decode and encode (worker/jpeg_decode.h, jpeg_encode.h)
// against libvips' loader and jpegsave: the same pixels, the same thumbnails
// byte for byte, the same failures.
#include "worker/jpeg_decode.h"
#include "worker/jpeg_encode.h"
#include "worker/resize.h"

#include <cstddef>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <vips/vips8>

#include "tests/vips_images.h"

namespace thumbmill {
namespace {

using namespace test_images;

void start_vips() { REQUIRE(init_vips("jpeg_direct_test", /*allow_untrusted_formats=*/false).ok()); }

struct Sample {
  std::string name;
  Bytes jpeg;
};

/// JPEGs of the kinds libjpeg decodes straight to RGB or grey: sizes that
/// 8 does not divide, each chroma subsampling, progressive, grey, an EXIF
/// orientation that turns the image, a JFIF resolution.
const std::vector<Sample>& samples() {
  static const std::vector<Sample> made = [] {
    const VImage photo = noisy_photo(1601, 1203);
    std::vector<Sample> out;
    out.push_back({"1601x1203 4:2:0", encode_as(photo, ".jpg")});
    out.push_back({"4:4:4", encode_as(photo, ".jpg", VImage::option()->set("Q", 95)->set(
                                                         "subsample_mode", VIPS_FOREIGN_SUBSAMPLE_OFF))});
    out.push_back({"progressive", encode_as(photo, ".jpg", VImage::option()->set("interlace", true))});
    out.push_back({"grey", encode_as(photo.colourspace(VIPS_INTERPRETATION_B_W), ".jpg")});
    VImage turned = noisy_photo(803, 1999).copy();
    turned.set("orientation", 6);
    out.push_back({"803x1999 EXIF orientation 6", encode_as(turned, ".jpg")});
    VImage dense = noisy_photo(999, 641).copy(VImage::option()->set("xres", 300 / 25.4)->set("yres", 300 / 25.4));
    out.push_back({"999x641 300 dpi", encode_as(dense, ".jpg")});
    return out;
  }();
  return made;
}

/// Settings that reach every branch of the shrink and of thumbnail after it.
std::vector<std::pair<std::string, ResizeSettings>> setting_cases() {
  std::vector<std::pair<std::string, ResizeSettings>> cases;
  cases.emplace_back("widths 32,64,200", settings_with({{32, 0}, {64, 0}, {200, 0}}));
  for (Fit fit : {Fit::kCover, Fit::kFill, Fit::kOutside}) {
    ResizeSettings s = settings_with({{150, 100}, {90, 90}});
    s.geometry.fit = fit;
    cases.emplace_back("fit " + std::to_string(static_cast<int>(fit)), s);
  }
  ResizeSettings big = settings_with({{400, 0}, {1000, 0}});
  cases.emplace_back("400 and 1000 (shrink 2 and 1)", big);
  big.geometry.upscale = true;
  big.sizes = {{2500, 0}};
  cases.emplace_back("--upscale 2500", big);
  ResizeSettings turned = settings_with({{120, 0}});
  turned.no_rotate = true;
  turned.keep.exif = true;
  cases.emplace_back("--no-rotate --keep exif", turned);
  ResizeSettings fine = settings_with({{200, 0}, {48, 0}});
  fine.quality = 95;  // no chroma subsampling from 90
  cases.emplace_back("--quality 95", fine);
  ResizeSettings progressive = settings_with({{200, 0}, {31, 0}});
  progressive.progressive = true;
  progressive.optimize_coding = true;
  progressive.quality = 60;
  cases.emplace_back("--progressive --optimize-coding --quality 60", progressive);
  ResizeSettings formats = settings_with({{64, 0}});
  formats.formats = {Format::kWebp, Format::kPng};
  formats.profile = Profile::kKeep;
  cases.emplace_back("webp,png --profile keep", formats);
  return cases;
}

/// The thumbnails by libjpeg directly (decode and encode) and vips_resize
/// (plain_resize), or by libvips' loader, thumbnail_image and jpegsave.
Result<std::vector<EncodedThumbnail>> make(const Bytes& jpeg, ResizeSettings settings, bool directly) {
  settings.decode_jpeg_directly = directly;
  settings.encode_jpeg_directly = directly;
  settings.resize_directly = directly;
  return make_thumbnails(ImageSource{std::span<const std::byte>(jpeg), ""}, settings);
}

TEST_CASE("the shrink-on-load factor is libvips thumbnail's") {
  using Mode = ThumbnailBox::Mode;
  // 4000/200 = 20: 8, leaving 2.5 for the resize.
  CHECK(thumbnail_jpeg_shrink({4000, 3000}, false, {200, 800, Mode::kDown, false}) == 8);
  // 5: 2 (libvips leaves at least a factor of two to its resize).
  CHECK(thumbnail_jpeg_shrink({1000, 750}, false, {200, 800, Mode::kDown, false}) == 2);
  CHECK(thumbnail_jpeg_shrink({1000, 750}, false, {120, 480, Mode::kDown, false}) == 4);
  CHECK(thumbnail_jpeg_shrink({300, 200}, false, {200, 800, Mode::kDown, false}) == 1);
  // Cropping fills the box: the smaller shrink (3000/200 = 15) decides.
  CHECK(thumbnail_jpeg_shrink({4000, 3000}, false, {200, 200, Mode::kDown, true}) == 4);
  // Turned a quarter: the box's sides swap before the ratios (upright
  // 4000x3000 in a 200-wide box: 20; stored 3000x4000 in it: 15).
  CHECK(thumbnail_jpeg_shrink({3000, 4000}, true, {200, 3000, Mode::kDown, false}) == 8);
  CHECK(thumbnail_jpeg_shrink({3000, 4000}, false, {200, 3000, Mode::kDown, false}) == 4);
}

TEST_CASE("decode_jpeg_scaled gives libvips' pixels and header at every shrink") {
  start_vips();
  for (const Sample& sample : samples()) {
    for (int shrink : {1, 2, 4, 8}) {
      CAPTURE(sample.name);
      CAPTURE(shrink);
      const VImage header = VImage::new_from_buffer(sample.jpeg.data(), sample.jpeg.size(), "",
                                                    VImage::option()->set("shrink", shrink));
      Result<VImage> direct = decode_jpeg_scaled(sample.jpeg, shrink, header);
      REQUIRE_MESSAGE(direct.ok(), direct.status().message());
      const VImage by_libvips = header.copy_memory();
      REQUIRE(direct->width() == by_libvips.width());
      REQUIRE(direct->height() == by_libvips.height());
      REQUIRE(direct->bands() == by_libvips.bands());
      CHECK(direct->xres() == by_libvips.xres());
      CHECK(direct->get_int("orientation") == by_libvips.get_int("orientation"));
      CHECK((*direct - by_libvips).abs().max() == 0);
    }
  }
}

TEST_CASE("thumbnails by the direct decode, resize and encode are byte-identical to libvips' loader, thumbnail and jpegsave's") {
  start_vips();
  for (const Sample& sample : samples()) {
    for (const auto& [label, settings] : setting_cases()) {
      CAPTURE(sample.name);
      CAPTURE(label);
      const std::uint64_t before = jpeg_direct_decodes();
      auto direct = make(sample.jpeg, settings, true);
      REQUIRE_MESSAGE(direct.ok(), direct.status().message());
      CHECK(jpeg_direct_decodes() == before + 1);  // it did take the direct path
      auto loader = make(sample.jpeg, settings, false);
      REQUIRE_MESSAGE(loader.ok(), loader.status().message());
      CHECK(jpeg_direct_decodes() == before + 1);
      REQUIRE(direct->size() == loader->size());
      for (std::size_t i = 0; i < direct->size(); ++i) {
        CAPTURE(i);
        CHECK(direct->at(i).width == loader->at(i).width);
        CHECK(direct->at(i).height == loader->at(i).height);
        CHECK(direct->at(i).bytes == loader->at(i).bytes);
      }
    }
  }
}

TEST_CASE("damaged JPEGs fail, or pass, as they do through libvips' loader, with its words") {
  start_vips();
  const Bytes& whole = samples().front().jpeg;
  std::vector<std::pair<std::string, Bytes>> damaged;
  for (std::size_t keep : {whole.size() * 9 / 10, whole.size() / 2, std::size_t{700}}) {
    damaged.emplace_back("cut to " + std::to_string(keep) + " bytes", Bytes(whole.begin(), whole.begin() + keep));
  }
  // Scribbles in the entropy-coded data between restart markers: libjpeg
  // warns and resyncs at the next marker; a hundred warnings fail.
  const Bytes restarts = encode_as(noisy_photo(1601, 1203), ".jpg", VImage::option()->set("restart_interval", 4));
  Bytes once = restarts;
  once[restarts.size() / 2] = std::byte{0xFF};
  damaged.emplace_back("one 0xFF in the middle", std::move(once));
  Bytes often = restarts;
  for (std::size_t at = 2000; at + 1 < often.size(); at += 997) often[at] = std::byte{0xFF};
  damaged.emplace_back("0xFF every 997 bytes", std::move(often));
  int failed = 0;
  for (const auto& [label, jpeg] : damaged) {
    CAPTURE(label);
    auto direct = make(jpeg, settings_with({{200, 0}}), true);
    auto loader = make(jpeg, settings_with({{200, 0}}), false);
    REQUIRE(direct.ok() == loader.ok());
    if (direct.ok()) {
      CHECK(direct->at(0).bytes == loader->at(0).bytes);
    } else {
      ++failed;
      CHECK(direct.status().code() == Code::kCorruptImage);
      CHECK(direct.status().message() == loader.status().message());
    }
  }
  CHECK(failed == 4);  // the cut ones, and the one with hundreds of warnings
}

TEST_CASE("a decode too large to hold whole goes through libvips' loader, which streams it") {
  start_vips();
  // 2100x1500 at shrink 1 (a 1500 px size) is 9.45 MB decoded: over the 8 MiB
  // the direct decode may hold. At 200 px (shrink 4) it is 0.6 MB: direct.
  const Bytes jpeg = encode_as(noisy_photo(2100, 1500), ".jpg");
  std::uint64_t before = jpeg_direct_decodes();
  auto large = make(jpeg, settings_with({{1500, 0}}), true);
  REQUIRE_MESSAGE(large.ok(), large.status().message());
  CHECK(jpeg_direct_decodes() == before);
  auto small = make(jpeg, settings_with({{200, 0}}), true);
  REQUIRE_MESSAGE(small.ok(), small.status().message());
  CHECK(jpeg_direct_decodes() == before + 1);
}

TEST_CASE("a JPEG with an ICC profile or in CMYK still goes through libvips' loader") {
  start_vips();
  const VImage photo = noisy_photo(640, 480);
  const Bytes cmyk = encode_as(photo.colourspace(VIPS_INTERPRETATION_CMYK), ".jpg");
  const Bytes tagged = encode_as(photo.icc_transform("srgb", VImage::option()->set("embedded", false)
                                                                  ->set("input_profile", "srgb")),
                                 ".jpg");
  for (const Bytes* jpeg : {&cmyk, &tagged}) {
    const std::uint64_t before = jpeg_direct_decodes();
    auto made = make(*jpeg, settings_with({{100, 0}}), true);
    REQUIRE_MESSAGE(made.ok(), made.status().message());
    CHECK(jpeg_direct_decodes() == before);
  }
}

}  // namespace
}  // namespace thumbmill

namespace thumbmill {
namespace {

TEST_CASE("encode_jpeg writes jpegsave's bytes: RGB and grey, subsampled or not, baseline or progressive") {
  start_vips();
  const VImage rgb = noisy_photo(203, 151).copy_memory();
  const VImage grey = rgb.colourspace(VIPS_INTERPRETATION_B_W).copy_memory();
  for (const VImage* image : {&rgb, &grey}) {
    for (int quality : {1, 50, 85, 89, 90, 100}) {
      for (bool progressive : {false, true}) {
        for (bool optimize : {false, true}) {
          CAPTURE(image->bands());
          CAPTURE(quality);
          CAPTURE(progressive);
          CAPTURE(optimize);
          REQUIRE(encodes_directly(*image));
          auto direct = encode_jpeg(*image, JpegEncoding{quality, progressive, optimize});
          REQUIRE_MESSAGE(direct.ok(), direct.status().message());
          const Bytes by_libvips = encode_as(*image, ".jpg", VImage::option()
                                                                 ->set("Q", quality)
                                                                 ->set("interlace", progressive)
                                                                 ->set("optimize_coding", optimize)
                                                                 ->set("strip", true));
          CHECK(*direct == by_libvips);
        }
      }
    }
  }
}

TEST_CASE("encode_jpeg computes a lazy image's pixels itself, strip by strip") {
  start_vips();
  const VImage lazy = noisy_photo(700, 1100).resize(0.5);  // 550 rows: three strips
  auto direct = encode_jpeg(lazy, JpegEncoding{});
  REQUIRE_MESSAGE(direct.ok(), direct.status().message());
  CHECK(*direct == encode_as(lazy, ".jpg", VImage::option()->set("Q", 85)->set("strip", true)));
}

}  // namespace
}  // namespace thumbmill
