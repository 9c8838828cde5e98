// Tests for worker/resize: every input is made here with libvips itself, in
// memory (or in a temporary directory for the path source).
#include "tests/vips_images.h"
#include "worker/resize.h"
#include "worker/decode_estimate.h"
#include "worker/orc_guard.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <orc/orc.h>
#include <vips/vips8>

#include "tests/skip.h"

namespace thumbmill {
namespace {

using namespace test_images;

void start_vips() { REQUIRE(init_vips("resize_test", /*allow_untrusted_formats=*/false).ok()); }

Bytes to_bytes(std::string_view text) {
  const auto* data = reinterpret_cast<const std::byte*>(text.data());
  return Bytes(data, data + text.size());
}

VImage flat_colour(int width, int height, std::vector<double> rgb) {
  return (VImage::black(width, height, VImage::option()->set("bands", 3)) + rgb)
      .cast(VIPS_FORMAT_UCHAR)
      .copy(VImage::option()->set("interpretation", static_cast<int>(VIPS_INTERPRETATION_sRGB)));
}

/// The 12 MP camera-sized JPEG several tests share (made once: it takes a
/// second).
const Bytes& photo_4000x3000() {
  static const Bytes jpeg =
      encode_as(noisy_photo(4000, 3000), ".jpg", VImage::option()->set("Q", 88));
  return jpeg;
}

const std::vector<SizeSpec> kDefaultWidths = {{32, 0}, {64, 0}, {200, 0}};

Result<std::vector<EncodedThumbnail>> make(const Bytes& bytes, const ResizeSettings& settings) {
  return make_thumbnails(ImageSource{std::span<const std::byte>(bytes), ""}, settings);
}

bool starts_with(const Bytes& bytes, std::string_view magic, std::size_t at = 0) {
  return bytes.size() >= at + magic.size() &&
         std::memcmp(bytes.data() + at, magic.data(), magic.size()) == 0;
}

/// Checks one thumbnail's reported and decoded size; `slack` is allowed on
/// each side (the side that is derived from the aspect ratio rounds).
void check_size(const EncodedThumbnail& thumb, int width, int height, int slack = 1) {
  CAPTURE(thumb.size.label());
  CHECK(std::abs(thumb.width - width) <= slack);
  CHECK(std::abs(thumb.height - height) <= slack);
  const VImage decoded = decode(thumb.bytes);
  CHECK(decoded.width() == thumb.width);
  CHECK(decoded.height() == thumb.height);
}

// --- PNG crafting: a header that declares any size, with no pixels behind it.

std::uint32_t crc32(const unsigned char* data, std::size_t length, std::uint32_t crc = 0) {
  crc = ~crc;
  for (std::size_t i = 0; i < length; ++i) {
    crc ^= data[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

void put_be32(std::string& out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((value >> shift) & 0xff);
}

void put_chunk(std::string& out, std::string_view type, std::string_view data) {
  put_be32(out, static_cast<std::uint32_t>(data.size()));
  std::string typed = std::string(type) + std::string(data);
  out += typed;
  put_be32(out, crc32(reinterpret_cast<const unsigned char*>(typed.data()), typed.size()));
}

Bytes png_declaring(std::uint32_t width, std::uint32_t height) {
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put_be32(ihdr, width);
  put_be32(ihdr, height);
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB, no interlace
  put_chunk(png, "IHDR", ihdr);
  put_chunk(png, "IDAT", std::string("\x78\x9c\x03\x00\x00\x00\x00\x01", 8));
  put_chunk(png, "IEND", "");
  return to_bytes(png);
}

/// Undoes vips_block_untrusted_set(TRUE) for one scope: init_vips runs once
/// per process, so the test process blocks untrusted loaders as a worker
/// does, and this stands in for a worker started with the flag.
struct UntrustedLoadersAllowed {
  UntrustedLoadersAllowed() { vips_block_untrusted_set(FALSE); }
  ~UntrustedLoadersAllowed() { vips_block_untrusted_set(TRUE); }
};

struct TempDir {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("resize_test-" + std::to_string(::getpid()));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
};

TEST_CASE("default widths 32/64/200 from a 4000x3000 JPEG, in the order asked") {
  start_vips();
  auto result = make(photo_4000x3000(), settings_with(kDefaultWidths));
  REQUIRE_MESSAGE(result.ok(), result.status().message());
  REQUIRE(result->size() == 3);
  CHECK((*result)[0].size == SizeSpec{32, 0});
  CHECK((*result)[1].size == SizeSpec{64, 0});
  CHECK((*result)[2].size == SizeSpec{200, 0});
  check_size((*result)[0], 32, 24);
  check_size((*result)[1], 64, 48);
  check_size((*result)[2], 200, 150);
  for (const auto& thumb : *result) CHECK(starts_with(thumb.bytes, "\xFF\xD8\xFF"));
}

TEST_CASE("the largest size can come first or in the middle") {
  start_vips();
  auto result = make(photo_4000x3000(), settings_with({{200, 0}, {32, 0}, {100, 0}}));
  REQUIRE_MESSAGE(result.ok(), result.status().message());
  check_size((*result)[0], 200, 150);
  check_size((*result)[1], 32, 24);
  check_size((*result)[2], 100, 75);
}

TEST_CASE("a box size fits inside the box, landscape and portrait") {
  start_vips();
  const Bytes portrait = encode_as(noisy_photo(600, 800), ".jpg");
  const Bytes landscape = encode_as(noisy_photo(800, 600), ".jpg");
  const ResizeSettings box = settings_with({{200, 150}});

  auto wide = make(landscape, box);
  REQUIRE_MESSAGE(wide.ok(), wide.status().message());
  check_size(wide->at(0), 200, 150);

  auto tall = make(portrait, box);
  REQUIRE_MESSAGE(tall.ok(), tall.status().message());
  check_size(tall->at(0), 113, 150);
}

TEST_CASE("never upscales: a 50x40 source stays 50x40 for larger widths") {
  start_vips();
  auto result = make(encode_as(noisy_photo(50, 40), ".jpg"), settings_with(kDefaultWidths));
  REQUIRE_MESSAGE(result.ok(), result.status().message());
  check_size((*result)[0], 32, 26);
  check_size((*result)[1], 50, 40, 0);
  check_size((*result)[2], 50, 40, 0);
}

TEST_CASE("every output format decodes back at the right size") {
  start_vips();
  const Bytes source = encode_as(noisy_photo(800, 600), ".jpg");
  struct Case {
    Format format;
    std::string_view magic;
    std::size_t magic_at;
    const char* loader;
  };
  for (const Case& c : {Case{Format::kJpeg, "\xFF\xD8\xFF", 0, "jpegload_buffer"},
                        Case{Format::kWebp, "WEBP", 8, "webpload_buffer"},
                        Case{Format::kPng, "\x89PNG\r\n\x1a\n", 0, "pngload_buffer"},
                        Case{Format::kAvif, "ftypavif", 4, "heifload_buffer"}}) {
    CAPTURE(format_name(c.format));
    auto result = make(source, settings_with({{64, 0}, {200, 0}}, c.format));
    REQUIRE_MESSAGE(result.ok(), result.status().message());
    check_size((*result)[0], 64, 48);
    check_size((*result)[1], 200, 150);
    for (const auto& thumb : *result) {
      CHECK(starts_with(thumb.bytes, c.magic, c.magic_at));
      CHECK(std::string_view(decode(thumb.bytes).get_string("vips-loader")) == c.loader);
      CHECK(decode(thumb.bytes).bands() == 3);
    }
  }
}

TEST_CASE("alpha: kept in PNG, flattened onto white in JPEG") {
  start_vips();
  // Opaque red on the left half, fully transparent on the right.
  VImage alpha = (VImage::xyz(100, 100)[0] < 50).ifthenelse(255, 0).cast(VIPS_FORMAT_UCHAR);
  const Bytes rgba = encode_as(flat_colour(100, 100, {200, 0, 0}).bandjoin(alpha), ".png");

  auto png = make(rgba, settings_with({{50, 0}}, Format::kPng));
  REQUIRE_MESSAGE(png.ok(), png.status().message());
  const VImage png_out = decode(png->at(0).bytes);
  CHECK(png_out.bands() == 4);
  CHECK(png_out.getpoint(45, 25)[3] == doctest::Approx(0).epsilon(0.01));

  auto jpeg = make(rgba, settings_with({{50, 0}}, Format::kJpeg));
  REQUIRE_MESSAGE(jpeg.ok(), jpeg.status().message());
  const VImage jpeg_out = decode(jpeg->at(0).bytes);
  CHECK(jpeg_out.bands() == 3);
  const std::vector<double> right = jpeg_out.getpoint(45, 25);
  for (double value : right) CHECK(value > 245);
}

TEST_CASE("grey, grey+alpha and 16-bit sources come out as 8-bit sRGB") {
  start_vips();
  const VImage grey = noisy_photo(300, 200)[1].copy(
      VImage::option()->set("interpretation", static_cast<int>(VIPS_INTERPRETATION_B_W)));
  const VImage grey_alpha = grey.bandjoin_const({255});
  const VImage rgb16 = (noisy_photo(300, 200).cast(VIPS_FORMAT_USHORT) * 256)
                           .cast(VIPS_FORMAT_USHORT)
                           .copy(VImage::option()->set(
                               "interpretation", static_cast<int>(VIPS_INTERPRETATION_RGB16)));
  for (const Bytes& source : {encode_as(grey, ".jpg"), encode_as(grey_alpha, ".png"),
                              encode_as(rgb16, ".png")}) {
    for (Format format : {Format::kJpeg, Format::kPng}) {
      CAPTURE(format_name(format));
      auto result = make(source, settings_with({{100, 0}}, format));
      REQUIRE_MESSAGE(result.ok(), result.status().message());
      const VImage out = decode(result->at(0).bytes);
      CHECK(out.format() == VIPS_FORMAT_UCHAR);
      CHECK(out.interpretation() == VIPS_INTERPRETATION_sRGB);
      CHECK(out.width() == 100);
    }
  }
}

TEST_CASE("EXIF orientation is applied, and decides which size is largest") {
  start_vips();
  VImage sideways = noisy_photo(400, 200).copy();
  sideways.set("orientation", 6);
  const Bytes jpeg = encode_as(sideways, ".jpg");

  auto upright = make(jpeg, settings_with({{200, 0}}));
  REQUIRE_MESSAGE(upright.ok(), upright.status().message());
  check_size(upright->at(0), 200, 400, 0);

  // Upright the source is 200x400: the 100 width (100x200) is larger than
  // the 200x100 box (50x100). Read sideways it would be the other way round.
  auto both = make(jpeg, settings_with({{200, 100}, {100, 0}}));
  REQUIRE_MESSAGE(both.ok(), both.status().message());
  check_size(both->at(0), 50, 100);
  check_size(both->at(1), 100, 200, 0);
}

TEST_CASE("a CMYK JPEG comes out as 3-band sRGB in about the right colour") {
  start_vips();
  const std::vector<double> rgb = {180, 120, 80};  // well inside the CMYK gamut
  const VImage cmyk = flat_colour(300, 200, rgb).colourspace(VIPS_INTERPRETATION_CMYK);
  REQUIRE(cmyk.bands() == 4);
  VImage without_profile = cmyk.copy();
  without_profile.remove("icc-profile-data");

  for (const VImage& source : {cmyk, without_profile}) {
    const Bytes jpeg = encode_as(source, ".jpg", VImage::option()->set("Q", 95));
    REQUIRE(decode(jpeg).interpretation() == VIPS_INTERPRETATION_CMYK);
    auto result = make(jpeg, settings_with({{100, 0}}));
    REQUIRE_MESSAGE(result.ok(), result.status().message());
    const VImage out = decode(result->at(0).bytes);
    CHECK(out.bands() == 3);
    CHECK(out.interpretation() == VIPS_INTERPRETATION_sRGB);
    const std::vector<double> centre = out.getpoint(50, 33);
    for (int band = 0; band < 3; ++band) CHECK(std::abs(centre[band] - rgb[band]) < 25);
  }
}

TEST_CASE("a CMYK JPEG is converted with its own embedded profile") {
  start_vips();
  // Any CMYK profile other than libvips' built-in one: 8.14.1 thumbnail
  // would silently use the built-in one instead.
  const char* profile = "/usr/share/color/icc/ghostscript/default_cmyk.icc";
  if (!std::filesystem::exists(profile))
    THUMBMILL_SKIP(std::string("no second CMYK profile on this machine (") + profile + "; scripts/setup installs libgs-common)");
  const VImage cmyk = flat_colour(300, 200, {180, 120, 80})
                          .icc_transform(profile, VImage::option()->set("input_profile", "srgb"));
  REQUIRE(cmyk.interpretation() == VIPS_INTERPRETATION_CMYK);
  const Bytes jpeg = encode_as(cmyk, ".jpg", VImage::option()->set("Q", 98));
  // What lcms makes of the file with the profile it carries.
  const std::vector<double> expected =
      decode(jpeg).icc_transform("srgb", VImage::option()->set("embedded", true)).getpoint(10, 10);

  auto result = make(jpeg, settings_with({{100, 0}}, Format::kPng));
  REQUIRE_MESSAGE(result.ok(), result.status().message());
  const VImage out = decode(result->at(0).bytes);
  REQUIRE(out.bands() == 3);
  const std::vector<double> centre = out.getpoint(50, 33);
  for (int band = 0; band < 3; ++band) {
    CAPTURE(band);
    CHECK(std::abs(centre[band] - expected[band]) <= 4);
  }
}

TEST_CASE("an embedded RGB profile is applied") {
  start_vips();
  const char* profile = "/usr/share/color/icc/ghostscript/a98.icc";
  if (!std::filesystem::exists(profile))
    THUMBMILL_SKIP(std::string("no Adobe RGB profile on this machine (") + profile + "; scripts/setup installs libgs-common)");
  const std::vector<double> rgb = {200, 60, 40};
  const VImage adobe = flat_colour(300, 200, rgb).icc_transform(
      profile, VImage::option()->set("input_profile", "srgb"));
  auto result = make(encode_as(adobe, ".jpg", VImage::option()->set("Q", 98)),
                     settings_with({{100, 0}}, Format::kPng));
  REQUIRE_MESSAGE(result.ok(), result.status().message());
  const std::vector<double> centre = decode(result->at(0).bytes).getpoint(50, 33);
  for (int band = 0; band < 3; ++band) CHECK(std::abs(centre[band] - rgb[band]) <= 4);
}

TEST_CASE("a truncated JPEG is corrupt, not a grey half-image") {
  start_vips();
  const Bytes& whole = photo_4000x3000();
  const Bytes half(whole.begin(), whole.begin() + whole.size() / 2);
  auto result = make(half, settings_with(kDefaultWidths));
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == Code::kCorruptImage);
  CHECK(result.status().message().starts_with("corrupt image: "));
  CHECK(result.status().message().find('\n') == std::string::npos);
}

TEST_CASE("truncated PNG, WebP, GIF, TIFF and AVIF files are corrupt") {
  start_vips();
  const VImage image = noisy_photo(400, 300);
  for (const char* suffix : {".png", ".webp", ".gif", ".tif", ".avif"}) {
    CAPTURE(suffix);
    const Bytes whole = encode_as(image, suffix);
    const Bytes half(whole.begin(), whole.begin() + whole.size() / 2);
    auto result = make(half, settings_with({{100, 0}}));
    REQUIRE_FALSE(result.ok());
    CHECK(result.status().code() == Code::kCorruptImage);
    CHECK(result.status().message().starts_with("corrupt image: "));
  }
}

TEST_CASE("a JPEG with a damaged header is corrupt") {
  start_vips();
  Bytes jpeg = encode_as(noisy_photo(400, 300), ".jpg");
  // Zero the symbol counts of the first Huffman table: libjpeg refuses it.
  const std::array<std::byte, 2> dht = {std::byte{0xFF}, std::byte{0xC4}};
  auto at = std::search(jpeg.begin(), jpeg.end(), dht.begin(), dht.end());
  REQUIRE(at != jpeg.end());
  std::fill(at + 5, at + 21, std::byte{0});
  auto result = make(jpeg, settings_with({{100, 0}}));
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == Code::kCorruptImage);
}

TEST_CASE("empty input, HTML and random bytes are not images") {
  start_vips();
  const ResizeSettings settings = settings_with(kDefaultWidths);

  auto empty = make(Bytes{}, settings);
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.status().code() == Code::kNotAnImage);
  CHECK(empty.status().message() == "empty body (0 bytes)");

  auto html = make(to_bytes("<!DOCTYPE html>\n<html><body>Not Found</body></html>\n"), settings);
  REQUIRE_FALSE(html.ok());
  CHECK(html.status().code() == Code::kNotAnImage);
  CHECK(html.status().message() ==
        "not an image: looks like HTML (first bytes 3c 21 44 4f)");

  Bytes noise(512);
  for (std::size_t i = 0; i < noise.size(); ++i) noise[i] = std::byte(i * 167 + 63);
  auto random = make(noise, settings);
  REQUIRE_FALSE(random.ok());
  CHECK(random.status().code() == Code::kNotAnImage);
  CHECK(random.status().message() ==
        "not an image: unknown format (first bytes 3f e6 8d 34)");
}

TEST_CASE("SVG is refused unless untrusted formats are allowed") {
  start_vips();
  const Bytes svg = to_bytes(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"400\" height=\"200\">"
      "<rect width=\"400\" height=\"200\" fill=\"#3060c0\"/></svg>");
  ResizeSettings settings = settings_with({{200, 0}}, Format::kPng);

  auto refused = make(svg, settings);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == Code::kUntrustedFormat);
  CHECK(refused.status().message() ==
        "untrusted format svg blocked (pass --allow-untrusted-formats)");

  // Allowed by the job but still blocked in the process: still refused.
  settings.allow_untrusted_formats = true;
  auto blocked = make(svg, settings);
  REQUIRE_FALSE(blocked.ok());
  CHECK(blocked.status().code() == Code::kUntrustedFormat);

  UntrustedLoadersAllowed allowed;
  auto made = make(svg, settings);
  REQUIRE_MESSAGE(made.ok(), made.status().message());
  check_size(made->at(0), 200, 100, 0);
}

TEST_CASE("a header declaring 30000x30000 is refused before decoding") {
  start_vips();
  auto result = make(png_declaring(30000, 30000), settings_with(kDefaultWidths));
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == Code::kTooManyPixels);
  CHECK(result.status().message() ==
        "image declares 30000x30000 (900.0 MP), over --max-pixels 100.0 MP");

  ResizeSettings small_cap = settings_with(kDefaultWidths);
  small_cap.max_pixels = 100 * 100;
  auto over = make(encode_as(noisy_photo(101, 100), ".png"), small_cap);
  CHECK(over.status().code() == Code::kTooManyPixels);
  auto at_cap = make(encode_as(noisy_photo(100, 100), ".png"), small_cap);
  CHECK_MESSAGE(at_cap.ok(), at_cap.status().message());
}

TEST_CASE("a file path works as a source") {
  start_vips();
  TempDir dir;
  const std::filesystem::path file = dir.path / "photo [1].jpg";  // brackets: no vips options
  const Bytes jpeg = encode_as(noisy_photo(800, 600), ".jpg");
  std::ofstream(file, std::ios::binary)
      .write(reinterpret_cast<const char*>(jpeg.data()), static_cast<std::streamsize>(jpeg.size()));

  auto result = make_thumbnails(ImageSource{{}, file.string()}, settings_with(kDefaultWidths));
  REQUIRE_MESSAGE(result.ok(), result.status().message());
  check_size((*result)[2], 200, 150);
  CHECK(result->at(2).bytes == make(jpeg, settings_with(kDefaultWidths))->at(2).bytes);

  auto missing = make_thumbnails(ImageSource{{}, (dir.path / "nope.jpg").string()},
                                 settings_with(kDefaultWidths));
  CHECK(missing.status().code() == Code::kIoError);

  std::ofstream(dir.path / "empty.jpg").close();
  auto empty = make_thumbnails(ImageSource{{}, (dir.path / "empty.jpg").string()},
                               settings_with(kDefaultWidths));
  CHECK(empty.status().code() == Code::kNotAnImage);
  CHECK(empty.status().message() == "empty file (0 bytes)");
}

TEST_CASE("output is deterministic in every format") {
  start_vips();
  const Bytes source = encode_as(noisy_photo(800, 600), ".jpg");
  for (Format format : {Format::kJpeg, Format::kWebp, Format::kPng, Format::kAvif}) {
    CAPTURE(format_name(format));
    auto first = make(source, settings_with(kDefaultWidths, format));
    auto second = make(source, settings_with(kDefaultWidths, format));
    REQUIRE(first.ok());
    REQUIRE(second.ok());
    for (std::size_t i = 0; i < first->size(); ++i) CHECK((*first)[i].bytes == (*second)[i].bytes);
  }
}

TEST_CASE("several formats: each size in each format, sizes-major, from one resize") {
  start_vips();
  const Bytes source = encode_as(noisy_photo(800, 600), ".jpg");
  ResizeSettings settings = settings_with({{64, 0}, {200, 0}});
  settings.formats = {Format::kWebp, Format::kJpeg};
  auto thumbs = make(source, settings);
  REQUIRE_MESSAGE(thumbs.ok(), thumbs.status().message());
  REQUIRE(thumbs->size() == 4);
  const Format want_format[] = {Format::kWebp, Format::kJpeg, Format::kWebp, Format::kJpeg};
  const int want_width[] = {64, 64, 200, 200};
  for (std::size_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    const EncodedThumbnail& t = (*thumbs)[i];
    CHECK(t.format == want_format[i]);
    CHECK(t.size.width == want_width[i]);
    CHECK(t.width == want_width[i]);
    VImage decoded = VImage::new_from_buffer(t.bytes.data(), t.bytes.size(), "");
    const std::string loader = vips_foreign_find_load_buffer(t.bytes.data(), t.bytes.size());
    CHECK(loader.find(want_format[i] == Format::kWebp ? "Webp" : "Jpeg") != std::string::npos);
    CHECK(decoded.width() == want_width[i]);
  }
  // The same bytes as a run with that one format.
  auto jpeg_only = make(source, settings_with({{64, 0}, {200, 0}}));
  REQUIRE(jpeg_only.ok());
  CHECK((*jpeg_only)[1].bytes == (*thumbs)[3].bytes);
}

TEST_CASE("a failed job leaves nothing behind for the next one") {
  start_vips();
  const Bytes& whole = photo_4000x3000();
  REQUIRE_FALSE(make(Bytes(whole.begin(), whole.begin() + 5000), settings_with({{64, 0}})).ok());
  auto good = make(encode_as(noisy_photo(300, 200), ".jpg"), settings_with({{64, 0}}));
  CHECK_MESSAGE(good.ok(), good.status().message());
  CHECK(std::string_view(vips_error_buffer()).empty());
}

TEST_CASE("ResizeSettings::From copies what the resizer needs") {
  Options options;
  options.sizes = {{120, 0}, {300, 200}};
  options.formats = {Format::kWebp, Format::kPng};
  options.quality = 70;
  options.max_pixels = 12345;
  options.allow_untrusted_formats = true;
  const ResizeSettings settings = ResizeSettings::From(options);
  CHECK(settings.sizes == options.sizes);
  CHECK(settings.formats == std::vector<Format>{Format::kWebp, Format::kPng});
  CHECK(settings.quality == 70);
  CHECK(settings.max_pixels == 12345);
  CHECK(settings.allow_untrusted_formats);
}

// ---------------------------------------------------------------------------
// Decode memory (issue 7 §4): progressive JPEGs and interlaced PNGs decode
// whole, and bands and bit depth multiply it; the header says so before a
// pixel is decoded. Flat images: many pixels, few bytes on disk.

/// A flat 4-band 16-bit RGB image (RGBA, 8 bytes a pixel).
VImage flat_rgba16(int width, int height) {
  return VImage::black(width, height, VImage::option()->set("bands", 4))
      .cast(VIPS_FORMAT_USHORT)
      .copy(VImage::option()->set("interpretation", static_cast<int>(VIPS_INTERPRETATION_RGB16)));
}

/// A flat CMYK image (4 bands, 8-bit).
VImage flat_cmyk(int width, int height) {
  return (VImage::black(width, height, VImage::option()->set("bands", 4)) + 20)
      .cast(VIPS_FORMAT_UCHAR)
      .copy(VImage::option()->set("interpretation", static_cast<int>(VIPS_INTERPRETATION_CMYK)));
}

const Bytes& interlaced_rgba16_png() {
  static const Bytes png = encode_as(flat_rgba16(4000, 3000), ".png",
                                     VImage::option()->set("interlace", true)->set("compression", 9));
  return png;
}

const Bytes& sequential_rgba16_png() {
  static const Bytes png =
      encode_as(flat_rgba16(4000, 3000), ".png", VImage::option()->set("compression", 9));
  return png;
}

const Bytes& progressive_cmyk_jpeg() {
  static const Bytes jpeg =
      encode_as(flat_cmyk(4000, 3000), ".jpg", VImage::option()->set("interlace", true));
  return jpeg;
}

const Bytes& baseline_cmyk_jpeg() {
  static const Bytes jpeg = encode_as(flat_cmyk(4000, 3000), ".jpg");
  return jpeg;
}

ResizeSettings with_decode_limit_mb(std::uint64_t mb) {
  ResizeSettings settings = settings_with(kDefaultWidths);
  settings.max_decode_bytes = mb << 20;
  return settings;
}

TEST_CASE("an interlaced 16-bit RGBA PNG over --max-decode-mb is refused from its header") {
  start_vips();
  const Bytes& png = interlaced_rgba16_png();
  REQUIRE(png.size() < 1'000'000);  // small on disk, 96 MB decoded
  auto result = make(png, with_decode_limit_mb(112));
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == Code::kTooMuchMemory);
  CHECK(code_name(Code::kTooMuchMemory) == "too-much-memory");
  const std::string message = result.status().message();
  CAPTURE(message);
  CHECK(message.starts_with("decoding needs about "));
  CHECK(message.find("interlaced") != std::string::npos);
  CHECK(message.find("over --max-decode-mb 112") != std::string::npos);
  // The same pixels without interlacing stream through in rows: accepted.
  auto sequential = make(sequential_rgba16_png(), with_decode_limit_mb(112));
  CHECK_MESSAGE(sequential.ok(), sequential.status().message());
}

TEST_CASE("a progressive CMYK JPEG over --max-decode-mb is refused; the baseline one is not") {
  start_vips();
  const Bytes& jpeg = progressive_cmyk_jpeg();
  REQUIRE(jpeg.size() < 1'000'000);
  auto result = make(jpeg, with_decode_limit_mb(112));
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == Code::kTooMuchMemory);
  CHECK(result.status().message().find("progressive") != std::string::npos);
  auto baseline = make(baseline_cmyk_jpeg(), with_decode_limit_mb(112));
  CHECK_MESSAGE(baseline.ok(), baseline.status().message());
}

TEST_CASE("a 12 MP baseline JPEG passes the default limit and a small one (shrink-on-load)") {
  start_vips();
  auto with_defaults = make(photo_4000x3000(), settings_with(kDefaultWidths));
  CHECK_MESSAGE(with_defaults.ok(), with_defaults.status().message());
  CHECK(settings_with(kDefaultWidths).max_decode_bytes == std::uint64_t{512} << 20);
  auto small_limit = make(photo_4000x3000(), with_decode_limit_mb(32));
  CHECK_MESSAGE(small_limit.ok(), small_limit.status().message());
}

TEST_CASE("the hostile images pass a limit large enough for them") {
  start_vips();
  for (const Bytes* bytes : {&interlaced_rgba16_png(), &progressive_cmyk_jpeg()}) {
    auto result = make(*bytes, with_decode_limit_mb(512));
    CHECK_MESSAGE(result.ok(), result.status().message());
  }
}

TEST_CASE("estimate_decode_bytes: whole images cost every pixel, streamed ones a band of rows") {
  DecodeShape png;
  png.width = 9945;
  png.height = 9945;
  png.bands = 4;
  png.sample_bytes = 2;
  png.has_alpha = true;
  png.whole_image = true;
  // The 98.9 MP interlaced RGBA16 PNG measured 884 MB in one worker.
  const std::uint64_t whole = estimate_decode_bytes(png);
  CHECK(whole >= 884'000'000);
  CHECK(whole <= 1'200'000'000);
  png.whole_image = false;
  const std::uint64_t rows = estimate_decode_bytes(png);
  CHECK(rows < whole - 700'000'000);
  DecodeShape jpeg;
  jpeg.width = 4000;
  jpeg.height = 3000;
  jpeg.bands = 3;
  jpeg.sample_bytes = 1;
  jpeg.load_shrink = 8;
  CHECK(estimate_decode_bytes(jpeg) < std::uint64_t{32} << 20);
}

TEST_CASE("ResizeSettings::From takes --max-decode-mb in MiB") {
  Options options;
  options.max_decode_mb = 100;
  CHECK(ResizeSettings::From(options).max_decode_bytes == std::uint64_t{100} << 20);
}

// The threaded build's workers share one libvips. Without worker/orc_guard.cc
// this crashed in most runs ("double free or corruption", or SIGSEGV in
// liborc 0.4.33's code memory): reducev, in every thumbnail, compiles an orc
// program when it is built and frees it when its image is done, in whichever
// thread made it. Bare reduces, so that compiles and frees dominate the time.
TEST_CASE("threads resizing at once: liborc's code memory stays whole") {
  start_vips();
  REQUIRE(orc_guard_installed());
  constexpr int kThreads = 4, kRounds = 1500;
  std::vector<int> made(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&made, t] {
      for (int round = 0; round < kRounds; ++round) {
        VImage small = VImage::black(64 + round % 7, 64 + t).cast(VIPS_FORMAT_UCHAR).resize(0.31 + 0.01 * (round % 5));
        std::size_t length = 0;
        g_free(small.write_to_memory(&length));
        if (length > 0) ++made[static_cast<std::size_t>(t)];
      }
      vips_thread_shutdown();
    });
  for (std::thread& thread : threads) thread.join();
  for (int count : made) CHECK(count == kRounds);
}

// The kept code (orc_guard.cc): a program is compiled once per process, and
// a program that differs in any compiler input (here only a constant) gets
// its own code.
TEST_CASE("liborc code: the same program is compiled once, a different one again") {
  start_vips();
  REQUIRE(orc_guard_installed());
  constexpr int kN = 64;
  std::array<std::int16_t, kN> source{};
  for (int i = 0; i < kN; ++i) source[static_cast<std::size_t>(i)] = static_cast<std::int16_t>(i * 3);
  // d1 = s1 + constant, compiled and run as libvips does.
  auto add = [&source](int constant, int compiles = 1) {
    OrcProgram* program = orc_program_new();
    orc_program_add_destination(program, 2, "d1");
    orc_program_add_source(program, 2, "s1");
    orc_program_add_constant(program, 2, constant, "c1");
    orc_program_append_str(program, "addw", "d1", "s1", "c1");
    for (int i = 0; i < compiles; ++i) REQUIRE(ORC_COMPILE_RESULT_IS_SUCCESSFUL(orc_program_compile(program)));
    std::array<std::int16_t, kN> out{};
    OrcExecutor* executor = orc_executor_new(program);
    orc_executor_set_n(executor, kN);
    orc_executor_set_array_str(executor, "s1", source.data());
    orc_executor_set_array_str(executor, "d1", out.data());
    orc_executor_run(executor);
    orc_executor_free(executor);
    orc_program_free(program);
    int wrong = 0;
    for (int i = 0; i < kN; ++i) wrong += out[static_cast<std::size_t>(i)] != source[static_cast<std::size_t>(i)] + constant;
    return wrong;
  };
  const OrcCodeCounts before = orc_code_counts();
  CHECK(add(1001) == 0);
  const OrcCodeCounts first = orc_code_counts();
  CHECK(first.compiled == before.compiled + 1);
  CHECK(add(1001) == 0);  // freed and built again: the kept code
  CHECK(add(2002) == 0);  // another constant: compiled
  const OrcCodeCounts after = orc_code_counts();
  CHECK(after.reused == first.reused + 1);
  CHECK(after.compiled == first.compiled + 1);
  // Compiled twice over kept code: liborc must not free the kept code.
  CHECK(add(1001, 2) == 0);
  CHECK(add(1001) == 0);

  // Thumbnails: a second image of the same size compiles nothing new.
  const Bytes jpeg = encode_as(noisy_photo(1600, 1200), ".jpg");
  const ResizeSettings settings = settings_with(kDefaultWidths);
  REQUIRE(make(jpeg, settings).ok());
  const OrcCodeCounts once = orc_code_counts();
  REQUIRE(make(jpeg, settings).ok());
  const OrcCodeCounts twice = orc_code_counts();
  CHECK(twice.compiled == once.compiled);
  CHECK(twice.reused > once.reused);
}

}  // namespace
}  // namespace thumbmill
