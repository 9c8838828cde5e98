// Resize: the libvips side of a job. See resize.h for the contract.
//
// The decode, the sizes derived from it and the encodes. The source is
// opened and its header checked by source_open.h first.
#include "worker/resize.h"

#include "shared/wire.h"
#include "worker/decode_estimate.h"
#include "worker/encode.h"
#include "worker/geometry.h"
#include "worker/jpeg_decode.h"
#include "worker/orc_guard.h"
#include "worker/pixel_strips.h"
#include "worker/source_open.h"
#include "worker/vips_errors.h"

#include <malloc.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <vips/vips8>

namespace thumbmill {
namespace {

using vips::VImage;

// ---------------------------------------------------------------------------
// Sizes and decoding

/// Index of the size whose decode scales the source most; every other size
/// can be derived from that decode (worker/geometry.h).
std::size_t largest_size(Dims source, const ResizeSettings& settings) {
  const auto& sizes = settings.sizes;
  std::size_t best = 0;
  for (std::size_t i = 1; i < sizes.size(); ++i) {
    if (decode_scale(source, sizes[i], settings.geometry) >
        decode_scale(source, sizes[best], settings.geometry)) {
      best = i;
    }
  }
  return best;
}

/// Fails with kTooMuchMemory when decoding to `spec` is estimated to need
/// more than max_decode_bytes, and with kTooManyPixels when --upscale would
/// make more than max_pixels; decided from the header, before a pixel is
/// decoded.
Status check_decode_memory(const SourceInfo& info, SizeSpec spec, const ResizeSettings& settings) {
  const double scale = decode_scale(info.upright, spec, settings.geometry);
  const Dims out = scaled(info.upright, scale);
  const std::uint64_t pixels = static_cast<std::uint64_t>(out.width) * static_cast<std::uint64_t>(out.height);
  if (pixels > settings.max_pixels) {
    char message[160];
    std::snprintf(message, sizeof message, "--upscale to %dx%d (%.1f MP) is over --max-pixels %.1f MP",
                  out.width, out.height, pixels / 1e6, settings.max_pixels / 1e6);
    return Status(Code::kTooManyPixels, message);
  }
  return check_decode_plan(info.plan, std::min(scale, 1.0), info.cmyk_with_profile, out.width + 1,
                           out.height + 1, settings.max_decode_bytes);
}

VipsInteresting interesting_of(Crop crop) {
  switch (crop) {
    case Crop::kAttention: return VIPS_INTERESTING_ATTENTION;
    case Crop::kEntropy: return VIPS_INTERESTING_ENTROPY;
    case Crop::kCentre: break;
  }
  return VIPS_INTERESTING_CENTRE;
}

VipsSize size_of(ThumbnailBox::Mode mode) {
  switch (mode) {
    case ThumbnailBox::Mode::kBoth: return VIPS_SIZE_BOTH;
    case ThumbnailBox::Mode::kForce: return VIPS_SIZE_FORCE;
    case ThumbnailBox::Mode::kDown: break;
  }
  return VIPS_SIZE_DOWN;
}

/// The thumbnail options for `box` (its width is thumbnail's argument).
/// no_rotate is passed to both calls: with --no-rotate the decoded image
/// keeps its orientation tag, which the derive would otherwise apply.
vips::VOption* box_options(const ThumbnailBox& box, const ResizeSettings& settings) {
  vips::VOption* options = VImage::option()
                               ->set("height", box.height)
                               ->set("size", static_cast<int>(size_of(box.mode)))
                               ->set("no_rotate", settings.no_rotate);
  if (box.crop) options->set("crop", static_cast<int>(interesting_of(settings.geometry.crop)));
  return options;
}

/// thumbnail_image's shrinks for `box` (vips_thumbnail_calculate_shrink,
/// libvips 8.14, for an upright image and no crop): the larger of the two
/// for both axes, unless forced; never enlarging in kDown mode; never
/// shrinking an axis below one pixel.
std::pair<double, double> thumbnail_shrinks(int width, int height, const ThumbnailBox& box) {
  double h = static_cast<double>(width) / box.width;
  double v = static_cast<double>(height) / box.height;
  if (box.mode != ThumbnailBox::Mode::kForce) h = v = h < v ? v : h;
  if (box.mode == ThumbnailBox::Mode::kDown) {
    h = std::max(1.0, h);
    v = std::max(1.0, v);
  }
  return {std::min(h, static_cast<double>(width)), std::min(v, static_cast<double>(height))};
}

/// What thumbnail_image makes of `in`, computed lazily, when that is only a
/// resize: an 8-bit sRGB or B_W image in memory, one page, no alpha, upright
/// (or --no-rotate), not cropped. thumbnail_image first wraps its input in
/// a sequential line cache (meant for a file decoded top to bottom, a copy
/// of every row here) and converts sRGB to sRGB twice (a copy each); then it
/// calls vips_resize with these shrinks. The same call on the image itself
/// makes the same pixels (every bench thumbnail compared) at less cost.
/// nullopt: anything else, left to thumbnail_image.
std::optional<VImage> plain_resize(const VImage& in, const ThumbnailBox& box, const ResizeSettings& settings) {
  VipsImage* image = in.get_image();
  const bool srgb = image->Bands == 3 && image->Type == VIPS_INTERPRETATION_sRGB;
  const bool grey = image->Bands == 1 && image->Type == VIPS_INTERPRETATION_B_W;
  const bool plain = !box.crop && image->Coding == VIPS_CODING_NONE && image->BandFmt == VIPS_FORMAT_UCHAR &&
                     (srgb || grey) && !vips_image_hasalpha(image) &&
                     vips_image_get_page_height(image) == image->Ysize &&
                     (settings.no_rotate || vips_image_get_orientation(image) == 1);
  if (!plain || !settings.resize_directly) return std::nullopt;
  const auto [hshrink, vshrink] = thumbnail_shrinks(image->Xsize, image->Ysize, box);
  return in.resize(1.0 / hshrink, VImage::option()->set("vscale", 1.0 / vshrink));
}

/// `lazy` computed into memory in the calling thread (pixel_strips.h): the
/// same pixels as copy_memory(), without a libvips sink (a pool thread, its
/// semaphores and hand-offs, ~50 futex calls an image), which in the
/// threaded build also contended with the other workers'.
VImage in_memory(const VImage& lazy) {
  VipsImage* source = lazy.get_image();
  VipsImage* out = vips_image_new_memory();
  VImage held(out);  // owns `out`
  if (vips_image_pipelinev(out, VIPS_DEMAND_STYLE_ANY, source, nullptr) != 0 || vips_image_write_prepare(out) != 0) {
    throw vips::VError();
  }
  VipsRegion* from = vips_region_new(source);
  VipsRegion* to = vips_region_new(out);
  VipsRect whole{0, 0, out->Xsize, out->Ysize};
  const bool ok = from != nullptr && to != nullptr && vips_region_image(to, &whole) == 0 &&
                  for_each_strip(out, [&](VipsRect& strip) {
                    return vips_region_prepare_to(from, to, &strip, 0, strip.top) == 0;
                  });
  if (from != nullptr) g_object_unref(from);
  if (to != nullptr) g_object_unref(to);
  if (!ok) throw vips::VError();
  return held;
}

/// thumbnail_image of `in` for `box`, computed into memory.
VImage thumbnail_in_memory(const VImage& in, const ThumbnailBox& box, const ResizeSettings& settings) {
  std::optional<VImage> resized = plain_resize(in, box, settings);
  return in_memory(resized ? *resized : in.thumbnail_image(box.width, box_options(box, settings)));
}

// The direct decode holds the whole shrunk image (libvips' loader streams
// it in strips), so it takes only images that small: a thumbnail's decode
// (500x375 from 12 MP for 200 px) is 0.5 MiB, well inside the 24 MiB the
// decode-memory estimate allows beside the rows (decode_estimate.h). A large
// --sizes goes through libvips: 3000 px from 12 MP peaked at 112 MB directly
// against 93 MB through the loader.
constexpr std::uint64_t kMaxDirectDecodeBytes = std::uint64_t{8} << 20;

/// Whether `decode` can leave the JPEG decode to jpeg_decode.h: the bytes
/// are in memory, nothing asks for a colour transform, and the decoded
/// image at `shrink` is small (kMaxDirectDecodeBytes).
bool decodes_directly(const OpenedSource& source, const SourceInfo& info, int shrink, const ResizeSettings& settings) {
  const std::uint64_t decoded = std::uint64_t(info.stored.width / shrink) * std::uint64_t(info.stored.height / shrink) * 3;
  return settings.decode_jpeg_directly && !source.bytes.empty() && info.plain_jpeg &&
         settings.profile != Profile::kP3 && decoded <= kMaxDirectDecodeBytes;
}

/// decode()'s result when decodes_directly: the same shrink-on-load, by
/// libjpeg, then thumbnail of the in-memory image does what thumbnail of
/// the source does after its load.
Result<VImage> decode_directly(const OpenedSource& source, const SourceInfo& info, const ThumbnailBox& box,
                               int shrink, const ResizeSettings& settings) {
  auto header = vips_step(Code::kCorruptImage, "corrupt image", [&] {
    return VImage::new_from_source(source.vips, kLoaderOptions,
                                   VImage::option()
                                       ->set("access", static_cast<int>(VIPS_ACCESS_SEQUENTIAL))
                                       ->set("shrink", shrink));
  });
  if (!header.ok()) return header.status();
  Result<VImage> pixels = decode_jpeg_scaled(source.bytes, shrink, *header);
  if (!pixels.ok()) return pixels.status();
  return vips_step(Code::kInternal, "resize failed", [&] {
    return thumbnail_in_memory(*pixels, box, settings);
  });
}

/// The one decode: shrink-on-load straight to `box`, EXIF orientation
/// applied (unless --no-rotate), colour converted as settings.profile says,
/// then copied to memory. Decoding is lazy, so a truncated file fails here,
/// at the copy.
Result<VImage> decode(const OpenedSource& source, const SourceInfo& info, const ThumbnailBox& box,
                      const ResizeSettings& settings) {
  const int shrink = thumbnail_jpeg_shrink(info.stored, info.swap, box);
  if (decodes_directly(source, info, shrink, settings)) return decode_directly(source, info, box, shrink, settings);
  return vips_step(Code::kCorruptImage, "corrupt image", [&] {
    vips::VOption* options = box_options(box, settings)
                                 ->set("option_string", kLoaderOptions)
                                 ->set("fail_on", static_cast<int>(kFailOn))
                                 ->set("linear", info.cmyk_with_profile);
    switch (settings.profile) {
      case Profile::kSrgb:
        // export_profile: without it an embedded profile (Adobe RGB, ...)
        // is ignored and the colours come out dull.
        if (info.needs_colour_transform) options->set("export_profile", "srgb");
        break;
      case Profile::kKeep:
        // No export_profile: the pixels and the embedded profile stay as
        // they are (CMYK is still converted to sRGB: no output holds it).
        break;
      case Profile::kP3:
        // libvips's built-in "p3" profile; an untagged source is sRGB.
        options->set("import_profile", "srgb")->set("export_profile", "p3");
        break;
    }
    return VImage::thumbnail_source(source.vips, box.width, options).copy_memory();
  });
}

/// `box` made from the decoded (in-memory, already upright) image.
Result<VImage> derive(const VImage& decoded, const ThumbnailBox& box, const ResizeSettings& settings) {
  return vips_step(Code::kInternal, "resize failed", [&] {
    return thumbnail_in_memory(decoded, box, settings);
  });
}

// ---------------------------------------------------------------------------
// Encoding

Result<EncodedThumbnail> encode(const VImage& image, SizeSpec spec, Format format, const ResizeSettings& settings) {
  const std::string context = "encode " + std::string(format_name(format)) + " failed";
  return vips_step(Code::kEncodeFailed, context, [&] {
    return EncodedThumbnail{spec, format, image.width(), image.height(), encode_image(image, format, settings)};
  });
}

Status check_settings(const ResizeSettings& settings) {
  if (settings.sizes.empty()) return Status(Code::kInvalidArgument, "no thumbnail sizes requested");
  if (settings.formats.empty()) return Status(Code::kInvalidArgument, "no output format requested");
  for (const SizeSpec& spec : settings.sizes) {
    if (spec.width <= 0 || spec.height < 0) {
      return Status(Code::kInvalidArgument, "bad thumbnail size " + spec.label());
    }
  }
  return Status::Ok();
}

}  // namespace

ResizeSettings ResizeSettings::From(const Options& options) {
  ResizeSettings settings;
  settings.sizes = options.sizes;
  settings.formats = options.formats;
  settings.quality = options.quality;
  settings.max_pixels = options.max_pixels;
  settings.max_decode_bytes = static_cast<std::uint64_t>(options.max_decode_mb) << 20;
  settings.allow_untrusted_formats = options.allow_untrusted_formats;
  settings.geometry = Geometry{options.fit, options.crop, options.upscale};
  settings.no_rotate = options.no_rotate;
  settings.profile = options.profile;
  settings.keep = options.keep;
  settings.progressive = options.progressive;
  settings.optimize_coding = options.optimize_coding;
  settings.effort = options.effort;
  settings.lossless = options.lossless;
  return settings;
}

Status init_vips(const char* argv0, bool allow_untrusted_formats) {
  static std::once_flag once;
  static Status started;
  std::call_once(once, [&] {
    // libvips allocates and frees pixel buffers of a few hundred KiB for
    // every image. Above glibc's mmap threshold each is a fresh mmap: a
    // zero-filled page fault per 4 KiB, and in the threaded build a TLB
    // shootdown on the other core at every munmap. Keeping them in the heap
    // measured ~0.6 s less system time over 200 12 MP photos (threaded build).
    ::mallopt(M_MMAP_THRESHOLD, 32 << 20);
    ::mallopt(M_TRIM_THRESHOLD, 64 << 20);
    // Decoder warnings ("not enough data", "ignoring nclx profile") would
    // scribble over the coordinator's progress line; the per-source outcome
    // already says what matters. VIPS_WARNING=1 in the environment keeps them.
    ::setenv("VIPS_WARNING", "0", /*overwrite=*/0);
    if (std::string_view(::getenv("VIPS_WARNING")) != "0") ::unsetenv("VIPS_WARNING");
    if (VIPS_INIT(argv0) != 0) {
      started = Status(Code::kInternal, "cannot start libvips: " + take_vips_error().text);
      return;
    }
    // A build that lost the interposition (a new link, a static libvips)
    // would crash now and then in the threaded build; say so at once instead.
    if (!orc_guard_installed()) {
      started = Status(Code::kInternal, "libvips's calls into liborc bypass worker/orc_guard.cc (see orc_guard.h)");
      return;
    }
    // One worker per core already: a libvips thread pool each would
    // oversubscribe the machine.
    vips_concurrency_set(1);
    // Every job is a different image; a cache only holds memory and files.
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_cache_set_max_files(0);
    vips_block_untrusted_set(allow_untrusted_formats ? FALSE : TRUE);
  });
  return started;
}

Result<std::vector<EncodedThumbnail>> make_thumbnails(const ImageSource& source,
                                                      const ResizeSettings& settings) {
  vips_error_clear();  // a stale message from an earlier job must not leak in
  if (Status valid = check_settings(settings); !valid.ok()) return valid;

  Result<OpenedSource> opened = open_source(source);
  if (!opened.ok()) return opened.status();
  const char* origin = source.path.empty() ? "body" : "file";
  if (Status loader = check_loader(opened->vips, origin, settings.allow_untrusted_formats); !loader.ok()) {
    return loader;
  }
  Result<SourceInfo> info = check_header(opened->vips, settings.max_pixels, settings.no_rotate);
  if (!info.ok()) return info.status();

  const std::size_t largest = largest_size(info->upright, settings);
  if (Status memory = check_decode_memory(*info, settings.sizes[largest], settings); !memory.ok()) {
    return memory;
  }
  const ThumbnailBox decoded_as = decode_box(info->upright, settings.sizes[largest], settings.geometry);
  Result<VImage> decoded = decode(*opened, *info, decoded_as, settings);
  if (!decoded.ok()) return decoded.status();

  std::vector<EncodedThumbnail> out;
  out.reserve(settings.sizes.size() * settings.formats.size());
  for (const SizeSpec spec : settings.sizes) {
    // Every size is derived from the decode, except one the decode already is.
    const ThumbnailBox box = final_box(info->upright, spec, settings.geometry);
    Result<VImage> resized = box == decoded_as ? Result<VImage>(*decoded) : derive(*decoded, box, settings);
    if (!resized.ok()) return resized.status();
    for (Format format : settings.formats) {
      Result<EncodedThumbnail> encoded = encode(*resized, spec, format, settings);
      if (!encoded.ok()) return encoded.status();
      out.push_back(std::move(encoded).value());
    }
  }
  return out;
}

}  // namespace thumbmill
