// Encode: see encode.h.
#include "worker/encode.h"

#include "worker/jpeg_encode.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace thumbmill {
namespace {

using vips::VError;
using vips::VImage;

/// 8-bit with at most one alpha band, in sRGB unless the pixels are meant
/// to stay in their own colour space: what every encoder here expects.
/// JPEG has no alpha, so it is flattened onto white there.
VImage prepare_for(Format format, VImage image) {
  if (image.interpretation() != VIPS_INTERPRETATION_sRGB || image.format() != VIPS_FORMAT_UCHAR) {
    image = image.colourspace(VIPS_INTERPRETATION_sRGB);
  }
  if (image.format() != VIPS_FORMAT_UCHAR) image = image.cast(VIPS_FORMAT_UCHAR);
  if (image.bands() > 4) image = image.extract_band(0, VImage::option()->set("n", 4));
  if (format == Format::kJpeg && image.has_alpha()) {
    image = image.flatten(VImage::option()->set("background", std::vector<double>{255, 255, 255}));
  }
  return image;
}

/// A copy of `image` without the metadata the settings do not keep (the
/// savers' strip alone is not enough: see encode_image). With
/// --keep all, everything the loader found stays (IPTC, PNG text, ...).
VImage prune_metadata(const VImage& image, const ResizeSettings& settings) {
  const MetadataKeep& keep = settings.keep;
  if (keep.exif && keep.icc && keep.xmp) return image;
  const bool icc = keep.icc || settings.profile != Profile::kSrgb;
  VImage copy = image.copy();
  char** fields = vips_image_get_fields(copy.get_image());
  for (char** field = fields; *field != nullptr; ++field) {
    const std::string_view name = *field;
    bool drop = false;
    if (name == VIPS_META_EXIF_NAME || name.starts_with("exif-")) drop = !keep.exif;
    else if (name == VIPS_META_XMP_NAME) drop = !keep.xmp;
    else if (name == VIPS_META_ICC_NAME) drop = !icc;
    else if (name == VIPS_META_IPTC_NAME || name.starts_with("png-comment-") || name == "gif-comment")
      drop = true;
    if (drop) vips_image_remove(copy.get_image(), *field);
  }
  g_strfreev(fields);
  return copy;
}

int effort_or(int effort, int fallback) { return effort == kDefaultEffort ? fallback : effort; }

/// Runs the saver for the format. Every option is fixed by the settings, so
/// the same pixels give the same bytes (no timestamps).
VipsBlob* save(const VImage& image, Format format, const ResizeSettings& settings) {
  const bool strip = !keeps_metadata(settings);
  switch (format) {
    case Format::kJpeg:
      return image.jpegsave_buffer(VImage::option()
                                       ->set("Q", settings.quality)
                                       ->set("interlace", settings.progressive)
                                       ->set("optimize_coding", settings.optimize_coding)
                                       ->set("strip", strip));
    case Format::kWebp:
      return image.webpsave_buffer(VImage::option()
                                       ->set("Q", settings.quality)
                                       ->set("effort", effort_or(settings.effort, 4))
                                       ->set("lossless", settings.lossless)
                                       ->set("strip", strip));
    case Format::kPng:
      return image.pngsave_buffer(VImage::option()->set("compression", 6)->set("strip", strip));
    case Format::kAvif:
      // effort 2 of 0-9 by default: at 200x150 libvips's default 4 took 7x
      // as long (170 ms against 25) for a file within 3% of the size.
      return image.heifsave_buffer(
          VImage::option()
              ->set("Q", settings.quality)
              ->set("compression", static_cast<int>(VIPS_FOREIGN_HEIF_COMPRESSION_AV1))
              ->set("bitdepth", 8)
              ->set("effort", effort_or(settings.effort, 2))
              ->set("lossless", settings.lossless)
              ->set("subsample_mode", static_cast<int>(settings.lossless ? VIPS_FOREIGN_SUBSAMPLE_OFF
                                                                         : VIPS_FOREIGN_SUBSAMPLE_AUTO))
              ->set("strip", strip));
  }
  throw VError("unknown output format");
}

std::vector<std::byte> take_blob(VipsBlob* blob) {
  std::unique_ptr<VipsBlob, void (*)(VipsBlob*)> owned(
      blob, [](VipsBlob* b) { vips_area_unref(VIPS_AREA(b)); });
  std::size_t length = 0;
  const auto* data = static_cast<const std::byte*>(vips_blob_get(blob, &length));
  return std::vector<std::byte>(data, data + length);
}

std::uint32_t get_le32(const std::vector<std::byte>& bytes, std::size_t at) {
  std::uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = (value << 8) | std::to_integer<std::uint32_t>(bytes[at + i]);
  return value;
}

void put_le32(std::vector<std::byte>& bytes, std::size_t at, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<std::byte>((value >> (8 * i)) & 0xff);
}

/// Removes the EXIF chunk from an extended WebP file and clears its flag in
/// VP8X. The 8.14.1 WebP saver writes a minimal EXIF block (orientation,
/// resolution) even with strip=true and no EXIF on the image (measured).
/// A file of another layout is left as it is.
void drop_webp_exif(std::vector<std::byte>& webp) {
  constexpr std::size_t kFirstChunk = 12, kVp8xFlags = 20;
  constexpr std::byte kExifFlag{0x08};
  auto fourcc_at = [&webp](std::size_t at) {
    return std::string_view(reinterpret_cast<const char*>(webp.data() + at), 4);
  };
  if (webp.size() < 30 || fourcc_at(0) != "RIFF" || fourcc_at(8) != "WEBP" || fourcc_at(12) != "VP8X") return;
  for (std::size_t at = kFirstChunk; at + 8 <= webp.size();) {
    const std::size_t length = 8 + get_le32(webp, at + 4) + (get_le32(webp, at + 4) & 1);
    if (at + length > webp.size()) return;
    if (fourcc_at(at) != "EXIF") {
      at += length;
      continue;
    }
    webp.erase(webp.begin() + at, webp.begin() + at + length);
    put_le32(webp, 4, static_cast<std::uint32_t>(webp.size() - 8));
    webp[kVp8xFlags] &= ~kExifFlag;
    return;
  }
}

}  // namespace

bool keeps_metadata(const ResizeSettings& settings) {
  return settings.keep.any() || settings.profile != Profile::kSrgb;
}

std::vector<std::byte> encode_image(const VImage& image, Format format, const ResizeSettings& settings) {
  VImage ready = prepare_for(format, image);
  // The common case, by libjpeg directly (jpeg_encode.h): the same bytes.
  if (format == Format::kJpeg && !keeps_metadata(settings) && settings.encode_jpeg_directly &&
      encodes_directly(ready)) {
    Result<std::vector<std::byte>> encoded = encode_jpeg(
        ready, JpegEncoding{settings.quality, settings.progressive, settings.optimize_coding});
    if (!encoded.ok()) throw VError(encoded.status().message());
    return std::move(encoded).value();
  }
  // Always pruned, not only when keeping some: the 8.14.1 WebP saver writes
  // the EXIF it finds on the image even with strip=true (measured here).
  ready = prune_metadata(ready, settings);
  std::vector<std::byte> bytes = take_blob(save(ready, format, settings));
  if (format == Format::kWebp && !settings.keep.exif) drop_webp_exif(bytes);
  return bytes;
}

}  // namespace thumbmill
